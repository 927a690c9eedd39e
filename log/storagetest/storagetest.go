// Package storagetest is the conformance suite for implementations of
// log.Storage. A backend runs it from its own tests:
//
//	func TestStorage(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) log.Storage { return openMine(t) })
//	}
//
// Run checks the rules of the log.Storage contract on a fresh, empty
// storage per subtest, and those of log.SearchStorage and
// log.SearchIndexer if the storage implements them; RunDurable checks
// that commits survive closing and reopening the storage.
//
// The values the suite stores are not a real Merkle tree: a storage must
// keep what it is given, byte for byte, and never look inside.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	hashSize   = 32
)

// Run runs the conformance suite. open must return a new, empty storage
// for each call, cleaned up when t ends.
func Run(t *testing.T, open func(t *testing.T) log.Storage) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, open(t)) })
	t.Run("CommitAndRead", func(t *testing.T) { testCommitAndRead(t, open(t)) })
	t.Run("Conflict", func(t *testing.T) { testConflict(t, open(t)) })
	t.Run("Shrink", func(t *testing.T) { testShrink(t, open(t)) })
	t.Run("PartialTilesGrow", func(t *testing.T) { testPartialTilesGrow(t, open(t)) })
	t.Run("PartialTilesRewritten", func(t *testing.T) { testPartialTilesRewritten(t, open(t)) })
	t.Run("Copies", func(t *testing.T) { testCopies(t, open(t)) })
	t.Run("ConcurrentReads", func(t *testing.T) { testConcurrentReads(t, open(t)) })
	t.Run("Pipelined", func(t *testing.T) {
		s, ok := open(t).(log.PipelinedStorage)
		if !ok {
			t.Skip("not a log.PipelinedStorage")
		}
		testPipelined(t, s)
	})
	t.Run("SearchCopies", func(t *testing.T) {
		s, ok := open(t).(log.SearchStorage)
		if !ok {
			t.Skip("not a log.SearchStorage")
		}
		testSearchCopies(t, s)
	})
	t.Run("SearchRebuild", func(t *testing.T) {
		s, ok := open(t).(log.SearchIndexer)
		if !ok {
			t.Skip("not a log.SearchIndexer")
		}
		testSearchRebuild(t, s)
	})
}

// testPipelined starts commits back to back, each on the one before, and
// waits for them afterwards, concurrently; a commit started on a stale
// size is refused at once.
func testPipelined(t *testing.T, s log.PipelinedStorage) {
	ctx := context.Background()
	var waits []func() error
	old := uint64(0)
	for _, n := range []uint64{0, 1, 255, 256, 257, 700, 1000} {
		wait, err := s.StartCommit(ctx, commitFor(old, n))
		if err != nil {
			t.Fatalf("StartCommit(%d -> %d): %v", old, n, err)
		}
		waits = append(waits, wait)
		if old != n {
			if _, err := s.StartCommit(ctx, bogusCommit(old, 1200)); !errors.Is(err, log.ErrConflict) {
				t.Fatalf("StartCommit with OldSize %d after a commit to %d was started: got %v, want ErrConflict", old, n, err)
			}
		}
		old = n
	}
	errs := make([]error, len(waits))
	var wg sync.WaitGroup
	for i := len(waits) - 1; i >= 0; i-- {
		wg.Go(func() { errs[i] = waits[i]() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("wait of commit %d: %v", i, err)
		}
	}
	checkState(t, s, 1000)
	checkBogusAbsent(t, s, 1200)
	grow(t, s, 1000, 1100)
	checkState(t, s, 1100)
}

// RunDurable checks that committed data survives closing and reopening.
// open opens (creating if needed) the storage kept in dir and returns it
// with the function that closes it. The suite closes every storage it
// opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) (log.Storage, func() error)) {
	t.Run("SearchReopen", func(t *testing.T) { runDurableSearch(t, open) })
	t.Run("Reopen", func(t *testing.T) {
		ctx := context.Background()
		dir := t.TempDir()
		var (
			s       log.Storage
			closeFn func() error
		)
		reopen := func() {
			t.Helper()
			if closeFn != nil {
				if err := closeFn(); err != nil {
					t.Fatalf("closing the storage: %v", err)
				}
				closeFn = nil
			}
			s, closeFn = open(t, dir)
		}
		t.Cleanup(func() {
			if closeFn != nil {
				closeFn()
			}
		})

		reopen()
		checkEmpty(t, s)
		reopen()
		checkEmpty(t, s)

		grow(t, s, 0, 0)
		reopen()
		checkState(t, s, 0)

		old := uint64(0)
		for _, n := range []uint64{1, 255, 256, 257, 700} {
			grow(t, s, old, n)
			old = n
			reopen()
			checkState(t, s, n)
		}

		// The stored size is what a commit is checked against after a
		// reopen too.
		err := s.Commit(ctx, bogusCommit(300, 900))
		if !errors.Is(err, log.ErrConflict) {
			t.Fatalf("Commit with OldSize 300 over a stored size of 700: got %v, want ErrConflict", err)
		}
		reopen()
		checkState(t, s, 700)
		checkBogusAbsent(t, s, 900)
		grow(t, s, 700, 1000)
		reopen()
		checkState(t, s, 1000)

		// Pipelined commits that were all waited for are durable too.
		if ps, ok := s.(log.PipelinedStorage); ok {
			var waits []func() error
			for old, n := uint64(1000), uint64(1001); n <= 1300; old, n = n, n+37 {
				wait, err := ps.StartCommit(ctx, commitFor(old, n))
				if err != nil {
					t.Fatalf("StartCommit(%d -> %d): %v", old, n, err)
				}
				waits = append(waits, wait)
			}
			for i, wait := range waits {
				if err := wait(); err != nil {
					t.Fatalf("wait of commit %d: %v", i, err)
				}
			}
			reopen()
			checkState(t, s, 1297)
		}
	})
}

