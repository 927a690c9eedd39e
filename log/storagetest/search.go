package storagetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

// The search index of the model: entry i is indexed under termsOf(i).
// Every commit of the suite carries them, so every test that checks the
// state of a log.SearchStorage checks its index too (checkSearch).

// termsOf returns the search terms of entry i, sorted as api.SearchTerms
// sorts them: one of three keys and the key of its run of 100 entries, a
// digest of its own, a digest shared with every fifth entry, one of seven
// repositories, and a commit id for every even entry. It returns a new
// slice every time.
func termsOf(i uint64) []api.SearchTerm {
	if v, ok := termsCache.Load(i); ok {
		return slices.Clone(v.([]api.SearchTerm))
	}
	terms := []api.SearchTerm{
		keyTerm(i % 3),
		keyTerm(10 + i/100),
		digestTerm("entry", i),
		digestTerm("group", i%5),
		{Param: api.SearchRepository, Value: fmt.Sprintf("https://example.com/repo%d.git", i%7)},
	}
	if i%2 == 0 {
		terms = append(terms, commitTerm(i))
	}
	slices.SortFunc(terms, func(a, b api.SearchTerm) int {
		if c := strings.Compare(a.Param, b.Param); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	termsCache.Store(i, slices.Clone(terms))
	return terms
}

// termsCache keeps termsOf's terms, which the checks ask for again and
// again.
var termsCache sync.Map // uint64 -> []api.SearchTerm

func keyTerm(k uint64) api.SearchTerm {
	return api.SearchTerm{Param: api.SearchKey, Value: "sha256:" + hexHash("key", k)}
}

func digestTerm(what string, i uint64) api.SearchTerm {
	return api.SearchTerm{Param: api.SearchDigest, Value: "sha256:" + hexHash(what, i)}
}

func commitTerm(i uint64) api.SearchTerm {
	return api.SearchTerm{Param: api.SearchCommit, Value: hexHash("commit", i)[:40]}
}

func repoTerm(r uint64) api.SearchTerm {
	return api.SearchTerm{Param: api.SearchRepository, Value: fmt.Sprintf("https://example.com/repo%d.git", r)}
}

func hexHash(what string, i uint64) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s %d", what, i))
	return hex.EncodeToString(h[:])
}

// bogusTerm is the term of the leaves of bogusCommit, which must never be
// found.
var bogusTerm = digestTerm("bogus", 0)

// searchQueries are the queries checkSearch asks: single terms, rare and
// common, and conjunctions, some of which nothing matches.
var searchQueries = [][]api.SearchTerm{
	{keyTerm(0)},
	{digestTerm("group", 2)},
	{repoTerm(3)},
	{commitTerm(10)},
	{digestTerm("entry", 300)},
	{keyTerm(1), digestTerm("group", 2)},
	{digestTerm("group", 1), keyTerm(2), repoTerm(4)},
	{commitTerm(14), repoTerm(1)},
	{commitTerm(14), repoTerm(0), keyTerm(2)},
	{digestTerm("entry", 3), digestTerm("entry", 4)},
	{bogusTerm},
	{keyTerm(3)},
	{keyTerm(12)},
	{keyTerm(12), keyTerm(1)},
	{keyTerm(12), repoTerm(2), digestTerm("group", 4)},
}

// matches tells whether the model's entry i carries every term of q.
func matches(i uint64, q []api.SearchTerm) bool {
	v, ok := termsCache.Load(i)
	if !ok {
		termsOf(i)
		v, _ = termsCache.Load(i)
	}
	terms := v.([]api.SearchTerm)
	for _, t := range q {
		if !slices.Contains(terms, t) {
			return false
		}
	}
	return true
}

// checkSearch checks, if s is a log.SearchStorage, that its index holds
// exactly the model's entries below indexed, for every query of
// searchQueries over several ranges up to end and with several limits.
func checkSearch(t *testing.T, s log.Storage, indexed, end uint64) {
	t.Helper()
	ss, ok := s.(log.SearchStorage)
	if !ok {
		return
	}
	ctx := context.Background()
	ranges := [][2]uint64{{0, end}, {end / 3, end}, {0, end / 2}, {end / 2, end/2 + 1}, {end, end + 10}}
	for _, q := range searchQueries {
		for _, r := range ranges {
			for _, limit := range []int{1, 7, 1000} {
				var want []uint64
				for i := r[0]; i < min(r[1], indexed) && len(want) < limit; i++ {
					if matches(i, q) {
						want = append(want, i)
					}
				}
				got, err := ss.Search(ctx, q, r[0], r[1], limit)
				if err != nil {
					t.Fatalf("Search(%v, [%d, %d), limit %d) with %d entries indexed: %v", q, r[0], r[1], limit, indexed, err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("Search(%v, [%d, %d), limit %d) with %d entries indexed = %v, want %v", q, r[0], r[1], limit, indexed, got, want)
				}
			}
		}
	}
}

// testSearchCopies checks that the hits are the caller's: scribbling on
// them changes nothing stored, and that the storage kept no reference to
// the commit's terms or leaf hashes.
func testSearchCopies(t *testing.T, s log.SearchStorage) {
	ctx := context.Background()
	c := commitFor(0, 300)
	if err := s.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, l := range c.Leaves {
		for i := range l.Terms {
			l.Terms[i].Value = "scribbled"
		}
		scribble(l.LeafHash)
	}
	hits, err := s.Search(ctx, []api.SearchTerm{keyTerm(1)}, 0, 300, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := range hits {
		hits[i] = 1 << 62
	}
	checkSearch(t, s, 300, 300)
}

// testSearchRebuild deletes the index of a log and rebuilds it in parts
// (log.SearchIndexer): Search fails while it is incomplete, answers what
// is indexed once it is marked complete, and all of it in the end.
func testSearchRebuild(t *testing.T, s log.SearchIndexer) {
	ctx := context.Background()
	grow(t, s, 0, 700)
	checkSearch(t, s, 700, 700)
	if err := s.ResetSearchIndex(ctx); err != nil {
		t.Fatalf("ResetSearchIndex: %v", err)
	}
	checkSearchUnavailable(t, s)
	leaves := commitFor(0, 700).Leaves
	if err := s.IndexEntries(ctx, leaves[:300]); err != nil {
		t.Fatalf("IndexEntries: %v", err)
	}
	checkSearchUnavailable(t, s)
	if err := s.FinishSearchIndex(ctx); err != nil {
		t.Fatalf("FinishSearchIndex: %v", err)
	}
	checkSearch(t, s, 300, 700)
	if err := s.IndexEntries(ctx, leaves[300:]); err != nil {
		t.Fatalf("IndexEntries: %v", err)
	}
	checkSearch(t, s, 700, 700)
	// A commit after a rebuild indexes its entries as before.
	grow(t, s, 700, 1000)
	checkState(t, s, 1000)
}

func checkSearchUnavailable(t *testing.T, s log.SearchStorage) {
	t.Helper()
	if _, err := s.Search(context.Background(), []api.SearchTerm{keyTerm(0)}, 0, 10, 10); !errors.Is(err, log.ErrSearchUnavailable) {
		t.Fatalf("Search of an incomplete index: got %v, want ErrSearchUnavailable", err)
	}
}
