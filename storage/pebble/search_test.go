package pebble_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
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
	if err != nil || len(hits) != 1 || hits[0] != 0 {
		t.Fatalf("Search after the index was rebuilt: %v, %v", hits, err)
	}
}

// TestSearchIndexOfOldFormat checks that an index of another format (that
// before postings: a key per entry and term, with its leaf hash, and no
// indexed size; that of postings with u64 indexes and no format key; one
// whose format key says another) is dropped when the database opens, and
// that the log indexes every entry again: searches then find exactly what
// the entries hold, and nothing of the old keys.
func TestSearchIndexOfOldFormat(t *testing.T) {
	bogus := api.SearchTerm{Param: api.SearchRepository, Value: "https://example.com/old.git"}
	for _, tc := range []struct {
		name string
		// keep says whether the index's keys stay, format is the format
		// key's value (none if nil) and key the bogus term's key.
		keep   bool
		format []byte
		key    []byte
	}{
		{"postings-0", false, nil,
			binary.BigEndian.AppendUint64(append([]byte{'s', 'r', byte(1 + len(bogus.Value)), 0}, bogus.Value...), 5)},
		// Keys the current format would read as the bogus term's: found
		// unless the index is dropped.
		{"postings-1", true, nil,
			append(append([]byte{'s', 'r', 0, byte(len(bogus.Value))}, bogus.Value...), 1, 5)},
		{"another", true, []byte{9},
			append(append([]byte{'s', 'r', 0, byte(len(bogus.Value))}, bogus.Value...), 1, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testSearchIndexOfOldFormat(t, bogus, tc.keep, tc.format, tc.key)
		})
	}
}

func testSearchIndexOfOldFormat(t *testing.T, bogus api.SearchTerm, keep bool, format, bogusKey []byte) {
	ctx := context.Background()
	dir := t.TempDir()
	signer, verifier, _ := apitest.NewNoteKey("example.com/old-format", rand.Reader)
	start := func() (*pebble.Storage, *log.Log) {
		s, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		l, err := log.New(ctx, log.Config{Storage: s, Signer: signer, Verifier: verifier, Logger: quiet})
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		return s, l
	}
	s, l := start()
	b := apitest.NewBuildSigner()
	byTerm := map[api.SearchTerm][]uint64{}
	for i := range 300 {
		entry, st, err := api.AdmitEntry(b.Submission(fmt.Sprintf("artifact %d", i), fmt.Sprintf("%064x", i%7)))
		if err != nil {
			t.Fatal(err)
		}
		terms := api.SearchTerms(st)
		rc, err := l.AddWithTerms(ctx, entry, terms)
		if err != nil {
			t.Fatal(err)
		}
		for _, term := range terms {
			byTerm[term] = append(byTerm[term], rc.Index)
		}
	}
	l.Close()
	if hits, _, err := l.Search(ctx, []api.SearchTerm{bogus}, 0, 10); err != nil || len(hits) != 0 {
		t.Fatalf("Search of the bogus term before: %v, %v; want none", hits, err)
	}
	// What the older format left: its keys, and its format key or none.
	db := s.DB()
	if !keep {
		if err := db.DeleteRange([]byte{'s'}, []byte{'t'}, cpebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if format == nil {
		if err := db.Delete([]byte{'S', 'f'}, cpebble.Sync); err != nil {
			t.Fatal(err)
		}
	} else if err := db.Set([]byte{'S', 'f'}, format, cpebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Set(bogusKey, nil, cpebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	defer func() { s.Close() }()

	s, l = start()
	if indexed, known, err := s.IndexedSize(ctx); err != nil || !known || indexed != 300 {
		t.Fatalf("IndexedSize after the log started = %d, %t, %v; want 300", indexed, known, err)
	}
	if hits, _, err := l.Search(ctx, []api.SearchTerm{bogus}, 0, 10); err != nil || len(hits) != 0 {
		t.Fatalf("Search of a term of the old index: %v, %v; want none", hits, err)
	}
	for term, want := range byTerm {
		hits, _, err := l.Search(ctx, []api.SearchTerm{term}, 0, api.MaxSearchLimit)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]uint64, len(hits))
		for i, h := range hits {
			got[i] = h.Index
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Search(%v) = %v, want %v", term, got, want)
		}
	}
	// Dropped once: the next open keeps the index.
	l.Close()
	s.Close()
	s, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if indexed, known, err := s.IndexedSize(ctx); err != nil || !known || indexed != 300 {
		t.Fatalf("IndexedSize when opened again = %d, %t, %v; want 300", indexed, known, err)
	}
}
