package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/s2"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/atomicfile"
	"github.com/candorlog/candor/internal/bundlezstd"
	"github.com/candorlog/candor/log"
)

// Bundle files hold the full entry bundles, moved out of pebble once the
// commit that filled them is synced: each bundle compressed (one zstd
// frame; S2 in logs written before zstd) in one data file, one after the
// other, and its end offset and CRC-32C in an index file of fixed-size
// records. A read of a full bundle is then two preads and a
// decompression into the caller's buffer, or none for a client that
// takes the zstd content coding, at any size of the log; zstd keeps the
// files at about a sixth of the bundles, a third smaller than S2, so
// that more of a large log's bundles stay in the page cache. A pebble
// lookup of a bundle outside the block cache (nearly
// every one in a log of millions of entries) also checksums the block,
// allocates and zeroes its compressed and decompressed copies and puts
// them in the cache, and costs several times that. The bundles also
// leave pebble's compactions, which would otherwise rewrite them at each
// level.
//
// Unlike the tile files, the bundle files are the only copy of the
// bundles they hold: the mover writes and syncs a batch of bundles to
// them, and only then records in pebble how many bundles the files hold
// and deletes those from pebble, in one batch. At start the files are cut
// to the count pebble records (a crash between the sync and that batch
// leaves bundles that pebble still has); files shorter than it are an
// error: bundles would be missing. The files must be kept, and copied
// with the database.
//
// The files of generation 0 are bundles/data and bundles/index; a
// rewrite of the files (RecompressBundles) writes those of the next
// generation, data.1 and index.1 and so on, beside them, and switches to
// them when pebble records the new generation with the count.
const (
	bundleFilesDir  = "bundles"
	bundleDataName  = "data"
	bundleIndexName = "index"
	// bundleIndexSize is the size of an index record: the end offset of
	// the bundle in the data file (u64 BE, its top byte the bundle's
	// codec) and the CRC-32C of its index and compressed bytes (u32 BE).
	bundleIndexSize = 12
	// The codecs of an index record's top byte.
	codecS2    = 0
	codecZstd  = 1
	offsetMask = 1<<56 - 1
	// bundleMoveBatch is how many bundles the mover writes with one sync,
	// unless they come to bundleMoveBytes compressed before.
	bundleMoveBatch = 64
	bundleMoveBytes = 8 << 20
	// maxPooledScratch is the largest buffer a read of a compressed
	// bundle keeps for the next (bundles of large entries get their own).
	maxPooledScratch = 1 << 20
	// maxBundleBytes is the largest entry bundle: 256 entries of at most
	// 65,535 bytes, each after its 2-byte length.
	maxBundleBytes = bundlezstd.MaxSize
	// bundleMoveEvery is how often at most the mover moves fewer than
	// bundleMoveBatch bundles.
	bundleMoveEvery = time.Second
	// bundleFlushAfter is how many bundles (about a gigabyte) the mover
	// deletes from pebble between flushes of its memtable.
	bundleFlushAfter = 4096
	// bundleRetry is the longest the mover waits after a failed move.
	bundleRetry = time.Minute
)

// bundleFilesKey records how many full bundles, from the first, the bundle
// files hold (u64 BE): those are no longer in pebble; and, after it, the
// files' generation (u32 BE), if not 0.
var bundleFilesKey = []byte{prefixBundleFiles}

// bundleFileNames returns the names of the data and index files of
// generation gen.
func bundleFileNames(gen uint32) (data, index string) {
	if gen == 0 {
		return bundleDataName, bundleIndexName
	}
	return fmt.Sprintf("%s.%d", bundleDataName, gen), fmt.Sprintf("%s.%d", bundleIndexName, gen)
}

// bundleFilesValue is the value of bundleFilesKey for n bundles in the
// files of generation gen.
func bundleFilesValue(n uint64, gen uint32) []byte {
	v := binary.BigEndian.AppendUint64(nil, n)
	if gen != 0 {
		v = binary.BigEndian.AppendUint32(v, gen)
	}
	return v
}

