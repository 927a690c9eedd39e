package witness_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// TestAddCheckpointNoSpace checks that while Config.CheckSpace fails the
// witness answers add-checkpoint with 503, Retry-After and the reason,
// stores nothing and says so on /readyz, while 409s and reads are still
// served; and that it cosigns again as soon as the check passes.
func TestAddCheckpointNoSpace(t *testing.T) {
	l := newTestLog("example.com/log")
	tr := newTree(t, 20, 20, "")
	state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	errLow := errors.New("3.0 MiB free in /data, below the reserve of 8.0 MiB (minFreeBytes)")
	var low atomic.Bool
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: state, Evidence: state, Logger: quiet,
		Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier}},
		CheckSpace: func() error {
			if low.Load() {
				return errLow
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tw := &testWitness{url: srv.URL, vkey: cosigner.VerifierKey(), verifier: cosigner.Verifier()}

	cp5 := l.checkpoint(t, tr, 5)
	checkCosigned(t, tw, l, cp5, post(t, srv.URL, addBody(0, nil, cp5)))
	if r := get(t, srv.URL+"/readyz"); r.code != http.StatusOK {
		t.Fatalf("/readyz = %v", r)
	}

	low.Store(true)
	cp9 := l.checkpoint(t, tr, 9)
	r := post(t, srv.URL, addBody(5, tr.proof(t, 5, 9), cp9))
	if r.code != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") == "" ||
		!strings.Contains(string(r.body), "out of disk space") || !strings.Contains(string(r.body), errLow.Error()) {
		t.Fatalf("add-checkpoint with the disk full = %v (Retry-After %q), want 503 with the reason", r, r.hdr.Get("Retry-After"))
	}
	if r := get(t, srv.URL+"/readyz"); r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), errLow.Error()) {
		t.Fatalf("/readyz with the disk full = %v, want 503 with the reason", r)
	}
	if c, _ := tw.latest(t, l); c.Size != 5 {
		t.Fatalf("stored size %d while the disk is full, want 5", c.Size)
	}
	// A stale old size needs no write: the log still learns the right one.
	if r := post(t, srv.URL, addBody(3, tr.proof(t, 3, 9), cp9)); r.code != http.StatusConflict || string(r.body) != "5\n" {
		t.Fatalf("add-checkpoint with a stale old size = %v, want 409 5", r)
	}

	low.Store(false)
	if r := get(t, srv.URL+"/readyz"); r.code != http.StatusOK {
		t.Fatalf("/readyz after space was freed = %v", r)
	}
	checkCosigned(t, tw, l, cp9, post(t, srv.URL, addBody(5, tr.proof(t, 5, 9), cp9)))
	if c, _ := tw.latest(t, l); c.Size != 9 {
		t.Fatalf("stored size %d, want 9", c.Size)
	}
}
