package log_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

const testOrigin = "candor.test/log"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var testKeys = sync.OnceValues(func() (note.Signer, note.Verifier) {
	s, v, _ := apitest.NewNoteKey(testOrigin, rand.Reader)
	return s, v
})

var hasher = rfc6962.DefaultHasher

// harness runs a log on pebble (behind a faultStore) in a temporary
// directory and keeps a model of what the log must hold: every entry whose
// index it learned, and every checkpoint the log published.
type harness struct {
	t      *testing.T
	dir    string
	tweak  func(*log.Config)
	store  *pebble.Storage
	faults *faultStore
	log    *log.Log
	reg    *prometheus.Registry

	entries   map[uint64][]byte // index -> entry, as receipts or reads told
	byEntry   map[string]uint64 // entry -> index
	submitted map[string]bool   // every entry ever given to Add
	reported  map[uint64]bool   // indexes some receipt reported as new
	roots     map[uint64][]byte // size -> root of every published checkpoint
	cps       map[uint64][]byte // size -> the signed checkpoint
	opened    map[string]uint64 // signed checkpoint -> size, once verified
	chained   int               // sorted checkpoints already checked pairwise
	ref       *testonly.Tree    // the reference tree of entries[0..ref.Size())
	nodeCache map[[2]uint64][]byte
}

// newHarness creates an empty log. tweak, if not nil, adjusts its Config.
func newHarness(t *testing.T, tweak func(*log.Config)) *harness {
	h := &harness{
		t:         t,
		dir:       t.TempDir(),
		tweak:     tweak,
		entries:   map[uint64][]byte{},
		byEntry:   map[string]uint64{},
		submitted: map[string]bool{},
		reported:  map[uint64]bool{},
		roots:     map[uint64][]byte{},
		cps:       map[uint64][]byte{},
		opened:    map[string]uint64{},
		ref:       testonly.New(hasher),
		nodeCache: map[[2]uint64][]byte{},
	}
	t.Cleanup(h.close)
	h.open()
	return h
}

func (h *harness) open() {
	h.t.Helper()
	s, err := pebble.Open(h.dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		h.t.Fatal(err)
	}
	h.store = s
	h.faults = newFaultStore(s)
	h.reg = prometheus.NewRegistry()
	signer, verifier := testKeys()
	cfg := log.Config{
		Storage:    h.faults,
		Signer:     signer,
		Verifier:   verifier,
		Logger:     quiet,
		Registerer: h.reg,
	}
	if h.tweak != nil {
		h.tweak(&cfg)
	}
	l, err := log.New(context.Background(), cfg)
	if err != nil {
		s.Close()
		h.t.Fatalf("log.New: %v", err)
	}
	h.log = l
	cp, size := l.Checkpoint()
	if got := h.record(cp); got != size {
		h.t.Fatalf("Checkpoint() is for size %d, returned size %d", got, size)
	}
}

func (h *harness) close() {
	if h.log != nil {
		h.log.Close()
		h.log = nil
	}
	if h.store != nil {
		if err := h.store.Close(); err != nil {
			h.t.Errorf("closing pebble: %v", err)
		}
		h.store = nil
	}
}

// reopen closes the log and its storage and opens them again: the log
// must come back with the same checkpoint.
func (h *harness) reopen() {
	h.t.Helper()
	cp, size := h.log.Checkpoint()
	h.close()
	h.open()
	cp2, size2 := h.log.Checkpoint()
	if size2 != size || !bytes.Equal(cp, cp2) {
		h.t.Fatalf("after reopening: checkpoint of size %d\n%s\nwant size %d\n%s", size2, cp2, size, cp)
	}
}

// record verifies a signed checkpoint the log published, adds it to the
// model and returns its size.
func (h *harness) record(cp []byte) uint64 {
	h.t.Helper()
	if size, ok := h.opened[string(cp)]; ok {
		return size
	}
	_, verifier := testKeys()
	c, _, err := api.OpenCheckpoint(cp, testOrigin, verifier)
	if err != nil {
		h.t.Fatalf("the log published a checkpoint that doesn't verify: %v\n%s", err, cp)
	}
	if root, ok := h.roots[c.Size]; ok && !bytes.Equal(root, c.Hash[:]) {
		h.t.Fatalf("the log published two checkpoints of size %d with roots %x and %x", c.Size, root, c.Hash)
	}
	h.roots[c.Size] = c.Hash[:]
	h.cps[c.Size] = cp
	h.opened[string(cp)] = c.Size
	return c.Size
}

type addResult struct {
	r   log.Receipt
	err error
}

