package pebble

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

// Tile files keep a copy of the full hash tiles, each with its stored rows
// (log.TileData.Rows), in one flat file per tile level: the record of tile
// i at offset i × tileRecordSize. A read of a full tile is then one pread,
// where a pebble lookup that misses the block cache costs several times
// that (the level's index blocks, filters, a block read, checksummed and
// cached): in a log much larger than the block cache, nearly every proof
// and tile read misses it.
//
// Pebble stays the truth. A tile goes into its file only once the commit
// that filled it is synced, so the file never holds a tile that a crash
// could take back, and at start a file longer than the durable tree is
// cut to it. Each record carries a CRC-32C over its level, index and
// content: a record a crash left torn or unwritten is found by the check
// of the files' tails at start or by the read that meets it, and the read
// falls back to pebble and has it written again. The files are never
// synced: what a crash loses is written again from pebble. Deleting the
// directory while the store is closed is safe.
const (
	tileFilesDir    = "tiles"
	tileHashesBytes = api.TileWidth * api.HashSize
	tileRecordSize  = tileHashesBytes + log.TileRowsSize + 4 + 4 // hashes, rows, flags, CRC
	// tileRecordHasRows is the flag of a record whose tile has stored rows.
	tileRecordHasRows = 1
	// tileTailCheck is how many records at the end of each file the start
	// checks, those that a crash most likely left unwritten (a million
	// entries; the system writes dirty pages back within half a minute),
	// so that their reads need not find them. A catch-up of many records
	// may leave more: every read checks its record anyway.
	tileTailCheck = 4096
	// tileCopyBatch is how many tiles the writer reads and writes at once.
	tileCopyBatch = 256
	// tileLevels is the most tile levels a tree has (64-bit sizes).
	tileLevels = 64 / api.TileHeight
	// tileRetry is the longest the writer waits after a failed write.
	tileRetry = time.Minute
	// readAheadShare: at start, the files of the levels are read ahead
	// into the page cache, each if it is at most this share of the
	// machine's memory (the level-0 file is 36 bytes an entry).
	readAheadShare = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// tileFiles are the tile files of one store and the goroutine that
// writes them.
type tileFiles struct {
	dir    string
	h      *handle
	logger *slog.Logger
	files  [tileLevels]atomic.Pointer[tileFile]
	// durable is the tree size whose commit is synced.
	durable atomic.Uint64
	// badReads counts reads that found a record missing or corrupt.
	badReads atomic.Uint64
	// repairs are records a read found corrupt, for the writer to write
	// again (at most tileRepairs at a time).
	repairMu sync.Mutex
	repairs  map[tileID]bool
	// tailCheck is how many records at the end of each file the start
	// checks (tileTailCheck but in tests).
	tailCheck uint64
	// checkSpace, if set, fails while the filesystem is below its
	// reserve: the writer waits.
	checkSpace func() error
	// lastWarn is when bad last logged (at most one a minute).
	lastWarn atomic.Int64
	wake     chan struct{}
	stopping chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	// ahead is the read-ahead of the files at start.
	ahead sync.WaitGroup
}

// tailCheck is how many records at the end of each tile file the start
// checks.
func (o Options) tailCheck() uint64 {
	if o.tileTailCheck > 0 {
		return o.tileTailCheck
	}
	return tileTailCheck
}

// tileRepairs is the most corrupt records waiting to be written again.
const tileRepairs = 64

type tileID struct {
	level uint8
	index uint64
}

// tileFile is the file of one tile level.
type tileFile struct {
	f *os.File
	// n is how many records from the start reads may use: written, and
	// checked at start.
	n atomic.Uint64
}

// openTileFiles starts the writer of the tile files in dir (created when
// the first is written), for a store whose durable tree has size entries:
// it opens those there are, and reads use them once it has checked them.
func openTileFiles(dir string, h *handle, size uint64, logger *slog.Logger) *tileFiles {
	tf := &tileFiles{
		dir: dir, h: h, logger: logger.With("component", "tile-files"), tailCheck: h.o.tailCheck(), checkSpace: h.o.CheckSpace,
		wake: make(chan struct{}, 1), stopping: make(chan struct{}), done: make(chan struct{}),
	}
	tf.durable.Store(size)
	go tf.run(size)
	return tf
}

// synced records that the tree of size entries is durable in pebble.
func (tf *tileFiles) synced(size uint64) { raiseDurable(&tf.durable, tf.wake, size) }

// raiseDurable raises durable, a durable tree size, to size unless it is
// larger already (commits' waits may return out of order), and wakes the
// goroutine that writes what it covers.
func raiseDurable(durable *atomic.Uint64, wake chan<- struct{}, size uint64) {
	for {
		cur := durable.Load()
		if size <= cur || durable.CompareAndSwap(cur, size) {
			break
		}
	}
	select {
	case wake <- struct{}{}:
	default:
	}
}

// close stops the writer and closes the files.
func (tf *tileFiles) close() {
	tf.stopOnce.Do(func() { close(tf.stopping) })
	<-tf.done
	for i := range tf.files {
		if f := tf.files[i].Swap(nil); f != nil {
			f.f.Close()
		}
	}
}

// readable is how many tiles reads take from the files.
func (tf *tileFiles) readable() uint64 {
	var n uint64
	for i := range tf.files {
		if f := tf.files[i].Load(); f != nil {
			n += f.n.Load()
		}
	}
	return n
}

// read returns the hashes and the rows (nil if it has none) of the full
// tile (level, index), and false if the files do not have it.
func (tf *tileFiles) read(level uint8, index uint64) (hashes, rows []byte, ok bool) {
	if int(level) >= tileLevels {
		return nil, nil, false
	}
	f := tf.files[level].Load()
	if f == nil || index >= f.n.Load() {
		return nil, nil, false
	}
	rec := make([]byte, tileRecordSize)
	if _, err := f.f.ReadAt(rec, int64(index)*tileRecordSize); err != nil {
		if !errors.Is(err, os.ErrClosed) {
			tf.bad(level, index, err)
		}
		return nil, nil, false
	}
	if err := checkTileRecord(level, index, rec); err != nil {
		tf.bad(level, index, err)
		return nil, nil, false
	}
	hashes = rec[:tileHashesBytes:tileHashesBytes]
	if binary.BigEndian.Uint32(rec[tileRecordSize-8:]) == tileRecordHasRows {
		rows = rec[tileHashesBytes : tileHashesBytes+log.TileRowsSize : tileHashesBytes+log.TileRowsSize]
	}
	return hashes, rows, true
}

// bad counts a record a read could not use and has the writer write it
// again.
func (tf *tileFiles) bad(level uint8, index uint64, err error) {
	n := tf.badReads.Add(1)
	if last, now := tf.lastWarn.Load(), time.Now().UnixNano(); now-last >= int64(time.Minute) && tf.lastWarn.CompareAndSwap(last, now) {
		tf.logger.Warn("a tile file's record is unusable; reading pebble and writing it again", "level", level, "index", index, "err", err, "bad_reads", n)
	}
	tf.repairMu.Lock()
	if len(tf.repairs) < tileRepairs {
		if tf.repairs == nil {
			tf.repairs = make(map[tileID]bool)
		}
		tf.repairs[tileID{level, index}] = true
	}
	tf.repairMu.Unlock()
	select {
	case tf.wake <- struct{}{}:
	default:
	}
}

// repair writes again the records that reads found corrupt, once each.
func (tf *tileFiles) repair() error {
	tf.repairMu.Lock()
	ids := make([]tileID, 0, len(tf.repairs))
	for id := range tf.repairs {
		ids = append(ids, id)
	}
	tf.repairMu.Unlock()
	for _, id := range ids {
		if err := roomToWrite(tf.checkSpace); err != nil {
			return err
		}
		if f := tf.files[id.level].Load(); f != nil && id.index < f.n.Load() {
			// A record that cannot be written again stays as it is:
			// reads of it go on reading pebble.
			rec, err := tf.records(id.level, id.index, id.index+1)
			if err == nil {
				_, err = f.f.WriteAt(rec, int64(id.index)*tileRecordSize)
			}
			if err != nil {
				tf.logger.Error("couldn't write a tile file's corrupt record again; its reads go to pebble", "level", id.level, "index", id.index, "err", err)
			}
		}
		tf.repairMu.Lock()
		delete(tf.repairs, id)
		tf.repairMu.Unlock()
	}
	return nil
}

// tileRecord returns the record of the tile (level, index).
func tileRecord(level uint8, index uint64, hashes, rows []byte) []byte {
	rec := make([]byte, tileRecordSize)
	copy(rec, hashes)
	if rows != nil {
		copy(rec[tileHashesBytes:], rows)
		binary.BigEndian.PutUint32(rec[tileRecordSize-8:], tileRecordHasRows)
	}
	binary.BigEndian.PutUint32(rec[tileRecordSize-4:], tileRecordCRC(level, index, rec))
	return rec
}

func tileRecordCRC(level uint8, index uint64, rec []byte) uint32 {
	var k [9]byte
	k[0] = level
	binary.BigEndian.PutUint64(k[1:], index)
	c := crc32.Update(0, castagnoli, k[:])
	return crc32.Update(c, castagnoli, rec[:tileRecordSize-4])
}

// checkTileRecord checks a record's CRC and flags.
func checkTileRecord(level uint8, index uint64, rec []byte) error {
	if got, want := binary.BigEndian.Uint32(rec[tileRecordSize-4:]), tileRecordCRC(level, index, rec); got != want {
		return fmt.Errorf("record of tile %d/%d has CRC %08x, want %08x", level, index, got, want)
	}
	if flags := binary.BigEndian.Uint32(rec[tileRecordSize-8:]); flags&^tileRecordHasRows != 0 {
		return fmt.Errorf("record of tile %d/%d has unknown flags %x", level, index, flags)
	}
	return nil
}

// fullTiles is how many full tiles a tree of size entries has at level.
func fullTiles(level int, size uint64) uint64 {
	return size >> (api.TileHeight * level) / api.TileWidth
}

func (tf *tileFiles) run(size uint64) {
	defer close(tf.done)
	defer tf.ahead.Wait()
	for level := range tileLevels {
		if err := tf.openLevel(level, size, false); err != nil {
			tf.logger.Error("couldn't open a tile file; its tiles are read from pebble", "level", level, "err", err)
		}
	}
	tf.ahead.Go(tf.readAhead)
	var logged time.Time
	for {
		if err := tf.catchUp(); err != nil {
			if time.Since(logged) >= tileRetry {
				logged = time.Now()
				tf.logger.Error("couldn't write the tile files; their new tiles are read from pebble until a retry works", "err", err)
			}
			// Again after the next commit, a second from now at the
			// soonest, or after tileRetry.
			select {
			case <-tf.stopping:
				return
			case <-time.After(time.Second):
			}
			select {
			case <-tf.stopping:
				return
			case <-tf.wake:
			case <-time.After(tileRetry):
			}
			continue
		}
		select {
		case <-tf.stopping:
			// The tiles of the last commits, for the next start.
			if err := tf.catchUp(); err != nil {
				tf.logger.Warn("couldn't write the last tiles to the tile files; the next start writes them", "err", err)
			}
			return
		case <-tf.wake:
		}
	}
}

// readAhead asks the system to read the files opened at start into the
// page cache, the upper levels first, so that the first proofs after a
// start find their tiles there rather than each wait for a read of the
// disk: in a log of 100 M entries, proofs at random indexes otherwise
// start at less than half their rate, and reach it only once they have
// read most of the 3.6 GB of tiles. The reads are the system's, in the
// background; a file too large for the machine's memory (readAheadShare)
// is left to fill as it is read.
func (tf *tileFiles) readAhead() {
	start := time.Now()
	var bytes int64
	for level := tileLevels - 1; level >= 0; level-- {
		select {
		case <-tf.stopping:
			return
		default:
		}
		f := tf.files[level].Load()
		if f == nil {
			continue
		}
		size := int64(f.n.Load()) * tileRecordSize
		asked, err := readAhead(f.f, size, tf.stopping)
		if err != nil {
			tf.logger.Warn("couldn't ask for a tile file to be read ahead", "level", level, "err", err)
			continue
		}
		if asked {
			bytes += size
		}
	}
	if bytes > 0 {
		tf.logger.Info("asked the system to read the tile files into the page cache", "bytes", bytes, "duration", time.Since(start).Round(time.Millisecond))
	}
}

func (tf *tileFiles) path(level int) string {
	return filepath.Join(tf.dir, strconv.Itoa(level))
}

// openLevel opens the file of a level, if it exists or create is set,
// keeps the records that the tree of size entries has and that check out
// at its end, and makes them readable.
func (tf *tileFiles) openLevel(level int, size uint64, create bool) error {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
		if err := os.MkdirAll(tf.dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(tf.path(level), flags, 0o644)
	if !create && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	n, err := checkedRecords(f, level, fullTiles(level, size), tf.tailCheck)
	if err == nil {
		err = cutFile(f, int64(n)*tileRecordSize)
	}
	if err != nil {
		f.Close()
		return err
	}
	file := &tileFile{f: f}
	file.n.Store(n)
	tf.files[level].Store(file)
	return nil
}

// checkedRecords returns how many records at the start of f are whole,
// for tiles of a tree with full tiles at the level, and check out in the
// last tail of them.
func checkedRecords(f *os.File, level int, full, tail uint64) (uint64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	n := min(uint64(fi.Size())/tileRecordSize, full)
	from := n - min(n, tail)
	buf := make([]byte, tileCopyBatch*tileRecordSize)
	for i := from; i < n; i += tileCopyBatch {
		k := min(n-i, tileCopyBatch)
		if _, err := f.ReadAt(buf[:k*tileRecordSize], int64(i)*tileRecordSize); err != nil {
			return 0, err
		}
		for j := range k {
			if checkTileRecord(uint8(level), i+j, buf[j*tileRecordSize:(j+1)*tileRecordSize]) != nil {
				return i + j, nil
			}
		}
	}
	return n, nil
}

// roomToWrite fails while checkSpace (if set) says the filesystem is
// below its reserve: the reserve is for pebble, which cannot survive
// some failed writes. The tile files' writer and the bundle files' mover
// wait meanwhile.
func roomToWrite(checkSpace func() error) error {
	if checkSpace == nil {
		return nil
	}
	if err := checkSpace(); err != nil {
		return fmt.Errorf("waiting for disk space: %w", err)
	}
	return nil
}

// catchUp writes the records that reads found corrupt again, and those of
// every full tile of the durable tree that the files do not have yet.
func (tf *tileFiles) catchUp() error {
	if err := tf.repair(); err != nil {
		return err
	}
	size := tf.durable.Load()
	for level := range tileLevels {
		full := fullTiles(level, size)
		if full == 0 {
			return nil
		}
		f := tf.files[level].Load()
		if f == nil {
			if err := roomToWrite(tf.checkSpace); err != nil {
				return err
			}
			if err := tf.openLevel(level, size, true); err != nil {
				return fmt.Errorf("tile file of level %d: %w", level, err)
			}
			if f = tf.files[level].Load(); f == nil {
				return fmt.Errorf("tile file of level %d: not opened", level)
			}
		}
		for n := f.n.Load(); n < full; n = f.n.Load() {
			if err := roomToWrite(tf.checkSpace); err != nil {
				return err
			}
			k := min(full-n, tileCopyBatch)
			recs, err := tf.records(uint8(level), n, n+k)
			if err != nil {
				return fmt.Errorf("tiles %d/%d to %d: %w", level, n, n+k-1, err)
			}
			if _, err := f.f.WriteAt(recs, int64(n)*tileRecordSize); err != nil {
				return err
			}
			f.n.Store(n + k)
			select {
			case <-tf.stopping:
				// One batch at most once stopping: the few tiles the
				// last commits filled, not a whole log's.
				return nil
			default:
			}
		}
	}
	return nil
}

// records reads the full tiles [from, to) of level from pebble and returns
// their records.
func (tf *tileFiles) records(level uint8, from, to uint64) ([]byte, error) {
	db, release, err := tf.h.read()
	if err != nil {
		return nil, err
	}
	defer release()
	hashes := make([][]byte, to-from)
	rows := make([][]byte, to-from)
	// A full tile is one chunk at offset 0, with a rows key if the
	// version that filled it stored them; a tile filled in chunks is
	// read whole below.
	if err := scanRange(db, chunkKey(tileKey(level, from), 0), tileKey(level, to), func(k, v []byte) error {
		if len(k) == 14 && binary.BigEndian.Uint32(k[10:]) == 0 && len(v) == tileHashesBytes {
			hashes[binary.BigEndian.Uint64(k[2:10])-from] = v
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := scanRange(db, tileRowsKey(level, from), tileRowsKey(level, to), func(k, v []byte) error {
		if len(k) != 10 || len(v) != log.TileRowsSize {
			return fmt.Errorf("malformed rows of a tile: key %x, %d bytes", k, len(v))
		}
		rows[binary.BigEndian.Uint64(k[2:])-from] = v
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]byte, 0, (to-from)*tileRecordSize)
	for i := range hashes {
		index := from + uint64(i)
		if hashes[i] == nil {
			v, err := readChunkedDB(db, tileKey(level, index))
			if err != nil {
				return nil, fmt.Errorf("tile %d/%d: %w", level, index, err)
			}
			if len(v) != tileHashesBytes {
				return nil, fmt.Errorf("tile %d/%d has %d bytes, a full one %d", level, index, len(v), tileHashesBytes)
			}
			hashes[i] = v
		}
		out = append(out, tileRecord(level, index, hashes[i], rows[i])...)
	}
	return out, nil
}

// scanRange calls fn with each key in [lower, upper) and a copy of its
// value, until fn fails; the key is valid only until fn returns.
func scanRange(db *pebble.DB, lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		if err := fn(it.Key(), append([]byte(nil), v...)); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}

// TileFilesCheck is what CheckTileFiles found.
type TileFilesCheck struct {
	// Checked records are equal to the tile and rows in pebble.
	Checked uint64
	// Unusable records (torn, never written, corrupt) fail their CRC:
	// reads take those tiles from pebble, and the log writes them again
	// (at its start for those at a file's end, after a read otherwise).
	Unusable uint64
}

// CheckTileFiles compares every record of the tile files in the store's
// directory, up to the durable tree's full tiles, with the tile and rows
// pebble holds: for fsck. A record whose CRC checks out but which differs
// from pebble is an error: reads would take it. (The files are copies:
// deleting the directory db/tiles with the log stopped is safe, the log
// writes them again.)
func (s *Storage) CheckTileFiles(ctx context.Context) (TileFilesCheck, error) {
	var c TileFilesCheck
	_, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		return c, err
	}
	for level := range tileLevels {
		f, err := os.Open(filepath.Join(s.h.dir, tileFilesDir, strconv.Itoa(level)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return c, err
		}
		err = s.checkTileFile(ctx, f, uint8(level), fullTiles(level, size), &c)
		f.Close()
		if err != nil {
			return c, fmt.Errorf("tile file %s: %w", f.Name(), err)
		}
	}
	return c, nil
}

func (s *Storage) checkTileFile(ctx context.Context, f *os.File, level uint8, full uint64, c *TileFilesCheck) error {
	buf := make([]byte, tileCopyBatch*tileRecordSize)
	for i := uint64(0); i < full; i += tileCopyBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(full-i, tileCopyBatch)
		got, err := f.ReadAt(buf[:k*tileRecordSize], int64(i)*tileRecordSize)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		whole := uint64(got) / tileRecordSize
		for j := range whole {
			index := i + j
			rec := buf[j*tileRecordSize : (j+1)*tileRecordSize]
			if checkTileRecord(level, index, rec) != nil {
				c.Unusable++
				continue
			}
			hashes, err := s.pebbleTile(level, index)
			if err != nil {
				return err
			}
			rows, err := s.pebbleTileRows(level, index)
			if errors.Is(err, log.ErrNotFound) {
				rows, err = nil, nil
			}
			if err != nil {
				return err
			}
			if len(hashes) != tileHashesBytes {
				return fmt.Errorf("tile %d/%d in pebble has %d bytes, a full one %d", level, index, len(hashes), tileHashesBytes)
			}
			if string(tileRecord(level, index, hashes, rows)) != string(rec) {
				return fmt.Errorf("record of tile %d/%d differs from the tile in pebble", level, index)
			}
			c.Checked++
		}
		if whole < k {
			return nil
		}
	}
	return nil
}

// cutFile cuts f to size bytes, if it is longer, durably: records it held
// beyond the durable tree must not come back after a power loss, where
// the records written after them would not be (the tile files and the
// bundle files at start).
func cutFile(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil || st.Size() <= size {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}
