package pebble_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// The tile model of these tests: hash i of level l is tileHash(l, i), and
// a full tile's rows are tileRows(l, index), except the tiles of level 0
// below noRowsBelow, stored without rows as by an older version.
const noRowsBelow = 3

func tileHash(level uint8, i uint64) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "tile hash %d %d", level, i))
	return h[:]
}

func tileRows(level uint8, index uint64) []byte {
	var rows []byte
	for i := range log.TileRowsSize / api.HashSize {
		h := sha256.Sum256(fmt.Appendf(nil, "rows %d %d %d", level, index, i))
		rows = append(rows, h[:]...)
	}
	return rows
}

func modelTile(level uint8, index, size uint64) []byte {
	count := size >> (api.TileHeight * uint(level))
	var b []byte
	for i := index * api.TileWidth; i < min(count, (index+1)*api.TileWidth); i++ {
		b = append(b, tileHash(level, i)...)
	}
	return b
}

func modelRows(level uint8, index uint64) []byte {
	if level == 0 && index < noRowsBelow {
		return nil
	}
	return tileRows(level, index)
}

// tileCommit grows the model's tree from old to size entries: its tiles
// only (no bundles or leaves, which the tile files do not read).
func tileCommit(old, size uint64) *log.Commit {
	c := &log.Commit{OldSize: old, NewSize: size, Checkpoint: fmt.Appendf(nil, "size %d", size)}
	for level := uint8(0); size>>(api.TileHeight*uint(level)) > 0; level++ {
		oldCount, count := old>>(api.TileHeight*uint(level)), size>>(api.TileHeight*uint(level))
		for ti := oldCount / api.TileWidth; ti*api.TileWidth < count; ti++ {
			d := log.TileData{Level: level, Index: ti, Hashes: modelTile(level, ti, size), Start: len(modelTile(level, ti, old))}
			if len(d.Hashes) == api.TileWidth*api.HashSize && d.Start < len(d.Hashes) {
				d.Rows = modelRows(level, ti)
			}
			c.Tiles = append(c.Tiles, d)
		}
	}
	return c
}

// tailCheck is how many records at the end of each file the start checks
// in these tests.
const tailCheck = 64

