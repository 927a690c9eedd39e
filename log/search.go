package log

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/transparency-dev/merkle/compact"

	"github.com/candorlog/candor/api"
)

// Search.
//
// Every entry added with its search terms (AddWithTerms; the HTTP API
// adds every entry so) is indexed under them by a SearchStorage: in the
// same atomic write as the entry itself, or, with a DeferredIndexer,
// after it, off the commit's path (searchtail.go), with the entries in
// between found in memory. Either way search never disagrees with the
// log, even after a crash. The index is derived from the entries alone,
// so Reindex can always rebuild it from them.

// ErrSearchUnavailable means the log cannot search: its storage keeps no
// search index, or the index is not complete (never built for the
// entries stored before it existed, or a rebuild did not finish).
var ErrSearchUnavailable = errors.New("search is unavailable")

// SearchStorage is a Storage that keeps a search index: Commit indexes
// every new entry under its LeafIndex.Terms in the same atomic write as
// the entry (the log gives none with a DeferredIndexer). The exported
// suite in log/storagetest checks these rules.
type SearchStorage interface {
	Storage
	// Search returns the indexes of the entries in [start, end) that
	// were indexed under every one of terms (at least one), in
	// increasing order, at most limit (> 0) of them. It reads the index without scanning what it does not return
	// beyond the terms' own entries. It returns an error wrapping
	// ErrSearchUnavailable while the index is not complete.
	Search(ctx context.Context, terms []api.SearchTerm, start, end uint64, limit int) ([]uint64, error)
}

// SearchIndexer is a SearchStorage whose index can be rebuilt (Reindex),
// while no log runs on it.
type SearchIndexer interface {
	SearchStorage
	// ResetSearchIndex durably deletes the whole search index and marks it
	// incomplete: Search fails until FinishSearchIndex.
	ResetSearchIndex(ctx context.Context) error
	// IndexEntries indexes entries of the log under their Terms. It need
	// not be durable before FinishSearchIndex.
	IndexEntries(ctx context.Context, leaves []LeafIndex) error
	// FinishSearchIndex durably marks the index complete.
	FinishSearchIndex(ctx context.Context) error
}

// maxSearchTerms bounds the terms of one search, and so its cost.
const maxSearchTerms = 8

// Search returns up to limit entries of the published tree, from index
// start on, that carry every one of terms, in log order, and the index at
// which the next search should start, or 0 if there are no more.
func (l *Log) Search(ctx context.Context, terms []api.SearchTerm, start uint64, limit int) ([]api.SearchHit, uint64, error) {
	if len(terms) == 0 || len(terms) > maxSearchTerms {
		return nil, 0, fmt.Errorf("%w: give 1 to %d search terms, not %d", api.ErrInvalidSearch, maxSearchTerms, len(terms))
	}
	if limit <= 0 || limit > api.MaxSearchLimit {
		return nil, 0, fmt.Errorf("%w: limit %d is not in 1 to %d", api.ErrInvalidSearch, limit, api.MaxSearchLimit)
	}
	ss, ok := l.store.(SearchStorage)
	if !ok {
		return nil, 0, fmt.Errorf("%w: the log's storage keeps no search index", ErrSearchUnavailable)
	}
	_, size := l.Checkpoint()
	if start >= size {
		return nil, 0, nil
	}
	// The index covers the entries below indexed, the tail the others.
	indexed, tail := size, []LeafIndex(nil)
	if l.tail != nil {
		var covered uint64
		indexed, tail, covered = l.tail.view()
		if covered < size {
			return nil, 0, fmt.Errorf("%w: the search index is catching up with the log (%d of %d entries indexed)", ErrSearchUnavailable, covered, size)
		}
	}
	// One more than asked tells whether there is a next page, and where.
	// The index is asked even for none of its entries: it says whether
	// it is complete.
	found, err := ss.Search(ctx, terms, start, max(start, min(size, indexed)), limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't search: %w", err)
	}
	hashes, err := l.leafHashes(ctx, found)
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't search: %w", err)
	}
	hits := make([]api.SearchHit, len(found))
	for i, index := range found {
		hits[i] = api.SearchHit{Index: index, LeafHash: hashes[i]}
	}
	if len(hits) <= limit && size > indexed {
		hits = searchTailHits(tail, terms, max(start, indexed), size, limit+1, hits)
	}
	if len(hits) > limit {
		return hits[:limit], hits[limit].Index, nil
	}
	return hits, 0, nil
}

// leafHashReader is a Storage that reads the leaf hashes of many entries
// at once, faster than tile by tile.
type leafHashReader interface {
	LeafHashes(ctx context.Context, indexes []uint64) ([][]byte, error)
}

