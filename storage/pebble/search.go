package pebble

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

// The search index.
//
// A posting holds the entries of one term among those one write indexes
// (of a commit id, a digest or an image digest, whose values nearly
// always name one entry each, one entry: singleEntryParam):
//
//	's' ‖ param ‖ value ‖ last index -> gaps
//
// where param is one byte per search parameter; value the term's value,
// a byte that says how it is spelled and then, for a hash in a canonical
// spelling, its bytes (their number follows from the spelling), for any
// other the uvarint length and the value as it is (appendTermValue); last
// index the index of the posting's last entry, as a byte n and its n
// big-endian bytes without leading zeros (appendIndexKey: in the order of
// the indexes, and short); and gaps, for every entry before the last,
// from the last down, the uvarint gap to the index after it
// (appendPosting). The leaf hashes are the level-0 tiles'. The postings
// of one term are contiguous and in log order, each keyed by its last
// entry, so the posting that holds the first entry at or after an index
// is one seek away; a search of one term is one bounded iteration, and a
// search of several is a leapfrog join of their iterations: each seeks to
// the largest index any other is at, until they all agree, so it reads no
// more than the rarest term's postings (and a seek for each in the
// others).
//
// The log writes postings after the commits of their entries, many
// commits at once (log.DeferredIndexer, IndexCommitted), with the key
// 's' 0 that says how many of the log's first entries the index covers,
// in the same batch. A commit whose entries carry terms writes their
// postings itself.
//
// The key 'S' says whether the index covers every entry: 1 once it does,
// 0 while a rebuild runs. A database without it covers every entry only
// if it has none (one written before the index existed has none of its
// entries indexed); the first commit of an empty log writes 1.
//
// The key 'S' 'f' holds the format of the postings, searchFormat, and
// every write of the indexed size writes it (setIndexed): the first
// commit of a log, every deferred index write, the end of a rebuild. An
// index of another format, or of one before the key (any key under 's'
// and no format), is dropped at open: the log indexes every entry again,
// in the background.
const (
	prefixSearch      = 's'
	prefixSearchState = 'S'
)

// searchFormat is the format of the postings' keys: 1 had a u64 for the
// last index and the value's length before its spelling; 0 was a key per
// entry and term.
const searchFormat = 2

var (
	searchStateKey  = []byte{prefixSearchState}
	searchFormatKey = []byte{prefixSearchState, 'f'}
	// indexedKey holds how many of the log's first entries the index
	// covers (u64 BE), before every posting.
	indexedKey = []byte{prefixSearch, 0}
)

const (
	searchIncomplete = 0
	searchComplete   = 1
)

// searchParamCode returns the key byte of a search parameter.
func searchParamCode(param string) (byte, bool) {
	switch param {
	case api.SearchCommit:
		return 'c', true
	case api.SearchRepository:
		return 'r', true
	case api.SearchDigest:
		return 'd', true
	case api.SearchKey:
		return 'k', true
	case api.SearchImage:
		return 'm', true
	case api.SearchIdentity:
		return 'i', true
	case api.SearchIssuer:
		return 'o', true
	}
	return 0, false
}

// appendTermPrefix appends the prefix of t's keys to b.
func appendTermPrefix(b []byte, t api.SearchTerm) ([]byte, error) {
	code, ok := searchParamCode(t.Param)
	if !ok {
		return nil, fmt.Errorf("%w: unknown parameter %q", api.ErrInvalidSearch, t.Param)
	}
	b = append(b, prefixSearch, code)
	return appendTermValue(b, t), nil
}

// The first byte of a term's value in a key: how it is spelled.
const (
	valueRaw       = 0 // the uvarint length, and the value as it is
	valueHex       = 1 // lowercase hex of other lengths: the uvarint length, and the bytes
	valueSHA256Hex = 2 // "sha256:" and 64 lowercase hex digits: the 32 bytes
	valueSSHSHA256 = 3 // "SHA256:" and unpadded base64 of 32 bytes: the 32 bytes
	valueHex20     = 4 // 40 lowercase hex digits (a SHA-1 commit id, an OpenPGP v4 fingerprint): the 20 bytes
	valueHex32     = 5 // 64 lowercase hex digits (a SHA-256 commit id, an OpenPGP v6 fingerprint): the 32 bytes
)