// add submits entries concurrently from up to workers goroutines and
// returns the results in the same order. It checks nothing.
func (h *harness) add(entries [][]byte, workers int) []addResult {
	for _, e := range entries {
		h.submitted[string(e)] = true
	}
	res := make([]addResult, len(entries))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(entries)) {
		wg.Go(func() {
			for i := range next {
				r, err := h.log.Add(context.Background(), entries[i])
				res[i] = addResult{r, err}
			}
		})
	}
	for i := range entries {
		next <- i
	}
	close(next)
	wg.Wait()
	return res
}

// addGo submits one entry in a new goroutine; the result arrives on the
// returned channel.
func (h *harness) addGo(e []byte) <-chan addResult {
	h.submitted[string(e)] = true
	ch := make(chan addResult, 1)
	go func() {
		r, err := h.log.Add(context.Background(), e)
		ch <- addResult{r, err}
	}()
	return ch
}

// mustAdd submits entries, requires every one to succeed, checks the
// receipts and returns them.
func (h *harness) mustAdd(entries [][]byte, workers int) []log.Receipt {
	h.t.Helper()
	res := h.add(entries, workers)
	out := make([]log.Receipt, len(res))
	for i, r := range res {
		if r.err != nil {
			h.t.Fatalf("Add(%q): %v", entries[i], r.err)
		}
		h.accept(entries[i], r.r)
		out[i] = r.r
	}
	return out
}

// accept checks the receipt of a successful Add against the model.
func (h *harness) accept(e []byte, r log.Receipt) {
	h.t.Helper()
	if !bytes.Equal(r.LeafHash, hasher.HashLeaf(e)) {
		h.t.Fatalf("receipt of %q has leaf hash %x, want %x", e, r.LeafHash, hasher.HashLeaf(e))
	}
	if size := h.record(r.Checkpoint); size != r.Size {
		h.t.Fatalf("receipt of %q: Size %d, its checkpoint is for %d", e, r.Size, size)
	}
	if r.Index >= r.Size {
		h.t.Fatalf("receipt of %q: index %d is not in its checkpoint of size %d", e, r.Index, r.Size)
	}
	if !r.Duplicate {
		if h.reported[r.Index] {
			h.t.Fatalf("index %d handed out as new twice (now to %q)", r.Index, e)
		}
		h.reported[r.Index] = true
	}
	h.learn(r.Index, e)
}

// learn records that the entry at index is e.
func (h *harness) learn(index uint64, e []byte) {
	h.t.Helper()
	if old, ok := h.entries[index]; ok && !bytes.Equal(old, e) {
		h.t.Fatalf("index %d handed out twice: to %q and to %q", index, old, e)
	}
	if old, ok := h.byEntry[string(e)]; ok && old != index {
		h.t.Fatalf("entry %q is at index %d and at index %d", e, old, index)
	}
	h.entries[index] = e
	h.byEntry[string(e)] = index
}

// sizes returns the sizes of every published checkpoint, in order.
func (h *harness) sizes() []uint64 {
	var s []uint64
	for size := range h.roots {
		s = append(s, size)
	}
	slices.Sort(s)
	return s
}