// leafHashes returns the leaf hashes of the entries at indexes (in log
// order) from the level-0 tiles as stored: not expanded into the tile
// cache, since a search reads tiles from all over the log and proofs
// those of the right edge.
func (l *Log) leafHashes(ctx context.Context, indexes []uint64) ([][]byte, error) {
	if r, ok := l.store.(leafHashReader); ok {
		return r.LeafHashes(ctx, indexes)
	}
	nr := nodeReader{r: l.store}
	hashes := make([][]byte, len(indexes))
	for i, index := range indexes {
		h, err := nr.hash(ctx, compact.NewNodeID(0, index))
		if err != nil {
			return nil, fmt.Errorf("couldn't read the leaf hash of entry %d: %w", index, err)
		}
		hashes[i] = h
	}
	return hashes, nil
}

// SearchCursor encodes the index at which a search resumes as the opaque
// cursor of GET /v1/search.
func SearchCursor(next uint64) string {
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, next))
}

// parseSearchCursor decodes a cursor of SearchCursor.
func parseSearchCursor(s string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("%w: cursor %q is not one this log returned", api.ErrInvalidSearch, truncate(s, 40))
	}
	return binary.BigEndian.Uint64(b), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ReindexStats sums up a Reindex.
type ReindexStats struct {
	// Entries is how many entries were read, Terms how many (entry, term)
	// pairs were indexed.
	Entries, Terms uint64
}

// reindexBundles is how many entry bundles Reindex indexes in one write.
const reindexBundles = 16

// Reindex rebuilds the search index of s from the entries of its
// committed tree (api.StoredEntryTerms of each), with no log running on
// s. progress, if not nil, is called after every write with the number of
// entries indexed so far. An entry whose terms can't be read fails the
// rebuild, and leaves the index incomplete: fsck tells what is wrong with
// it.
func Reindex(ctx context.Context, s SearchIndexer, progress func(indexed uint64)) (ReindexStats, error) {
	var stats ReindexStats
	_, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		return stats, fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	if err := s.ResetSearchIndex(ctx); err != nil {
		return stats, fmt.Errorf("couldn't delete the search index: %w", err)
	}
	bundles := (size + api.TileWidth - 1) / api.TileWidth
	// Read and parse the bundles of a group in parallel; write the groups
	// in order.
	workers := max(1, runtime.GOMAXPROCS(0))
	for first := uint64(0); first < bundles; first += reindexBundles {
		n := min(reindexBundles, bundles-first)
		groups := make([][]LeafIndex, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, workers)
		for i := range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				groups[i], errs[i] = bundleTerms(ctx, s, first+i, 0, size, false)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return stats, err
		}
		var leaves []LeafIndex
		for _, g := range groups {
			leaves = append(leaves, g...)
			for _, li := range g {
				stats.Terms += uint64(len(li.Terms))
			}
		}
		if err := s.IndexEntries(ctx, leaves); err != nil {
			return stats, fmt.Errorf("couldn't index entries %d to %d: %w", leaves[0].Index, leaves[len(leaves)-1].Index, err)
		}
		stats.Entries += uint64(len(leaves))
		if progress != nil {
			progress(stats.Entries)
		}
	}
	if err := s.FinishSearchIndex(ctx); err != nil {
		return stats, fmt.Errorf("couldn't mark the search index complete: %w", err)
	}
	return stats, nil
}

// bundleTerms reads entry bundle bi of a tree of the given size and
// returns the leaf hashes and search terms of its entries from index from
// on. An entry whose terms can't be read is an error, or if lenient an
// entry without terms (one added without, with Add).
func bundleTerms(ctx context.Context, s Storage, bi, from, size uint64, lenient bool) ([]LeafIndex, error) {
	data, err := s.ReadEntryBundle(ctx, bi)
	if err != nil {
		return nil, fmt.Errorf("couldn't read entry bundle %d: %w", bi, err)
	}
	entries, err := api.ParseEntryBundle(data)
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", bi, err)
	}
	first := bi * api.TileWidth
	want := min(api.TileWidth, size-first)
	if uint64(len(entries)) < want {
		return nil, fmt.Errorf("entry bundle %d has %d entries, want %d", bi, len(entries), want)
	}
	skip := min(want, from-min(from, first))
	leaves := make([]LeafIndex, 0, want-skip)
	for i, e := range entries[skip:want] {
		idx := first + skip + uint64(i)
		terms, err := api.StoredEntryTerms(e)
		if err != nil {
			if !lenient {
				return nil, fmt.Errorf("couldn't read the search terms of entry %d: %w", idx, err)
			}
			terms = nil
		}
		leaves = append(leaves, LeafIndex{LeafHash: hasher.HashLeaf(e), Index: idx, Terms: terms})
	}
	return leaves, nil
}