// appendTermValue appends the value of t as its keys hold it: a hash in
// the one spelling ParseSearchTerm and api.SearchTerms give it as its
// bytes, everything else as it is, each after a byte that says which (and
// the length where the spelling does not give it), so that different
// values never share a key and none is the start of another's. Keys so
// are about half as long, and the index costs the append path less.
func appendTermValue(b []byte, t api.SearchTerm) []byte {
	v := t.Value
	if rest, ok := strings.CutPrefix(v, "sha256:"); ok && len(rest) == 64 {
		if d, ok := appendLowerHex(append(b, valueSHA256Hex), rest); ok {
			return d
		}
	}
	if rest, ok := strings.CutPrefix(v, "SHA256:"); ok && t.Param == api.SearchKey && len(rest) == 43 {
		if d, err := base64.RawStdEncoding.AppendDecode(append(b, valueSSHSHA256), []byte(rest)); err == nil && len(d) == len(b)+33 &&
			base64.RawStdEncoding.EncodeToString(d[len(b)+1:]) == rest {
			return d
		}
	}
	if (t.Param == api.SearchCommit || t.Param == api.SearchKey) && len(v)%2 == 0 && len(v) > 0 {
		var d []byte
		ok := false
		switch len(v) {
		case 40:
			d, ok = appendLowerHex(append(b, valueHex20), v)
		case 64:
			d, ok = appendLowerHex(append(b, valueHex32), v)
		default:
			d, ok = appendLowerHex(binary.AppendUvarint(append(b, valueHex), uint64(len(v)/2)), v)
		}
		if ok {
			return d
		}
	}
	b = binary.AppendUvarint(append(b, valueRaw), uint64(len(v)))
	return append(b, v...)
}

// appendIndexKey appends the index i as the keys of postings hold it: a
// byte n, then the n big-endian bytes of i without its leading zero bytes
// (one at least), so that keys are in the order of their indexes and a
// log's first 4 G entries take 5 bytes or fewer.
func appendIndexKey(b []byte, i uint64) []byte {
	n := max(1, (bits.Len64(i)+7)/8)
	b = append(b, byte(n))
	for k := n - 1; k >= 0; k-- {
		b = append(b, byte(i>>(8*k)))
	}
	return b
}

// maxIndexKey is above every index's appendIndexKey.
const maxIndexKey = 9

// parseIndexKey returns the index of a posting key whose term prefix is
// prefixLen bytes, and false if what follows the prefix is not an index
// as appendIndexKey writes it.
func parseIndexKey(k []byte, prefixLen int) (uint64, bool) {
	if len(k) <= prefixLen {
		return 0, false
	}
	n := int(k[prefixLen])
	b := k[prefixLen+1:]
	if n < 1 || n > 8 || len(b) != n || (n > 1 && b[0] == 0) {
		return 0, false
	}
	var i uint64
	for _, c := range b {
		i = i<<8 | uint64(c)
	}
	return i, true
}

// appendLowerHex appends the bytes s spells in lowercase hex to b, and
// false if s is anything else (uppercase digits included: they are kept as
// they are, a value of their own).
func appendLowerHex(b []byte, s string) ([]byte, bool) {
	if len(s)%2 != 0 {
		return b, false
	}
	n := len(b)
	for i := 0; i < len(s); i += 2 {
		hi, lo := lowerHexValue[s[i]], lowerHexValue[s[i+1]]
		if hi|lo == 0xff {
			return b[:n], false
		}
		b = append(b, hi<<4|lo)
	}
	return b, true
}

// lowerHexValue maps a lowercase hex digit to its value, everything else
// to 0xff.
var lowerHexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// fillSearch puts the index postings of leaves in b, in key order (the
// memtable takes keys in order much faster than scattered ones): one key
// per term and write, holding every entry of leaves with that term.
func fillSearch(b *pebble.Batch, leaves []log.LeafIndex) error {
	return eachPosting(leaves, func(key, value []byte) error { return b.Set(key, value, nil) })
}

