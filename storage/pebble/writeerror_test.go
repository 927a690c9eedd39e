package pebble_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// walFault makes writes of the WAL files (*.log), and of the file with
// which Storage probes the disk before it reopens, fail while it is on: a
// full disk (ENOSPC on creating and writing them; syncs of what was
// written succeed) or a failing device (EIO on syncing them).
type walFault struct {
	on  atomic.Bool
	eio bool
}

func (f *walFault) fs() vfs.FS {
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !f.on.Load() || !strings.HasSuffix(op.Path, ".log") && !strings.HasSuffix(op.Path, pebble.WriteProbe) {
			return nil
		}
		switch op.Kind {
		case errorfs.OpCreate, errorfs.OpReuseForWrite, errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFilePreallocate:
			if !f.eio {
				return &os.PathError{Op: "write", Path: op.Path, Err: syscall.ENOSPC}
			}
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if f.eio {
				return &os.PathError{Op: "sync", Path: op.Path, Err: syscall.EIO}
			}
		}
		return nil
	}))
}

// TestLogSurvivesWALWriteErrors runs a log on real pebble whose WAL
// writes fail for a while, under concurrent submissions: the batches that
// meet the fault fail (a full disk with log.ErrNoSpace), none is
// acknowledged, the process goes on, the published checkpoint does not
// move, and once the fault is gone the log takes entries again by itself.
// Every acknowledged entry is then at its index, the checkpoints are
// consistent, and all of it is there after a reopen without the fault.
func TestLogSurvivesWALWriteErrors(t *testing.T) {
	for _, eio := range []bool{false, true} {
		name := "ENOSPC"
		if eio {
			name = "EIO"
		}
		t.Run(name, func(t *testing.T) { testLogWALWriteErrors(t, eio) })
	}
}

