package witness_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// redirector serves a log from its own handler, or redirects some of the
// requests (those redirect picks) to the same path on another server.
type redirector struct {
	own      http.Handler
	target   string
	redirect atomic.Pointer[func(path string) bool]
}

func (s *redirector) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if f := s.redirect.Load(); f != nil && (*f)(r.URL.Path) {
		http.Redirect(rw, r, s.target+r.URL.Path, http.StatusFound)
		return
	}
	s.own.ServeHTTP(rw, r)
}

// countingServer starts a server that counts its requests before serving
// them with h.
func countingServer(t testing.TB, h http.Handler) (*atomic.Int64, string) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	return &n, srv.URL
}

// TestPullFollowsNoRedirect checks that pull mode refuses a redirect, for
// the checkpoint and for tiles, to a server that would answer correctly,
// with the Puller's default client and with the caller's, which is left
// as it was.
func TestPullFollowsNoRedirect(t *testing.T) {
	for _, own := range []bool{false, true} {
		l := newTestLog("example.org/redirects")
		tr := newTree(t, 300, 300, "")
		log, _ := newTilesServer(t, l, tr, 10)
		// The target serves the same log, at the same sizes.
		reached, target := countingServer(t, log)
		r := &redirector{own: log, target: target}
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		client := &http.Client{Timeout: time.Minute}
		w := newPullWitness(t, []*testLog{l}, []witness.Source{{Origin: l.origin, URL: srv.URL}}, func(c *witness.PullerConfig) {
			if own {
				c.Client = client
			}
		})
		w.pollCosigned(t, l, api.Checkpoint{Size: 10, Hash: tr.root(t, 10)})
		cosigned := w.served(t, l)
		log.set(func(s *tilesServer) { s.size = 300 })

		for _, tc := range []struct {
			name     string
			redirect func(path string) bool
		}{
			{"checkpoint", func(path string) bool { return path == "/checkpoint" }},
			{"tiles", func(path string) bool { return strings.HasPrefix(path, "/tile/") }},
		} {
			r.redirect.Store(&tc.redirect)
			got, err := w.p.Poll(context.Background(), l.origin)
			if got != witness.PullError || err == nil || !strings.Contains(err.Error(), "302 Found") || !strings.Contains(err.Error(), "redirects are not followed") {
				t.Fatalf("own client %v, %s redirected: Poll = %q, %v; want an error about the redirect", own, tc.name, got, err)
			}
			if n := reached.Load(); n != 0 {
				t.Fatalf("own client %v, %s redirected: the redirect's target got %d requests", own, tc.name, n)
			}
			if !bytes.Equal(w.served(t, l), cosigned) {
				t.Fatalf("own client %v, %s redirected: the witness's state changed", own, tc.name)
			}
		}
		if client.CheckRedirect != nil {
			t.Fatal("NewPuller changed the caller's client")
		}
		// Served directly, the same checkpoint is cosigned.
		r.redirect.Store(nil)
		w.pollCosigned(t, l, api.Checkpoint{Size: 300, Hash: tr.root(t, 300)})
	}
}

// TestGossipTilesFollowNoRedirect checks that the witness's client, which
// reads a log's tiles to check a gossiped checkpoint against its own,
// refuses a redirect to a server that would answer correctly, also when
// the client is the caller's, which is left as it was.
func TestGossipTilesFollowNoRedirect(t *testing.T) {
	for _, own := range []bool{false, true} {
		l := newTestLog("example.com/redirects")
		const size = 700
		tr := newTree(t, size, size, "")
		log, _ := newTilesServer(t, l, tr, size)
		reached, target := countingServer(t, log)
		r := &redirector{own: log, target: target}
		redirectAll := func(string) bool { return true }
		r.redirect.Store(&redirectAll)
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)

		state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Timeout: time.Minute}
		cfg := witness.Config{Cosigner: cosigner, State: state, Evidence: state, Logger: quiet,
			Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier, URL: srv.URL}}}
		if own {
			cfg.Client = client
		}
		wn, err := witness.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h, err := witness.NewHandler(wn, witness.HandlerOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(h)
		w := &testWitness{url: hs.URL, vkey: cosigner.VerifierKey(), verifier: cosigner.Verifier(), srv: hs, closeState: state.Close}
		t.Cleanup(func() { w.close(t) })

		cp := l.checkpoint(t, tr, size)
		checkCosigned(t, w, l, cp, post(t, w.url, addBody(0, nil, cp)))
		code, res := postGossip(t, w.url, l.checkpoint(t, tr, 400))
		if code != http.StatusOK || res.Result != witness.ObservedUnproven || !strings.Contains(res.Detail, "302 Found") || !strings.Contains(res.Detail, "redirects are not followed") {
			t.Fatalf("own client %v: posting an older checkpoint with the tiles redirected = %d %+v, want unproven because of the redirect", own, code, res)
		}
		if n := reached.Load(); n != 0 {
			t.Fatalf("own client %v: the redirect's target got %d requests", own, n)
		}
		if client.CheckRedirect != nil {
			t.Fatal("witness.New changed the caller's client")
		}
		// Served directly, the tiles prove the checkpoint consistent.
		r.redirect.Store(nil)
		if code, res := postGossip(t, w.url, l.checkpoint(t, tr, 400)); code != http.StatusOK || res.Result != witness.ObservedConsistent {
			t.Fatalf("own client %v: posting an older checkpoint with the tiles served = %d %+v, want consistent", own, code, res)
		}
	}
}
