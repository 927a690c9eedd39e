// Package pebble is Candor's embedded storage on cockroachdb/pebble: the
// log's tiles, entry bundles, leaf index, search index and checkpoint,
// written in one synced batch per commit.
package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/bundlezstd"
	"github.com/candorlog/candor/log"
)

// Key layout. Every key starts with a one-byte table prefix.
//
// Tiles and entry bundles are stored in chunks: the value at key ‖ u32 BE
// offset holds their bytes from offset on, up to the next chunk's offset.
// A commit stores only the bytes a partial tile or bundle grew by, as a new
// chunk, and stores a new or completed one as a single chunk at offset 0,
// deleting the others; so a log that commits small batches does not
// rewrite its right edge every time, and complete tiles read as one value.
const (
	prefixCheckpoint = 'c' // 'c' -> u64 BE size ‖ signed checkpoint
	prefixTile       = 't' // 't' ‖ level ‖ u64 BE index ‖ u32 BE offset -> hashes
	prefixBundle     = 'e' // 'e' ‖ u64 BE index ‖ u32 BE offset -> entry bundle bytes
	prefixLeaf       = 'h' // 'h' ‖ leaf hash -> uvarint index
	prefixTileRows   = 'r' // 'r' ‖ level ‖ u64 BE index -> a full tile's log.TileData.Rows
	// 'B' -> u64 BE [‖ u32 BE]: how many full bundles the bundle files
	// hold (bundlefile.go), which are no longer under 'e', and the
	// files' generation if not 0.
	prefixBundleFiles = 'B'
	// 's' and 'S': the search index (search.go).
)

// memTableBytes is the size of pebble's memtables.
const memTableBytes = 64 << 20

// l0Compaction is how many sublevels of flushed memtables L0 holds before
// pebble compacts them into the level below (pebble's default is 4);
// writes stall at three times as many. The leaf index and the search
// index put keys all over their ranges, so every compaction out of L0
// rewrites those ranges below it: the more sublevels it waits for, the
// fewer rewrites. With 8 the engine takes about a tenth more entries a
// second, with the search index or without (BenchmarkAppendIndex), and
// the growth benchmark's reads at 1 M, 10 M and 100 M entries stayed
// within the spread of its runs with 4. 16 (with 32 MiB memtables) was
// faster still for the engine but cut proofs at 100 M to a third: a read
// looks in every sublevel.
const l0Compaction = 8

// MemoryBytes is the most memory a store with a block cache of cacheBytes
// holds, but for its leaf filter: the cache and up to three memtables (two
// queued for a flush, pebble's limit, and one still being read).
func MemoryBytes(cacheBytes int64) int64 { return cacheBytes + 3*memTableBytes }

