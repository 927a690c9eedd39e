package trillian_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tpb "github.com/google/trillian"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

// BenchmarkQueueLeaf is raw Trillian on MariaDB, the figure the log on
// Trillian compares with: 64 clients queue distinct 800-byte leaves with
// QueueLeaf, Trillian's signer integrating them (batches of 1,000 every
// 100ms, trillian_log_signer's defaults). With wait=none a client queues
// its next leaf at once, and the op ends when the signer has integrated
// them all (leaves/s is the integrated rate); with wait=proof a client
// waits, as a log's front end does before it replies, until Trillian
// gives the leaf's inclusion proof (GetInclusionProofByHash, asked every
// 20ms). One op is one leaf.
func BenchmarkQueueLeaf(b *testing.B) {
	for _, wait := range []bool{false, true} {
		for _, clients := range benchClients {
			b.Run(fmt.Sprintf("wait=%s/clients=%d", map[bool]string{false: "none", true: "proof"}[wait], clients), func(b *testing.B) { benchQueueLeaf(b, wait, clients) })
		}
	}
}

// benchClients are the numbers of concurrent clients the benchmarks run
// with: with 64, a front end's clients, each waiting about a signer's
// interval for its proof, cannot submit as fast as Trillian integrates
// (64 / 0.1 s); with 256 they can, and the front end's rate is what it
// adds to Trillian's.
var benchClients = []int{64, 256}

func benchQueueLeaf(b *testing.B, waitProof bool, clients int) {
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
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, clients)
	latencies := make([]time.Duration, b.N)
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
				t0 := time.Now()
				copy(data, fmt.Sprintf("%d %d", start.UnixNano(), i))
				hash := rfc6962.DefaultHasher.HashLeaf(data)
				if _, err := lc.QueueLeaf(ctx, &tpb.QueueLeafRequest{LogId: tree.TreeId, Leaf: &tpb.LogLeaf{
					LeafValue: data, LeafIdentityHash: hash,
				}}); err != nil {
					errs[c] = err
					return
				}
				for waitProof {
					root, err := trillian.LatestRoot(ctx, lc, tree.TreeId)
					if err != nil {
						errs[c] = err
						return
					}
					if root.TreeSize > 0 {
						resp, err := lc.GetInclusionProofByHash(ctx, &tpb.GetInclusionProofByHashRequest{
							LogId: tree.TreeId, LeafHash: hash, TreeSize: int64(root.TreeSize),
						})
						if err == nil && len(resp.Proof) > 0 {
							break
						}
						if err != nil && status.Code(err) != codes.NotFound {
							errs[c] = err
							return
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				latencies[i] = time.Since(t0)
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
	if waitProof {
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	} else {
		b.ReportMetric(float64(b.N)/queued.Seconds(), "queued/s")
	}
}

// BenchmarkFrontEnd is the log on Trillian, as BenchmarkQueueLeaf runs
// raw Trillian: 64 or 256 clients submit build entries over HTTP to one or two
// front ends, each waiting for its reply with a proof, which the front
// end gives once Trillian sequenced the entry and its mirror published
// it. One op is one submission; submissions/s and p99-ms are the
// clients', rounds/s how often the front ends (together) asked Trillian
// for its latest root.
func BenchmarkFrontEnd(b *testing.B) {
	for _, fronts := range []int{1, 2} {
		for _, clients := range benchClients {
			b.Run(fmt.Sprintf("fronts=%d/clients=%d", fronts, clients), func(b *testing.B) { benchFrontEnd(b, fronts, clients) })
		}
	}
}

func benchFrontEnd(b *testing.B, fronts, clients int) {
	tt := newTrillianTreeWith(b, trilliantest.Options{}) // the signer's defaults, as BenchmarkQueueLeaf
	var fes []*frontEnd
	for range fronts {
		fe, err := tt.start(b, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		fes = append(fes, fe)
	}
	signer := apitest.NewBuildSigner()
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = signer.Submission(fmt.Sprintf("bench-%d", i), fmt.Sprintf("%064x", i))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next atomic.Int64
	latencies := make([]time.Duration, b.N)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(fes[i%int64(fronts)].srv.URL+"/v1/entries", "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					errs[c] = err
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs[c] = fmt.Errorf("submission %d: %s %s", i, resp.Status, msg)
					return
				}
				latencies[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(latencies)
	// How often the front ends asked Trillian for its root (including
	// the rounds before the clock started: a few).
	var rounds float64
	for _, fe := range fes {
		for _, n := range fe.counters(b, "candor_log_trillian_rounds_total") {
			rounds += n
		}
	}
	b.ReportMetric(rounds/elapsed.Seconds(), "rounds/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "submissions/s")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
}