// eachPosting calls emit with the key and value of every posting of
// leaves, in key order.
func eachPosting(leaves []log.LeafIndex, emit func(key, value []byte) error) error {
	n := 0
	for _, l := range leaves {
		n += len(l.Terms)
	}
	if n == 0 {
		return nil
	}
	// The terms' prefixes, each once, in one buffer, and the posting of
	// every (entry, term) pair, in the order of leaves.
	sc := postingScratchPool.Get().(*postingScratch)
	defer sc.release()
	postings, prefixes, pairs := sc.postings[:0], sc.prefixes[:0], sc.pairs[:0]
	for _, l := range leaves {
		for _, t := range l.Terms {
			// A term of a parameter whose values name one entry each gets
			// a posting of its own without a look in the map: the rare
			// second entry with it in this write has one of its own too,
			// keyed by its own index, after the first.
			j, ok := int32(0), false
			var byValue map[string]int32
			if !singleEntryParam(t.Param) {
				byValue = sc.postingsOf(t.Param)
				j, ok = byValue[t.Value]
			}
			if !ok {
				off := len(prefixes)
				var err error
				if prefixes, err = appendTermPrefix(prefixes, t); err != nil {
					return fmt.Errorf("entry %d: %w", l.Index, err)
				}
				j = int32(len(postings))
				postings = append(postings, posting{off: int32(off), len: int32(len(prefixes) - off)})
				if byValue != nil {
					byValue[t.Value] = j
				}
			}
			postings[j].count++
			pairs = append(pairs, j)
		}
	}
	// The entries of each posting, in the order of leaves.
	start := int32(0)
	for j := range postings {
		postings[j].start = start
		start += postings[j].count
		postings[j].count = 0
	}
	entries := slices.Grow(sc.entries[:0], len(pairs))[:len(pairs)]
	sc.postings, sc.prefixes, sc.pairs, sc.entries = postings, prefixes, pairs, entries
	k := 0
	for i, l := range leaves {
		for range l.Terms {
			p := &postings[pairs[k]]
			if c := p.count; c == 0 || entries[p.start+c-1] != int32(i) { // a term given twice counts once
				entries[p.start+c] = int32(i)
				p.count++
			}
			k++
		}
	}
	// The postings in the order of their keys: sorted by the first 8
	// bytes of their prefixes, then by the whole.
	prefix := func(p posting) []byte { return prefixes[p.off : p.off+p.len] }
	order := slices.Grow(sc.order[:0], len(postings))
	for j, p := range postings {
		order = append(order, postingOrder{head: keyHead(prefix(p)), j: int32(j)})
	}
	sc.order = order
	// By head with a radix sort (most heads differ: those of commit ids
	// and digests end in random bytes), then each run of one head by the
	// whole prefix, and one term's postings of single entries in the order
	// of their entries.
	sc.sorted = slices.Grow(sc.sorted[:0], len(order))[:len(order)]
	order = radixSortByHead(order, sc.sorted)
	for i := 0; i < len(order); {
		j := i + 1
		for j < len(order) && order[j].head == order[i].head {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(order[i:j], func(a, b postingOrder) int {
				if c := bytes.Compare(prefix(postings[a.j]), prefix(postings[b.j])); c != 0 {
					return c
				}
				return int(a.j - b.j)
			})
		}
		i = j
	}
	var key, prev, value []byte
	for i, o := range order {
		p := postings[o.j]
		e := entries[p.start : p.start+p.count]
		key, prev = prev, key
		key = appendIndexKey(append(key[:0], prefix(p)...), leaves[e[len(e)-1]].Index)
		if i > 0 && order[i-1].head == o.head && bytes.Equal(key, prev) {
			key, prev = prev, key
			continue // a single-entry term given twice to one entry
		}
		value = appendPosting(value[:0], leaves, e)
		if err := emit(key, value); err != nil {
			return err
		}
	}
	return nil
}

// singleEntryParam says whether the values of a search parameter are
// each, nearly always, of one entry only: a commit id, a digest.
func singleEntryParam(param string) bool {
	switch param {
	case api.SearchCommit, api.SearchDigest, api.SearchImage:
		return true
	}
	return false
}

// posting is a term's posting in an index write: its key's prefix, at
// off in the write's prefixes, and its entries, entries[start:start+count].
type posting struct {
	off, len     int32
	count, start int32
}