// bundleFiles are the bundle files of one store and, if the store moves
// bundles to them, the goroutine that does.
type bundleFiles struct {
	h          *handle
	logger     *slog.Logger
	data       *os.File
	index      *os.File
	checkSpace func() error
	// gen is the files' generation.
	gen uint32
	// n is how many bundles the files hold: reads of bundles below it use
	// them. Set once they are synced, before pebble deletes its copies.
	n atomic.Uint64
	// end is the size of the data file's n bundles (the mover's alone).
	end uint64
	// unflushed is how many bundles the mover deleted from pebble since
	// it last flushed pebble's memtable (the mover's alone).
	unflushed uint64
	// durable is the tree size whose commit is synced.
	durable atomic.Uint64
	// failedMoves counts failed moves, for the metric.
	failedMoves atomic.Uint64
	wake        chan struct{}
	stopping    chan struct{}
	done        chan struct{}
	stopOnce    sync.Once
}

// readBundleFilesCount returns how many bundles pebble records the files
// hold (0 if none), and the files' generation.
func readBundleFilesCount(h *handle) (uint64, uint32, error) {
	v, err := h.get(bundleFilesKey)
	if errors.Is(err, log.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't read how many bundles the bundle files hold: %w", err)
	}
	switch len(v) {
	case 8:
		return binary.BigEndian.Uint64(v), 0, nil
	case 12:
		return binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:]), nil
	}
	return 0, 0, fmt.Errorf("the record of how many bundles the bundle files hold is %d bytes long", len(v))
}

// openBundleFiles opens the bundle files in dir for a store whose durable
// tree has size entries. With move, it creates them if there are none and
// starts the mover; without, it opens the files only if pebble records
// bundles in them (nil, nil if it records none), for reads. It fails if
// the files lack bundles that pebble records they hold.
func openBundleFiles(dir string, h *handle, size uint64, move bool, logger *slog.Logger) (*bundleFiles, error) {
	n, gen, err := readBundleFilesCount(h)
	if err != nil {
		return nil, err
	}
	if n == 0 && !move {
		return nil, nil
	}
	flag := os.O_RDONLY
	if move {
		flag = os.O_RDWR
		if n == 0 {
			flag |= os.O_CREATE
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("couldn't create the bundle files' directory: %w", err)
		}
	}
	bf := &bundleFiles{
		h: h, gen: gen, logger: logger.With("component", "bundle-files"), checkSpace: h.o.CheckSpace,
		wake: make(chan struct{}, 1), stopping: make(chan struct{}), done: make(chan struct{}),
	}
	open := func(name string) (*os.File, error) {
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, flag, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the database records %d entry bundles in the bundle files, but there is no %s: restore %s from the copy taken with the database", n, path, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't open the bundle files: %w", err)
		}
		return f, nil
	}
	dataName, indexName := bundleFileNames(gen)
	if bf.data, err = open(dataName); err != nil {
		return nil, err
	}
	if bf.index, err = open(indexName); err != nil {
		bf.data.Close()
		return nil, err
	}
	if err := bf.cut(n, move); err != nil {
		bf.closeFiles()
		return nil, err
	}
	if move {
		// The files of other generations: the old ones after a rewrite,
		// or the new ones of a rewrite that a crash stopped.
		if err := removeBundleFiles(dir, gen); err != nil {
			bf.closeFiles()
			return nil, err
		}
	}
	if move && n == 0 {
		// The files may be new: their names must survive a crash once
		// pebble records bundles in them.
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := atomicfile.SyncDir(d); err != nil {
				bf.closeFiles()
				return nil, fmt.Errorf("couldn't sync the bundle files' directory: %w", err)
			}
		}
	}
	bf.n.Store(n)
	bf.durable.Store(size)
	if n > 0 {
		var rec [bundleIndexSize]byte
		if _, err := bf.index.ReadAt(rec[:], 0); err == nil && rec[0] == codecS2 {
			bf.logger.Info("the bundle files hold bundles an earlier version compressed with S2, which are served uncompressed and take a third more space; candor-log recompress-bundles (log stopped) rewrites them with zstd")
		}
	}
	if !move {
		close(bf.done)
		return bf, nil
	}
	go bf.run()
	return bf, nil
}

