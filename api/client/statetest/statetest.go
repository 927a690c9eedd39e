// Package statetest is the conformance suite of client.State: every
// implementation runs it.
package statetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/candorlog/candor/api/client"
)

// Run checks that the States newState returns, empty, follow the rules of
// client.State: Load of an unknown origin, compare-and-swap, origins kept
// apart, no empty checkpoint, and concurrent read-modify-write loops that
// lose no update.
func Run(t *testing.T, newState func(t *testing.T) client.State) {
	t.Helper()
	s := newState(t)
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