// postingOrder is a posting, postings[j], with the head of its prefix, to
// sort by.
type postingOrder struct {
	head uint64
	j    int32
}

// radixSortByHead sorts a by head, stably, with tmp (as long as a) as
// scratch, and returns the sorted slice: a or tmp. A byte that all heads
// share takes no pass.
func radixSortByHead(a, tmp []postingOrder) []postingOrder {
	var counts [8][256]int32
	for _, o := range a {
		for d := range 8 {
			counts[d][byte(o.head>>(8*d))]++
		}
	}
	for d := range 8 {
		c := &counts[d]
		if len(a) == 0 || c[byte(a[0].head>>(8*d))] == int32(len(a)) {
			continue
		}
		var at int32
		for i, n := range c {
			c[i] = at
			at += n
		}
		for _, o := range a {
			b := byte(o.head >> (8 * d))
			tmp[c[b]] = o
			c[b]++
		}
		a, tmp = tmp, a
	}
	return a
}

// keyHead returns the first 8 bytes of a key, big-endian, padded with
// zeros: keys whose heads differ are in the order of their heads.
func keyHead(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// postingScratch is the memory of one index write, kept for the next: a
// write of the log's deferred indexer has tens of thousands of terms.
type postingScratch struct {
	// byParam holds, for each parameter met, the posting of each of its
	// values: a map per parameter hashes and compares the value alone.
	byParam  []paramPostings
	postings []posting
	prefixes []byte
	pairs    []int32 // the posting of each (entry, term) pair
	entries  []int32
	order    []postingOrder
	sorted   []postingOrder
}

var postingScratchPool = sync.Pool{New: func() any {
	return new(postingScratch)
}}

// paramPostings is the posting of each value of one parameter.
type paramPostings struct {
	param   string
	byValue map[string]int32
}

// postingsOf returns the map of param's values to their postings.
func (sc *postingScratch) postingsOf(param string) map[string]int32 {
	for _, p := range sc.byParam {
		if p.param == param {
			return p.byValue
		}
	}
	m := make(map[string]int32)
	sc.byParam = append(sc.byParam, paramPostings{param: param, byValue: m})
	return m
}

// release returns sc to the pool, without the strings of its terms.
func (sc *postingScratch) release() {
	for _, p := range sc.byParam {
		clear(p.byValue)
	}
	postingScratchPool.Put(sc)
}

// appendPosting appends to b the value of the posting of leaves[entries]
// (in increasing order of index, at least one), whose key holds the
// index of the last: for each entry before it, from the last down, the
// uvarint gap to the index after it. A posting of one entry has an empty
// value. The leaf hashes are in the level-0 tiles.
func appendPosting(b []byte, leaves []log.LeafIndex, entries []int32) []byte {
	next := leaves[entries[len(entries)-1]].Index
	for k := len(entries) - 2; k >= 0; k-- {
		at := leaves[entries[k]].Index
		b = binary.AppendUvarint(b, next-at)
		next = at
	}
	return b
}

// decodePosting decodes the value v of the posting whose last entry is
// last into its entries' indexes, in increasing order, reusing the room
// in idx.
func decodePosting(last uint64, v []byte, idx []uint64) ([]uint64, error) {
	idx = append(idx[:0], last)
	at := last
	for len(v) > 0 {
		gap, n := binary.Uvarint(v)
		if n <= 0 || gap == 0 || gap > at {
			return nil, fmt.Errorf("malformed search index posting ending at entry %d", last)
		}
		at -= gap
		idx = append(idx, at)
		v = v[n:]
	}
	slices.Reverse(idx)
	return idx, nil
}

// loadSearchState sets s.searchComplete from the database, after
// dropping an index of another format than searchFormat: the log indexes
// every entry again, in the background.
func (s *Storage) loadSearchState(ctx context.Context) error {
	if err := s.dropOtherFormat(); err != nil {
		return fmt.Errorf("couldn't drop the search index of another format: %w", err)
	}
	v, err := s.get(searchStateKey)
	switch {
	case errors.Is(err, log.ErrNotFound):
		// A checkpoint that can't be read fails the log's own start.
		_, size, err := s.ReadCheckpoint(ctx)
		s.searchComplete.Store(err == nil && size == 0)
		return nil
	case err != nil:
		return fmt.Errorf("couldn't read the search index state: %w", err)
	case len(v) != 1 || v[0] > searchComplete:
		return fmt.Errorf("corrupt search index state %x", v)
	}
	s.searchComplete.Store(v[0] == searchComplete)
	return nil
}

// dropOtherFormat drops an index whose format is not searchFormat: one
// that says another, or one with keys and no format (formats 0 and 1).
// What the index covers is then none of the entries, and its state (does
// it cover them all, once indexed?) stays.
func (s *Storage) dropOtherFormat() error {
	format, err := s.get(searchFormatKey)
	switch {
	case err == nil && len(format) == 1 && format[0] == searchFormat:
		return nil
	case err != nil && !errors.Is(err, log.ErrNotFound):
		return err
	case err != nil:
		// No format: an index only if it has keys.
		db, release, err := s.h.read()
		if err != nil {
			return err
		}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSearch}, UpperBound: []byte{prefixSearch + 1}})
		if err != nil {
			release()
			return err
		}
		keys := it.First()
		err = errors.Join(it.Error(), it.Close())
		release()
		if err != nil || !keys {
			return err
		}
		format = []byte{1}
	}
	s.h.logger.Warn("the search index is of another format: dropped; the log indexes every entry again, in the background, and searches answer 503 until it is done",
		"format", fmt.Sprintf("%x", format), "want", searchFormat)
	return s.writeSynced(func(b *pebble.Batch) error {
		if err := b.DeleteRange([]byte{prefixSearch}, []byte{prefixSearch + 1}, nil); err != nil {
			return err
		}
		return setIndexed(b, 0)
	})
}