// cut checks that the files hold the n bundles pebble records, and cuts
// off what follows them if writable: bundles a crash left unrecorded.
func (bf *bundleFiles) cut(n uint64, writable bool) error {
	lost := func(what string) error {
		return fmt.Errorf("the database records %d entry bundles in the bundle files, but %s: bundles are missing; restore %s from the copy taken with the database", n, what, filepath.Dir(bf.data.Name()))
	}
	ist, err := bf.index.Stat()
	if err != nil {
		return err
	}
	if uint64(ist.Size()) < n*bundleIndexSize {
		return lost(fmt.Sprintf("its index holds %d", uint64(ist.Size())/bundleIndexSize))
	}
	if n > 0 {
		var rec [bundleIndexSize]byte
		if _, err := bf.index.ReadAt(rec[:], int64(n-1)*bundleIndexSize); err != nil {
			return fmt.Errorf("couldn't read the bundle files' index: %w", err)
		}
		bf.end = binary.BigEndian.Uint64(rec[:]) & offsetMask
	}
	dst, err := bf.data.Stat()
	if err != nil {
		return err
	}
	if uint64(dst.Size()) < bf.end {
		return lost(fmt.Sprintf("the data file has %d of their %d bytes", dst.Size(), bf.end))
	}
	if !writable {
		return nil
	}
	if err := cutFile(bf.index, int64(n*bundleIndexSize)); err != nil {
		return fmt.Errorf("couldn't cut the bundle files' index to %d bundles: %w", n, err)
	}
	if err := cutFile(bf.data, int64(bf.end)); err != nil {
		return fmt.Errorf("couldn't cut the bundle data file to %d bundles: %w", n, err)
	}
	return nil
}

func (bf *bundleFiles) closeFiles() {
	bf.data.Close()
	bf.index.Close()
}

// synced records that the tree of size entries is durable in pebble.
func (bf *bundleFiles) synced(size uint64) { raiseDurable(&bf.durable, bf.wake, size) }

// close stops the mover and closes the files.
func (bf *bundleFiles) close() {
	bf.stopOnce.Do(func() { close(bf.stopping) })
	<-bf.done
	bf.closeFiles()
}

// bundleScratch holds the compressed bundles being read.
var bundleScratch = sync.Pool{New: func() any { return new([]byte) }}

// appendBundle appends the bundle index, which must be below n, to dst.
func (bf *bundleFiles) appendBundle(dst []byte, index uint64) ([]byte, error) {
	p := bundleScratch.Get().(*[]byte)
	defer func() {
		if cap(*p) <= maxPooledScratch {
			bundleScratch.Put(p)
		}
	}()
	codec, c, err := bf.appendStored((*p)[:0], index)
	if err != nil {
		return nil, err
	}
	*p = c
	return decodeStored(dst, index, codec, c)
}

// decodeStored appends bundle index, stored as c with codec, decompressed
// to dst.
func decodeStored(dst []byte, index uint64, codec byte, c []byte) ([]byte, error) {
	switch codec {
	case codecZstd:
		out, err := bundlezstd.AppendDecoded(dst, c)
		if err != nil {
			return nil, fmt.Errorf("the bundle data file is corrupt: %w", err)
		}
		return out, nil
	case codecS2:
		n, err := s2.DecodedLen(c)
		if err != nil || n > maxBundleBytes {
			return nil, fmt.Errorf("the bundle data file is corrupt: %d bytes decoded (%v)", n, err)
		}
		l := len(dst)
		dst = slices.Grow(dst, n)
		if _, err := s2.Decode(dst[l:l+n], c); err != nil {
			return nil, fmt.Errorf("the bundle data file is corrupt: %w", err)
		}
		return dst[:l+n], nil
	}
	return nil, fmt.Errorf("the bundle files' index is corrupt: bundle %d has codec %d", index, codec)
}

