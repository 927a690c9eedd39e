package pebble_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// TestSearchIndexOfOlderDatabase checks that a database written before
// the search index existed (entries, and no index state) searches nothing
// until its index is rebuilt, while an empty one searches at once.
func TestSearchIndexOfOlderDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	term := api.SearchTerm{Param: api.SearchRepository, Value: "https://example.com/r.git"}
	if _, err := s.Search(ctx, []api.SearchTerm{term}, 0, 10, 10); err != nil {
		t.Fatalf("Search of an empty database: %v", err)
	}
	leaf := bytes.Repeat([]byte{7}, 32)
	c := &log.Commit{OldSize: 0, NewSize: 1, Checkpoint: []byte("cp\n"),
		Bundles: []log.BundleData{{Index: 0, Bundle: []byte{0, 1, 'e'}}},
		Leaves:  []log.LeafIndex{{LeafHash: leaf, Index: 0, Terms: []api.SearchTerm{term}}}}
	if err := s.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	// What an older version wrote: no index, no state.
	db := s.DB()
	if err := db.DeleteRange([]byte{'s'}, []byte{'t'}, cpebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete([]byte{'S'}, cpebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Search(ctx, []api.SearchTerm{term}, 0, 1, 10); !errors.Is(err, log.ErrSearchUnavailable) {
		t.Fatalf("Search of a database with entries and no index: %v, want ErrSearchUnavailable", err)
	}
	stats, err := log.Reindex(ctx, s, nil)
	if err == nil {
		t.Fatalf("Reindex of an entry that is not one: %+v, no error", stats)
	}
	if _, err := s.Search(ctx, []api.SearchTerm{term}, 0, 1, 10); !errors.Is(err, log.ErrSearchUnavailable) {
		t.Fatalf("Search after a failed reindex: %v, want ErrSearchUnavailable", err)
	}
	if err := s.IndexEntries(ctx, c.Leaves); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishSearchIndex(ctx); err != nil {
		t.Fatal(err)
	}
	hits, err := s.Search(ctx, []api.SearchTerm{term}, 0, 1, 10)
	if err != nil || len(hits) != 1 || !bytes.Equal(hits[0].LeafHash, leaf) {
		t.Fatalf("Search after the index was rebuilt: %v, %v", hits, err)
	}
}