// verify checks the whole published log against the model: every
// published checkpoint against the reference tree and against the others
// by consistency proofs, inclusion proofs for a sample of entries, the
// entries, entry bundles and tiles.
func (h *harness) verify() {
	h.t.Helper()
	ctx := context.Background()
	cp, size := h.log.Checkpoint()
	h.record(cp)

	// Extend the reference tree. Entries no receipt told about were
	// written by commits that reported a failure: they must be entries
	// that were submitted.
	for i := h.ref.Size(); i < size; i++ {
		e, ok := h.entries[i]
		if !ok {
			got, err := h.log.Entry(ctx, i)
			if err != nil {
				h.t.Fatalf("Entry(%d): %v", i, err)
			}
			if !h.submitted[string(got)] {
				h.t.Fatalf("entry %d is %q, which nobody submitted", i, got)
			}
			h.learn(i, got)
			e = got
		}
		h.ref.AppendData(e)
	}

	sizes := h.sizes()
	if sizes[len(sizes)-1] != size {
		h.t.Fatalf("the log published a checkpoint of size %d, beyond its current size %d", sizes[len(sizes)-1], size)
	}
	for _, s := range sizes {
		if want := h.ref.HashAt(s); !bytes.Equal(h.roots[s], want) {
			h.t.Fatalf("published checkpoint of size %d has root %x, the entries give %x", s, h.roots[s], want)
		}
	}
	// Consistency is transitive: each checkpoint against the one before
	// proves it all; proofs to the latest and a few random ones exercise
	// more proof shapes.
	for i := max(1, h.chained); i < len(sizes); i++ {
		h.checkConsistency(sizes[i-1], sizes[i])
		h.checkConsistency(sizes[mrand.IntN(i)], sizes[i])
	}
	h.chained = len(sizes)
	for _, s := range sizes {
		h.checkConsistency(s, size)
	}

	if size == 0 {
		h.checkOutOfRange(size)
		return
	}
	// Inclusion proofs at tile boundaries and random indexes, in the
	// latest tree and in earlier published ones.
	sample := map[uint64]bool{}
	for _, i := range []uint64{0, 1, 254, 255, 256, 257, 511, 512, 65535, 65536, 65537, size - 2, size - 1} {
		if i < size {
			sample[i] = true
		}
	}
	for range 10 {
		sample[mrand.Uint64N(size)] = true
	}
	for i := range sample {
		h.checkInclusion(i, size)
		first := sizes[slices.IndexFunc(sizes, func(s uint64) bool { return s > i })]
		h.checkInclusion(i, first)
		h.checkInclusion(i, sizes[len(sizes)-1-mrand.IntN(len(sizes)-slices.Index(sizes, first))])

		got, err := h.log.Entry(ctx, i)
		if err != nil || !bytes.Equal(got, h.entries[i]) {
			h.t.Fatalf("Entry(%d) = %q, %v; want %q", i, got, err, h.entries[i])
		}
		idx, err := h.log.LookupLeaf(ctx, hasher.HashLeaf(h.entries[i]))
		if err != nil || idx != i {
			h.t.Fatalf("LookupLeaf(entry %d) = %d, %v", i, idx, err)
		}
	}

	// Every entry bundle and tile of the published tree.
	for bi := uint64(0); bi*api.TileWidth < size; bi++ {
		t, _ := api.TileForSize(api.EntriesLevel, bi, size)
		got, err := h.log.EntryBundle(ctx, t)
		if err != nil {
			h.t.Fatalf("EntryBundle(%s): %v", t.Path(), err)
		}
		var want []byte
		for i := bi * api.TileWidth; i < bi*api.TileWidth+uint64(t.Width); i++ {
			want, _ = api.AppendBundleEntry(want, h.entries[i])
		}
		if !bytes.Equal(got, want) {
			h.t.Fatalf("EntryBundle(%s) is not the entries", t.Path())
		}
	}
	for level := 0; size>>(api.TileHeight*level) > 0; level++ {
		for ti := uint64(0); ; ti++ {
			t, ok := api.TileForSize(level, ti, size)
			if !ok {
				break
			}
			got, err := h.log.Tile(ctx, t)
			if err != nil {
				h.t.Fatalf("Tile(%s): %v", t.Path(), err)
			}
			if len(got) != t.Width*api.HashSize {
				h.t.Fatalf("Tile(%s) has %d bytes", t.Path(), len(got))
			}
			for j := 0; j < t.Width; j++ {
				want := h.nodeHash(uint(level*api.TileHeight), ti*api.TileWidth+uint64(j))
				if !bytes.Equal(got[j*api.HashSize:(j+1)*api.HashSize], want) {
					h.t.Fatalf("Tile(%s): hash %d is %x, want %x", t.Path(), j, got[j*api.HashSize:(j+1)*api.HashSize], want)
				}
			}
		}
	}
	h.checkOutOfRange(size)
}

// nodeHash returns the reference hash of the complete subtree at (level,
// index).
func (h *harness) nodeHash(level uint, index uint64) []byte {
	if level == 0 {
		return h.ref.LeafHash(index)
	}
	key := [2]uint64{uint64(level), index}
	if n, ok := h.nodeCache[key]; ok {
		return n
	}
	n := hasher.HashChildren(h.nodeHash(level-1, 2*index), h.nodeHash(level-1, 2*index+1))
	h.nodeCache[key] = n
	return n
}

func (h *harness) checkConsistency(old, new uint64) {
	h.t.Helper()
	p, err := h.log.ConsistencyProof(context.Background(), old, new)
	if err != nil {
		h.t.Fatalf("ConsistencyProof(%d, %d): %v", old, new, err)
	}
	if err := proof.VerifyConsistency(hasher, old, new, p, h.roots[old], h.roots[new]); err != nil {
		h.t.Fatalf("ConsistencyProof(%d, %d) doesn't verify between the published checkpoints: %v", old, new, err)
	}
}