// appendStored appends the bundle index, which must be below n, as the
// files hold it, compressed, to dst, after checking its CRC, and returns
// its codec.
func (bf *bundleFiles) appendStored(dst []byte, index uint64) (codec byte, _ []byte, _ error) {
	var ix [2 * bundleIndexSize]byte
	rec, at := ix[:bundleIndexSize], int64(0)
	if index > 0 {
		rec, at = ix[:], int64(index-1)*bundleIndexSize
	}
	if _, err := bf.index.ReadAt(rec, at); err != nil {
		return 0, nil, fmt.Errorf("couldn't read the bundle files' index: %w", err)
	}
	var start uint64
	if index > 0 {
		start, rec = binary.BigEndian.Uint64(rec)&offsetMask, rec[bundleIndexSize:]
	}
	end, sum := binary.BigEndian.Uint64(rec), binary.BigEndian.Uint32(rec[8:])
	codec, end = byte(end>>56), end&offsetMask
	if end < start || end-start > uint64(s2.MaxEncodedLen(maxBundleBytes)) {
		return 0, nil, fmt.Errorf("the bundle files' index is corrupt: bundle from byte %d to %d", start, end)
	}
	l := len(dst)
	dst = slices.Grow(dst, int(end-start))
	c := dst[l : l+int(end-start)]
	if _, err := bf.data.ReadAt(c, int64(start)); err != nil {
		return 0, nil, fmt.Errorf("couldn't read the bundle data file: %w", err)
	}
	if got := bundleCRC(index, c); got != sum {
		return 0, nil, fmt.Errorf("the bundle data file is corrupt: CRC %08x, the index says %08x", got, sum)
	}
	return codec, dst[:l+len(c)], nil
}

// appendBundleRecord appends the index record of bundle index, compressed
// c with codec, which ends at byte end of the data file.
func appendBundleRecord(rec []byte, index uint64, codec byte, end uint64, c []byte) []byte {
	rec = binary.BigEndian.AppendUint64(rec, uint64(codec)<<56|end)
	return binary.BigEndian.AppendUint32(rec, bundleCRC(index, c))
}

func bundleCRC(index uint64, compressed []byte) uint32 {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], index)
	return crc32.Update(crc32.Update(0, castagnoli, k[:]), castagnoli, compressed)
}

func (bf *bundleFiles) run() {
	defer close(bf.done)
	bf.readAhead()
	var logged time.Time
	stop := func() {
		// The bundles the last commits filled, for the next start.
		if err := bf.catchUp(true); err != nil {
			bf.logger.Warn("couldn't move the last bundles to the bundle files; the next start moves them", "err", err)
		}
	}
	for {
		moved := time.Now()
		if err := bf.catchUp(false); err != nil {
			bf.failedMoves.Add(1)
			if time.Since(logged) >= bundleRetry {
				logged = time.Now()
				bf.logger.Error("couldn't move entry bundles to the bundle files; they stay in pebble until a retry works", "err", err)
			}
			select {
			case <-bf.stopping:
				return
			case <-time.After(time.Second):
			}
			select {
			case <-bf.stopping:
				return
			case <-bf.wake:
			case <-time.After(bundleRetry):
			}
			continue
		}
		select {
		case <-bf.stopping:
			stop()
			return
		case <-bf.wake:
		}
		// A move costs two syncs, which the commits' syncs wait behind:
		// a log taking entries fills a bundle every few milliseconds,
		// so the mover gathers them for bundleMoveEvery, unless a batch
		// is waiting.
		if bf.durable.Load()/api.TileWidth < bf.n.Load()+bundleMoveBatch {
			select {
			case <-bf.stopping:
				stop()
				return
			case <-time.After(time.Until(moved.Add(bundleMoveEvery))):
			}
		}
	}
}

