package pebble_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"testing"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// TestLeafFilterAfterReopen stores leaves, reopens the database (so that
// the filter is rebuilt by the startup scan) and checks every stored leaf
// is still found and that absent ones are not, with the filter in use and
// without it.
func TestLeafFilterAfterReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	leaf := func(i uint64) []byte {
		h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("leaf"), i))
		return h[:]
	}
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
