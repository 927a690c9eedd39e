// Package statetest is the conformance suite for implementations of
// witness.State. A backend runs it from its own tests:
//
//	func TestWitnessState(t *testing.T) { statetest.Run(t, openEmpty) }
//
// Run checks the compare-and-swap rules on a fresh, empty state per
// subtest; RunDurable checks that swaps survive closing and reopening.
//
// The values the suite stores are not real checkpoints: a State must keep
// what it is given, byte for byte, and never look inside.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/candorlog/candor/witness"
)

// Run runs the conformance suite. open must return a new, empty state for
// each call, cleaned up when t ends.
func Run(t *testing.T, open func(t *testing.T) witness.State) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, witness.State)
	}{
		{"Empty", testEmpty},
		{"Swap", testSwap},
		{"Conflict", testConflict},
		{"Origins", testOrigins},
		{"Copies", testCopies},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, open(t)) })
	}
}

// RunDurable checks that a swapped value survives closing and reopening.
// open opens (creating if needed) the state kept in dir and returns it
// with the function that closes it. The suite closes every state it opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) (witness.State, func() error)) {
	ctx := context.Background()
	dir := t.TempDir()
	s, closeState := open(t, dir)
	mustSwap(t, s, "a", nil, []byte("a1"))
	mustSwap(t, s, "a", []byte("a1"), []byte("a2"))
	mustSwap(t, s, "b", nil, []byte("b1"))
	if err := closeState(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	s, closeState = open(t, dir)
	checkLatest(t, s, "a", []byte("a2"))
	checkLatest(t, s, "b", []byte("b1"))
	if err := s.Swap(ctx, "a", []byte("a1"), []byte("a3")); !errors.Is(err, witness.ErrStateConflict) {
		t.Errorf("after reopening, Swap from a replaced value = %v, want ErrStateConflict", err)
	}
	mustSwap(t, s, "a", []byte("a2"), []byte("a3"))
	if err := closeState(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	s, closeState = open(t, dir)
	defer closeState()
	checkLatest(t, s, "a", []byte("a3"))
}

func mustSwap(t *testing.T, s witness.State, origin string, old, new []byte) {
	t.Helper()
	if err := s.Swap(context.Background(), origin, old, new); err != nil {
		t.Fatalf("Swap(%q, %q, %q) = %v", origin, old, new, err)
	}
}

func checkLatest(t *testing.T, s witness.State, origin string, want []byte) {
	t.Helper()
	got, err := s.Latest(context.Background(), origin)
	if err != nil {
		t.Fatalf("Latest(%q) = %v", origin, err)
	}
	if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		t.Fatalf("Latest(%q) = %q, want %q", origin, got, want)
	}
}

func testEmpty(t *testing.T, s witness.State) {
	checkLatest(t, s, "example.com/log", nil)
	checkLatest(t, s, "", nil)
}

func testSwap(t *testing.T, s witness.State) {
	mustSwap(t, s, "o", nil, []byte("one"))
	checkLatest(t, s, "o", []byte("one"))
	mustSwap(t, s, "o", []byte("one"), []byte("two"))
	checkLatest(t, s, "o", []byte("two"))
	// Swapping a value for itself is allowed (a re-cosigned checkpoint
	// may be byte-identical).
	mustSwap(t, s, "o", []byte("two"), []byte("two"))
	checkLatest(t, s, "o", []byte("two"))
}

func testConflict(t *testing.T, s witness.State) {
	ctx := context.Background()
	for _, old := range [][]byte{[]byte("x"), {}} {
		if err := s.Swap(ctx, "o", old, []byte("v")); !errors.Is(err, witness.ErrStateConflict) {
			t.Errorf("Swap from %q with nothing stored = %v, want ErrStateConflict", old, err)
		}
	}
	checkLatest(t, s, "o", nil)
	mustSwap(t, s, "o", nil, []byte("stored"))
	for _, old := range [][]byte{nil, {}, []byte("store"), []byte("stored\n"), []byte("Stored")} {
		if err := s.Swap(ctx, "o", old, []byte("v")); !errors.Is(err, witness.ErrStateConflict) {
			t.Errorf("Swap from %q with %q stored = %v, want ErrStateConflict", old, "stored", err)
		}
	}
	checkLatest(t, s, "o", []byte("stored"))
}

func testOrigins(t *testing.T, s witness.State) {
	// Origins that are prefixes of each other, or differ in one byte, are
	// distinct.
	mustSwap(t, s, "example.com/log", nil, []byte("1"))
	mustSwap(t, s, "example.com/log2", nil, []byte("2"))
	mustSwap(t, s, "example.com/lo", nil, []byte("3"))
	checkLatest(t, s, "example.com/log", []byte("1"))
	checkLatest(t, s, "example.com/log2", []byte("2"))
	checkLatest(t, s, "example.com/lo", []byte("3"))
	checkLatest(t, s, "example.com/loh", nil)
}

func testCopies(t *testing.T, s witness.State) {
	v := []byte("value")
	mustSwap(t, s, "o", nil, v)
	v[0] = 'X'
	checkLatest(t, s, "o", []byte("value"))
	got, err := s.Latest(context.Background(), "o")
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'Y'
	checkLatest(t, s, "o", []byte("value"))
}