func (h *harness) checkInclusion(index, size uint64) {
	h.t.Helper()
	p, err := h.log.InclusionProof(context.Background(), index, size)
	if err != nil {
		h.t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
	}
	if err := proof.VerifyInclusion(hasher, index, size, hasher.HashLeaf(h.entries[index]), p, h.roots[size]); err != nil {
		h.t.Fatalf("InclusionProof(%d, %d) doesn't verify against the published checkpoint: %v", index, size, err)
	}
}

func (h *harness) checkOutOfRange(size uint64) {
	h.t.Helper()
	ctx := context.Background()
	check := func(what string, err error) {
		h.t.Helper()
		if !errors.Is(err, log.ErrOutOfRange) {
			h.t.Fatalf("%s at size %d: got error %v, want ErrOutOfRange", what, size, err)
		}
	}
	_, err := h.log.Entry(ctx, size)
	check("Entry(size)", err)
	_, err = h.log.InclusionProof(ctx, size, size)
	check("InclusionProof(size, size)", err)
	_, err = h.log.InclusionProof(ctx, 0, size+1)
	check("InclusionProof(0, size+1)", err)
	_, err = h.log.ConsistencyProof(ctx, size, size+1)
	check("ConsistencyProof(size, size+1)", err)
	_, err = h.log.ConsistencyProof(ctx, size, 0)
	if size > 0 {
		check("ConsistencyProof(size, 0)", err)
	}
	_, err = h.log.Tile(ctx, api.Tile{Level: 0, Index: size / api.TileWidth, Width: int(size%api.TileWidth) + 1})
	check("Tile(one wider than the tree)", err)
	_, err = h.log.EntryBundle(ctx, api.Tile{Level: api.EntriesLevel, Index: size/api.TileWidth + 1, Width: 1})
	check("EntryBundle(beyond the tree)", err)
	if _, err := h.log.LookupLeaf(ctx, hasher.HashLeaf([]byte("never submitted"))); !errors.Is(err, log.ErrNotFound) {
		h.t.Fatalf("LookupLeaf(never submitted): got error %v, want ErrNotFound", err)
	}
}

// pending returns the log's pending-entries gauge.
func (h *harness) pending() int { return h.gauge("candor_log_pending_entries") }

// gauge returns the value of one of the log's gauges.
func (h *harness) gauge(name string) int {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	h.t.Fatalf("no %s metric", name)
	return 0
}

// plug adds entry while one batch's commit is held, and waits until the
// sequencer has built the next batch from it: with Config.MaxInflight 2
// (twoInflight) the sequencer then waits for the held commit, and entries
// added after plug queue up.
func (h *harness) plug(entry []byte) <-chan addResult {
	h.t.Helper()
	ch := h.addGo(entry)
	deadline := time.Now().Add(20 * time.Second)
	for h.gauge("candor_log_integrating_entries") != 2 {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d entries integrating after 20s, want 2", h.gauge("candor_log_integrating_entries"))
		}
		time.Sleep(time.Millisecond)
	}
	return ch
}

// waitPending waits until n entries are pending.
func (h *harness) waitPending(n int) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.pending() != n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d entries pending after 20s, want %d", h.pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitCommit waits until a held commit has started.
func (h *harness) waitCommit() {
	h.t.Helper()
	select {
	case <-h.faults.entered:
	case <-time.After(20 * time.Second):
		h.t.Fatal("no commit started within 20s")
	}
}

// makeEntries returns n small distinct entries tagged with tag.
func makeEntries(tag string, n int) [][]byte {
	es := make([][]byte, n)
	for i := range es {
		es[i] = fmt.Appendf(nil, "%s-%d", tag, i)
	}
	return es
}

// twoInflight is the Config tweak that tests using plug need: two batches
// in flight, the second built from a single entry.
func twoInflight(c *log.Config) { c.MaxInflight, c.PipelineMin = 2, -1 }

const workers = 1024

func TestGrow(t *testing.T) {
	h := newHarness(t, nil)
	h.verify()
	var all [][]byte
	for _, n := range []uint64{0, 1, 255, 256, 257, 65536, 65537} {
		_, size := h.log.Checkpoint()
		es := makeEntries(fmt.Sprintf("grow%d", n), int(n-size))
		h.mustAdd(es, workers)
		all = append(all, es...)
		if _, got := h.log.Checkpoint(); got != n {
			t.Fatalf("after adding %d entries to a log of %d: size %d, want %d", len(es), size, got, n)
		}
		h.verify()
		if t.Failed() {
			return
		}
	}

	// Duplicates of entries across the whole log, all at once.
	var dups [][]byte
	for range 2000 {
		dups = append(dups, all[mrand.IntN(len(all))])
	}
	dups = append(dups, all[0], all[255], all[256], all[65535], all[65536])
	for i, r := range h.mustAdd(dups, workers) {
		if !r.Duplicate || r.Index != h.byEntry[string(dups[i])] {
			t.Fatalf("re-adding entry %d: got index %d, Duplicate %v", h.byEntry[string(dups[i])], r.Index, r.Duplicate)
		}
	}
	if _, size := h.log.Checkpoint(); size != 65537 {
		t.Fatalf("duplicates grew the log to %d", size)
	}

	// The log continues after a restart.
	h.reopen()
	h.verify()
	h.mustAdd(makeEntries("after-reopen", 300), workers)
	h.verify()
	h.reopen()
	h.verify()
}

