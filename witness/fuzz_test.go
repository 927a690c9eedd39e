package witness_test

import (
	"context"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// FuzzGossip feeds arbitrary gossip messages (checkpoints, as from a
// peer, and evidence) to a witness that follows one log, and checks that
// none raises an alarm: without the log's key nobody can make evidence,
// and the only checkpoints the log signed are of one tree.
func FuzzGossip(f *testing.F) {
	l := newTestLog("example.com/log")
	tr := newTree(f, 20, 20, "")
	state, err := pebble.OpenWitnessState(f.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { state.Close() })
	cosigner, err := api.NewCosigner(newCosignerKey(f), nil)
	if err != nil {
		f.Fatal(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier}},
		State: state, Evidence: state, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	// The witness cosigns the tree at size 10; seeds are the log's
	// checkpoints of the same tree, with and without that cosignature.
	cp10 := l.checkpoint(f, tr, 10)
	cosig, err := w.AddCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp10})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(false, cp10)
	f.Add(false, append(cp10[:len(cp10):len(cp10)], cosig...))
	f.Add(false, l.checkpoint(f, tr, 20))
	f.Add(true, []byte(`{"kind":"equivocation","origin":"example.com/log","checkpoints":["a","b"]}`))
	f.Fuzz(func(t *testing.T, evidence bool, msg []byte) {
		if evidence {
			if added, err := w.AddEvidence(ctx, msg); added || err == nil {
				t.Fatalf("AddEvidence(%q) = %v, %v: evidence nobody could make", msg, added, err)
			}
		} else {
			w.Observe(ctx, msg, true)
		}
		if evs := w.Evidence(); len(evs) > 0 {
			t.Fatalf("gossip %q raised an alarm: %q", msg, evs)
		}
	})
}