// Options tunes the store. The zero value is a good default.
type Options struct {
	// CacheBytes is the size of pebble's block cache. Default: 256 MiB.
	// Deduplicating a new entry looks its leaf hash up in every table's
	// filter and index blocks; the cache must hold those (about 1.5 bytes
	// per entry) or every lookup reads them from disk.
	CacheBytes int64
	// LeafFilterBytes is the size of the in-memory filter over the leaf
	// index that spares most lookups of new entries a pebble read.
	// Default (0): sized for the log, 2 to 3 bytes per entry (at least
	// 3 MiB), replaced by a larger one in the background as the log grows;
	// negative: none.
	LeafFilterBytes int64
	// TileFiles keeps a copy of every full hash tile, with its stored
	// rows, in flat files in the database's directory (tiles/<level>),
	// written in the background once the tile's commit is synced: a read
	// of a full tile is then one read of a file, which in a log larger
	// than the block cache spares nearly every proof a pebble lookup that
	// misses the cache. About 36 bytes of disk per entry. Pebble stays
	// the truth; the files can be deleted while the store is closed.
	TileFiles bool
	// BundleFiles moves every full entry bundle, once its commit is
	// synced, out of pebble into flat files in the database's directory
	// (bundles/data and bundles/index), compressed with zstd: a read of
	// a full bundle is then two reads of a file and a decompression (or
	// none: AppendEncodedEntryBundle), where a pebble lookup outside the
	// block cache costs several times that.
	// The files are then the only copy of those bundles: they must be
	// kept and copied with the database. A store opened without
	// BundleFiles still reads the bundles its files hold, and moves no
	// more.
	BundleFiles bool
	// CheckSpace, if set, fails while the filesystem is below the free
	// space kept for pebble: the tile files' writer and the bundle files'
	// mover wait meanwhile.
	CheckSpace func() error
	// Registerer receives the storage's metrics (its memory, the leaf
	// filter's). Optional.
	Registerer prometheus.Registerer
	// Logger receives pebble's own logs. Default: slog.Default().
	Logger *slog.Logger

	// fs, if set, is the file system instead of the operating system's
	// (for tests that inject faults).
	fs vfs.FS
	// filterMinEntries, if set, replaces filterMinEntries, and
	// afterFilterScan is called when a scan filled a filter (for tests of
	// a filter that grows).
	filterMinEntries uint64
	afterFilterScan  func()
	// tileTailCheck, if set, replaces tileTailCheck.
	tileTailCheck uint64
	// beforeBundleRecord, if set, is called by the bundle files' mover
	// after it synced the files and before it records the move in pebble;
	// an error fails the move there (for tests of a crash between).
	beforeBundleRecord func() error
	// s2Bundles makes the mover compress bundles with S2, as versions
	// before zstd did (for tests of the logs they wrote).
	s2Bundles bool
}

// Storage is the log's storage in one pebble database. It implements
// log.Storage.
type Storage struct {
	h      *handle
	mu     sync.Mutex   // serialises Commit's compare-and-swap
	filter *leafFilters // nil if disabled
	// lookups counts LookupLeaf's answers: by the filter (absent), by
	// pebble after the filter said maybe (found, falsePositive), or by
	// pebble without a filter (unfiltered).
	lookups struct{ absent, found, falsePositive, unfiltered atomic.Uint64 }
	// searchComplete is true when the search index covers every entry.
	searchComplete atomic.Bool
	// tiles are the tile files (Options.TileFiles), nil without them.
	tiles *tileFiles
	// bundles are the bundle files (Options.BundleFiles), nil if the
	// store has none.
	bundles *bundleFiles
}

var (
	_ log.PipelinedStorage = (*Storage)(nil)
	_ log.SearchIndexer    = (*Storage)(nil)
)