// TestProofsOfNewEntriesFromCache checks that the proof of an entry in the
// tree its receipt names reads no tile from storage: the sequencer hands
// the tiles each batch grew to the tile cache when it publishes the batch.
func TestProofsOfNewEntriesFromCache(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	check := func(rs []log.Receipt) {
		t.Helper()
		for _, r := range rs {
			before := h.faults.tileReads.Load()
			p, err := h.log.InclusionProof(ctx, r.Index, r.Size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", r.Index, r.Size, err)
			}
			if n := h.faults.tileReads.Load() - before; n != 0 {
				t.Fatalf("the proof of entry %d in the tree of size %d read %d tiles from storage", r.Index, r.Size, n)
			}
			if err := proof.VerifyInclusion(hasher, r.Index, r.Size, r.LeafHash, p, h.roots[r.Size]); err != nil {
				t.Fatalf("entry %d at size %d: %v", r.Index, r.Size, err)
			}
		}
	}
	one := func(tag string, n int) {
		t.Helper()
		for _, e := range makeEntries(tag, n) {
			check(h.mustAdd([][]byte{e}, 1))
		}
	}
	// One entry at a time across the first tile boundary, with a restart
	// (the edge tiles are read back then, and cached with the first batch
	// after it).
	one("first", 1)
	h.reopen()
	one("cached", 299)
	// Then in a tree with three tile levels, across a tile boundary.
	h.mustAdd(makeEntries("bulk", 65700), workers)
	h.reopen()
	one("third-level", 400)
}

func TestDuplicates(t *testing.T) {
	h := newHarness(t, twoInflight)
	h.mustAdd(makeEntries("base", 10), 4)

	// Across batches: one after the other.
	x := []byte("x")
	r1 := h.mustAdd([][]byte{x}, 1)[0]
	r2 := h.mustAdd([][]byte{x}, 1)[0]
	if r1.Duplicate || !r2.Duplicate || r1.Index != r2.Index {
		t.Fatalf("adding x twice: receipts %+v and %+v", r1, r2)
	}

	// Within one batch: hold the commit of a first batch so that the next
	// one gathers every copy.
	release := h.faults.holdCommits()
	first := h.addGo([]byte("first"))
	h.waitCommit()
	plug := h.plug([]byte("plug"))
	y := []byte("y")
	var copies []<-chan addResult
	for i := 0; i < 5; i++ {
		copies = append(copies, h.addGo(y))
		h.waitPending(i + 1)
	}
	// A duplicate of a committed entry is answered at once.
	copies = append(copies, h.addGo(x))
	h.waitPending(5)
	release()
	for _, p := range []struct {
		e  string
		ch <-chan addResult
	}{{"first", first}, {"plug", plug}} {
		if r := <-p.ch; r.err != nil {
			t.Fatal(r.err)
		} else {
			h.accept([]byte(p.e), r.r)
		}
	}
	news := 0
	var idx uint64
	for i, ch := range copies[:5] {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		h.accept(y, r.r)
		if !r.r.Duplicate {
			news++
		}
		if i > 0 && r.r.Index != idx {
			t.Fatalf("copies of y in one batch got indexes %d and %d", idx, r.r.Index)
		}
		idx = r.r.Index
	}
	if news != 1 {
		t.Fatalf("%d copies of y in one batch were new, want 1", news)
	}
	if r := <-copies[5]; r.err != nil || !r.r.Duplicate || r.r.Index != r1.Index {
		t.Fatalf("x in a batch: %+v, %v", r.r, r.err)
	}
	if _, size := h.log.Checkpoint(); size != 14 {
		t.Fatalf("size %d, want 14", size)
	}
	h.verify()
}