// runDurableSearch checks that the search index, and whether it is
// complete, survive a reopen.
func runDurableSearch(t *testing.T, open func(t *testing.T, dir string) (log.Storage, func() error)) {
	ctx := context.Background()
	dir := t.TempDir()
	s, closeFn := open(t, dir)
	reopen := func() {
		t.Helper()
		if err := closeFn(); err != nil {
			t.Fatalf("closing the storage: %v", err)
		}
		s, closeFn = open(t, dir)
	}
	t.Cleanup(func() { closeFn() })
	if _, ok := s.(log.SearchIndexer); !ok {
		t.Skip("not a log.SearchIndexer")
	}
	grow(t, s, 0, 500)
	reopen()
	checkState(t, s, 500)
	if err := s.(log.SearchIndexer).ResetSearchIndex(ctx); err != nil {
		t.Fatalf("ResetSearchIndex: %v", err)
	}
	reopen()
	checkSearchUnavailable(t, s.(log.SearchStorage))
	si := s.(log.SearchIndexer)
	if err := si.IndexEntries(ctx, commitFor(0, 500).Leaves); err != nil {
		t.Fatalf("IndexEntries: %v", err)
	}
	if err := si.FinishSearchIndex(ctx); err != nil {
		t.Fatalf("FinishSearchIndex: %v", err)
	}
	reopen()
	checkState(t, s, 500)
}

func testEmpty(t *testing.T, s log.Storage) {
	checkEmpty(t, s)
	// Reads of an empty storage don't create anything.
	checkEmpty(t, s)
}

func checkEmpty(t *testing.T, s log.Storage) {
	t.Helper()
	ctx := context.Background()
	cp, size, err := s.ReadCheckpoint(ctx)
	if cp != nil || size != 0 || err != nil {
		t.Errorf("ReadCheckpoint of an empty storage = %q, %d, %v; want nil, 0, nil", cp, size, err)
	}
	for _, tl := range []struct {
		level uint8
		index uint64
	}{{0, 0}, {0, 1}, {1, 0}, {2, 7}, {255, 1 << 40}} {
		if _, err := s.ReadTile(ctx, tl.level, tl.index); !errors.Is(err, log.ErrNotFound) {
			t.Errorf("ReadTile(%d, %d) of an empty storage: got error %v, want ErrNotFound", tl.level, tl.index, err)
		}
	}
	for _, i := range []uint64{0, 1, 1 << 40} {
		if _, err := s.ReadEntryBundle(ctx, i); !errors.Is(err, log.ErrNotFound) {
			t.Errorf("ReadEntryBundle(%d) of an empty storage: got error %v, want ErrNotFound", i, err)
		}
	}
	if _, err := s.LookupLeaf(ctx, leafHash(0)); !errors.Is(err, log.ErrNotFound) {
		t.Errorf("LookupLeaf of an empty storage: got error %v, want ErrNotFound", err)
	}
	if _, err := s.LookupLeaf(ctx, make([]byte, hashSize)); !errors.Is(err, log.ErrNotFound) {
		t.Errorf("LookupLeaf(zero hash) of an empty storage: got error %v, want ErrNotFound", err)
	}
}

