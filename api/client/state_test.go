package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/candorlog/candor/api/client"
)

// testState runs the rules of client.State on an empty s.
func testState(t *testing.T, s client.State) {
	ctx := context.Background()
	load := func(origin, want string) {
		t.Helper()
		got, err := s.Load(ctx, origin)
		if err != nil || string(got) != want || (got == nil) != (want == "") {
			t.Fatalf("Load(%q) = %q, %v; want %q", origin, got, err, want)
		}
	}
	swap := func(origin string, old, new []byte, want error) {
		t.Helper()
		err := s.Swap(ctx, origin, old, new)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("Swap(%q, %q, %q) = %v, want %v", origin, old, new, err, want)
		}
	}
	load("a", "")
	swap("a", []byte("x"), []byte("1"), client.ErrStateChanged)
	swap("a", nil, []byte("1"), nil)
	load("a", "1")
	swap("a", nil, []byte("2"), client.ErrStateChanged)
	swap("a", []byte("2"), []byte("3"), client.ErrStateChanged)
	swap("a", []byte("1"), []byte("2"), nil)
	load("a", "2")
	load("b", "")
	swap("b", nil, []byte("b1"), nil)
	load("a", "2")
	load("b", "b1")
	if err := s.Swap(ctx, "a", []byte("2"), nil); err == nil {
		t.Fatal("Swap to an empty checkpoint succeeded")
	}
	load("a", "2")

	// Concurrent increments, each a Load and a Swap retried on conflict:
	// none is lost.
	swap("n", nil, []byte("0"), nil)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				for {
					cur, err := s.Load(ctx, "n")
					if err != nil {
						t.Error(err)
						return
					}
					n, _ := strconv.Atoi(string(cur))
					err = s.Swap(ctx, "n", cur, []byte(strconv.Itoa(n+1)))
					if errors.Is(err, client.ErrStateChanged) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	load("n", strconv.Itoa(workers*each))
}

func TestMemoryState(t *testing.T) {
	testState(t, client.NewMemoryState())
}

func TestFileState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "client.json")
	s, err := client.NewFileState(path)
	if err != nil {
		t.Fatal(err)
	}
	testState(t, s)

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
