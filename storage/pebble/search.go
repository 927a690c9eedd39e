package pebble

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

// The search index.
//
// Every (term, entry) pair is one key, written in the batch of the commit
// that adds the entry:
//
//	's' ‖ param ‖ uvarint len(v) ‖ v ‖ u64 BE index -> leaf hash
//
// where param is one byte per search parameter and v the term's value,
// shortened when it is a hash in a canonical spelling (appendTermValue). The keys of one term are
// contiguous and in log order, so a search of one term is one bounded
// iteration, and a search of several is a leapfrog join of their
// iterations: each seeks to the largest index any other is at, until they
// all agree, so it reads no more than the rarest term's keys (and a seek
// for each in the others).
//
// The key 'S' says whether the index covers every entry: 1 once it does,
// 0 while a rebuild runs. A database without it covers every entry only
// if it has none (one written before the index existed has none of its
// entries indexed); the first commit of an empty log writes 1.
const (
	prefixSearch      = 's'
	prefixSearchState = 'S'
)

var searchStateKey = []byte{prefixSearchState}

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
	var buf [80]byte
	v := appendTermValue(buf[:0], t)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...), nil
}

// The first byte of a term's value in a key: how it is spelled.
const (
	valueRaw       = 0 // the value as it is
	valueHex       = 1 // lowercase hex: its bytes (a commit id, an OpenPGP fingerprint)
	valueSHA256Hex = 2 // "sha256:" and 64 lowercase hex digits: the 32 bytes
	valueSSHSHA256 = 3 // "SHA256:" and unpadded base64 of 32 bytes: the 32 bytes
)

// appendTermValue appends the value of t as its keys hold it: a hash in
// the one spelling ParseSearchTerm and api.SearchTerms give it as its
// bytes, everything else as it is, each after a byte that says which, so
// that different values never share a key. Keys so are about half as
// long, and the index costs the append path less.
func appendTermValue(b []byte, t api.SearchTerm) []byte {
	v := t.Value
	if rest, ok := strings.CutPrefix(v, "sha256:"); ok && len(rest) == 64 && isLowerHex(rest) {
		if d, err := hex.AppendDecode(append(b, valueSHA256Hex), []byte(rest)); err == nil {
			return d
		}
	}
	if rest, ok := strings.CutPrefix(v, "SHA256:"); ok && t.Param == api.SearchKey && len(rest) == 43 {
		if d, err := base64.RawStdEncoding.AppendDecode(append(b, valueSSHSHA256), []byte(rest)); err == nil && len(d) == len(b)+33 &&
			base64.RawStdEncoding.EncodeToString(d[len(b)+1:]) == rest {
			return d
		}
	}
	if (t.Param == api.SearchCommit || t.Param == api.SearchKey) && len(v)%2 == 0 && len(v) > 0 && isLowerHex(v) {
		if d, err := hex.AppendDecode(append(b, valueHex), []byte(v)); err == nil {
			return d
		}
	}
	b = append(b, valueRaw)
	return append(b, v...)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// fillSearch puts the index keys of leaves in b, in key order: the
// memtable takes keys in order much faster than scattered ones (each
// insertion walks the path the one before it warmed up).
func fillSearch(b *pebble.Batch, leaves []log.LeafIndex) error {
	n := 0
	for _, l := range leaves {
		n += len(l.Terms)
	}
	if n == 0 {
		return nil
	}
	type kv struct{ key, value []byte }
	kvs := make([]kv, 0, n)
	buf := make([]byte, 0, n*64)
	for _, l := range leaves {
		for _, t := range l.Terms {
			start := len(buf)
			var err error
			if buf, err = appendTermPrefix(buf, t); err != nil {
				return fmt.Errorf("entry %d: %w", l.Index, err)
			}
			buf = binary.BigEndian.AppendUint64(buf, l.Index)
			kvs = append(kvs, kv{value: l.LeafHash, key: buf[start:len(buf):len(buf)]})
		}
	}
	// The keys may have moved as buf grew: slice them again.
	off := 0
	for i := range kvs {
		k := len(kvs[i].key)
		kvs[i].key = buf[off : off+k : off+k]
		off += k
	}
	slices.SortFunc(kvs, func(a, b kv) int { return bytes.Compare(a.key, b.key) })
	for _, e := range kvs {
		if err := b.Set(e.key, e.value, nil); err != nil {
			return err
		}
	}
	return nil
}

// loadSearchState sets s.searchComplete from the database.
func (s *Storage) loadSearchState(ctx context.Context) error {
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

// Search implements log.SearchStorage.
func (s *Storage) Search(ctx context.Context, terms []api.SearchTerm, start, end uint64, limit int) ([]api.SearchHit, error) {
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
		lower := binary.BigEndian.AppendUint64(prefix, start)
		upper := binary.BigEndian.AppendUint64(prefix[:len(prefix):len(prefix)], end)
		it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return nil, err
		}
		its[i] = &termIter{it: it, prefix: prefix}
	}
	var hits []api.SearchHit
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
		hit, err := its[0].hit(target)
		if err != nil {
			return nil, err
		}
		hits = append(hits, hit)
		if target == end-1 {
			break
		}
		target++
	}
	return hits, nil
}

// termIter iterates over the index keys of one term.
type termIter struct {
	it     *pebble.Iterator
	prefix []byte
	seek   []byte // scratch for seek keys
	valid  bool   // the iterator is positioned at index at
	at     uint64
}

// seekGE positions the iterator at the term's first entry with an index
// of at least target, and returns that index, or false if there is none
// below the upper bound.
func (t *termIter) seekGE(target uint64) (uint64, bool, error) {
	if t.valid && t.at >= target {
		return t.at, true, nil
	}
	var ok bool
	if t.valid && t.at+1 == target {
		ok = t.it.Next() // the usual case of a single term: no seek
	} else {
		t.seek = binary.BigEndian.AppendUint64(append(t.seek[:0], t.prefix...), target)
		ok = t.it.SeekGE(t.seek)
	}
	if !ok {
		t.valid = false
		return 0, false, t.it.Error()
	}
	k := t.it.Key()
	if len(k) != len(t.prefix)+8 || !bytes.HasPrefix(k, t.prefix) {
		return 0, false, fmt.Errorf("malformed search index key %x", k)
	}
	t.at, t.valid = binary.BigEndian.Uint64(k[len(t.prefix):]), true
	return t.at, true, nil
}

// hit returns the entry the iterator is at, which is index.
func (t *termIter) hit(index uint64) (api.SearchHit, error) {
	v, err := t.it.ValueAndErr()
	if err != nil {
		return api.SearchHit{}, err
	}
	if len(v) != api.HashSize {
		return api.SearchHit{}, fmt.Errorf("search index value of entry %d is %d bytes, want a leaf hash", index, len(v))
	}
	return api.SearchHit{Index: index, LeafHash: bytes.Clone(v)}, nil
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
	if err := s.writeSynced(func(b *pebble.Batch) error {
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
