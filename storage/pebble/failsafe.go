package pebble

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble does not survive a failed write of its WAL (a full disk, an I/O
// error): the WAL writer keeps the error, and the next batch written to it
// panics with the commit pipeline locked, so that the database can't even
// be closed. The batch that failed is in the memtable meanwhile, readable
// though not durable.
//
// A handle keeps that from ending the process or publishing what is not
// durable. Its files are watched (watchedFS): the first failed write or
// sync of a WAL file marks the handle failed before pebble itself sees
// the error, so no batch is written to that WAL again. The batches whose
// sync fails fail; the first of them closes the database and opens it
// again, once its WAL files are synced, so that every read after the
// failure sees exactly what is on disk, durably: the batches that were
// written whole (if they landed after all, they are durable now) and none
// that were not. If the disk is still full, the database is opened
// read-only, and each write (at most once per reopenInterval) tries to
// open it for writing again: the server keeps reading, and resumes by
// itself once space is freed.
//
// Pebble still treats a failed write of its MANIFEST, or of a WAL it
// rotates to, as fatal; the free-space reserve of the servers
// (internal/diskspace) is what keeps it from getting there.

// reopenInterval is how often a write tries to reopen for writing a
// database that was opened read-only after a write error.
const reopenInterval = time.Second

// errReadOnly is the error of a write to a database opened read-only
// after a write error.
var errReadOnly = errors.New("the database is read-only after a write error")

// errClosed is the error of a read of a closed handle.
var errClosed = errors.New("the database is closed")

// handle is a pebble database that survives write errors. Writes must not
// overlap (the caller serialises them); reads may run concurrently with
// everything.
type handle struct {
	dir    string
	o      Options
	logger *slog.Logger
	// beforeClose, if set, is called before the database is closed to be
	// reopened: it must end every use of it outside read and write.
	beforeClose func()

	mu       sync.RWMutex // read-held while db is used, write-held to replace it
	db       *pebble.DB   // nil if not even a read-only open succeeded
	readOnly bool
	gen      uint64                  // incremented by every reopen
	lastErr  error                   // why the database is not writable, if it is not
	lastTry  time.Time               // the last attempt to open it for writing
	failed   atomic.Pointer[failure] // set without h.mu, by the watchedFS
}

// failure is a failed write of the database of one generation.
type failure struct {
	gen uint64
	err error
}

func openHandle(dir string, o Options) (*handle, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handle{dir: dir, o: o, logger: o.Logger.With("component", "pebble")}
	db, err := h.open(false)
	if err != nil {
		return nil, err
	}
	h.db = db
	return h, nil
}

// open opens the database, read-only or not, on a watchedFS of this
// generation.
func (h *handle) open(readOnly bool) (*pebble.DB, error) {
	fs := h.o.fs
	if fs == nil {
		fs = vfs.Default
	}
	return openDB(h.dir, h.o, &watchedFS{FS: fs, h: h, gen: h.gen}, readOnly)
}

// reopenDB is open for a reopen after a write error, which may meet the
// failure again: pebble's cleanup of an Open that failed can panic
// ("element has outstanding references"), after which its other cleanups,
// the directory lock's among them, still run. That panic is an error here.
func (h *handle) reopenDB(readOnly bool) (db *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("pebble panicked opening the database: %v", r)
		}
	}()
	return h.open(readOnly)
}

// fail records that a write of generation gen failed with err.
func (h *handle) fail(gen uint64, err error) {
	for {
		cur := h.failed.Load()
		if cur != nil && cur.gen >= gen {
			return // recorded already
		}
		if h.failed.CompareAndSwap(cur, &failure{gen: gen, err: err}) {
			h.logger.Error("a write failed: the database will be reopened, and takes no write until then", "error", err)
			return
		}
	}
}

// read returns the database to read, and the function that releases it.
// If not even a read-only reopen succeeded, it tries again, at most once
// per reopenInterval.
func (h *handle) read() (*pebble.DB, func(), error) {
	h.mu.RLock()
	if h.db != nil {
		return h.db, h.mu.RUnlock, nil
	}
	h.mu.RUnlock()
	h.mu.Lock()
	if h.db == nil && h.lastErr != errClosed && time.Since(h.lastTry) >= reopenInterval {
		h.reopenLocked()
	}
	err := h.lastErr
	h.mu.Unlock()
	h.mu.RLock()
	if h.db != nil {
		return h.db, h.mu.RUnlock, nil
	}
	h.mu.RUnlock()
	return nil, nil, fmt.Errorf("the database is closed after a write error: %w", err)
}