func testLogWALWriteErrors(t *testing.T, eio bool) {
	ctx := context.Background()
	dir := t.TempDir()
	fault := &walFault{eio: eio}
	quiet := slog.New(slog.DiscardHandler)
	// With tile files: a commit that fails must leave none of its tiles
	// in them, and those of the commits after take their place.
	store, err := pebble.Open(dir, pebble.WithFS(pebble.Options{Logger: quiet, CacheBytes: 8 << 20, TileFiles: true}, fault.fs()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if store != nil {
			store.Close()
		}
	}()
	const origin = "example.com/write-errors"
	signer, verifier, _ := apitest.NewNoteKey(origin, rand.Reader)
	l, err := log.New(ctx, log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet, MaxBatchSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var mu sync.Mutex
	acked := make(map[uint64][]byte)
	// add submits entries tag 0..n-1 from 8 goroutines and returns the
	// errors; the acknowledged ones are recorded.
	add := func(tag string, n int) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					e := fmt.Appendf(nil, "%s entry %d", tag, i)
					rc, err := l.Add(ctx, e)
					errs[i] = err
					if err == nil {
						mu.Lock()
						acked[rc.Index] = e
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		return errs
	}
	for i, err := range add("before", 300) {
		if err != nil {
			t.Fatalf("entry %d before the fault: %v", i, err)
		}
	}
	before, size := l.Checkpoint()

	fault.on.Store(true)
	for i, err := range add("during", 64) {
		if err == nil {
			t.Fatalf("entry %d was acknowledged while every WAL write fails", i)
		}
		if !eio && !errors.Is(err, log.ErrNoSpace) {
			t.Fatalf("entry %d on a full disk: %v, want log.ErrNoSpace", i, err)
		}
	}
	if cp, _ := l.Checkpoint(); !bytes.Equal(cp, before) {
		t.Fatalf("the published checkpoint moved during the fault:\n%s\nwas\n%s", cp, before)
	}
	if !eio {
		// A full disk still serves what is durable.
		for i := range uint64(size) {
			if e, err := l.Entry(ctx, i); err != nil || !bytes.Equal(e, acked[i]) {
				t.Fatalf("entry %d during the fault: %q, %v", i, e, err)
			}
		}
	}

	fault.on.Store(false)
	// The storage reopens for writing at the next commit, at most a second
	// after its last attempt: retry until an entry goes in.
	deadline := time.Now().Add(30 * time.Second)
	for {
		errs := add(fmt.Sprint("retry ", time.Now().UnixNano()), 1)
		if errs[0] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no entry accepted 30s after the fault ended: %v", errs[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, err := range add("after", 300) {
		if err != nil {
			t.Fatalf("entry %d after the fault: %v", i, err)
		}
	}
	after, newSize := l.Checkpoint()
	checkLog(t, l, acked, newSize)
	checkConsistent(t, l, before, after, origin, verifier)

	// Everything acknowledged was durable: reopen without the fault.
	l.Close()
	store.Close()
	store = nil
	if store, err = pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20, TileFiles: true}); err != nil {
		t.Fatal(err)
	}
	if l, err = log.New(ctx, log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if cp, _ := l.Checkpoint(); !bytes.Equal(cp, after) {
		t.Fatalf("after a reopen the checkpoint is\n%s\nwant\n%s", cp, after)
	}
	checkLog(t, l, acked, newSize)
	waitTileFiles(t, store, newSize)
	checkFiles(t, store, newSize/api.TileWidth, 0)
	a, _, err := api.OpenCheckpoint(after, origin, verifier)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range acked {
		hashes, err := l.InclusionProof(ctx, i, newSize)
		if err != nil {
			t.Fatalf("proof of entry %d: %v", i, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, newSize, rfc6962.DefaultHasher.HashLeaf(e), hashes, a.Hash[:]); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
}

// checkLog checks that every acknowledged entry is at its index below size.
func checkLog(t *testing.T, l *log.Log, acked map[uint64][]byte, size uint64) {
	t.Helper()
	for i, want := range acked {
		if i >= size {
			t.Fatalf("entry %d was acknowledged beyond the size %d", i, size)
		}
		if e, err := l.Entry(context.Background(), i); err != nil || !bytes.Equal(e, want) {
			t.Fatalf("entry %d: %q, %v, want %q", i, e, err, want)
		}
	}
}

// checkConsistent checks that the checkpoint after is consistent with the
// one before.
func checkConsistent(t *testing.T, l *log.Log, before, after []byte, origin string, v interface {
	Name() string
	KeyHash() uint32
	Verify(msg, sig []byte) bool
}) {
	t.Helper()
	b, _, err := api.OpenCheckpoint(before, origin, v)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := api.OpenCheckpoint(after, origin, v)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := l.ConsistencyProof(context.Background(), b.Size, a.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, b.Size, a.Size, hashes, b.Hash[:], a.Hash[:]); err != nil {
		t.Fatalf("checkpoint %d is not consistent with %d: %v", a.Size, b.Size, err)
	}
}

// TestWitnessStateSurvivesWALWriteErrors checks that a witness state whose
// WAL writes fail refuses the Swap (witness.ErrNoSpace on a full disk),
// keeps the checkpoint it had, in memory and on disk, so that the witness
// replies with no cosignature it did not persist, and takes the Swap once
// the fault is gone.
func TestWitnessStateSurvivesWALWriteErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fault := &walFault{}
	quiet := slog.New(slog.DiscardHandler)
	state, err := pebble.OpenWitnessState(dir, pebble.WithFS(pebble.Options{Logger: quiet, CacheBytes: 8 << 20}, fault.fs()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if state != nil {
			state.Close()
		}
	}()
	const origin = "example.com/log"
	logSigner, logVerifier, _ := apitest.NewNoteKey(origin, rand.Reader)
	skey, _, err := api.GenerateCosignerKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: state, Logger: quiet,
		Logs: []witness.Log{{Origin: origin, Verifier: logVerifier}}})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := api.SignCheckpoint(api.Checkpoint{Origin: origin, Hash: [32]byte(rfc6962.DefaultHasher.EmptyRoot())}, logSigner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: empty}); err != nil {
		t.Fatal(err)
	}
	stored, err := state.Latest(ctx, origin)
	if err != nil || stored == nil {
		t.Fatalf("Latest: %q, %v", stored, err)
	}

	fault.on.Store(true)
	cosig, err := w.AddCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: empty})
	if cosig != nil || !errors.Is(err, witness.ErrNoSpace) {
		t.Fatalf("AddCheckpoint on a full disk: %q, %v, want no cosignature and witness.ErrNoSpace", cosig, err)
	}
	if err := state.Swap(ctx, origin, stored, []byte("new")); !errors.Is(err, witness.ErrNoSpace) {
		t.Fatalf("Swap on a full disk: %v, want witness.ErrNoSpace", err)
	}
	if got, err := state.Latest(ctx, origin); err != nil || !bytes.Equal(got, stored) {
		t.Fatalf("Latest after failed writes: %q, %v, want the stored checkpoint", got, err)
	}

	fault.on.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := w.AddCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: empty})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("AddCheckpoint 30s after the fault ended: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	latest, err := state.Latest(ctx, origin)
	if err != nil || bytes.Equal(latest, stored) {
		t.Fatalf("Latest after the fault: %q, %v, want a new cosignature", latest, err)
	}
	state.Close()
	state = nil
	if state, err = pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	if got, err := state.Latest(ctx, origin); err != nil || !bytes.Equal(got, latest) {
		t.Fatalf("after a reopen: %q, %v, want %q", got, err, latest)
	}
}