// readAhead asks the system to read the data file into the page cache,
// if it is at most readAheadShare of the machine's memory, as the tile
// files are: a restarted log then serves random bundles at once at the
// rate it will keep, rather than first wait on the disk for each (at
// 10 M entries, 1.8 GB: some 8,000 bundles a second for the first
// hundred thousand against 12,000).
func (bf *bundleFiles) readAhead() {
	start := time.Now()
	asked, err := readAhead(bf.data, int64(bf.end), bf.stopping)
	if err != nil {
		bf.logger.Warn("couldn't ask for the bundle data file to be read ahead", "err", err)
	} else if asked {
		bf.logger.Info("asked the system to read the bundle data file into the page cache", "bytes", bf.end, "duration", time.Since(start).Round(time.Millisecond))
	}
}

// catchUp moves every full bundle of the durable tree that the files do
// not hold yet, bundleMoveBatch at a time, until the store stops; last
// moves one batch at most, stopping or not.
func (bf *bundleFiles) catchUp(last bool) error {
	full := bf.durable.Load() / api.TileWidth
	for n, moved := bf.n.Load(), false; n < full; n, moved = bf.n.Load(), true {
		if last && moved {
			return nil
		}
		select {
		case <-bf.stopping:
			if !last {
				return nil
			}
		default:
		}
		if err := roomToWrite(bf.checkSpace); err != nil {
			return err
		}
		if err := bf.move(n, min(full, n+bundleMoveBatch)); err != nil {
			return fmt.Errorf("bundles from %d: %w", n, err)
		}
		if bf.unflushed >= bundleFlushAfter {
			bf.flush()
		}
	}
	if bf.unflushed >= bundleFlushAfter/16 {
		// The end of a long catch-up (the first start of a log that had
		// its bundles in pebble; a disk that was full).
		bf.flush()
	}
	return nil
}

// flush starts a flush of pebble's memtable, whose range deletions of
// the moved bundles then free their space on disk: a memtable holding
// only those would not fill, and be flushed, for a long time.
func (bf *bundleFiles) flush() {
	if err := roomToWrite(bf.checkSpace); err != nil {
		return
	}
	if err := bf.h.flush(); err != nil {
		bf.logger.Warn("couldn't flush pebble's memtable after moving bundles", "err", err)
		return
	}
	bf.unflushed = 0
}

// move writes the full bundles from from, up to to or bundleMoveBytes of
// them compressed, to the files, syncs them, and then records them in
// pebble and deletes them there.
func (bf *bundleFiles) move(from, to uint64) error {
	data, index, err := bf.compressed(from, to)
	if err != nil {
		return err
	}
	to = from + uint64(len(index)/bundleIndexSize)
	if _, err := bf.data.WriteAt(data, int64(bf.end)); err != nil {
		return err
	}
	if _, err := bf.index.WriteAt(index, int64(from)*bundleIndexSize); err != nil {
		return err
	}
	if err := bf.data.Sync(); err != nil {
		return fmt.Errorf("couldn't sync the bundle data file: %w", err)
	}
	if err := bf.index.Sync(); err != nil {
		return fmt.Errorf("couldn't sync the bundle files' index: %w", err)
	}
	// Reads use the files from here on: pebble may delete its copies.
	bf.end += uint64(len(data))
	bf.n.Store(to)
	bf.unflushed += to - from
	if hook := bf.h.o.beforeBundleRecord; hook != nil {
		if err := hook(); err != nil {
			return err
		}
	}
	// The record deletes pebble's copies from the last recorded bundle:
	// those of moves whose record failed, or was lost with a WAL write
	// that failed after it, are deleted with this one's.
	recorded, _, err := readBundleFilesCount(bf.h)
	if err != nil {
		return err
	}
	// Not synced: a crash that loses the batch keeps the bundles in
	// pebble, and the next start cuts them from the files.
	return bf.h.writeNoSync(func(b *pebble.Batch) error {
		if err := b.Set(bundleFilesKey, bundleFilesValue(to, bf.gen), nil); err != nil {
			return err
		}
		return b.DeleteRange(bundleKey(min(recorded, from)), bundleKey(to), nil)
	})
}