func openTileFiles(t *testing.T, dir string) *pebble.Storage {
	t.Helper()
	o := pebble.Options{Logger: quiet, CacheBytes: 8 << 20, LeafFilterBytes: -1, TileFiles: true}
	s, err := pebble.Open(dir, pebble.WithTileTailCheck(o, tailCheck))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// growTiles commits the model from old to size in steps.
func growTiles(t *testing.T, s *pebble.Storage, old, size uint64, steps int) {
	t.Helper()
	growWith(t, s, old, size, steps, tileCommit)
}

// growWith commits commit(old, n) for each n of steps from old to size.
func growWith(t *testing.T, s *pebble.Storage, old, size uint64, steps int, commit func(old, n uint64) *log.Commit) {
	t.Helper()
	for i := 1; i <= steps; i++ {
		n := old + (size-old)*uint64(i)/uint64(steps)
		if err := s.Commit(context.Background(), commit(old, n)); err != nil {
			t.Fatal(err)
		}
		old = n
	}
}

func waitTileFiles(t *testing.T, s *pebble.Storage, size uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !s.TileFilesHold(size) {
		if time.Now().After(deadline) {
			t.Fatalf("the tile files do not hold the full tiles of %d entries after 30 s", size)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkTiles reads every tile of the tree of size entries and checks it
// against the model.
func checkTiles(t *testing.T, s *pebble.Storage, size uint64) {
	t.Helper()
	ctx := context.Background()
	for level := uint8(0); size>>(api.TileHeight*uint(level)) > 0; level++ {
		count := size >> (api.TileHeight * uint(level))
		for index := uint64(0); index*api.TileWidth < count; index++ {
			want := modelTile(level, index, size)
			got, err := s.ReadTile(ctx, level, index)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("ReadTile(%d, %d): %d bytes, %v; want %d bytes", level, index, len(got), err, len(want))
			}
			hashes, rows, err := s.ReadFullTile(ctx, level, index)
			if len(want) < api.TileWidth*api.HashSize {
				if !errors.Is(err, log.ErrNotFound) {
					t.Fatalf("ReadFullTile(%d, %d) of a partial tile: %v, want ErrNotFound", level, index, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(hashes, want) || !bytes.Equal(rows, modelRows(level, index)) {
				t.Fatalf("ReadFullTile(%d, %d): %d bytes, rows %d bytes, %v", level, index, len(hashes), len(rows), err)
			}
			rows, err = s.ReadTileRows(ctx, level, index)
			if wantRows := modelRows(level, index); wantRows == nil {
				if !errors.Is(err, log.ErrNotFound) {
					t.Fatalf("ReadTileRows(%d, %d) of a tile without rows: %v, want ErrNotFound", level, index, err)
				}
			} else if err != nil || !bytes.Equal(rows, wantRows) {
				t.Fatalf("ReadTileRows(%d, %d): %d bytes, %v", level, index, len(rows), err)
			}
		}
	}
}

// TestTileFiles fills a tree with a full tile at level 1, checks that the
// tile files hold its full tiles and answer as pebble would, then breaks
// the files as a crash, a disk or a person might and checks that reads
// stay right and the files mend.
func TestTileFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// 259 full tiles at level 0, one at level 1, a partial at level 2.
	const size = 1<<16 + 3*api.TileWidth + 5
	const fullTiles = 259 + 1
	s := openTileFiles(t, dir)
	growTiles(t, s, 0, size, 7)
	waitTileFiles(t, s, size)
	checkTiles(t, s, size)
	checkFiles(t, s, fullTiles, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	level0 := filepath.Join(dir, "tiles", "0")
	good, err := os.ReadFile(level0)
	if err != nil {
		t.Fatal(err)
	}
	if len(good) != 259*pebble.TileRecordSize {
		t.Fatalf("the level-0 file has %d bytes, want %d", len(good), 259*pebble.TileRecordSize)
	}

	t.Run("corrupt record", func(t *testing.T) {
		// Before the end the start checks.
		bad := bytes.Clone(good)
		bad[100*pebble.TileRecordSize+77] ^= 1
		if err := os.WriteFile(level0, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		s := openTileFiles(t, dir)
		defer s.Close()
		waitTileFiles(t, s, size)
		checkFiles(t, s, fullTiles-1, 1)
		checkTiles(t, s, size)
		if s.TileFileBadReads() == 0 {
			t.Fatal("no bad read counted for the corrupt record")
		}
		// The read has the writer write the record again.
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := s.CheckTileFiles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c.Unusable == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the corrupt record is still there after 30 s: %+v", c)
			}
			time.Sleep(5 * time.Millisecond)
		}
		reads := s.TileFileBadReads()
		checkTiles(t, s, size)
		if n := s.TileFileBadReads(); n != reads {
			t.Errorf("%d more bad reads after the record was written again", n-reads)
		}
		checkFiles(t, s, fullTiles, 0)
	})

	t.Run("wrong record", func(t *testing.T) {
		// A record whose CRC checks out but whose tile is not pebble's:
		// reads would take it, so fsck must fail.
		wrong := bytes.Clone(good)
		copy(wrong[100*pebble.TileRecordSize:], pebble.TileRecord(0, 100, modelTile(0, 101, size), modelRows(0, 100)))
		if err := os.WriteFile(level0, wrong, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(level0, good, 0o644)
		s := openTileFiles(t, dir)
		defer s.Close()
		if _, err := s.CheckTileFiles(ctx); err == nil || !strings.Contains(err.Error(), "tile 0/100 differs") {
			t.Errorf("CheckTileFiles: %v, want an error about tile 0/100", err)
		}
	})

	t.Run("corrupt end", func(t *testing.T) {
		// Within the end the start checks: cut there and written again.
		bad := bytes.Clone(good)
		bad[(259-tailCheck+1)*pebble.TileRecordSize+8200] ^= 1
		if err := os.WriteFile(level0, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		s := openTileFiles(t, dir)
		defer s.Close()
		waitTileFiles(t, s, size)
		checkTiles(t, s, size)
		if s.TileFileBadReads() != 0 {
			t.Errorf("%d bad reads: the start did not cut the corrupt end", s.TileFileBadReads())
		}
		checkFiles(t, s, fullTiles, 0)
	})

	t.Run("torn and unwritten end", func(t *testing.T) {
		// A crash: the last records lost, one half written, zeros after.
		torn := bytes.Clone(good[:250*pebble.TileRecordSize+pebble.TileRecordSize/2])
		torn = append(torn, make([]byte, 5*pebble.TileRecordSize)...)
		if err := os.WriteFile(level0, torn, 0o644); err != nil {
			t.Fatal(err)
		}
		s := openTileFiles(t, dir)
		defer s.Close()
		checkTiles(t, s, size)
		waitTileFiles(t, s, size)
		checkTiles(t, s, size)
		checkFiles(t, s, fullTiles, 0)
		if s.TileFileBadReads() != 0 {
			t.Errorf("%d bad reads: the start did not cut the torn end", s.TileFileBadReads())
		}
	})

	t.Run("deleted", func(t *testing.T) {
		if err := os.RemoveAll(filepath.Join(dir, "tiles")); err != nil {
			t.Fatal(err)
		}
		s := openTileFiles(t, dir)
		defer s.Close()
		waitTileFiles(t, s, size)
		checkTiles(t, s, size)
		checkFiles(t, s, fullTiles, 0)
	})

	t.Run("longer than the tree", func(t *testing.T) {
		// The files of a larger tree beside a smaller one (a database
		// restored from an older copy): the start cuts them to the tree,
		// and the tiles past it come from pebble as it grows.
		small := t.TempDir()
		s := openTileFiles(t, small)
		const smallSize = 30*api.TileWidth + 3
		growTiles(t, s, 0, smallSize, 2)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(small, "tiles")); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(filepath.Join(small, "tiles"), os.DirFS(filepath.Join(dir, "tiles"))); err != nil {
			t.Fatal(err)
		}
		s = openTileFiles(t, small)
		defer s.Close()
		waitTileFiles(t, s, smallSize)
		checkTiles(t, s, smallSize)
		if hashes, _, err := s.ReadFullTile(ctx, 0, 30); !errors.Is(err, log.ErrNotFound) {
			t.Fatalf("ReadFullTile(0, 30) beyond the tree: %d bytes, %v; want ErrNotFound", len(hashes), err)
		}
		if fi, err := os.Stat(filepath.Join(small, "tiles", "0")); err != nil || fi.Size() != 30*pebble.TileRecordSize {
			t.Fatalf("the level-0 file after the start: %v, %v; want %d bytes", fi.Size(), err, 30*pebble.TileRecordSize)
		}
		growTiles(t, s, smallSize, size, 3)
		waitTileFiles(t, s, size)
		checkTiles(t, s, size)
	})
}

// checkFiles checks what CheckTileFiles finds.
func checkFiles(t *testing.T, s *pebble.Storage, checked, unusable uint64) {
	t.Helper()
	c, err := s.CheckTileFiles(context.Background())
	if err != nil || c.Checked != checked || c.Unusable != unusable {
		t.Fatalf("CheckTileFiles: %+v, %v; want %d checked, %d unusable", c, err, checked, unusable)
	}
}

// TestTileFilesDeletedWhileRunning checks that the writer creates the
// directory again when a new level needs a file.
func TestTileFilesDeletedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	s := openTileFiles(t, dir)
	defer s.Close()
	const small, size = 2*api.TileWidth + 3, 1<<16 + 5
	growTiles(t, s, 0, small, 1)
	waitTileFiles(t, s, small)
	if err := os.RemoveAll(filepath.Join(dir, "tiles")); err != nil {
		t.Fatal(err)
	}
	growTiles(t, s, small, size, 2)
	waitTileFiles(t, s, size)
	checkTiles(t, s, size)
	if _, err := os.Stat(filepath.Join(dir, "tiles", "1")); err != nil {
		t.Errorf("the level-1 file: %v", err)
	}
}

// TestTileFilesWaitForSpace checks that the writer writes nothing while
// the filesystem is below its reserve, and catches up once it is not.
func TestTileFilesWaitForSpace(t *testing.T) {
	var low atomic.Bool
	low.Store(true)
	o := pebble.Options{Logger: quiet, CacheBytes: 8 << 20, LeafFilterBytes: -1, TileFiles: true, CheckSpace: func() error {
		if low.Load() {
			return errors.New("below the reserve")
		}
		return nil
	}}
	dir := t.TempDir()
	s, err := pebble.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const size = 3 * api.TileWidth
	growTiles(t, s, 0, size, 3)
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, "tiles", "0")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the writer wrote below the reserve: %v", err)
	}
	checkTiles(t, s, size)
	low.Store(false)
	growTiles(t, s, size, size+1, 1)
	waitTileFiles(t, s, size+1)
	checkTiles(t, s, size+1)
}

// TestTileFilesOnlyDurable checks that a tile reaches the files only once
// its commit is synced.
func TestTileFilesOnlyDurable(t *testing.T) {
	ctx := context.Background()
	s := openTileFiles(t, t.TempDir())
	defer s.Close()
	wait, err := s.StartCommit(ctx, tileCommit(0, 2*api.TileWidth))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if s.TileFilesHold(2 * api.TileWidth) {
		t.Fatal("the tile files took tiles of a commit not yet synced")
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	waitTileFiles(t, s, 2*api.TileWidth)
	checkTiles(t, s, 2*api.TileWidth)
}
