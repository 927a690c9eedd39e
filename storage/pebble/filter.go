package pebble

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// leafFilter is a blocked Bloom filter over leaf hashes. Most lookups are
// for new entries, whose leaf hashes are not stored: the filter answers
// those from memory, where pebble would search its memtables and read a
// filter block per table. A false positive only costs the pebble read.
//
// All the bits of one hash are in one 64-byte block, so an add or a lookup
// touches one cache line. The words are outside the Go heap (where the
// system allows): the filter's memory is its size, with no collector's
// headroom on top; they are freed once nothing holds the filter.
type leafFilter struct {
	words  []atomic.Uint64
	free   func() // releases words
	blocks uint64 // number of blocks
	added  atomic.Uint64
	holds  atomic.Int64 // lookups and adds using words
}

const (
	// filterProbes is the number of bits a leaf hash sets in its block.
	filterProbes = 6
	blockWords   = 8 // 512 bits: one cache line
	blockBits    = 64 * blockWords

	// A filter sized for the log has filterBitsNew bits per entry when it
	// is made, and is replaced by a larger one when the log has grown to
	// filterBitsMin bits per entry: between the two, one lookup of a new
	// entry in 800 (at 16 bits) to one in 5,500 (at 24) is a false
	// positive. Its size follows the log: 2 to 3 bytes per entry.
	filterBitsNew = 24
	filterBitsMin = 16
	// filterMinEntries is the smallest log a filter is sized for.
	filterMinEntries = 1 << 20
)

// newLeafFilter returns an empty filter of about sizeBytes (at least one
// block).
func newLeafFilter(sizeBytes int64) *leafFilter {
	blocks := newLeafFilterBlocks(sizeBytes)
	words, free := allocWords(blocks * blockWords)
	return &leafFilter{words: words, free: free, blocks: blocks}
}

// newLeafFilterBlocks is the number of blocks of a filter of about
// sizeBytes.
func newLeafFilterBlocks(sizeBytes int64) uint64 {
	return uint64(max(sizeBytes, 1)*8+blockBits-1) / blockBits
}

// hold returns the filter p points to (nil if none), held until its
// release: retire frees a filter only once it is in no pointer and no
// one holds it.
func hold(p *atomic.Pointer[leafFilter]) *leafFilter {
	for {
		f := p.Load()
		if f == nil {
			return nil
		}
		f.holds.Add(1)
		if p.Load() == f {
			return f
		}
		// Replaced meanwhile: it may be retired already.
		f.holds.Add(-1)
	}
}

func (f *leafFilter) release() { f.holds.Add(-1) }

// retire frees f's words once nothing holds it. f must be in no pointer
// that hold reads.
func (f *leafFilter) retire() {
	for f.holds.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	f.free()
}

// filterBytesFor is the size of a filter sized for a log of n entries, or
// of minEntries if more.
func filterBytesFor(n, minEntries uint64) int64 {
	return int64(max(n, minEntries) * filterBitsNew / 8)
}

func (f *leafFilter) bytes() int64 { return int64(len(f.words)) * 8 }

// full reports whether f holds fewer than filterBitsMin bits for each of
// its entries.
func (f *leafFilter) full() bool {
	return f.added.Load()*filterBitsMin > f.blocks*blockBits
}

// falsePositiveRate estimates the share of lookups of values never added
// that f answers "maybe" (the number of entries in a block is Poisson
// distributed).
func (f *leafFilter) falsePositiveRate() float64 {
	lambda := float64(f.added.Load()) / float64(f.blocks)
	p, sum := math.Exp(-lambda), 0.0
	for j := 0; j < int(lambda)*4+64; j++ {
		if j > 0 {
			p *= lambda / float64(j)
		}
		set := 1 - math.Pow(1-1.0/blockBits, float64(filterProbes*j))
		sum += p * math.Pow(set, filterProbes)
	}
	return sum
}

// probes returns the block of a leaf hash and its bits in the block. Leaf
// hashes are SHA-256 outputs, so their bytes are the hash functions;
// anything else that is looked up is hashed first.
func (f *leafFilter) probes(h []byte) (block []atomic.Uint64, probe [filterProbes]uint16) {
	if len(h) != sha256.Size {
		d := sha256.Sum256(h)
		h = d[:]
	}
	// The high word of the product maps the uniform first 8 bytes to a
	// block without a division.
	b, _ := bits.Mul64(binary.LittleEndian.Uint64(h), f.blocks)
	for i := range probe {
		probe[i] = binary.LittleEndian.Uint16(h[8+2*i:]) % blockBits
	}
	return f.words[b*blockWords : (b+1)*blockWords : (b+1)*blockWords], probe
}