// Open opens (creating if needed) the log's database in dir.
func Open(dir string, o Options) (*Storage, error) {
	h, err := openHandle(dir, o)
	if err != nil {
		return nil, err
	}
	s := &Storage{h: h}
	if err := s.loadSearchState(context.Background()); err != nil {
		h.close()
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if o.LeafFilterBytes >= 0 {
		s.filter = &leafFilters{fixed: o.LeafFilterBytes, minEntries: filterMinEntries, logger: logger}
		if o.filterMinEntries > 0 {
			s.filter.minEntries = o.filterMinEntries
		}
		s.filter.afterScan = o.afterFilterScan
		if o.fs == nil {
			s.filter.saved = filepath.Join(dir, savedFilterName)
		}
		// Unreadable, the checkpoint is the reads' and commits' error to
		// report: the filter is then sized for a small log, and grows.
		_, size, _ := s.ReadCheckpoint(context.Background())
		// A scan reads the database outside h.read: it ends before a
		// reopen closes it.
		h.beforeClose = func() { s.filter.stop(false) }
		s.filter.start(h.db, size)
	}
	if o.TileFiles {
		// The durable tree is what pebble holds at open. Unreadable, the
		// checkpoint is the reads' and commits' error to report; the
		// tiles are then read from pebble alone.
		if _, size, err := s.ReadCheckpoint(context.Background()); err != nil {
			logger.Error("no tile files: couldn't read the stored tree size", "err", err)
		} else {
			s.tiles = openTileFiles(filepath.Join(dir, tileFilesDir), h, size, logger)
		}
	}
	if o.fs == nil || o.BundleFiles {
		// (The bundle files are the system's: on another file system,
		// only for tests that ask.) Unreadable, the checkpoint is the
		// reads' and commits' error to report; the bundles are then not
		// moved.
		_, size, _ := s.ReadCheckpoint(context.Background())
		bf, err := openBundleFiles(filepath.Join(dir, bundleFilesDir), h, size, o.BundleFiles, logger)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.bundles = bf
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(metrics{s}); err != nil {
			s.Close()
			return nil, fmt.Errorf("couldn't register the storage metrics: %w", err)
		}
	}
	return s, nil
}

// openDB opens the database in dir on fs.
func openDB(dir string, o Options, fs vfs.FS, readOnly bool) (db *pebble.DB, err error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: memTableBytes,
		Logger:       pebbleLogger{o.Logger.With("component", "pebble")},
		FS:           fs,
		ReadOnly:     readOnly,
	}
	opts.L0CompactionThreshold = l0Compaction
	opts.L0StopWritesThreshold = 3 * l0Compaction
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// A reopen after a write error may meet the full disk again.
	defer recoverFatal(&err)
	db, err = pebble.Open(dir, opts)
	if err != nil {
		if locked(err) {
			return nil, fmt.Errorf("%w: another process is using %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("couldn't open pebble in %s: %w", dir, err)
	}
	return db, nil
}

// ErrLocked is returned by Open and OpenWitnessState when another process
// (or this one) has the database open.
var ErrLocked = errors.New("database locked")

// locked tells whether err is pebble's failure to take the lock on its
// directory: a POSIX record lock, which fails with a bare EAGAIN or EACCES
// (not an error opening a path) when another process holds it; pebble
// says so itself when this process does.
func locked(err error) bool {
	var errno syscall.Errno
	var pathErr *fs.PathError
	if errors.As(err, &errno) && (errno == syscall.EAGAIN || errno == syscall.EACCES) && !errors.As(err, &pathErr) {
		return true
	}
	return strings.Contains(err.Error(), "lock held by current process")
}

// Close closes the database.
func (s *Storage) Close() error {
	if s.filter != nil {
		s.filter.stop(false)
		if err := s.saveFilter(); err != nil {
			s.filter.logger.Warn("couldn't save the leaf filter: the next start scans the leaf index", "error", err)
		}
		s.filter.stop(true)
	}
	if s.tiles != nil {
		s.tiles.close()
	}
	if s.bundles != nil {
		s.bundles.close()
	}
	return s.h.close()
}

// saveFilter writes the leaf filter in use to its file, for the next
// open (filtersave.go), unless the filesystem is below the free space
// kept for pebble. Nothing commits meanwhile: the filter holds the leaves
// of the stored tree.
func (s *Storage) saveFilter() error {
	if check := s.h.o.CheckSpace; check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	ctx := context.Background()
	_, size, err := s.ReadCheckpoint(ctx)
	if err != nil || size == 0 {
		return err
	}
	last, err := s.LeafHashes(ctx, []uint64{size - 1})
	if err != nil {
		return err
	}
	return s.filter.save(size, last[0])
}

func (s *Storage) get(key []byte) ([]byte, error) { return s.h.get(key) }

// get reads the value of key.
func (h *handle) get(key []byte) ([]byte, error) {
	db, release, err := h.read()
	if err != nil {
		return nil, err
	}
	defer release()
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, log.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func tileKey(level uint8, index uint64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = prefixTile, level
	binary.BigEndian.PutUint64(k[2:], index)
	return k
}

func tileRowsKey(level uint8, index uint64) []byte {
	k := tileKey(level, index)
	k[0] = prefixTileRows
	return k
}

func bundleKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixBundle
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func leafKey(hash []byte) []byte {
	return append([]byte{prefixLeaf}, hash...)
}

var checkpointKey = []byte{prefixCheckpoint}

// ReadCheckpoint implements log.Storage.
func (s *Storage) ReadCheckpoint(ctx context.Context) ([]byte, uint64, error) {
	v, err := s.get(checkpointKey)
	if errors.Is(err, log.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	if len(v) < 8 {
		return nil, 0, fmt.Errorf("stored checkpoint record is %d bytes long", len(v))
	}
	return v[8:], binary.BigEndian.Uint64(v), nil
}

// ReadTile implements log.Storage.
func (s *Storage) ReadTile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	if s.tiles != nil {
		if hashes, _, ok := s.tiles.read(level, index); ok {
			return hashes, nil
		}
	}
	return s.pebbleTile(level, index)
}

// pebbleTile reads a tile from pebble, not from the tile files.
func (s *Storage) pebbleTile(level uint8, index uint64) ([]byte, error) {
	key := tileKey(level, index)
	v, ok, err := s.readWhole(key, func(v []byte) bool { return len(v) == api.TileWidth*api.HashSize })
	if err == nil && !ok {
		v, err = s.readChunked(key)
	}
	if err != nil {
		return nil, fmt.Errorf("tile %d/%d: %w", level, index, err)
	}
	return v, nil
}

// ReadTileRows implements log.TileRowsReader.
func (s *Storage) ReadTileRows(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	if s.tiles != nil {
		if _, rows, ok := s.tiles.read(level, index); ok {
			if rows == nil {
				return nil, fmt.Errorf("rows of tile %d/%d: %w", level, index, log.ErrNotFound)
			}
			return rows, nil
		}
	}
	return s.pebbleTileRows(level, index)
}

// ReadFullTile implements log.TileRowsReader: from the tile files, one
// read.
func (s *Storage) ReadFullTile(ctx context.Context, level uint8, index uint64) (hashes, rows []byte, err error) {
	if s.tiles != nil {
		if hashes, rows, ok := s.tiles.read(level, index); ok {
			return hashes, rows, nil
		}
	}
	rows, err = s.pebbleTileRows(level, index)
	if errors.Is(err, log.ErrNotFound) {
		rows, err = nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if hashes, err = s.pebbleTile(level, index); err != nil {
		return nil, nil, err
	}
	if len(hashes) != api.TileWidth*api.HashSize {
		return nil, nil, fmt.Errorf("tile %d/%d has %d hashes, not full: %w", level, index, len(hashes)/api.HashSize, log.ErrNotFound)
	}
	return hashes, rows, nil
}

// pebbleTileRows reads a full tile's rows from pebble.
func (s *Storage) pebbleTileRows(level uint8, index uint64) ([]byte, error) {
	v, err := s.h.get(tileRowsKey(level, index))
	if err != nil {
		return nil, fmt.Errorf("rows of tile %d/%d: %w", level, index, err)
	}
	return v, nil
}

// readWhole returns the chunk of key at offset 0 if complete says it is
// all of the value. A value stored complete is one chunk at offset 0
// (setChunked), and a point lookup finds it from pebble's filters,
// without the iterator over every level that readChunked opens: most
// reads of a large log are of full tiles and bundles.
func (s *Storage) readWhole(key []byte, complete func([]byte) bool) ([]byte, bool, error) {
	return s.appendWhole(nil, key, complete)
}

// appendWhole is readWhole appending the value to dst.
func (s *Storage) appendWhole(dst, key []byte, complete func([]byte) bool) ([]byte, bool, error) {
	db, release, err := s.h.read()
	if err != nil {
		return nil, false, err
	}
	defer release()
	v, closer, err := db.Get(chunkKey(key, 0))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	if !complete(v) {
		return nil, false, nil
	}
	return append(dst, v...), true, nil
}

// fullBundle reports whether b is an entry bundle of api.TileWidth
// entries, each a big-endian uint16 length and that many bytes.
func fullBundle(b []byte) bool {
	n := 0
	for off := 0; off < len(b); n++ {
		if off+2 > len(b) {
			return false
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		if off > len(b) {
			return false
		}
	}
	return n == api.TileWidth
}

// LeafHashes returns the leaf hashes of the entries at indexes, read from
// the level-0 tiles with one iterator and without copying whole tiles:
// what a search needs of the entries it found.
func (s *Storage) LeafHashes(ctx context.Context, indexes []uint64) ([][]byte, error) {
	db, release, err := s.h.read()
	if err != nil {
		return nil, err
	}
	defer release()
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: tileKey(0, 0), UpperBound: tileKey(1, 0)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make([][]byte, len(indexes))
	buf := make([]byte, 0, len(indexes)*api.HashSize)
	for i, index := range indexes {
		key := tileKey(0, index/api.TileWidth)
		off := int(index%api.TileWidth) * api.HashSize
		// The chunk that holds the hash is the last that starts at or
		// before it.
		var v []byte
		if it.SeekLT(chunkKey(key, off+1)) {
			if k := it.Key(); len(k) == len(key)+4 && bytes.HasPrefix(k, key) {
				if v, err = it.ValueAndErr(); err != nil {
					return nil, err
				}
				v = v[min(len(v), off-int(binary.BigEndian.Uint32(k[len(key):]))):]
			}
		}
		if err := it.Error(); err != nil {
			return nil, err
		}
		if len(v) < api.HashSize {
			return nil, fmt.Errorf("the leaf hash of entry %d: %w", index, log.ErrNotFound)
		}
		buf = append(buf, v[:api.HashSize]...)
		out[i] = buf[len(buf)-api.HashSize : len(buf) : len(buf)]
	}
	return out, nil
}

// ReadEntryBundle implements log.Storage.
func (s *Storage) ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error) {
	return s.AppendEntryBundle(ctx, nil, index)
}

// AppendEntryBundle implements log.EntryBundleAppender.
func (s *Storage) AppendEntryBundle(ctx context.Context, dst []byte, index uint64) ([]byte, error) {
	bf := s.bundles
	if bf != nil && index < bf.n.Load() {
		v, err := bf.appendBundle(dst, index)
		if err != nil {
			return nil, fmt.Errorf("entry bundle %d: %w", index, err)
		}
		return v, nil
	}
	key := bundleKey(index)
	v, ok, err := s.appendWhole(dst, key, fullBundle)
	if err == nil && !ok {
		if v, err = s.readChunked(key); err == nil && dst != nil {
			v = append(dst, v...)
		}
	}
	if errors.Is(err, log.ErrNotFound) && bf != nil && index < bf.n.Load() {
		// Moved to the files and deleted from pebble since the check
		// above.
		v, err = bf.appendBundle(dst, index)
	}
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", index, err)
	}
	return v, nil
}

// AppendEncodedEntryBundle implements log.EncodedEntryBundleReader: the
// full bundles that the bundle files hold compressed with zstd, as they
// hold them.
func (s *Storage) AppendEncodedEntryBundle(ctx context.Context, dst []byte, index uint64, coding string) ([]byte, bool, error) {
	bf := s.bundles
	if coding != bundlezstd.Coding || bf == nil || index >= bf.n.Load() {
		return nil, false, nil
	}
	codec, c, err := bf.appendStored(dst, index)
	if err != nil {
		return nil, false, fmt.Errorf("entry bundle %d: %w", index, err)
	}
	if codec != codecZstd {
		// Written by an older version (RecompressBundles rewrites it).
		return nil, false, nil
	}
	return c, true, nil
}

// chunkKey returns the key of the chunk of key at byte offset off.
func chunkKey(key []byte, off int) []byte {
	return binary.BigEndian.AppendUint32(key[:len(key):len(key)], uint32(off))
}

// chunksEnd returns the upper bound (exclusive) of key's chunks.
func chunksEnd(key []byte) []byte {
	return append(key[:len(key):len(key)], 0xff, 0xff, 0xff, 0xff, 0xff)
}

// readChunked reads the chunks of key, in one consistent view, and joins
// them.
func (s *Storage) readChunked(key []byte) ([]byte, error) {
	db, release, err := s.h.read()
	if err != nil {
		return nil, err
	}
	defer release()
	return readChunkedDB(db, key)
}

func readChunkedDB(db *pebble.DB, key []byte) ([]byte, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: chunkKey(key, 0), UpperBound: chunksEnd(key)})
	if err != nil {
		return nil, err
	}
	var v []byte
	found := false
	for ok := it.First(); ok; ok = it.Next() {
		found = true
		k := it.Key()
		if len(k) != len(key)+4 {
			it.Close()
			return nil, fmt.Errorf("malformed chunk key %x", k)
		}
		if off := binary.BigEndian.Uint32(k[len(key):]); int(off) != len(v) {
			it.Close()
			return nil, fmt.Errorf("chunk at offset %d follows %d bytes", off, len(v))
		}
		c, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, err
		}
		// append to nil copies c without first zeroing a buffer for it,
		// which for a full bundle (some 180 KB) costs as much as the copy.
		v = append(v, c...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, err
	}
	if !found {
		return nil, log.ErrNotFound
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// setChunked stores data as the content of key: only data[start:] as a new
// chunk if start > 0 and the content is not complete, else all of it as
// one chunk that replaces any others.
func setChunked(b *pebble.Batch, key, data []byte, start int, complete bool) error {
	if start < 0 || start > len(data) {
		return fmt.Errorf("chunk start %d outside %d bytes", start, len(data))
	}
	if start > 0 && !complete {
		if start == len(data) {
			return nil
		}
		return b.Set(chunkKey(key, start), data[start:], nil)
	}
	if err := b.DeleteRange(chunkKey(key, 1), chunksEnd(key), nil); err != nil {
		return err
	}
	return b.Set(chunkKey(key, 0), data, nil)
}

// LookupLeaf implements log.Storage.
func (s *Storage) LookupLeaf(ctx context.Context, leafHash []byte) (uint64, error) {
	filtered := false
	if s.filter != nil {
		maybe, ok := s.filter.mayContain(leafHash)
		if ok && !maybe {
			s.lookups.absent.Add(1)
			return 0, log.ErrNotFound
		}
		filtered = ok
	}
	v, err := s.get(leafKey(leafHash))
	switch {
	case filtered && errors.Is(err, log.ErrNotFound):
		s.lookups.falsePositive.Add(1)
	case filtered && err == nil:
		s.lookups.found.Add(1)
	case !filtered && (err == nil || errors.Is(err, log.ErrNotFound)):
		s.lookups.unfiltered.Add(1)
	}
	if err != nil {
		return 0, err
	}
	idx, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("corrupt leaf index value %x", v)
	}
	return idx, nil
}

// Commit implements log.Storage.
func (s *Storage) Commit(ctx context.Context, c *log.Commit) error {
	wait, err := s.StartCommit(ctx, c)
	if err != nil {
		return err
	}
	return wait()
}

// StartCommit implements log.PipelinedStorage: it writes c's batch to the
// WAL and the memtable, where the next commit's compare-and-swap sees it,
// and leaves waiting for the WAL sync to wait. Pebble syncs the WAL in
// order, so a batch is never durable without the ones written before it,
// and batches written during one sync share the next.
func (s *Storage) StartCommit(ctx context.Context, c *log.Commit) (wait func() error, err error) {
	if c.NewSize < c.OldSize {
		return nil, fmt.Errorf("commit shrinks the tree from %d to %d", c.OldSize, c.NewSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	if size != c.OldSize {
		return nil, fmt.Errorf("%w: stored size %d, commit expects %d", log.ErrConflict, size, c.OldSize)
	}
	// A commit that indexes its entries (they carry terms: the log does
	// not defer indexing, DeferredIndexer) extends what the index covers
	// if it covered every entry before; the first commit records it.
	indexed, writeIndexed := uint64(0), c.OldSize == 0
	if slices.ContainsFunc(c.Leaves, func(l log.LeafIndex) bool { return len(l.Terms) > 0 }) {
		if !writeIndexed {
			covered, known, err := s.IndexedSize(ctx)
			if err != nil {
				return nil, err
			}
			writeIndexed = known && covered == c.OldSize
		}
		if writeIndexed {
			indexed = c.NewSize
		}
	}
	syncWait, err := s.h.write(func(b *pebble.Batch) error {
		if err := fillBatch(b, c, s.filter); err != nil {
			return err
		}
		if writeIndexed {
			return setIndexed(b, indexed)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("couldn't write the batch: %w", writeError(err))
	}
	if s.filter != nil && s.filter.needsScan() {
		// Under s.mu: this commit is in the memtable, the next will add
		// to the new filter.
		if db, release, err := s.h.read(); err == nil {
			s.filter.start(db, c.NewSize)
			release()
		}
	}
	if c.OldSize == 0 {
		// The index of a log with no entries covers them all.
		s.searchComplete.Store(true)
	}
	return func() error {
		if err := syncWait(); err != nil {
			return fmt.Errorf("couldn't sync the batch: %w", writeError(err))
		}
		if s.tiles != nil {
			s.tiles.synced(c.NewSize)
		}
		if s.bundles != nil {
			s.bundles.synced(c.NewSize)
		}
		return nil
	}, nil
}

// writeError makes err, a failed write, say whether the disk is full
// (log.ErrNoSpace) or storage is unusable until the database is reopened
// for writing (log.ErrUnavailable): the log answers 503 for both.
func writeError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %w", log.ErrNoSpace, err)
	case errors.Is(err, errReadOnly):
		return fmt.Errorf("%w: %w", log.ErrUnavailable, err)
	default:
		return err
	}
}

// fillBatch puts c's writes in b, adding its leaves to filter (if not nil).
func fillBatch(b *pebble.Batch, c *log.Commit, filter *leafFilters) error {
	for _, t := range c.Tiles {
		full := len(t.Hashes) == api.TileWidth*api.HashSize
		if err := setChunked(b, tileKey(t.Level, t.Index), t.Hashes, t.Start, full); err != nil {
			return fmt.Errorf("tile %d/%d: %w", t.Level, t.Index, err)
		}
		if full && len(t.Rows) > 0 {
			if err := b.Set(tileRowsKey(t.Level, t.Index), t.Rows, nil); err != nil {
				return fmt.Errorf("tile %d/%d: %w", t.Level, t.Index, err)
			}
		}
	}
	for _, e := range c.Bundles {
		if err := setChunked(b, bundleKey(e.Index), e.Bundle, e.Start, e.Full); err != nil {
			return fmt.Errorf("entry bundle %d: %w", e.Index, err)
		}
	}
	if err := fillSearch(b, c.Leaves); err != nil {
		return err
	}
	if c.OldSize == 0 {
		if err := b.Set(searchStateKey, []byte{searchComplete}, nil); err != nil {
			return err
		}
	}
	var vb [binary.MaxVarintLen64]byte
	for _, l := range c.Leaves {
		if err := b.Set(leafKey(l.LeafHash), vb[:binary.PutUvarint(vb[:], l.Index)], nil); err != nil {
			return err
		}
		if filter != nil {
			// Before the write: a lookup must never miss a stored leaf.
			filter.add(l.LeafHash)
		}
	}
	cp := make([]byte, 8+len(c.Checkpoint))
	binary.BigEndian.PutUint64(cp, c.NewSize)
	copy(cp[8:], c.Checkpoint)
	return b.Set(checkpointKey, cp, nil)
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf panics: pebble goes on after it as if nothing failed. A handle
// turns the panic back into an error where it writes (recoverFatal).
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(fatalError(msg))
}

// fatalError is the panic of pebbleLogger.Fatalf.
type fatalError string

func (e fatalError) Error() string { return "pebble: fatal: " + string(e) }

var _ log.TileRowsReader = (*Storage)(nil)