// compressed reads the full bundles from from, up to to or until they
// come to bundleMoveBytes compressed, from pebble and returns them
// compressed, one after the other, and their index records. It holds one
// bundle uncompressed at a time.
func (bf *bundleFiles) compressed(from, to uint64) (data, index []byte, err error) {
	db, release, err := bf.h.read()
	if err != nil {
		return nil, nil, err
	}
	defer release()
	next := from
	add := func(b []byte) {
		start, codec := len(data), byte(codecZstd)
		if bf.h.o.s2Bundles {
			data, codec = append(data, s2.Encode(nil, b)...), codecS2
		} else {
			data = bundlezstd.Append(data, b)
		}
		index = appendBundleRecord(index, next, codec, bf.end+uint64(len(data)), data[start:])
		next++
	}
	// A full bundle is one chunk at offset 0 (setChunked), in the order
	// of the bundles; one that is not (filled in chunks by an older
	// version) is read whole.
	var chunked error
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: chunkKey(bundleKey(from), 0), UpperBound: bundleKey(to)})
	if err != nil {
		return nil, nil, err
	}
	for ok := it.First(); ok && next < to && len(data) < bundleMoveBytes; ok = it.Next() {
		k := it.Key()
		if len(k) != 13 || binary.BigEndian.Uint64(k[1:9]) != next || binary.BigEndian.Uint32(k[9:]) != 0 {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, nil, err
		}
		if !fullBundle(v) {
			if v, chunked = readChunkedDB(db, bundleKey(next)); chunked != nil {
				break
			}
			if !fullBundle(v) {
				chunked = fmt.Errorf("entry bundle %d is not full", next)
				break
			}
		}
		add(v)
	}
	if err := errors.Join(chunked, it.Error(), it.Close()); err != nil {
		return nil, nil, err
	}
	if next == from || next < to && len(data) < bundleMoveBytes {
		return nil, nil, fmt.Errorf("entry bundle %d: %w", next, log.ErrNotFound)
	}
	return data, index, nil
}

// removeBundleFiles removes from dir the bundle files of every generation
// but gen.
func removeBundleFiles(dir string, gen uint32) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("couldn't list the bundle files: %w", err)
	}
	keepData, keepIndex := bundleFileNames(gen)
	removed := false
	for _, e := range entries {
		name := e.Name()
		if name == keepData || name == keepIndex || !isBundleFileName(name) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("couldn't remove bundle files of another generation: %w", err)
		}
		removed = true
	}
	if removed {
		return atomicfile.SyncDir(dir)
	}
	return nil
}

// isBundleFileName reports whether name is that of a data or index file
// of some generation.
func isBundleFileName(name string) bool {
	for _, base := range []string{bundleDataName, bundleIndexName} {
		if name == base {
			return true
		}
		if rest, ok := strings.CutPrefix(name, base+"."); ok {
			if _, err := strconv.ParseUint(rest, 10, 32); err == nil {
				return true
			}
		}
	}
	return false
}

// RecompressStats describes a rewrite of the bundle files.
type RecompressStats struct {
	// Bundles is how many bundles the files hold; Recompressed is how
	// many of them had another codec than zstd.
	Bundles, Recompressed uint64
	// Before and After are the sizes of the data file.
	Before, After uint64
}