func (f *leafFilter) add(h []byte) {
	block, probe := f.probes(h)
	for _, b := range probe {
		block[b/64].Or(1 << (b % 64))
	}
	f.added.Add(1)
}

// mayContain reports false only if h was never added.
func (f *leafFilter) mayContain(h []byte) bool {
	block, probe := f.probes(h)
	for _, b := range probe {
		if block[b/64].Load()&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// fill adds every leaf hash stored in db.
func (f *leafFilter) fill(ctx context.Context, db *pebble.DB) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLeaf}, UpperBound: []byte{prefixLeaf + 1}})
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		f.add(it.Key()[1:])
		if n++; n%4096 == 0 && ctx.Err() != nil {
			it.Close()
			return ctx.Err()
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return fmt.Errorf("couldn't scan the leaf index: %w", err)
	}
	return it.Close()
}

// leafFilters keeps the filter that answers lookups, and fills its
// replacement when there is none yet (at start) or when the log outgrew
// it. There are no false negatives: every leaf hash of a commit is added
// before the commit is written, and a filter answers only once its scan,
// begun after it started taking those adds, has added what was stored
// before.
type leafFilters struct {
	fixed      int64  // the configured size; 0: sized for the log
	minEntries uint64 // the smallest log a filter is sized for
	logger     *slog.Logger
	afterScan  func() // if set, called when a scan ends, before its filter is used (tests)
	// saved is the path of the saved filter (filtersave.go): the first
	// filter is filled from it if it serves, and close writes the filter
	// in use to it. Empty: none.
	saved string
	// loaded is how many filters were filled from the saved one.
	loaded atomic.Uint64

	// inUse answers lookups (nil until the first scan ended); next is
	// being filled (nil when no scan runs). add reads next before inUse
	// and a filled filter is stored in inUse before next is cleared, so a
	// filter gets every add from the moment it is in next.
	inUse, next atomic.Pointer[leafFilter]

	mu     sync.Mutex // guards cancel, closed and failed
	cancel context.CancelFunc
	closed bool
	failed time.Time // when a scan last failed
	scans  sync.WaitGroup
}

// scanRetry is how long after a failed scan another may start.
const scanRetry = time.Minute

// add adds a leaf hash to the filters. Calls are serialised with start by
// the caller.
func (fs *leafFilters) add(h []byte) {
	if n := hold(&fs.next); n != nil {
		n.add(h)
		n.release()
	}
	if f := hold(&fs.inUse); f != nil {
		f.add(h)
		f.release()
	}
}

// mayContain reports false only if h is certainly not stored; ok is false
// when no filter is ready to answer.
func (fs *leafFilters) mayContain(h []byte) (maybe, ok bool) {
	f := hold(&fs.inUse)
	if f == nil {
		return true, false
	}
	defer f.release()
	return f.mayContain(h), true
}

// needsScan reports whether a filter for a log of size entries should be
// filled: there is none, or the one in use is full and sized for the log.
func (fs *leafFilters) needsScan() bool {
	if fs.next.Load() != nil {
		return false
	}
	f := fs.inUse.Load()
	return f == nil || fs.fixed == 0 && f.full()
}