// testConcurrent races read-then-swap loops on one origin: no two
// successful swaps may start from the same value, and the successful swaps
// must form one chain from nil to the final value.
func testConcurrent(t *testing.T, s witness.State) {
	ctx := context.Background()
	const workers, perWorker = 8, 20
	type swap struct{ old, new string }
	var (
		mu    sync.Mutex
		swaps []swap
		wg    sync.WaitGroup
		errs  = make(chan error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; {
				cur, err := s.Latest(ctx, "o")
				if err != nil {
					errs <- err
					return
				}
				next := []byte(fmt.Sprintf("w%d-%d", w, i))
				err = s.Swap(ctx, "o", cur, next)
				if errors.Is(err, witness.ErrStateConflict) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				swaps = append(swaps, swap{string(cur), string(next)})
				mu.Unlock()
				i++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(swaps) != workers*perWorker {
		t.Fatalf("%d successful swaps, want %d", len(swaps), workers*perWorker)
	}
	from := make(map[string]string)
	for _, sw := range swaps {
		if prev, ok := from[sw.old]; ok {
			t.Fatalf("two swaps succeeded from %q: to %q and to %q", sw.old, prev, sw.new)
		}
		from[sw.old] = sw.new
	}
	cur, n := "", 0 // "" stands for nil: no stored value is empty
	for {
		next, ok := from[cur]
		if !ok {
			break
		}
		cur, n = next, n+1
	}
	if n != len(swaps) {
		t.Fatalf("the successful swaps form a chain of %d from nil, want %d", n, len(swaps))
	}
	checkLatest(t, s, "o", []byte(cur))
}

// RunEvidence checks an EvidenceStore. open opens (creating if needed) the
// store kept in dir and returns it with the function that closes it; the
// suite closes every store it opens.
func RunEvidence(t *testing.T, open func(t *testing.T, dir string) (witness.EvidenceStore, func() error)) {
	ctx := context.Background()
	dir := t.TempDir()
	s, closeStore := open(t, dir)
	list := func(want ...string) {
		t.Helper()
		origins, evidence, err := s.ListEvidence(ctx)
		if err != nil {
			t.Fatalf("ListEvidence = %v", err)
		}
		var got []string
		for i := range origins {
			got = append(got, origins[i]+"="+string(evidence[i]))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("ListEvidence = %q, want %q", got, want)
		}
	}
	list()
	for _, e := range []struct{ origin, id, v string }{
		{"example.com/log", "b", "e2"}, {"example.com/log", "a", "e1"},
		{"example.com/lo", "a", "x"}, {"example.com/log2", "a", "y"},
		{"example.com/log", "a", "replaced?"}, // already stored: kept
	} {
		v := []byte(e.v)
		if err := s.AddEvidence(ctx, e.origin, e.id, v); err != nil {
			t.Fatalf("AddEvidence(%q, %q) = %v", e.origin, e.id, err)
		}
		v[0] = 'Z' // the store must not keep it
	}
	want := []string{"example.com/lo=x", "example.com/log=e1", "example.com/log=e2", "example.com/log2=y"}
	list(want...)
	if err := closeStore(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	s, closeStore = open(t, dir)
	defer func() {
		if err := closeStore(); err != nil {
			t.Errorf("closing: %v", err)
		}
	}()
	list(want...)
	n, err := s.ClearEvidence(ctx, "example.com/log")
	if err != nil || n != 2 {
		t.Fatalf("ClearEvidence = %d, %v; want 2, nil", n, err)
	}
	list("example.com/lo=x", "example.com/log2=y")
	if n, err := s.ClearEvidence(ctx, "example.com/nothing"); err != nil || n != 0 {
		t.Fatalf("ClearEvidence of an origin without evidence = %d, %v; want 0, nil", n, err)
	}
}

// RunAudit checks an AuditState. open opens (creating if needed) the
// store kept in dir and returns it with the function that closes it; the
// suite closes every store it opens.
func RunAudit(t *testing.T, open func(t *testing.T, dir string) (witness.AuditState, func() error)) {
	ctx := context.Background()
	dir := t.TempDir()
	s, closeStore := open(t, dir)
	check := func(origin, want string, wantNext uint64) {
		t.Helper()
		cp, next, err := s.LoadAudit(ctx, origin)
		if err != nil || string(cp) != want || next != wantNext || (want == "") != (cp == nil) {
			t.Fatalf("LoadAudit(%q) = %q, %d, %v; want %q, %d", origin, cp, next, err, want, wantNext)
		}
	}
	check("example.com/log", "", 0)
	for _, p := range []struct {
		origin, cp string
		next       uint64
	}{
		{"example.com/log", "cp1", 0}, {"example.com/log", "cp2", 1 << 40}, {"example.com/lo", "other", 7},
	} {
		cp := []byte(p.cp)
		if err := s.StoreAudit(ctx, p.origin, cp, p.next); err != nil {
			t.Fatalf("StoreAudit(%q) = %v", p.origin, err)
		}
		cp[0] = 'Z' // the store must not keep it
	}
	check("example.com/log", "cp2", 1<<40)
	check("example.com/lo", "other", 7)
	if err := closeStore(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	s, closeStore = open(t, dir)
	defer func() {
		if err := closeStore(); err != nil {
			t.Errorf("closing: %v", err)
		}
	}()
	check("example.com/log", "cp2", 1<<40)
	check("example.com/lo", "other", 7)
	check("example.com/log2", "", 0)
}