// Search implements log.SearchStorage.
func (s *Storage) Search(ctx context.Context, terms []api.SearchTerm, start, end uint64, limit int) ([]uint64, error) {
	if len(terms) == 0 {
		return nil, fmt.Errorf("%w: no search terms", api.ErrInvalidSearch)
	}
	if !s.searchComplete.Load() {
		return nil, fmt.Errorf("%w: the search index does not cover every entry: stop the log and run candor-log reindex", log.ErrSearchUnavailable)
	}
	if start >= end || limit <= 0 {
		return nil, nil
	}
	db, release, err := s.h.read()
	if err != nil {
		return nil, err
	}
	defer release()
	its := make([]*termIter, len(terms))
	defer func() {
		for _, it := range its {
			if it != nil {
				it.it.Close()
			}
		}
	}()
	for i, t := range terms {
		prefix, err := appendTermPrefix(make([]byte, 0, 16+len(t.Value)), t)
		if err != nil {
			return nil, err
		}
		// A posting's key holds its last index: those with a key from
		// start on hold every entry from start on. Its earlier entries
		// may be before start, and later ones at or after end.
		lower := appendIndexKey(prefix, start)
		upper := append(prefix[:len(prefix):len(prefix)], maxIndexKey)
		it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return nil, err
		}
		its[i] = &termIter{it: it, prefix: prefix, end: end}
	}
	var hits []uint64
	// Leapfrog: target is the smallest index every iterator may still be
	// at; an iterator past it raises it, and a hit is an index all of
	// them are at.
	target := start
	for len(hits) < limit {
		agreed := 0
		for i := 0; agreed < len(its); i = (i + 1) % len(its) {
			idx, ok, err := its[i].seekGE(target)
			if err != nil {
				return nil, err
			}
			if !ok {
				return hits, nil
			}
			if idx == target {
				agreed++
			} else {
				target, agreed = idx, 1
			}
		}
		hits = append(hits, target)
		if target == end-1 {
			break
		}
		target++
	}
	return hits, nil
}

// termIter iterates over the entries of one term, below end.
type termIter struct {
	it     *pebble.Iterator
	prefix []byte
	end    uint64
	seek   []byte // scratch for seek keys
	value  []byte // the current posting's value
	// The current posting's entries, and which of them the iterator is
	// at: it is at none if pos == len(idx).
	idx []uint64
	pos int
}