func testCommitAndRead(t *testing.T, s log.Storage) {
	// The log's first commit: the checkpoint of the empty tree, nothing else.
	grow(t, s, 0, 0)
	checkState(t, s, 0)
	old := uint64(0)
	for _, n := range []uint64{1, 2, 255, 256, 257, 511, 512, 513, 1000, 65536 + 300} {
		grow(t, s, old, n)
		checkState(t, s, n)
		old = n
	}
	// A commit that adds no entries but re-signs the checkpoint.
	if err := s.Commit(context.Background(), &log.Commit{OldSize: old, NewSize: old, Checkpoint: checkpointFor(old)}); err != nil {
		t.Fatalf("Commit(%d -> %d): %v", old, old, err)
	}
	checkState(t, s, old)
}

func testConflict(t *testing.T, s log.Storage) {
	ctx := context.Background()
	// Nothing committed yet: only OldSize 0 is right.
	if err := s.Commit(ctx, bogusCommit(1, 600)); !errors.Is(err, log.ErrConflict) {
		t.Fatalf("Commit with OldSize 1 on an empty storage: got %v, want ErrConflict", err)
	}
	checkEmpty(t, s)
	checkBogusAbsent(t, s, 600)

	grow(t, s, 0, 300)
	for _, oldSize := range []uint64{0, 1, 299, 301, 600} {
		err := s.Commit(ctx, bogusCommit(oldSize, 600))
		if !errors.Is(err, log.ErrConflict) {
			t.Fatalf("Commit with OldSize %d over a stored size of 300: got %v, want an error wrapping ErrConflict", oldSize, err)
		}
		checkState(t, s, 300)
		checkBogusAbsent(t, s, 600)
	}
	// The right OldSize still works after conflicts.
	grow(t, s, 300, 600)
	checkState(t, s, 600)
}

func testShrink(t *testing.T, s log.Storage) {
	ctx := context.Background()
	grow(t, s, 0, 300)
	c := bogusCommit(300, 200)
	if err := s.Commit(ctx, c); err == nil {
		t.Fatalf("Commit(300 -> 200) succeeded, want an error")
	}
	checkState(t, s, 300)
	checkBogusAbsent(t, s, 600)
}

// testPartialTilesGrow grows a log one entry at a time across a tile
// boundary, then in bigger steps: every partial tile and bundle must be
// replaced by the longer one.
func testPartialTilesGrow(t *testing.T, s log.Storage) {
	grow(t, s, 0, 250)
	for n := uint64(251); n <= 260; n++ {
		grow(t, s, n-1, n)
		checkState(t, s, n)
	}
	grow(t, s, 260, 512)
	checkState(t, s, 512)
	grow(t, s, 512, 513)
	checkState(t, s, 513)
}

