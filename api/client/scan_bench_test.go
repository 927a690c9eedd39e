package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
)

// BenchmarkScan follows a log of real build entries (about 700 bytes,
// each signed with Ed25519) over loopback, as candor monitor does: the
// tree only (every bundle re-hashed into the verified tree), and with
// every entry's admission checked again (api.ParseEntry: its signature
// and canonical form). Compare audit's rate with twice (two cores) that
// of api's BenchmarkEd25519Verify.
func BenchmarkScan(b *testing.B) {
	const n = 1 << 16
	key := newLogKey("example.com/scan-bench")
	l := newCandorLog(b, key)
	signers := []*apitest.BuildSigner{apitest.NewBuildSignerFromSeed([]byte("scan 0")), apitest.NewBuildSignerFromSeed([]byte("scan 1"))}
	all := make([]string, n)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				e, err := api.CanonicalEntry(signers[i%2].Submission(fmt.Sprintf("artifact-%d.tar.gz", i), fmt.Sprintf("%064x", i)))
				if err != nil {
					b.Error(err)
					return
				}
				all[i] = string(e)
			}
		})
	}
	wg.Wait()
	for i := 0; i < n; i += 8192 {
		l.add(b, all[i:i+8192]...)
	}
	// The log's own handler, not a faultHandler, which buffers replies
	// and serves them chunked.
	srv := httptest.NewServer(l.handler)
	defer srv.Close()
	c := client.New(srv.URL, srv.Client())
	v := newVerifier(b, c, key, client.VerifierConfig{})
	ctx := context.Background()
	cp, err := v.Accept(ctx, l.checkpoint())
	if err != nil {
		b.Fatal(err)
	}
	for _, audit := range []bool{false, true} {
		name := map[bool]string{false: "tree", true: "audit"}[audit]
		b.Run(name, func(b *testing.B) {
			var check func(client.Entry) []client.Finding
			if audit {
				check = func(e client.Entry) []client.Finding {
					if _, err := api.ParseEntry(e.Data); err != nil {
						return []client.Finding{{Index: e.Index, Fault: err}}
					}
					return nil
				}
			}
			for b.Loop() {
				var got uint64
				err := v.Scan(ctx, cp, 0, cp.Size, 0, check, func(next uint64, f []client.Finding) error {
					if len(f) > 0 {
						return f[0].Fault
					}
					got = next
					return nil
				})
				if err != nil || got != n {
					b.Fatalf("Scan: %v, up to %d", err, got)
				}
			}
			b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
