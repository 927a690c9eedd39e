package trillian_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tpb "github.com/google/trillian"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

// BenchmarkQueueLeaf is raw Trillian on MariaDB, the figure the log on
// Trillian compares with: 64 clients queue distinct 800-byte leaves with
// QueueLeaf, and the op ends when Trillian's signer (batches of 1,000
// every 100ms, trillian_log_signer's defaults) has integrated them all.
// One op is one leaf; leaves/s is the integrated rate.
func BenchmarkQueueLeaf(b *testing.B) {
	env := trilliantest.Start(b, trilliantest.Options{})
	conn, err := trillian.Dial(trillian.Options{Address: env.Addr, Plaintext: true})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	tree, err := trillian.CreateTree(ctx, conn, "bench", "")
	if err != nil {
		b.Fatal(err)
	}
	lc := tpb.NewTrillianLogClient(conn)
	const clients = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, clients)
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			data := make([]byte, 800)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				copy(data, fmt.Sprintf("%d %d", start.UnixNano(), i))
				if _, err := lc.QueueLeaf(ctx, &tpb.QueueLeafRequest{LogId: tree.TreeId, Leaf: &tpb.LogLeaf{
					LeafValue: data, LeafIdentityHash: rfc6962.DefaultHasher.HashLeaf(data),
				}}); err != nil {
					errs[c] = err
					return
				}
			}
		})
	}
	wg.Wait()
	queued := time.Since(start)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	for {
		root, err := trillian.LatestRoot(ctx, lc, tree.TreeId)
		if err != nil {
			b.Fatal(err)
		}
		if root.TreeSize >= uint64(b.N) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "leaves/s")
	b.ReportMetric(float64(b.N)/queued.Seconds(), "queued/s")
}