func testCopies(t *testing.T, s log.Storage) {
	ctx := context.Background()
	c := commitFor(0, 300)
	if err := s.Commit(ctx, c); err != nil {
		t.Fatalf("Commit(0 -> 300): %v", err)
	}
	// The storage must not keep the caller's buffers.
	scribble(c.Checkpoint)
	for _, tl := range c.Tiles {
		scribble(tl.Hashes)
	}
	for _, b := range c.Bundles {
		scribble(b.Bundle)
	}
	for _, l := range c.Leaves {
		scribble(l.LeafHash)
	}
	checkState(t, s, 300)

	// Nor hand out its own: a caller that modifies what it read must not
	// change what the next read returns.
	cp, _, err := s.ReadCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scribble(cp)
	tile, err := s.ReadTile(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	scribble(tile)
	bundle, err := s.ReadEntryBundle(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	scribble(bundle)
	checkState(t, s, 300)
}

func scribble(b []byte) {
	for i := range b {
		b[i] ^= 0xa5
	}
}

// testConcurrentReads reads while commits run: a reader that sees a
// checkpoint must then find every tile, bundle and leaf that it covers.
func testConcurrentReads(t *testing.T, s log.Storage) {
	ctx := context.Background()
	grow(t, s, 0, 0)
	const final = 3000
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reads := 0
			for !done.Load() || reads < 10 {
				reads++
				if err := checkCovered(ctx, s, uint64(reads)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	old := uint64(0)
	for step := uint64(1); old < final; step = step*2 + 1 {
		n := min(old+step, final)
		if err := s.Commit(ctx, commitFor(old, n)); err != nil {
			t.Errorf("Commit(%d -> %d): %v", old, n, err)
			break
		}
		old = n
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkState(t, s, old)
}

// checkCovered reads the checkpoint, then checks that the values it
// covers are there. seed picks which ones.
func checkCovered(ctx context.Context, s log.Storage, seed uint64) error {
	cp, n, err := s.ReadCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("ReadCheckpoint: %w", err)
	}
	if !bytes.Equal(cp, checkpointFor(n)) {
		return fmt.Errorf("ReadCheckpoint gave size %d with checkpoint %q, want %q", n, cp, checkpointFor(n))
	}
	if n == 0 {
		return nil
	}
	i := seed * 7919 % n
	if err := checkTile(ctx, s, 0, i/tileWidth, n); err != nil {
		return err
	}
	if n >= tileWidth {
		if err := checkTile(ctx, s, 1, 0, n); err != nil {
			return err
		}
	}
	// The right edge is what changes under a reader.
	if err := checkTile(ctx, s, 0, (n-1)/tileWidth, n); err != nil {
		return err
	}
	if err := checkBundle(ctx, s, (n-1)/tileWidth, n); err != nil {
		return err
	}
	if err := checkBundle(ctx, s, i/tileWidth, n); err != nil {
		return err
	}
	return checkLeaf(ctx, s, n-1)
}

// The model: the log of size n holds entries entry(0..n-1); level-l tiles
// hold hashAt(l, 0..(n>>(8l))-1), level 0 the leaf hashes; its checkpoint
// is checkpointFor(n).

func entry(i uint64) []byte {
	// Lengths vary from 0 to 40 bytes, so bundle offsets are irregular.
	e := fmt.Appendf(nil, "entry %d ", i)
	for len(e) < 41 {
		e = append(e, byte(i))
	}
	return e[:i%41]
}

func leafHash(i uint64) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
	return h[:]
}

func hashAt(level uint8, i uint64) []byte {
	if level == 0 {
		return leafHash(i)
	}
	var b [9]byte
	b[0] = level
	binary.BigEndian.PutUint64(b[1:], i)
	h := sha256.Sum256(b[:])
	return h[:]
}

func checkpointFor(n uint64) []byte {
	return fmt.Appendf(nil, "storagetest\n%d\nroot %x\n\n— storagetest signature\n", n, hashAt(99, n))
}

// hashCount returns the number of hashes at tile level l in a tree of n.
func hashCount(level uint8, n uint64) uint64 {
	if tileHeight*uint(level) >= 64 {
		return 0
	}
	return n >> (tileHeight * uint(level))
}

func tileFor(level uint8, index, n uint64) []byte {
	count := hashCount(level, n)
	var b []byte
	for i := index * tileWidth; i < min(count, (index+1)*tileWidth); i++ {
		b = append(b, hashAt(level, i)...)
	}
	return b
}

func bundleFor(index, n uint64) []byte {
	var b []byte
	for i := index * tileWidth; i < min(n, (index+1)*tileWidth); i++ {
		e := entry(i)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

// commitFor returns the commit that grows the model from size old to n,
// with every tile and bundle that changes.
func commitFor(old, n uint64) *log.Commit {
	c := &log.Commit{OldSize: old, NewSize: n, Checkpoint: checkpointFor(n)}
	for level := uint8(0); hashCount(level, n) > 0; level++ {
		oldCount, count := hashCount(level, old), hashCount(level, n)
		if count == oldCount {
			continue
		}
		for ti := oldCount / tileWidth; ti*tileWidth < count; ti++ {
			c.Tiles = append(c.Tiles, log.TileData{Level: level, Index: ti, Hashes: tileFor(level, ti, n), Start: len(tileFor(level, ti, old))})
		}
	}
	if n > old {
		for bi := old / tileWidth; bi*tileWidth < n; bi++ {
			c.Bundles = append(c.Bundles, log.BundleData{Index: bi, Bundle: bundleFor(bi, n), Start: len(bundleFor(bi, old)), Full: n >= (bi+1)*tileWidth})
		}
	}
	for i := old; i < n; i++ {
		c.Leaves = append(c.Leaves, log.LeafIndex{LeafHash: leafHash(i), Index: i, Terms: termsOf(i)})
	}
	return c
}

// bogusCommit returns a commit from old to n whose every value differs from
// the model's: it must never be visible after a refused commit.
func bogusCommit(old, n uint64) *log.Commit {
	c := &log.Commit{OldSize: old, NewSize: n, Checkpoint: []byte("bogus checkpoint\n")}
	bogus := func(l int) []byte { return bytes.Repeat([]byte{0xee}, l) }
	for level := uint8(0); level < 3; level++ {
		count := max(hashCount(level, n), 1)
		for ti := uint64(0); ti*tileWidth < count; ti++ {
			c.Tiles = append(c.Tiles, log.TileData{Level: level, Index: ti, Hashes: bogus(hashSize * int(min(tileWidth, count-ti*tileWidth)))})
		}
	}
	for bi := uint64(0); bi*tileWidth < n; bi++ {
		c.Bundles = append(c.Bundles, log.BundleData{Index: bi, Bundle: bogus(100)})
	}
	for i := uint64(0); i < n; i++ {
		// Existing leaves moved, and new ones.
		c.Leaves = append(c.Leaves, log.LeafIndex{LeafHash: leafHash(i), Index: i + 1, Terms: termsOf(i)})
		c.Leaves = append(c.Leaves, log.LeafIndex{LeafHash: bogus(hashSize - 1 + int(i%2)), Index: i, Terms: []api.SearchTerm{bogusTerm, keyTerm(0)}})
	}
	return c
}

// checkBogusAbsent checks that no tile, bundle or leaf that bogusCommit(_, n)
// writes beyond the stored tree exists.
func checkBogusAbsent(t *testing.T, s log.Storage, n uint64) {
	t.Helper()
	ctx := context.Background()
	_, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		t.Fatalf("ReadCheckpoint: %v", err)
	}
	for level := uint8(0); level < 3; level++ {
		count := max(hashCount(level, n), 1)
		for ti := hashCount(level, size) / tileWidth; ti*tileWidth < count; ti++ {
			if ti*tileWidth < hashCount(level, size) {
				continue // a partial tile of the stored tree: checkState's job
			}
			if _, err := s.ReadTile(ctx, level, ti); !errors.Is(err, log.ErrNotFound) {
				t.Errorf("ReadTile(%d, %d) after a refused commit: got error %v, want ErrNotFound", level, ti, err)
			}
		}
	}
	for bi := (size + tileWidth - 1) / tileWidth; bi*tileWidth < n; bi++ {
		if _, err := s.ReadEntryBundle(ctx, bi); !errors.Is(err, log.ErrNotFound) {
			t.Errorf("ReadEntryBundle(%d) after a refused commit: got error %v, want ErrNotFound", bi, err)
		}
	}
	for _, l := range []int{hashSize - 1, hashSize} {
		if _, err := s.LookupLeaf(ctx, bytes.Repeat([]byte{0xee}, l)); !errors.Is(err, log.ErrNotFound) {
			t.Errorf("LookupLeaf of a leaf of a refused commit: got error %v, want ErrNotFound", err)
		}
	}
	for i := size; i < min(n, size+10); i++ {
		if _, err := s.LookupLeaf(ctx, leafHash(i)); !errors.Is(err, log.ErrNotFound) {
			t.Errorf("LookupLeaf(leaf %d) of a refused commit: got error %v, want ErrNotFound", i, err)
		}
	}
}

// testPartialTilesRewritten grows partial tiles and bundles by what they
// gained, then rewrites them whole (Start 0), which a storage that keeps
// the growth apart must not mix up with what it had.
func testPartialTilesRewritten(t *testing.T, s log.Storage) {
	for n := uint64(1); n <= 40; n++ {
		grow(t, s, n-1, n)
	}
	c := commitFor(40, 45)
	for i := range c.Tiles {
		c.Tiles[i].Start = 0
	}
	for i := range c.Bundles {
		c.Bundles[i].Start = 0
	}
	if err := s.Commit(context.Background(), c); err != nil {
		t.Fatalf("Commit(40 -> 45) rewriting whole tiles: %v", err)
	}
	checkState(t, s, 45)
	for n := uint64(46); n <= 50; n++ {
		grow(t, s, n-1, n)
	}
	checkState(t, s, 50)
	grow(t, s, 50, 256)
	checkState(t, s, 256)
}

// grow commits the model's growth from old to n, which must succeed.
func grow(t *testing.T, s log.Storage, old, n uint64) {
	t.Helper()
	if err := s.Commit(context.Background(), commitFor(old, n)); err != nil {
		t.Fatalf("Commit(%d -> %d): %v", old, n, err)
	}
}

// checkState checks that s holds the model's log of size n: its checkpoint,
// every tile and bundle, and (a sample of) the leaves.
func checkState(t *testing.T, s log.Storage, n uint64) {
	t.Helper()
	ctx := context.Background()
	cp, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		t.Fatalf("ReadCheckpoint: %v", err)
	}
	if size != n || !bytes.Equal(cp, checkpointFor(n)) {
		t.Fatalf("ReadCheckpoint = %q, %d; want %q, %d", cp, size, checkpointFor(n), n)
	}
	for level := uint8(0); hashCount(level, n) > 0; level++ {
		for ti := uint64(0); ti*tileWidth < hashCount(level, n); ti++ {
			if err := checkTile(ctx, s, level, ti, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	for bi := uint64(0); bi*tileWidth < n; bi++ {
		if err := checkBundle(ctx, s, bi, n); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(0); i < n; i++ {
		if n > 1024 && i > 300 && i < n-300 && i%97 != 0 {
			continue
		}
		if err := checkLeaf(ctx, s, i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.LookupLeaf(ctx, leafHash(n)); !errors.Is(err, log.ErrNotFound) {
		t.Fatalf("LookupLeaf(leaf %d) in a log of size %d: got error %v, want ErrNotFound", n, n, err)
	}
	checkSearch(t, s, n, n)
}

// checkTile checks that the stored tile holds at least what the tree of
// size n needs, as the contract allows a storage to hold more.
func checkTile(ctx context.Context, s log.Storage, level uint8, index, n uint64) error {
	want := tileFor(level, index, n)
	got, err := s.ReadTile(ctx, level, index)
	if err != nil {
		return fmt.Errorf("ReadTile(%d, %d) at size %d: %w", level, index, n, err)
	}
	if len(got)%hashSize != 0 || len(got) == 0 || len(got) > tileWidth*hashSize {
		return fmt.Errorf("ReadTile(%d, %d) at size %d: got %d bytes, not 1 to 256 hashes", level, index, n, len(got))
	}
	if len(got) < len(want) {
		return fmt.Errorf("ReadTile(%d, %d) at size %d: got %d hashes, want at least %d", level, index, n, len(got)/hashSize, len(want)/hashSize)
	}
	if !bytes.Equal(got[:len(want)], want) {
		return fmt.Errorf("ReadTile(%d, %d) at size %d: the first %d hashes are not the committed ones", level, index, n, len(want)/hashSize)
	}
	return nil
}

func checkBundle(ctx context.Context, s log.Storage, index, n uint64) error {
	want := bundleFor(index, n)
	got, err := s.ReadEntryBundle(ctx, index)
	if err != nil {
		return fmt.Errorf("ReadEntryBundle(%d) at size %d: %w", index, n, err)
	}
	if len(got) < len(want) {
		return fmt.Errorf("ReadEntryBundle(%d) at size %d: got %d bytes, want at least %d", index, n, len(got), len(want))
	}
	if !bytes.Equal(got[:len(want)], want) {
		return fmt.Errorf("ReadEntryBundle(%d) at size %d: the first %d bytes are not the committed ones", index, n, len(want))
	}
	if a, ok := s.(log.EntryBundleAppender); ok {
		// The committed bytes after what the buffer held (a partial
		// bundle may have grown since), and the buffer's room used.
		dst := append(make([]byte, 0, api.TileWidth*1024), "prefix"...)
		appended, err := a.AppendEntryBundle(ctx, dst, index)
		if err != nil {
			return fmt.Errorf("AppendEntryBundle(%d) at size %d: %w", index, n, err)
		}
		if len(appended) < 6+len(want) || string(appended[:6]) != "prefix" || !bytes.Equal(appended[6:6+len(want)], want) {
			return fmt.Errorf("AppendEntryBundle(%d) at size %d: not \"prefix\" and the committed bytes", index, n)
		}
		if len(appended) <= cap(dst) && &appended[0] != &dst[0] {
			return fmt.Errorf("AppendEntryBundle(%d) at size %d: did not use the buffer's room", index, n)
		}
	}
	return nil
}

func checkLeaf(ctx context.Context, s log.Storage, i uint64) error {
	got, err := s.LookupLeaf(ctx, leafHash(i))
	if err != nil {
		return fmt.Errorf("LookupLeaf(leaf %d): %w", i, err)
	}
	if got != i {
		return fmt.Errorf("LookupLeaf(leaf %d) = %d", i, got)
	}
	return nil
}
