package pebble_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// leaf is the leaf hash of the i-th leaf these tests store.
func leaf(i uint64) []byte {
	h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("leaf"), i))
	return h[:]
}

// TestLeafFilterAfterReopen stores leaves, reopens the database (so that
// the filter is rebuilt by the startup scan) and checks every stored leaf
// is still found and that absent ones are not, with the filter in use and
// without it.
func TestLeafFilterAfterReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	const n = 20000
	s, err := pebble.Open(dir, pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cb := newCommitBuilder()
	for i := uint64(0); i < n; i += 1000 {
		c := cb.next(1000)
		for j := range c.Leaves {
			c.Leaves[j].LeafHash = leaf(i + uint64(j))
		}
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		size   int64
		filter bool
	}{
		{"filter", 0, true},
		{"tiny filter", 64, true}, // mostly false positives: still correct
		{"no filter", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := pebble.Open(dir, pebble.Options{Logger: quiet, LeafFilterBytes: tc.size})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.WaitLeafFilter(); got != tc.filter {
				t.Fatalf("filter in use: %v, want %v", got, tc.filter)
			}
			for i := uint64(0); i < n; i++ {
				idx, err := s.LookupLeaf(ctx, leaf(i))
				if err != nil || idx != i {
					t.Fatalf("LookupLeaf(leaf %d) = %d, %v", i, idx, err)
				}
			}
			for i := uint64(n); i < n+1000; i++ {
				if _, err := s.LookupLeaf(ctx, leaf(i)); !errors.Is(err, log.ErrNotFound) {
					t.Fatalf("LookupLeaf(absent leaf %d): %v, want ErrNotFound", i, err)
				}
			}
		})
	}
}

// TestLeafFilterGrows commits leaves to a log whose filter starts sized
// for 1,000 entries, while another goroutine checks without pause that
// every leaf committed before its lookup is found: the filter is replaced
// several times as the log grows, and no lookup misses a stored leaf
// across a replacement. At the end the filter is sized for the log, few
// lookups of absent leaves go to pebble, and a reopen sizes it for the
// log at once.
func TestLeafFilterGrows(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	const n, batch = 40000, 500
	// Each scan's filter waits a little before it is used: commits land
	// meanwhile, which it must have from its start.
	o := pebble.WithFilterMinEntries(pebble.Options{Logger: quiet, CacheBytes: 8 << 20}, 1000,
		func() { time.Sleep(20 * time.Millisecond) })
	s, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	var committed atomic.Uint64
	done := make(chan struct{})
	checked := make(chan error, 1)
	go func() {
		var err error
		defer func() { checked <- err }()
		for j := uint64(0); ; j++ {
			select {
			case <-done:
				return
			default:
			}
			size := committed.Load()
			if size == 0 {
				continue
			}
			i := j % size
			if idx, lerr := s.LookupLeaf(ctx, leaf(i)); lerr != nil || idx != i {
				err = fmt.Errorf("LookupLeaf(leaf %d) at size %d = %d, %v", i, size, idx, lerr)
				return
			}
		}
	}()
	cb := newCommitBuilder()
	sizes := map[int64]bool{}
	for i := uint64(0); i < n; i += batch {
		c := cb.next(batch)
		for j := range c.Leaves {
			c.Leaves[j].LeafHash = leaf(i + uint64(j))
		}
		if err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		committed.Store(i + batch)
		sizes[s.LeafFilterBytes()] = true
	}
	close(done)
	if err := <-checked; err != nil {
		t.Fatal(err)
	}
	if !s.WaitLeafFilter() {
		t.Fatal("no leaf filter in use")
	}
	for i := uint64(0); i < n; i++ {
		if idx, err := s.LookupLeaf(ctx, leaf(i)); err != nil || idx != i {
			t.Fatalf("LookupLeaf(leaf %d) = %d, %v", i, idx, err)
		}
	}
	if len(sizes) < 4 {
		t.Errorf("the filter had %d sizes while the log grew from 0 to %d entries, want it to grow several times", len(sizes), n)
	}
	if got, least := s.LeafFilterBytes(), int64(n*16/8); got < least {
		t.Errorf("filter of %d bytes for %d entries, want at least %d", got, n, least)
	}
	checkAbsent := func(s *pebble.Storage) {
		t.Helper()
		a0, fp0 := s.LeafLookups()
		for i := uint64(n); i < n+20000; i++ {
			if _, err := s.LookupLeaf(ctx, leaf(i)); !errors.Is(err, log.ErrNotFound) {
				t.Fatalf("LookupLeaf(absent leaf %d): %v, want ErrNotFound", i, err)
			}
		}
		a1, fp1 := s.LeafLookups()
		if a1-a0+fp1-fp0 != 20000 || fp1-fp0 > 40 { // about 1 in 800 at worst
			t.Errorf("20000 lookups of absent leaves: %d answered by the filter, %d false positives", a1-a0, fp1-fp0)
		}
	}
	checkAbsent(s)
	grown := s.LeafFilterBytes()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = pebble.Open(dir, o); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.WaitLeafFilter() {
		t.Fatal("no leaf filter in use after the reopen")
	}
	if got := s.LeafFilterBytes(); got < grown {
		t.Errorf("after a reopen the filter has %d bytes, want it sized for the log (%d before)", got, grown)
	}
	checkAbsent(s)
}