// write builds a batch with fill and writes it, synced; wait then returns
// once it is durable, or its error, and must be called once. Calls to
// write must not overlap; wait may run concurrently with the next write.
func (h *handle) write(fill func(*pebble.Batch) error) (wait func() error, err error) {
	gen, release, err := h.holdWritable()
	if err != nil {
		return nil, err
	}
	defer release()
	b := h.db.NewBatch()
	if err := fill(b); err != nil {
		b.Close()
		return nil, err
	}
	if err := apply(h.db, b); err != nil {
		h.fail(gen, err)
		b.Close()
		return nil, err
	}
	return func() error {
		defer b.Close()
		err := b.SyncWait()
		if err != nil {
			h.fail(gen, err)
			h.reopen(gen)
		}
		return err
	}, nil
}

// holdWritable holds the database for a write, once writable, and
// returns its generation and the function that releases it; h.db is the
// database to write until then.
func (h *handle) holdWritable() (gen uint64, release func(), err error) {
	if err := h.writable(); err != nil {
		return 0, nil, err
	}
	h.mu.RLock()
	if h.db == nil || h.readOnly {
		// Reopened read-only since writable returned.
		err := h.lastErr
		h.mu.RUnlock()
		return 0, nil, err
	}
	return h.gen, h.mu.RUnlock, nil
}

// writeNoSync builds a batch with fill and writes it without syncing it:
// the write of something the database can build again from what it
// holds durably. It may run concurrently with write.
func (h *handle) writeNoSync(fill func(*pebble.Batch) error) error {
	gen, release, err := h.holdWritable()
	if err != nil {
		return err
	}
	defer release()
	b := h.db.NewBatch()
	defer b.Close()
	if err := fill(b); err != nil {
		return err
	}
	err = func() (err error) {
		defer recoverFatal(&err)
		return h.db.Apply(b, pebble.NoSync)
	}()
	if err != nil {
		h.fail(gen, err)
	}
	return err
}

// flush starts a flush of the memtable of a database that takes writes,
// without waiting for it. Pebble first rotates the WAL, and panics if a
// write of the WAL failed: like a batch, a flush is made only on a
// handle whose writes have not failed, and only after a synced write has
// emptied the WAL's buffer (if that write fails, the handle is failed
// instead). It may run concurrently with write.
func (h *handle) flush() error {
	gen, release, err := h.holdWritable()
	if err != nil {
		return err
	}
	defer release()
	err = func() (err error) {
		defer recoverFatal(&err)
		return h.db.LogData(nil, pebble.Sync)
	}()
	if err == nil {
		if f := h.failed.Load(); f != nil {
			err = f.err
		}
	}
	if err != nil {
		h.fail(gen, err)
		return err
	}
	_, err = h.db.AsyncFlush()
	return err
}

// apply writes b to db's WAL and memtable without waiting for the sync.
// A commit that pebble cannot even start is logged by pebbleLogger.Fatalf,
// whose panic becomes the error: the commit pipeline is unlocked then.
func apply(db *pebble.DB, b *pebble.Batch) (err error) {
	defer recoverFatal(&err)
	return db.ApplyNoSyncWait(b, pebble.Sync)
}

// recoverFatal turns the panic of pebbleLogger.Fatalf into *err, and lets
// any other panic go on.
func recoverFatal(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(fatalError)
		if !ok {
			panic(r)
		}
		*err = f
	}
}