func TestOverloaded(t *testing.T) {
	const maxPending = 4
	h := newHarness(t, func(c *log.Config) {
		twoInflight(c)
		c.MaxPending = maxPending
	})
	h.mustAdd(makeEntries("base", 20), 4)

	release := h.faults.holdCommits()
	blocked := h.addGo([]byte("blocked"))
	h.waitCommit()
	plug := h.plug([]byte("plug"))
	queued := makeEntries("queued", maxPending)
	var chs []<-chan addResult
	for _, e := range queued {
		chs = append(chs, h.addGo(e))
	}
	h.waitPending(maxPending)

	// The queue is full: Add must refuse at once, not wait.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	for _, e := range [][]byte{[]byte("refused"), queued[0]} {
		h.submitted[string(e)] = true
		if _, err := h.log.Add(ctx, e); !errors.Is(err, log.ErrOverloaded) {
			t.Fatalf("Add with %d pending: got error %v, want ErrOverloaded", maxPending, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Add took %v to refuse an entry", d)
	}
	release()

	if r := <-blocked; r.err != nil {
		t.Fatal(r.err)
	} else {
		h.accept([]byte("blocked"), r.r)
	}
	if r := <-plug; r.err != nil {
		t.Fatal(r.err)
	} else {
		h.accept([]byte("plug"), r.r)
	}
	for i, ch := range chs {
		r := <-ch
		if r.err != nil {
			t.Fatalf("queued entry %d: %v", i, r.err)
		}
		h.accept(queued[i], r.r)
	}
	if _, err := h.log.LookupLeaf(context.Background(), hasher.HashLeaf([]byte("refused"))); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("LookupLeaf(refused entry): got error %v, want ErrNotFound", err)
	}
	if _, size := h.log.Checkpoint(); size != 20+2+maxPending {
		t.Fatalf("size %d, want %d", size, 20+2+maxPending)
	}
	if r := h.mustAdd([][]byte{[]byte("refused")}, 1)[0]; r.Duplicate {
		t.Fatal("the refused entry is a duplicate")
	}
	h.verify()
}

// TestCommitFails injects a commit that fails before writing anything and
// one that writes and then reports an error, each in the middle of a
// stream of entries.
func TestCommitFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		// landed: the failed batch is in the log after all
		landed bool
	}{
		{"before-write", false},
		{"after-write", true},
		{"serial/before-write", false},
		{"serial/after-write", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *log.Config) {
				twoInflight(c)
				if strings.HasPrefix(tc.name, "serial/") {
					c.Storage = serialStore{c.Storage}
				}
			})
			base := makeEntries("base", 300)
			h.mustAdd(base, 64)
			_, before := h.log.Checkpoint()

			// Gather a batch behind a held commit and the batch built while
			// it is held, then make it fail.
			release := h.faults.holdCommits()
			first := h.addGo([]byte("first"))
			h.waitCommit()
			plug := h.plug([]byte("plug"))
			failed := makeEntries("failed", 20)
			var chs []<-chan addResult
			for i, e := range failed {
				chs = append(chs, h.addGo(e))
				h.waitPending(i + 1)
			}
			dupOld := h.addGo([]byte("first")) // a duplicate of an earlier batch
			dupNew := h.addGo(failed[3])       // a duplicate within the failing batch
			h.waitPending(len(failed) + 2)
			h.faults.set(func(f *faultStore) {
				// Fail the batch after the held one.
				f.failWhen = failOnce(before+2, tc.landed)
				f.hold = nil
			})
			release()

			for _, p := range []struct {
				e  string
				ch <-chan addResult
			}{{"first", first}, {"plug", plug}} {
				if r := <-p.ch; r.err != nil {
					t.Fatal(r.err)
				} else {
					h.accept([]byte(p.e), r.r)
				}
			}
			for i, ch := range chs {
				r := <-ch
				if !errors.Is(r.err, errInjected) {
					t.Fatalf("entry %d of the failed batch: got %+v, %v; want errInjected", i, r.r, r.err)
				}
			}
			// A duplicate within the failed batch fails too, unless the
			// log, reloading, found that the batch did land.
			switch r := <-dupNew; {
			case tc.landed && r.err == nil && r.r.Duplicate:
				h.accept(failed[3], r.r)
			case !errors.Is(r.err, errInjected):
				t.Fatalf("duplicate within the failed batch: got %+v, %v; want errInjected", r.r, r.err)
			}
			if r := <-dupOld; r.err != nil || !r.r.Duplicate || r.r.Index != h.byEntry["first"] {
				t.Fatalf("duplicate of an earlier batch's entry in the failed batch: got %+v, %v", r.r, r.err)
			} else {
				h.accept([]byte("first"), r.r)
			}
			if err := h.log.Ready(); err != nil {
				t.Fatalf("Ready after the log recovered: %v", err)
			}
			_, size := h.log.Checkpoint()
			want := before + 2
			if tc.landed {
				want += uint64(len(failed))
			}
			if size != want {
				t.Fatalf("size after the failed commit: %d, want %d", size, want)
			}
			h.verify()

			// Later entries go in; the failed ones can be sent again.
			later := makeEntries("later", 100)
			h.mustAdd(later, 16)
			for _, r := range h.mustAdd(failed, 16) {
				if r.Duplicate != tc.landed {
					t.Fatalf("re-sending an entry of the failed batch: Duplicate %v, want %v", r.Duplicate, tc.landed)
				}
			}
			h.verify()
			h.reopen()
			h.verify()
		})
	}
}