// start begins filling a filter for a log of size entries from db, if one
// is needed. db must stay open until stop returns, and no commit may be
// written between start's reading of next and its storing of the new
// filter there: callers hold the commit lock, or nothing commits yet.
func (fs *leafFilters) start(db *pebble.DB, size uint64) {
	if !fs.needsScan() {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed || fs.cancel != nil || time.Since(fs.failed) < scanRetry {
		return
	}
	bytes := fs.fixed
	if bytes == 0 {
		bytes = filterBytesFor(size, fs.minEntries)
	}
	saved, useSaved := fs.savedFor(size)
	if useSaved {
		bytes = saved.bytes()
	}
	f := newLeafFilter(bytes)
	fs.next.Store(f)
	ctx, cancel := context.WithCancel(context.Background())
	fs.cancel = cancel
	fs.scans.Add(1)
	go func() {
		defer fs.scans.Done()
		var err error
		if useSaved {
			start := time.Now()
			if err = f.load(ctx, fs.saved, saved, db, size); err == nil {
				fs.loaded.Add(1)
				fs.logger.Info("the leaf filter was filled from its saved copy", "entries", f.added.Load(), "saved_entries", saved.size, "bytes", f.bytes(), "duration", time.Since(start).Round(time.Millisecond))
			} else if ctx.Err() == nil {
				// What it added is of the log, or only false positives.
				// The copy goes: one found of another history must not
				// be used by a later start, when the log may have grown
				// past it (only the leaf at its size is checked).
				fs.logger.Warn("couldn't fill the leaf filter from its saved copy: removing it, scanning the leaf index", "path", fs.saved, "error", err)
				fs.remove()
			}
		}
		if !useSaved || err != nil && ctx.Err() == nil {
			err = f.fill(ctx, db)
		}
		if fs.afterScan != nil {
			fs.afterScan()
		}
		if err == nil {
			if old := fs.inUse.Swap(f); old != nil {
				fs.logger.Info("the leaf filter grew with the log", "entries", f.added.Load(), "bytes", f.bytes(), "old_bytes", old.bytes())
				old.retire()
			}
		}
		failed := err != nil && ctx.Err() == nil
		if failed {
			// Lookups keep reading pebble, or the filter in use.
			fs.logger.Error("couldn't fill the leaf filter", "error", err)
		}
		fs.next.Store(nil)
		if err != nil {
			f.retire()
		}
		fs.mu.Lock()
		fs.cancel = nil
		if failed {
			fs.failed = time.Now()
		}
		fs.mu.Unlock()
		cancel()
	}()
}

// savedFor returns the header of the saved filter, and whether the first
// filter of a log of size entries should be filled from it: there is
// none in use yet, and the saved one has the configured size, or, sized
// for the log, room for it.
func (fs *leafFilters) savedFor(size uint64) (savedFilter, bool) {
	if fs.saved == "" || fs.inUse.Load() != nil {
		return savedFilter{}, false
	}
	h, err := readSavedFilter(fs.saved)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			fs.logger.Warn("the saved leaf filter is unusable: removing it, scanning the leaf index", "path", fs.saved, "error", err)
			fs.remove()
		}
		return h, false
	}
	if fs.fixed != 0 {
		return h, h.blocks == newLeafFilterBlocks(fs.fixed)
	}
	// Not larger than a filter sized for the log now (one saved with a
	// configured size would never fill, and never be replaced).
	entries := h.added + size - min(h.size, size)
	return h, entries*filterBitsMin <= h.blocks*blockBits && h.blocks <= newLeafFilterBlocks(filterBytesFor(size, fs.minEntries))
}

// remove removes the saved filter.
func (fs *leafFilters) remove() {
	if err := os.Remove(fs.saved); err != nil && !errors.Is(err, os.ErrNotExist) {
		fs.logger.Warn("couldn't remove the saved leaf filter", "path", fs.saved, "error", err)
	}
}

// save writes the filter in use to the saved filter's path, as holding
// the leaves of the log's first size entries, the last of them last.
func (fs *leafFilters) save(size uint64, last []byte) error {
	if fs.saved == "" {
		return nil
	}
	f := hold(&fs.inUse)
	if f == nil {
		return nil
	}
	defer f.release()
	return f.save(fs.saved, size, last)
}

// stop ends a running scan and waits for it; close also stops any later,
// and frees the filter: lookups after it read pebble.
func (fs *leafFilters) stop(close bool) {
	fs.mu.Lock()
	fs.closed = fs.closed || close
	if fs.cancel != nil {
		fs.cancel()
	}
	fs.mu.Unlock()
	fs.scans.Wait()
	if close {
		if f := fs.inUse.Swap(nil); f != nil {
			f.retire()
		}
	}
}

// bytes is the memory the filters hold.
func (fs *leafFilters) bytes() int64 {
	var n int64
	for _, f := range []*leafFilter{fs.inUse.Load(), fs.next.Load()} {
		if f != nil {
			n += f.bytes()
		}
	}
	return n
}

// WaitLeafFilter waits until no scan fills a leaf filter and reports
// whether a filter is in use.
func (s *Storage) WaitLeafFilter() bool {
	if s.filter == nil {
		return false
	}
	s.filter.scans.Wait()
	return s.filter.inUse.Load() != nil
}

// LeafFilterBytes returns the size of the leaf filter in use (0 if none).
func (s *Storage) LeafFilterBytes() int64 {
	if s.filter == nil {
		return 0
	}
	f := hold(&s.filter.inUse)
	if f == nil {
		return 0
	}
	defer f.release()
	return f.bytes()
}

// LeafLookups returns how many duplicate checks the filter answered
// (absent), and how many it sent to pebble that pebble did not find.
func (s *Storage) LeafLookups() (absent, falsePositive uint64) {
	return s.lookups.absent.Load(), s.lookups.falsePositive.Load()
}
