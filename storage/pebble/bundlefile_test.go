package pebble_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/bundlezstd"
	"github.com/candorlog/candor/internal/tmpfs"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// modelEntry is entry i of the bundle model: of 1 to 1,500 bytes.
func modelEntry(i uint64) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "entry %d;", i), 1+int(i*7919%1500)/10)
}

// modelBundle is bundle index of a tree of size entries.
func modelBundle(index, size uint64) []byte {
	var b []byte
	for i := index * api.TileWidth; i < min(size, (index+1)*api.TileWidth); i++ {
		e := modelEntry(i)
		b = append(b, byte(len(e)>>8), byte(len(e)))
		b = append(b, e...)
	}
	return b
}

// bundleCommit grows the model from old to size entries: its bundles only.
func bundleCommit(old, size uint64) *log.Commit {
	c := &log.Commit{OldSize: old, NewSize: size, Checkpoint: fmt.Appendf(nil, "size %d", size)}
	for bi := old / api.TileWidth; bi*api.TileWidth < size; bi++ {
		c.Bundles = append(c.Bundles, log.BundleData{
			Index: bi, Bundle: modelBundle(bi, size), Start: len(modelBundle(bi, old)), Full: size >= (bi+1)*api.TileWidth,
		})
	}
	return c
}

func openBundles(t *testing.T, dir string, o pebble.Options) *pebble.Storage {
	t.Helper()
	o.Logger, o.CacheBytes, o.LeafFilterBytes = quiet, 8<<20, -1
	s, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func growBundles(t *testing.T, s *pebble.Storage, old, size uint64, steps int) {
	t.Helper()
	growWith(t, s, old, size, steps, bundleCommit)
}

func waitBundleFiles(t *testing.T, s *pebble.Storage, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.BundleFilesHold() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the bundle files hold %d bundles after 30 s, want %d", s.BundleFilesHold(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkBundles reads every bundle of the tree of size entries, with both
// reads, and checks it against the model.
func checkBundles(t *testing.T, s *pebble.Storage, size uint64) {
	t.Helper()
	ctx := context.Background()
	prefix := []byte("prefix")
	for bi := uint64(0); bi*api.TileWidth < size; bi++ {
		want := modelBundle(bi, size)
		got, err := s.ReadEntryBundle(ctx, bi)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ReadEntryBundle(%d) at size %d: %d bytes, %v; want the model's %d bytes", bi, size, len(got), err, len(want))
		}
		got, err = s.AppendEntryBundle(ctx, bytes.Clone(prefix), bi)
		if err != nil || !bytes.Equal(got, append(bytes.Clone(prefix), want...)) {
			t.Fatalf("AppendEntryBundle(%d) at size %d: %d bytes, %v; want the prefix and the model's %d bytes", bi, size, len(got), err, len(want))
		}
	}
}

// pebbleBundles returns the indexes of the bundles pebble holds.
func pebbleBundles(t *testing.T, s *pebble.Storage) []uint64 {
	t.Helper()
	it, err := s.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []uint64
	for ok := it.SeekGE([]byte{'e'}); ok && it.Key()[0] == 'e'; ok = it.Next() {
		bi := uint64(0)
		for _, b := range it.Key()[1:9] {
			bi = bi<<8 | uint64(b)
		}
		if len(out) == 0 || out[len(out)-1] != bi {
			out = append(out, bi)
		}
	}
	return out
}

func TestBundleFiles(t *testing.T) {
	dir := t.TempDir()
	s := openBundles(t, dir, pebble.Options{BundleFiles: true})
	// Readers of random bundles while the bundles are committed and
	// moved: each reads a bundle of the size committed before it began.
	var (
		size    atomic.Uint64
		stop    = make(chan struct{})
		readers sync.WaitGroup
		failed  atomic.Value
	)
	for range 4 {
		readers.Go(func() {
			var buf []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := size.Load()
				if n < api.TileWidth {
					continue
				}
				bi := rand.Uint64N(n / api.TileWidth)
				var err error
				buf, err = s.AppendEntryBundle(context.Background(), buf[:0], bi)
				if want := modelBundle(bi, n); err != nil || !bytes.Equal(buf, want) {
					failed.Store(fmt.Sprintf("bundle %d at size %d: %d bytes, %v; want %d", bi, n, len(buf), err, len(want)))
				}
			}
		})
	}
	old := uint64(0)
	for _, n := range []uint64{100, 256, 300, 2000, 2100, 10*api.TileWidth + 100} {
		growBundles(t, s, old, n, 1)
		old = n
		size.Store(n)
		time.Sleep(10 * time.Millisecond)
	}
	waitBundleFiles(t, s, 10)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	readers.Wait()
	if f := failed.Load(); f != nil {
		t.Fatalf("a read during the moves: %v", f)
	}
	checkBundles(t, s, old)
	if got := pebbleBundles(t, s); len(got) != 1 || got[0] != 10 {
		t.Errorf("pebble holds bundles %v after the moves, want only the partial one (10)", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Without BundleFiles the store reads the files and moves no more.
	s = openBundles(t, dir, pebble.Options{})
	checkBundles(t, s, old)
	growBundles(t, s, old, 13*api.TileWidth, 2)
	old = 13 * api.TileWidth
	time.Sleep(50 * time.Millisecond)
	if n := s.BundleFilesHold(); n != 10 {
		t.Errorf("a store without BundleFiles moved bundles: the files hold %d, want 10", n)
	}
	checkBundles(t, s, old)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBundles(t, dir, pebble.Options{BundleFiles: true})
	defer s.Close()
	waitBundleFiles(t, s, 13)
	checkBundles(t, s, old)
	if got := pebbleBundles(t, s); len(got) != 0 {
		t.Errorf("pebble holds bundles %v after the moves, want none", got)
	}
}

// TestBundleFilesUnrecordedMove stops the mover between its sync of the
// files and its record of the move in pebble, as a crash there would: the
// bundles stay in pebble, the next start cuts them from the files and
// moves them again.
func TestBundleFilesUnrecordedMove(t *testing.T) {
	dir := t.TempDir()
	s := openBundles(t, dir, pebble.Options{BundleFiles: true})
	growBundles(t, s, 0, 3*api.TileWidth, 1)
	waitBundleFiles(t, s, 3)
	var held atomic.Int32
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBundles(t, dir, pebble.WithBeforeBundleRecord(pebble.Options{BundleFiles: true}, func() error {
		held.Add(1)
		return errors.New("crash")
	}))
	growBundles(t, s, 3*api.TileWidth, 8*api.TileWidth+5, 3)
	waitBundleFiles(t, s, 8)
	if held.Load() == 0 {
		t.Fatal("the mover did not reach its record of the move")
	}
	checkBundles(t, s, 8*api.TileWidth+5)
	if got := pebbleBundles(t, s); len(got) != 6 || got[0] != 3 {
		t.Errorf("pebble holds bundles %v with the moves unrecorded, want 3 to 8", got)
	}
	data := filepath.Join(dir, pebble.BundleFilesDir, "data")
	st, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Read-only use (no BundleFiles) leaves the files as they are.
	s = openBundles(t, dir, pebble.Options{})
	if n := s.BundleFilesHold(); n != 3 {
		t.Errorf("the files hold %d bundles after a start, want the 3 recorded", n)
	}
	checkBundles(t, s, 8*api.TileWidth+5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBundles(t, dir, pebble.Options{BundleFiles: true})
	defer s.Close()
	checkBundles(t, s, 8*api.TileWidth+5)
	waitBundleFiles(t, s, 8)
	checkBundles(t, s, 8*api.TileWidth+5)
	if got := pebbleBundles(t, s); len(got) != 1 {
		t.Errorf("pebble holds bundles %v after the moves, want the partial one", got)
	}
	st2, err := os.Stat(data)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Size() != st.Size() {
		t.Errorf("the data file is %d bytes after the moves again, %d after the unrecorded ones", st2.Size(), st.Size())
	}
}

// TestBundleFilesFlushAfterWALError fails the WAL's writes from the
// record of the move after which the mover flushes pebble's memtable
// (pebble panics rotating a WAL whose writes failed): the process goes
// on, every bundle reads back, and once the disk takes writes again the
// log commits and the mover moves, and pebble keeps no copy of a moved
// bundle.
func TestBundleFilesFlushAfterWALError(t *testing.T) {
	dir := t.TempDir()
	fault := &walFault{}
	// The mover flushes at the end of a catch-up that moved 256 bundles
	// or more since the last flush: the last full bundle is the 256th.
	const size = 256*api.TileWidth + 3
	var held atomic.Pointer[pebble.Storage]
	var faulted atomic.Bool
	committed := make(chan struct{})
	hook := func() error {
		<-committed // every commit made: none meets the fault
		if s := held.Load(); s != nil && s.BundleFilesHold() == size/api.TileWidth && !faulted.Swap(true) {
			fault.on.Store(true)
		}
		return nil
	}
	s := openBundles(t, dir, pebble.WithFS(pebble.WithBeforeBundleRecord(pebble.Options{BundleFiles: true}, hook), fault.fs()))
	held.Store(s)
	growBundles(t, s, 0, size, 4)
	close(committed)
	waitBundleFiles(t, s, size/api.TileWidth)
	// The record of the last move failed, or the flush after it would
	// have; either way the mover is done with the catch-up.
	time.Sleep(200 * time.Millisecond)
	if !faulted.Load() {
		t.Fatal("the mover did not record its move of the last full bundle")
	}
	checkBundles(t, s, size)
	fault.on.Store(false)
	// The next commit finds the disk writable again.
	const size2 = 258*api.TileWidth + 5
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Commit(context.Background(), bundleCommit(size, size2))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit after the fault: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitBundleFiles(t, s, size2/api.TileWidth)
	checkBundles(t, s, size2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBundles(t, dir, pebble.Options{BundleFiles: true})
	defer s.Close()
	checkBundles(t, s, size2)
	waitBundleFiles(t, s, size2/api.TileWidth)
	if got := pebbleBundles(t, s); len(got) != 1 || got[0] != size2/api.TileWidth {
		t.Errorf("pebble holds bundles %v, want only the partial one, %d", got, size2/api.TileWidth)
	}
}

// TestBundleFilesMissing checks that a store whose bundle files lack
// bundles pebble records there refuses to open, and opens once they are
// back.
func TestBundleFilesMissing(t *testing.T) {
	dir := t.TempDir()
	s := openBundles(t, dir, pebble.Options{BundleFiles: true})
	growBundles(t, s, 0, 4*api.TileWidth, 2)
	waitBundleFiles(t, s, 4)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := filepath.Join(dir, pebble.BundleFilesDir)
	for _, tc := range []struct {
		name string
		edit func(path string) error
		want string
	}{
		{"data", os.Remove, "there is no"},
		{"index", os.Remove, "there is no"},
		{"data", func(p string) error { return os.Truncate(p, 10) }, "the data file has 10 of their"},
		{"index", func(p string) error { return os.Truncate(p, 3*12) }, "its index holds 3"},
	} {
		path := filepath.Join(files, tc.name)
		saved, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.edit(path); err != nil {
			t.Fatal(err)
		}
		for _, move := range []bool{false, true} {
			s, err := pebble.Open(dir, pebble.Options{Logger: quiet, LeafFilterBytes: -1, BundleFiles: move})
			if err == nil {
				s.Close()
				t.Fatalf("%s edited: Open succeeded", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "4 entry bundles") {
				t.Errorf("%s edited: Open: %v; want it to say %q and how many bundles", tc.name, err, tc.want)
			}
		}
		if err := os.WriteFile(path, saved, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openBundles(t, dir, pebble.Options{BundleFiles: true})
	defer s.Close()
	checkBundles(t, s, 4*api.TileWidth)
}

// TestBundleFilesCorrupt checks that a bundle whose bytes changed in the
// data file is an error, not a wrong bundle.
func TestBundleFilesCorrupt(t *testing.T) {
	dir := t.TempDir()
	s := openBundles(t, dir, pebble.Options{BundleFiles: true})
	growBundles(t, s, 0, 3*api.TileWidth, 1)
	waitBundleFiles(t, s, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, pebble.BundleFilesDir, "data")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-20] ^= 1 // in the last bundle
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s = openBundles(t, dir, pebble.Options{})
	defer s.Close()
	if _, err := s.ReadEntryBundle(context.Background(), 2); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("ReadEntryBundle of a bundle with a flipped bit: %v, want a corruption error", err)
	}
	for bi := range uint64(2) {
		if got, err := s.ReadEntryBundle(context.Background(), bi); err != nil || !bytes.Equal(got, modelBundle(bi, 3*api.TileWidth)) {
			t.Errorf("ReadEntryBundle(%d) beside a corrupt bundle: %d bytes, %v", bi, len(got), err)
		}
	}
}

// TestBundleFilesNoSpace checks that the mover waits while the disk is
// below its reserve, the bundles staying in pebble, and moves them once
// there is room.
func TestBundleFilesNoSpace(t *testing.T) {
	var full atomic.Bool
	full.Store(true)
	s := openBundles(t, t.TempDir(), pebble.Options{BundleFiles: true, CheckSpace: func() error {
		if full.Load() {
			return log.ErrNoSpace
		}
		return nil
	}})
	defer s.Close()
	growBundles(t, s, 0, 5*api.TileWidth, 5)
	time.Sleep(100 * time.Millisecond)
	if n := s.BundleFilesHold(); n != 0 {
		t.Fatalf("the mover moved %d bundles with the disk full", n)
	}
	checkBundles(t, s, 5*api.TileWidth)
	full.Store(false)
	growBundles(t, s, 5*api.TileWidth, 6*api.TileWidth, 1)
	waitBundleFiles(t, s, 6)
	checkBundles(t, s, 6*api.TileWidth)
}

// TestBundleFilesLargeBundles moves bundles of large incompressible
// entries (10 MB each, more than a move takes at once): each move takes
// one, and they read back whole.
func TestBundleFilesLargeBundles(t *testing.T) {
	s := openBundles(t, t.TempDir(), pebble.Options{BundleFiles: true})
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var bundles [][]byte
	for bi := range uint64(3) {
		var b []byte
		for range api.TileWidth {
			e := make([]byte, 40_000)
			for i := range e {
				e[i] = byte(rng.Uint32())
			}
			b = append(b, byte(len(e)>>8), byte(len(e)))
			b = append(b, e...)
		}
		bundles = append(bundles, b)
		c := &log.Commit{OldSize: bi * api.TileWidth, NewSize: (bi + 1) * api.TileWidth, Checkpoint: fmt.Appendf(nil, "size %d", (bi+1)*api.TileWidth),
			Bundles: []log.BundleData{{Index: bi, Bundle: b, Full: true}}}
		if err := s.Commit(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	waitBundleFiles(t, s, 3)
	for bi, want := range bundles {
		got, err := s.ReadEntryBundle(context.Background(), uint64(bi))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadEntryBundle(%d): %d bytes, %v; want %d", bi, len(got), err, len(want))
		}
	}
}

// checkEncoded checks AppendEncodedEntryBundle for every bundle of the
// tree of size entries: the full bundles in the files compressed with
// zstd (those of zstd, a set of indexes; all if nil) decode to the
// model's; the others are not given.
func checkEncoded(t *testing.T, s *pebble.Storage, size uint64, zstdOnly map[uint64]bool) {
	t.Helper()
	ctx := context.Background()
	for bi := uint64(0); bi*api.TileWidth < size; bi++ {
		c, ok, err := s.AppendEncodedEntryBundle(ctx, []byte("prefix"), bi, bundlezstd.Coding)
		if err != nil {
			t.Fatalf("AppendEncodedEntryBundle(%d): %v", bi, err)
		}
		want := bi < s.BundleFilesHold() && (zstdOnly == nil || zstdOnly[bi])
		if ok != want {
			t.Fatalf("AppendEncodedEntryBundle(%d): given %v, want %v (the files hold %d)", bi, ok, want, s.BundleFilesHold())
		}
		if !ok {
			continue
		}
		if !bytes.HasPrefix(c, []byte("prefix")) {
			t.Fatalf("AppendEncodedEntryBundle(%d) did not append", bi)
		}
		got, err := bundlezstd.AppendDecoded(nil, c[len("prefix"):])
		if err != nil || !bytes.Equal(got, modelBundle(bi, size)) {
			t.Fatalf("bundle %d as stored decodes to %d bytes (%v), want the model's", bi, len(got), err)
		}
		if _, ok, err := s.AppendEncodedEntryBundle(ctx, nil, bi, "gzip"); ok || err != nil {
			t.Fatalf("AppendEncodedEntryBundle(%d, gzip): %v, %v; want not given", bi, ok, err)
		}
	}
}

func TestBundleFilesEncoded(t *testing.T) {
	s := openBundles(t, t.TempDir(), pebble.Options{BundleFiles: true})
	defer s.Close()
	const size = 5*api.TileWidth + 9
	growBundles(t, s, 0, size, 3)
	waitBundleFiles(t, s, 5)
	checkEncoded(t, s, size, nil)
}

// TestBundleFilesUpgrade opens the bundle files an older version wrote,
// with S2: the log reads them, adds zstd bundles after them, serves
// only those compressed, and RecompressBundles rewrites them all with
// zstd into the files of the next generation.
func TestBundleFilesUpgrade(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openBundles(t, dir, pebble.WithS2Bundles(pebble.Options{BundleFiles: true}))
	growBundles(t, s, 0, 4*api.TileWidth+3, 2)
	waitBundleFiles(t, s, 4)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBundles(t, dir, pebble.Options{BundleFiles: true})
	const size = 9*api.TileWidth + 100
	growBundles(t, s, 4*api.TileWidth+3, size, 2)
	waitBundleFiles(t, s, 9)
	checkBundles(t, s, size)
	checkEncoded(t, s, size, map[uint64]bool{4: true, 5: true, 6: true, 7: true, 8: true})
	// RecompressBundles needs the log stopped.
	if _, err := pebble.RecompressBundles(ctx, dir, pebble.Options{Logger: quiet}, nil); !errors.Is(err, pebble.ErrLocked) {
		t.Fatalf("RecompressBundles of an open log: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, filepath.Join(dir, pebble.BundleFilesDir, "data"))
	var calls int
	st, err := pebble.RecompressBundles(ctx, dir, pebble.Options{Logger: quiet}, func(done, total uint64) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if st.Bundles != 9 || st.Recompressed != 4 || st.Before != uint64(before) || st.After >= st.Before || calls == 0 {
		t.Errorf("RecompressBundles: %+v (%d progress calls); want 9 bundles, 4 recompressed, from %d bytes to fewer", st, calls, before)
	}
	checkBundleFileNames(t, dir, "data.1", "index.1")
	if got := fileSize(t, filepath.Join(dir, pebble.BundleFilesDir, "data.1")); got != int64(st.After) {
		t.Errorf("data.1 is %d bytes, RecompressBundles says %d", got, st.After)
	}
	s = openBundles(t, dir, pebble.Options{BundleFiles: true})
	checkBundles(t, s, size)
	checkEncoded(t, s, size, nil)
	// The next generation's files take the moves.
	growBundles(t, s, size, 12*api.TileWidth, 2)
	waitBundleFiles(t, s, 12)
	checkEncoded(t, s, 12*api.TileWidth, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// And a second rewrite, with nothing to recompress, the third.
	if st, err = pebble.RecompressBundles(ctx, dir, pebble.Options{Logger: quiet}, nil); err != nil || st.Bundles != 12 || st.Recompressed != 0 || st.After != st.Before {
		t.Fatalf("second RecompressBundles: %+v, %v", st, err)
	}
	checkBundleFileNames(t, dir, "data.2", "index.2")
	s = openBundles(t, dir, pebble.Options{})
	defer s.Close()
	checkBundles(t, s, 12*api.TileWidth)
}

// TestBundleFilesRecompressFails checks that a rewrite that fails (a
// corrupt bundle) or stops (a crash, its files left) changes nothing: the
// log reads its files, and its next start removes the new ones.
func TestBundleFilesRecompressFails(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openBundles(t, dir, pebble.WithS2Bundles(pebble.Options{BundleFiles: true}))
	const size = 6 * api.TileWidth
	growBundles(t, s, 0, size, 2)
	waitBundleFiles(t, s, 6)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, pebble.BundleFilesDir)
	data, err := os.ReadFile(filepath.Join(bdir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(data)
	flipped[len(flipped)-20] ^= 1
	if err := os.WriteFile(filepath.Join(bdir, "data"), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = pebble.RecompressBundles(ctx, dir, pebble.Options{Logger: quiet}, nil)
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "keeps its bundle files") {
		t.Fatalf("RecompressBundles of a corrupt bundle: %v, want an error saying so and that the files are kept", err)
	}
	checkBundleFileNames(t, dir, "data", "index")
	if err := os.WriteFile(filepath.Join(bdir, "data"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A crash during a rewrite leaves the next generation's files.
	for _, name := range []string{"data.1", "index.1"} {
		if err := os.WriteFile(filepath.Join(bdir, name), []byte("cut short"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openBundles(t, dir, pebble.Options{})
	checkBundles(t, s, size)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkBundleFileNames(t, dir, "data", "data.1", "index", "index.1") // read-only: left
	s = openBundles(t, dir, pebble.Options{BundleFiles: true})
	defer s.Close()
	checkBundles(t, s, size)
	checkBundleFileNames(t, dir, "data", "index")
}

// TestBundleFilesRecompressNoSpace fills the disk while a rewrite writes
// the new files: it fails saying so, removes them and changes nothing,
// and succeeds once there is room.
func TestBundleFilesRecompressNoSpace(t *testing.T) {
	dir := filepath.Join(tmpfs.Mount(t, 256<<20), "db")
	ctx := context.Background()
	s := openBundles(t, dir, pebble.WithS2Bundles(pebble.Options{BundleFiles: true}))
	// More bundles than a rewrite writes at once: the disk fills between
	// two writes.
	const bundles = 130
	const size = bundles * api.TileWidth
	growBundles(t, s, 0, size, 4)
	waitBundleFiles(t, s, bundles)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fill := filepath.Join(filepath.Dir(dir), "fill")
	filled := false
	_, err := pebble.RecompressBundles(ctx, dir, pebble.Options{Logger: quiet}, func(done, total uint64) {
		if !filled {
			filled = true
			tmpfs.FillTo(t, fill, 0)
		}
	})
	if !filled || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "keeps its bundle files") {
		t.Fatalf("RecompressBundles on a disk that fills: %v (filled: %v), want no space left and the files kept", err, filled)
	}
	checkBundleFileNames(t, dir, "data", "index")
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	s = openBundles(t, dir, pebble.Options{})
	checkBundles(t, s, size)
	checkEncoded(t, s, size, map[uint64]bool{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := pebble.RecompressBundles(ctx, dir, pebble.Options{Logger: quiet}, nil)
	if err != nil || st.Bundles != bundles || st.Recompressed != bundles {
		t.Fatalf("RecompressBundles with room: %+v, %v; want %d bundles recompressed", st, err, bundles)
	}
	checkBundleFileNames(t, dir, "data.1", "index.1")
	s = openBundles(t, dir, pebble.Options{})
	defer s.Close()
	checkBundles(t, s, size)
	checkEncoded(t, s, size, nil)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// checkBundleFileNames checks that the bundle files' directory holds
// exactly the files names.
func checkBundleFileNames(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, pebble.BundleFilesDir))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("the bundle files' directory holds %v, want %v", got, names)
	}
}