// TestCommitFailsInflight fails the oldest of three batches in flight:
// the two built on it fail too, and the log goes on from what storage
// holds, with or without them.
func TestCommitFailsInflight(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serial bool
		landed bool // the failed commit wrote
	}{
		{"before-write", false, false},
		{"after-write", false, true},
		{"serial/before-write", true, false},
		{"serial/after-write", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *log.Config) {
				c.MaxInflight, c.PipelineMin = 3, -1
				if tc.serial {
					c.Storage = serialStore{c.Storage}
				}
			})
			h.mustAdd(makeEntries("base", 40), 8)
			_, before := h.log.Checkpoint()

			release := h.faults.holdCommits()
			entries := makeEntries("inflight", 3)
			var chs []<-chan addResult
			for i, e := range entries {
				chs = append(chs, h.addGo(e))
				if i == 0 {
					h.waitCommit()
				}
				for deadline := time.Now().Add(20 * time.Second); h.gauge("candor_log_integrating_entries") != i+1; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%d entries integrating after 20s, want %d", h.gauge("candor_log_integrating_entries"), i+1)
					}
				}
			}
			h.faults.set(func(f *faultStore) {
				f.failWhen = failOnce(before, tc.landed)
				f.hold = nil
			})
			release()
			for i, ch := range chs {
				if r := <-ch; !errors.Is(r.err, errInjected) {
					t.Fatalf("entry %d in flight: got %+v, %v; want errInjected", i, r.r, r.err)
				}
			}
			if err := h.log.Ready(); err != nil {
				t.Fatalf("Ready after the log recovered: %v", err)
			}
			_, size := h.log.Checkpoint()
			// The later commits were written on top of the failed one if
			// it wrote; else their compare-and-swap refused them.
			want := before
			if tc.landed {
				want += 3
			}
			if size != want {
				t.Fatalf("size after the failed commits: %d, want %d", size, want)
			}
			h.verify()
			// Sent again, the entries that landed are duplicates.
			for i, r := range h.mustAdd(entries, 1) {
				if want := before+uint64(i) < size; r.Duplicate != want {
					t.Fatalf("re-sending entry %d: Duplicate %v, want %v", i, r.Duplicate, want)
				}
			}
			h.verify()
			h.reopen()
			h.verify()
		})
	}
}

// TestPipelineMin checks that while a commit is in flight a new batch is
// built only once Config.PipelineMin entries are queued, and then at once,
// without waiting for that commit.
func TestPipelineMin(t *testing.T) {
	const pipelineMin = 4
	h := newHarness(t, func(c *log.Config) { c.MaxInflight, c.PipelineMin = 3, pipelineMin })
	h.mustAdd(makeEntries("base", 10), 4)

	release := sync.OnceFunc(h.faults.holdCommits())
	defer release() // if the test fails while the commit is held
	chs := []<-chan addResult{h.addGo([]byte("held"))}
	h.waitCommit()
	entries := makeEntries("queued", pipelineMin)
	for _, e := range entries[:pipelineMin-1] {
		chs = append(chs, h.addGo(e))
	}
	h.waitPending(pipelineMin - 1)
	if n := h.gauge("candor_log_integrating_entries"); n != 1 {
		t.Fatalf("%d entries integrating with %d queued, want 1", n, pipelineMin-1)
	}
	chs = append(chs, h.addGo(entries[pipelineMin-1]))
	for deadline := time.Now().Add(20 * time.Second); h.gauge("candor_log_integrating_entries") != 1+pipelineMin; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries integrating after 20s with %d queued, want %d", h.gauge("candor_log_integrating_entries"), pipelineMin, 1+pipelineMin)
		}
	}
	if n := h.pending(); n != 0 {
		t.Fatalf("%d entries pending, want 0", n)
	}
	release()
	for i, ch := range chs {
		if r := <-ch; r.err != nil {
			t.Fatalf("entry %d: %v", i, r.err)
		}
	}
	h.verify()
}