// writable returns nil if the database can be written, after reopening it
// if a write failed, or if it was reopened read-only and reopenInterval
// has passed since the last attempt.
func (h *handle) writable() error {
	h.mu.RLock()
	ok := h.db != nil && !h.readOnly && h.failed.Load() == nil
	h.mu.RUnlock()
	if ok {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.failed.Load()
	switch {
	case f != nil && f.gen == h.gen:
		h.reopenLocked()
	case f != nil:
		h.failed.CompareAndSwap(f, nil) // from a database closed since
	case (h.db == nil || h.readOnly) && h.lastErr != errClosed && time.Since(h.lastTry) >= reopenInterval:
		h.reopenLocked()
	}
	if h.db == nil || h.readOnly || h.lastErr == errClosed {
		return h.lastErr
	}
	return nil
}

// reopen reopens the database if it is still of generation gen.
func (h *handle) reopen(gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen == gen {
		h.reopenLocked()
	}
}

// reopenLocked closes the database and opens it again, once the WAL files
// are synced: for writing if it can, else read-only. h.mu is held.
func (h *handle) reopenLocked() {
	h.lastTry = time.Now()
	if h.db != nil {
		if h.beforeClose != nil {
			h.beforeClose()
		}
		if err := h.db.Close(); err != nil {
			h.logger.Warn("closing the database after a write error", "error", err)
		}
		h.db = nil
	}
	h.gen++
	h.failed.Store(nil)
	fs := h.o.fs
	if fs == nil {
		fs = vfs.Default
	}
	// What the WAL files hold is what a read will see: make it durable
	// first, or read nothing.
	if err := syncWALs(fs, h.dir); err != nil {
		h.lastErr = fmt.Errorf("%w: %w", errReadOnly, err)
		h.logger.Error("couldn't sync the WAL to reopen the database: it serves nothing until a write can reopen it", "error", err)
		return
	}
	// Pebble does not clean up after an Open that fails once the tables
	// are open: its background jobs go on with closed caches, and may
	// crash the process. Open for writing only if the disk takes a write.
	err := probeWrite(fs, h.dir)
	var db *pebble.DB
	if err == nil {
		db, err = h.reopenDB(false)
	}
	if err == nil {
		h.db, h.readOnly, h.lastErr = db, false, nil
		h.logger.Info("reopened the database after a write error")
		return
	}
	h.lastErr = fmt.Errorf("%w: couldn't reopen it for writing: %w", errReadOnly, err)
	db, roErr := h.reopenDB(true)
	if roErr != nil {
		h.logger.Error("couldn't reopen the database after a write error, not even read-only", "error", err, "read_only_error", roErr)
		return
	}
	h.db, h.readOnly = db, true
	h.logger.Warn("couldn't reopen the database for writing after a write error: it serves reads until a write can reopen it", "error", err)
}

// close closes the database.
func (h *handle) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db == nil {
		return nil
	}
	err := h.db.Close()
	h.db = nil
	h.lastErr = errClosed
	return err
}

// syncWALs syncs every WAL file in dir, and dir.
func syncWALs(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("couldn't list %s: %w", dir, err)
	}
	for _, name := range names {
		if !isWAL(name) {
			continue
		}
		f, err := fs.Open(fs.PathJoin(dir, name))
		if err != nil {
			return fmt.Errorf("couldn't open %s: %w", name, err)
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("couldn't sync %s: %w", name, err)
		}
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("couldn't open %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("couldn't sync %s: %w", dir, err)
	}
	return nil
}

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

// writeProbe is the file that probeWrite writes, and probeBytes its size:
// more than pebble writes to open a database (a WAL block, an OPTIONS
// file, MANIFEST records).
const (
	writeProbe = "candor-write-probe"
	probeBytes = 1 << 20
)

// probeWrite writes, syncs and removes a file of probeBytes in dir.
func probeWrite(fs vfs.FS, dir string) error {
	name := fs.PathJoin(dir, writeProbe)
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("couldn't create %s: %w", name, err)
	}
	buf := make([]byte, 64<<10)
	for n := 0; n < probeBytes && err == nil; n += len(buf) {
		_, err = f.Write(buf)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := fs.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("couldn't write %s: %w", name, err)
	}
	return nil
}

// watchedFS is the file system of one generation of a handle's database:
// a failed write or sync of a WAL file marks the handle failed, before
// the error reaches pebble.
type watchedFS struct {
	vfs.FS
	h   *handle
	gen uint64
}

func (fs *watchedFS) watch(name string, f vfs.File) vfs.File {
	if !isWAL(fs.PathBase(name)) {
		return f
	}
	return &watchedFile{File: f, fs: fs, name: name}
}

func (fs *watchedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	return fs.watch(name, f), nil
}

func (fs *watchedFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	return fs.watch(name, f), nil
}

func (fs *watchedFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	return fs.watch(newname, f), nil
}

// watchedFile is a WAL file of a watchedFS.
type watchedFile struct {
	vfs.File
	fs   *watchedFS
	name string
}

func (f *watchedFile) check(err error) error {
	if err != nil {
		f.fs.h.fail(f.fs.gen, fmt.Errorf("couldn't write the WAL %s: %w", f.fs.PathBase(f.name), err))
	}
	return err
}

func (f *watchedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.check(err)
}

func (f *watchedFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.check(err)
}

func (f *watchedFile) Sync() error { return f.check(f.File.Sync()) }

func (f *watchedFile) SyncData() error { return f.check(f.File.SyncData()) }

func (f *watchedFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	return full, f.check(err)
}
