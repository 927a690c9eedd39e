package client_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/api/client/statetest"
)

func TestMemoryState(t *testing.T) {
	statetest.Run(t, func(t *testing.T) client.State { return client.NewMemoryState() })
}

func TestFileState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "client.json")
	statetest.Run(t, func(t *testing.T) client.State {
		s, err := client.NewFileState(filepath.Join(t.TempDir(), "state", "client.json"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})

	// The file survives a restart.
	ctx := context.Background()
	s, err := client.NewFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "b1"}, {"n", "160"}} {
		if err := s.Swap(ctx, kv[0], nil, []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Swap(ctx, "a", []byte("1"), []byte("2")); err != nil {
		t.Fatal(err)
	}

	// Another FileState of the file, as after a restart, holds the same.
	again, err := client.NewFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]string{"a": "2", "b": "b1", "n": "160"} {
		if got, err := again.Load(context.Background(), origin); err != nil || string(got) != want {
			t.Errorf("after a restart, Load(%q) = %q, %v; want %q", origin, got, err, want)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the state file: %v, %v", fi.Mode(), err)
	}

	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.NewFileState(path); err == nil {
		t.Error("NewFileState of a file that is not a state file succeeded")
	}
	if _, err := again.Load(context.Background(), "a"); err == nil {
		t.Error("Load of a file that is not a state file succeeded")
	}
}

// TestFileStateRestart checks that a Verifier restarted on its state file
// resumes from the checkpoint it verified last, and refuses a fork of it.
func TestFileStateRestart(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/restart")
	a, b := newCandorLog(t, key), newCandorLog(t, key)
	a.add(t, entries("a", 0, 4)...)
	b.add(t, entries("b", 0, 4)...)
	f, c, _ := serveLog(t, a.handler)
	path := filepath.Join(t.TempDir(), "client.json")
	open := func() *client.Verifier {
		s, err := client.NewFileState(path)
		if err != nil {
			t.Fatal(err)
		}
		return newVerifier(t, c, key, client.VerifierConfig{State: s})
	}
	first, err := open().Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := open()
	checkLatest(t, v, 4)
	f.setNext(b.handler)
	_, err = v.Update(ctx)
	forkError(t, err, client.ErrEquivocation)
	if latest, _, _ := open().Latest(ctx); latest.Hash != first.Hash {
		t.Error("the state changed after a refused checkpoint")
	}

	// A state file whose checkpoint is not signed by the log is refused.
	other := newLogKey("example.com/restart")
	s, err := client.NewFileState(filepath.Join(t.TempDir(), "forged.json"))
	if err != nil {
		t.Fatal(err)
	}
	forged := resign(t, other.signer)(first.Signed)
	if err := s.Swap(ctx, "example.com/restart", nil, forged); err != nil {
		t.Fatal(err)
	}
	if _, _, err := newVerifier(t, c, key, client.VerifierConfig{State: s}).Latest(ctx); err == nil {
		t.Error("Latest() of a forged state succeeded")
	}
}

// TestConcurrentUpdates runs Updates, proofs and entry reads while the
// log grows: each Update verifies, and the last verified size only grows.
func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/concurrent")
	l := newCandorLog(t, key)
	l.add(t, "first")
	_, c, _ := serveLog(t, l.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var last uint64
			for range 20 {
				cp, err := v.Update(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if cp.Size < last {
					t.Errorf("Update() went from size %d to %d", last, cp.Size)
				}
				last = cp.Size
				if _, err := v.ProveInclusion(ctx, cp, 0, client.LeafHash([]byte("first"))); err != nil {
					t.Error(err)
				}
				for _, err := range v.Entries(ctx, cp, cp.Size-1, cp.Size) {
					if err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	for i := range 10 {
		l.add(t, entries("e", 10*i, 10)...)
	}
	wg.Wait()
	cp, err := v.Update(ctx)
	if err != nil || cp.Size != 101 {
		t.Fatalf("Update() = size %d, %v; want 101", cp.Size, err)
	}
}