// TestUnavailable makes storage fail so that the log cannot even reload:
// it must refuse entries and report it in Ready, then recover.
func TestUnavailable(t *testing.T) {
	h := newHarness(t, nil)
	h.mustAdd(makeEntries("base", 10), 4)
	if err := h.log.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	h.faults.set(func(f *faultStore) { f.failBefore, f.failReads = 1, true })
	res := h.add([][]byte{[]byte("a")}, 1)
	if !errors.Is(res[0].err, errInjected) {
		t.Fatalf("Add with a failing commit: got error %v, want errInjected", res[0].err)
	}
	if err := h.log.Ready(); !errors.Is(err, log.ErrUnavailable) {
		t.Fatalf("Ready with broken storage: got %v, want ErrUnavailable", err)
	}
	res = h.add([][]byte{[]byte("b")}, 1)
	if !errors.Is(res[0].err, log.ErrUnavailable) {
		t.Fatalf("Add with broken storage: got error %v, want ErrUnavailable", res[0].err)
	}
	// Published reads still work from what is durable.
	if _, size := h.log.Checkpoint(); size != 10 {
		t.Fatalf("size %d, want 10", size)
	}

	// Once storage works again, the log recovers by itself, without
	// waiting for an entry, so that a readiness probe lets traffic back.
	h.faults.set(func(f *faultStore) { f.failReads = false })
	deadline := time.Now().Add(20 * time.Second)
	for h.log.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Ready still reports %v 20s after storage recovered", h.log.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.mustAdd([][]byte{[]byte("a"), []byte("b"), []byte("c")}, 3)
	h.verify()

	h.log.Close()
	if err := h.log.Ready(); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Ready after Close: got %v, want ErrClosed", err)
	}
	if _, err := h.log.Add(context.Background(), []byte("d")); !errors.Is(err, log.ErrClosed) {
		t.Fatalf("Add after Close: got %v, want ErrClosed", err)
	}
}

// TestCloseWithPending closes the log while entries wait: they fail with
// ErrClosed or succeed, and those that succeeded are in the log after a
// restart.
func TestCloseWithPending(t *testing.T) {
	h := newHarness(t, twoInflight)
	release := h.faults.holdCommits()
	first := h.addGo([]byte("first"))
	h.waitCommit()
	plug := h.plug([]byte("plug"))
	queued := makeEntries("queued", 10)
	var chs []<-chan addResult
	for _, e := range queued {
		chs = append(chs, h.addGo(e))
	}
	h.waitPending(len(queued))
	closed := make(chan struct{})
	go func() {
		h.log.Close()
		close(closed)
	}()
	time.Sleep(10 * time.Millisecond)
	release()
	<-closed
	if r := <-first; r.err != nil {
		t.Fatalf("the entry being committed when the log closed: %v", r.err)
	} else {
		h.accept([]byte("first"), r.r)
	}
	if r := <-plug; r.err != nil {
		t.Fatalf("the entry built into a batch when the log closed: %v", r.err)
	} else {
		h.accept([]byte("plug"), r.r)
	}
	for i, ch := range chs {
		r := <-ch
		switch {
		case r.err == nil:
			h.accept(queued[i], r.r)
		case !errors.Is(r.err, log.ErrClosed):
			t.Fatalf("queued entry %d: got error %v, want ErrClosed", i, r.err)
		}
	}
	h.reopen()
	h.verify()
}

func TestNewChecksConfig(t *testing.T) {
	signer, verifier := testKeys()
	_, otherVerifier := otherKeys()
	s, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, cfg := range []log.Config{
		{Signer: signer, Verifier: verifier},
		{Storage: s, Verifier: verifier},
		{Storage: s, Signer: signer},
		{Storage: s, Signer: signer, Verifier: otherVerifier},
	} {
		if l, err := log.New(ctx, cfg); err == nil {
			l.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestWrongKey opens a log with another key than the one that signed its
// checkpoint: New must refuse it.
func TestWrongKey(t *testing.T) {
	h := newHarness(t, nil)
	h.mustAdd(makeEntries("e", 3), 3)
	h.close()
	s, err := pebble.Open(h.dir, pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	signer, verifier := otherKeys()
	if l, err := log.New(context.Background(), log.Config{Storage: s, Signer: signer, Verifier: verifier, Logger: quiet}); err == nil {
		l.Close()
		t.Fatal("New with another key succeeded")
	}
}

// otherKeys is a second key with the same name as testKeys.
var otherKeys = sync.OnceValues(func() (note.Signer, note.Verifier) {
	s, v, _ := apitest.NewNoteKey(testOrigin, rand.Reader)
	return s, v
})