// RecompressBundles rewrites the bundle files of the stopped log whose
// database is in dir with zstd, the codec the log gives new bundles: the
// bundles that an earlier version compressed with S2 then take a third
// less space and are served compressed to the clients that take zstd. It
// writes the files of the next generation beside the current ones (the
// disk needs room for both), syncs them, records the new generation in
// pebble, and only then removes the old files: stopped before that
// record, the log keeps its files, and its next start removes the new
// ones. progress, if not nil, is called after each batch of bundles.
func RecompressBundles(ctx context.Context, dir string, o Options, progress func(done, total uint64)) (_ RecompressStats, err error) {
	o.BundleFiles = false
	s, err := Open(dir, o)
	if err != nil {
		return RecompressStats{}, err
	}
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	bf := s.bundles
	if bf == nil {
		return RecompressStats{}, nil
	}
	st := RecompressStats{Bundles: bf.n.Load(), Before: bf.end}
	gen := bf.gen + 1
	bdir := filepath.Join(dir, bundleFilesDir)
	dataName, indexName := bundleFileNames(gen)
	create := func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(bdir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	data, err := create(dataName)
	if err != nil {
		return st, fmt.Errorf("couldn't create the new bundle files: %w", err)
	}
	defer data.Close()
	index, err := create(indexName)
	if err != nil {
		return st, fmt.Errorf("couldn't create the new bundle files: %w", err)
	}
	defer index.Close()
	written := false
	defer func() {
		if !written {
			os.Remove(data.Name())
			os.Remove(index.Name())
			if err != nil {
				err = fmt.Errorf("%w; the log keeps its bundle files", err)
			}
		}
	}()
	var end uint64
	batch := make([][]byte, bundleMoveBatch)
	encoders := make([]*bundlezstd.Encoder, runtime.GOMAXPROCS(0))
	for i := range encoders {
		encoders[i] = bundlezstd.NewEncoder()
	}
	var records []byte
	for from := uint64(0); from < st.Bundles; from += bundleMoveBatch {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		k := min(st.Bundles-from, bundleMoveBatch)
		recompressed, err := recompressBatch(bf, from, batch[:k], encoders)
		if err != nil {
			return st, err
		}
		st.Recompressed += recompressed
		var out []byte
		records = records[:0]
		for i, c := range batch[:k] {
			out = append(out, c...)
			records = appendBundleRecord(records, from+uint64(i), codecZstd, end+uint64(len(out)), c)
		}
		if _, err := data.WriteAt(out, int64(end)); err != nil {
			return st, fmt.Errorf("couldn't write the new bundle data file: %w", err)
		}
		if _, err := index.WriteAt(records, int64(from)*bundleIndexSize); err != nil {
			return st, fmt.Errorf("couldn't write the new bundle files' index: %w", err)
		}
		end += uint64(len(out))
		if progress != nil {
			progress(from+k, st.Bundles)
		}
	}
	st.After = end
	if err := errors.Join(data.Sync(), index.Sync(), atomicfile.SyncDir(bdir)); err != nil {
		return st, fmt.Errorf("couldn't sync the new bundle files: %w", err)
	}
	// From here the new files stay: a record that fails may still be
	// durable.
	written = true
	wait, err := s.h.write(func(b *pebble.Batch) error {
		return b.Set(bundleFilesKey, bundleFilesValue(st.Bundles, gen), nil)
	})
	if err == nil {
		err = wait()
	}
	if err != nil {
		return st, fmt.Errorf("couldn't record the new bundle files (both generations are kept: the log uses the one pebble records, and its next start removes the other): %w", err)
	}
	closed = true
	if err := s.Close(); err != nil {
		return st, err
	}
	if err := removeBundleFiles(bdir, gen); err != nil {
		return st, fmt.Errorf("the new bundle files are in use; %w", err)
	}
	return st, nil
}

// recompressBatch reads the bundles from from into out, each compressed
// with zstd, recompressing those of other codecs on a worker for each of
// encoders (one a core), and returns how many it recompressed.
func recompressBatch(bf *bundleFiles, from uint64, out [][]byte, encoders []*bundlezstd.Encoder) (uint64, error) {
	var next, recompressed atomic.Uint64
	errs := make([]error, len(encoders))
	var wg sync.WaitGroup
	for w, enc := range encoders {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < uint64(len(out)); i = next.Add(1) - 1 {
				codec, c, err := bf.appendStored(out[i][:0], from+i)
				if err == nil && codec != codecZstd {
					var raw []byte
					if raw, err = decodeStored(nil, from+i, codec, c); err == nil {
						c = enc.Append(c[:0], raw)
						recompressed.Add(1)
					}
				}
				if err != nil {
					errs[w] = fmt.Errorf("entry bundle %d: %w", from+i, err)
					return
				}
				out[i] = c
			}
		})
	}
	wg.Wait()
	return recompressed.Load(), errors.Join(errs...)
}