// TestStorageStopsWritingAfterWALError starts commits, without waiting
// for their syncs, on a WAL whose writes fail: pebble's WAL writer keeps
// the first error and panics on a later write it is given (with its
// commit pipeline locked), so Storage must stop writing to it as soon as
// a write failed, and fail the commits instead. Each commit fills more
// than a WAL block, so that the writer learns of the error while the
// commits go on; they are few and small enough that pebble does not
// rotate its first memtable and WAL, which it can't survive on a failing
// WAL.
func TestStorageStopsWritingAfterWALError(t *testing.T) {
	ctx := context.Background()
	fault := &walFault{}
	var injected atomic.Bool
	fs := errorfs.Wrap(fault.fs(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if fault.on.Load() && op.Kind == errorfs.OpFileWrite && strings.HasSuffix(op.Path, ".log") {
			injected.Store(true)
		}
		return nil
	}))
	s, err := pebble.Open(t.TempDir(), pebble.WithFS(pebble.Options{Logger: slog.New(slog.DiscardHandler), CacheBytes: 8 << 20, LeafFilterBytes: -1}, fs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bundle := make([]byte, 40<<10)
	commit := func(size uint64) *log.Commit {
		rand.Read(bundle)
		return &log.Commit{OldSize: size - 1, NewSize: size, Checkpoint: fmt.Appendf(nil, "checkpoint %d", size),
			Bundles: []log.BundleData{{Index: size, Bundle: bundle, Full: true}}}
	}
	if err := s.Commit(ctx, &log.Commit{Checkpoint: []byte("checkpoint 0")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, commit(1)); err != nil {
		t.Fatal(err)
	}

	fault.on.Store(true)
	wait, err := s.StartCommit(ctx, commit(2))
	if err != nil {
		t.Fatalf("commit 2, before its WAL write: %v", err)
	}
	waits := []func() error{wait}
	// Let pebble's WAL writer meet the fault: from then on, a commit
	// given to it would end the process.
	for deadline := time.Now().Add(30 * time.Second); !injected.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no WAL write 30s after a commit")
		}
	}
	size := uint64(3)
	for ; size < 6; size++ {
		wait, err := s.StartCommit(ctx, commit(size))
		if err != nil {
			if !errors.Is(err, log.ErrNoSpace) {
				t.Fatalf("commit %d: %v, want log.ErrNoSpace", size, err)
			}
			break
		}
		waits = append(waits, wait)
	}
	if size == 6 {
		t.Fatal("3 commits started after a WAL write failed")
	}
	for i, wait := range waits {
		if err := wait(); err == nil {
			t.Fatalf("commit %d is durable on a WAL whose writes fail", i+2)
		}
	}
	_, stored, err := s.ReadCheckpoint(ctx)
	if err != nil || stored != 1 {
		t.Fatalf("stored size %d, %v after the failed commits, want 1", stored, err)
	}

	fault.on.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Commit(ctx, commit(2))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commit 30s after the fault ended: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v, err := s.ReadEntryBundle(ctx, 2); err != nil || !bytes.Equal(v, bundle) {
		t.Fatalf("bundle 2 after the fault: %d bytes, %v", len(v), err)
	}
}
