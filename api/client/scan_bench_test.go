package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
	// The same log's tiles and bundles from a cache in memory, as a CDN
	// in front of a tlog-tiles log serves them (they never change): the
	// monitor's own cost, without the log server's on the same cores.
	cache := &tileCache{h: l.handler, cached: map[string][]byte{}}
	cached := httptest.NewServer(cache)
	defer cached.Close()
	vc := newVerifier(b, client.New(cached.URL, cached.Client()), key, client.VerifierConfig{})
	if _, err := vc.Accept(ctx, l.checkpoint()); err != nil {
		b.Fatal(err)
	}
	b.Run("tree-from-cache", func(b *testing.B) {
		for b.Loop() {
			var got uint64
			if err := vc.Scan(ctx, cp, 0, cp.Size, 0, nil, func(next uint64, _ []client.Finding) error { got = next; return nil }); err != nil || got != n {
				b.Fatalf("Scan: %v, up to %d", err, got)
			}
		}
		b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "entries/s")
	})
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

// tileCache serves the replies of h from memory after the first: a cache
// of immutable tiles and entry bundles.
type tileCache struct {
	h      http.Handler
	mu     sync.Mutex
	cached map[string][]byte
}

func (c *tileCache) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/tile/") {
		c.h.ServeHTTP(rw, r)
		return
	}
	c.mu.Lock()
	body, ok := c.cached[r.URL.Path]
	c.mu.Unlock()
	if !ok {
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			http.Error(rw, rec.Body.String(), rec.Code)
			return
		}
		body = rec.Body.Bytes()
		c.mu.Lock()
		c.cached[r.URL.Path] = body
		c.mu.Unlock()
	}
	rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rw.Write(body)
}
