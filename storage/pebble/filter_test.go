package pebble_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// TestLeafFilterAfterReopen stores leaves, reopens the database without
// the saved filter (so that the filter is rebuilt by the startup scan) and
// checks every stored leaf is still found and that absent ones are not,
// with the filter in use and without it.
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
	if err := os.Remove(filepath.Join(dir, pebble.SavedFilterName)); err != nil {
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

// TestLeafFilterSaved checks that a reopen fills its filter from the copy
// the close saved, completed with the entries committed after it from the
// tiles (a copy from before the last close, as a crash leaves it), and
// that it scans the leaf index instead when the copy is damaged, of
// another log or of a longer one. Every stored leaf is found each time.
func TestLeafFilterSaved(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	dir, other := t.TempDir(), t.TempDir()
	saved := filepath.Join(dir, pebble.SavedFilterName)
	// commit adds n entries to the log in dir, through cb, the log's
	// builder, and closes it once its filter is filled.
	commit := func(dir string, cb *commitBuilder, n uint64) {
		t.Helper()
		s, err := pebble.Open(dir, pebble.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for range n / 1000 {
			if err := s.Commit(ctx, cb.next(1000)); err != nil {
				t.Fatal(err)
			}
		}
		s.WaitLeafFilter()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// reopen opens dir and checks how its filter was filled and that it
	// finds the first n leaves and not the next ones; reopenWith does
	// with a filter of filterBytes (0: sized for the log).
	var reopenWith func(n uint64, fromSaved bool, filterBytes int64)
	wrongCopy := false
	// A copy found wrong is removed before the scan, so that no later
	// start uses it (the close then saves the scanned filter).
	reopen := func(n uint64, fromSaved bool) {
		t.Helper()
		reopenWith(n, fromSaved, 0)
	}
	reopenWith = func(n uint64, fromSaved bool, filterBytes int64) {
		t.Helper()
		s, err := pebble.Open(dir, pebble.Options{Logger: quiet, LeafFilterBytes: filterBytes})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !s.WaitLeafFilter() {
			t.Fatal("no leaf filter in use")
		}
		if got := s.LeafFilterLoads() == 1; got != fromSaved {
			t.Fatalf("filter filled from the saved copy: %v, want %v", got, fromSaved)
		}
		if _, err := os.Stat(saved); !fromSaved && wrongCopy && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a saved copy found wrong is still there (%v)", err)
		}
		for i := range n {
			if idx, err := s.LookupLeaf(ctx, leaf(i)); err != nil || idx != i {
				t.Fatalf("LookupLeaf(leaf %d) = %d, %v", i, idx, err)
			}
		}
		a0, fp0 := s.LeafLookups()
		for i := n; i < n+2000; i++ {
			if _, err := s.LookupLeaf(ctx, leaf(i)); !errors.Is(err, log.ErrNotFound) {
				t.Fatalf("LookupLeaf(absent leaf %d): %v, want ErrNotFound", i, err)
			}
		}
		if a1, fp1 := s.LeafLookups(); a1-a0+fp1-fp0 != 2000 || fp1-fp0 > 10 {
			t.Errorf("2000 lookups of absent leaves: %d answered by the filter, %d false positives", a1-a0, fp1-fp0)
		}
	}
	read := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(saved, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cb := newCommitBuilder()
	cb.leafOf = leaf
	commit(dir, cb, 5000)
	at5000 := read(saved)
	reopen(5000, true)
	commit(dir, cb, 3000)
	reopen(8000, true)
	if bytes.Equal(read(saved), at5000) {
		t.Fatal("the close did not save the filter")
	}
	write(at5000) // as a crash after the last commits leaves it
	reopen(8000, true)

	damaged := bytes.Clone(at5000)
	damaged[len(damaged)/2] ^= 1
	write(damaged)
	wrongCopy = true
	reopen(8000, false)

	ocb := newCommitBuilder()
	ocb.leafOf = func(i uint64) []byte { return leaf(1<<40 + i) }
	commit(other, ocb, 8000)
	write(read(filepath.Join(other, pebble.SavedFilterName))) // another log of the same size
	reopen(8000, false)
	commit(other, ocb, 2000)
	write(read(filepath.Join(other, pebble.SavedFilterName))) // a longer log
	reopen(8000, false)

	write(at5000[:len(at5000)-1]) // cut short
	reopen(8000, false)
	wrongCopy = false
	reopen(8000, true) // the close saved the scanned filter

	// A copy saved with a configured size larger than the log's is not
	// used once the filter is sized for the log again: it would never
	// fill, and never be replaced.
	reopenWith(8000, false, 16<<20)
	reopenWith(8000, true, 16<<20)
	reopen(8000, false)
	reopen(8000, true)
}

// TestLeafFilterNotSavedWithoutSpace checks that a close while the
// filesystem is below the space kept for pebble saves no filter.
func TestLeafFilterNotSavedWithoutSpace(t *testing.T) {
	dir := t.TempDir()
	full := errors.New("below the reserve")
	s, err := pebble.Open(dir, pebble.Options{Logger: slog.New(slog.DiscardHandler), CheckSpace: func() error { return full }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), newCommitBuilder().next(1000)); err != nil {
		t.Fatal(err)
	}
	s.WaitLeafFilter()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, pebble.SavedFilterName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("saved filter after a close below the reserve: %v, want none", err)
	}
}