// seekGE positions the iterator at the term's first entry with an index
// of at least target, and returns that index, or false if there is none
// below end.
func (t *termIter) seekGE(target uint64) (uint64, bool, error) {
	if t.pos >= len(t.idx) || t.idx[len(t.idx)-1] < target {
		// The posting that holds the entry is the first that ends at
		// or after target.
		t.seek = appendIndexKey(append(t.seek[:0], t.prefix...), target)
		if !t.it.SeekGE(t.seek) {
			t.idx, t.pos = t.idx[:0], 0
			return 0, false, t.it.Error()
		}
		k := t.it.Key()
		last, ok := parseIndexKey(k, len(t.prefix))
		if !ok || !bytes.HasPrefix(k, t.prefix) {
			return 0, false, fmt.Errorf("malformed search index key %x", k)
		}
		v, err := t.it.ValueAndErr()
		if err != nil {
			return 0, false, err
		}
		t.value = append(t.value[:0], v...)
		if t.idx, err = decodePosting(last, t.value, t.idx); err != nil {
			return 0, false, err
		}
		t.pos = 0
	}
	// The posting's last entry is at or after target.
	for t.idx[t.pos] < target {
		t.pos++
	}
	if t.idx[t.pos] >= t.end {
		return 0, false, nil
	}
	return t.idx[t.pos], true, nil
}

// setIndexed puts in b that the index covers the log's first n entries,
// in searchFormat.
func setIndexed(b *pebble.Batch, n uint64) error {
	if err := b.Set(indexedKey, binary.BigEndian.AppendUint64(nil, n), nil); err != nil {
		return err
	}
	return b.Set(searchFormatKey, []byte{searchFormat}, nil)
}

// IndexedSize implements log.DeferredIndexer.
func (s *Storage) IndexedSize(ctx context.Context) (uint64, bool, error) {
	v, err := s.get(indexedKey)
	switch {
	case errors.Is(err, log.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("couldn't read the size the search index covers: %w", err)
	case len(v) != 8:
		return 0, false, fmt.Errorf("corrupt indexed size %x", v)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// IndexCommitted implements log.DeferredIndexer: the postings and the
// size they cover in one batch, not synced (the next commit syncs it).
func (s *Storage) IndexCommitted(ctx context.Context, leaves []log.LeafIndex, next uint64) error {
	if err := s.h.writeNoSync(func(b *pebble.Batch) error {
		if err := fillSearch(b, leaves); err != nil {
			return err
		}
		return setIndexed(b, next)
	}); err != nil {
		return fmt.Errorf("couldn't write the index of entries up to %d: %w", next, writeError(err))
	}
	return nil
}

// ResetSearchIndex implements log.SearchIndexer.
func (s *Storage) ResetSearchIndex(ctx context.Context) error {
	s.searchComplete.Store(false)
	return s.writeSynced(func(b *pebble.Batch) error {
		if err := b.DeleteRange([]byte{prefixSearch}, []byte{prefixSearch + 1}, nil); err != nil {
			return err
		}
		return b.Set(searchStateKey, []byte{searchIncomplete}, nil)
	})
}

// IndexEntries implements log.SearchIndexer.
func (s *Storage) IndexEntries(ctx context.Context, leaves []log.LeafIndex) error {
	return s.writeSynced(func(b *pebble.Batch) error { return fillSearch(b, leaves) })
}

// FinishSearchIndex implements log.SearchIndexer.
func (s *Storage) FinishSearchIndex(ctx context.Context) error {
	_, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		return err
	}
	if err := s.writeSynced(func(b *pebble.Batch) error {
		if err := setIndexed(b, size); err != nil {
			return err
		}
		return b.Set(searchStateKey, []byte{searchComplete}, nil)
	}); err != nil {
		return err
	}
	s.searchComplete.Store(true)
	return nil
}

// writeSynced writes the batch fill builds, durably, under the commit lock.
func (s *Storage) writeSynced(fill func(*pebble.Batch) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wait, err := s.h.write(fill)
	if err != nil {
		return fmt.Errorf("couldn't write the batch: %w", writeError(err))
	}
	if err := wait(); err != nil {
		return fmt.Errorf("couldn't sync the batch: %w", writeError(err))
	}
	return nil
}
