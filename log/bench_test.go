package log_test

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// benchEntrySize is the size of the entries the benchmarks add: about what
// a small signed statement takes.
const benchEntrySize = 300

// timedStorage is a log.Storage that adds up the time spent in commits and
// lookups, to tell storage time from engine time.
type timedStorage struct {
	log.Storage
	commitTime, lookupTime atomic.Int64 // nanoseconds
}

func (s *timedStorage) Commit(ctx context.Context, c *log.Commit) error {
	start := time.Now()
	err := s.Storage.Commit(ctx, c)
	s.commitTime.Add(int64(time.Since(start)))
	return err
}

// StartCommit times a pipelined commit from its start until its wait
// returns.
func (s *timedStorage) StartCommit(ctx context.Context, c *log.Commit) (func() error, error) {
	start := time.Now()
	wait, err := s.Storage.(log.PipelinedStorage).StartCommit(ctx, c)
	if err != nil {
		s.commitTime.Add(int64(time.Since(start)))
		return nil, err
	}
	return func() error {
		err := wait()
		s.commitTime.Add(int64(time.Since(start)))
		return err
	}, nil
}

func (s *timedStorage) LookupLeaf(ctx context.Context, leafHash []byte) (uint64, error) {
	start := time.Now()
	idx, err := s.Storage.LookupLeaf(ctx, leafHash)
	s.lookupTime.Add(int64(time.Since(start)))
	return idx, err
}

// report reports the time spent in storage commits and in leaf lookups as
// a share of the elapsed time. Pipelined commits overlap, so %commit may
// pass 100. Lookups run in the callers of Add,
// concurrently, so %lookup adds up their time (with their waits for the
// CPU) and may pass 100.
func (s *timedStorage) report(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(s.commitTime.Load())/float64(elapsed)*100, "%commit")
	b.ReportMetric(float64(s.lookupTime.Load())/float64(elapsed)*100, "%lookup")
}

// newBenchLog opens a log on real pebble storage in dir, with its metrics
// in reg (which may be nil).
func newBenchLog(b *testing.B, dir string, reg prometheus.Registerer) (*log.Log, *timedStorage) {
	b.Helper()
	signer, verifier, _ := apitest.NewNoteKey("example.com/bench", crand.Reader)
	logger := slog.New(slog.DiscardHandler)
	store, err := pebble.Open(dir, pebble.Options{Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	timed := &timedStorage{Storage: store}
	l, err := log.New(context.Background(), log.Config{
		Storage:    timed,
		Signer:     signer,
		Verifier:   verifier,
		Logger:     logger,
		Registerer: reg,
	})
	if err != nil {
		store.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		l.Close()
		store.Close()
	})
	return l, timed
}

// benchEntries returns n unique, random entries of benchEntrySize bytes,
// numbered from first, made before the clock starts: the engine
// benchmarks measure the engine, not the making of entries.
func benchEntries(first, n uint64) [][]byte {
	// Random, so that pebble cannot compress them: disk usage is the
	// worst case.
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], first)
	rng := rand.NewChaCha8(seed)
	buf := make([]byte, n*benchEntrySize)
	rng.Read(buf)
	entries := make([][]byte, n)
	for i := range entries {
		e := buf[i*benchEntrySize : (i+1)*benchEntrySize : (i+1)*benchEntrySize]
		binary.BigEndian.PutUint64(e, first+uint64(i))
		entries[i] = e
	}
	return entries
}

// addEntries adds the entries with the given number of concurrent adders,
// each calling Add, and fails b on the first error.
func addEntries(b *testing.B, l *log.Log, entries [][]byte, adders int) {
	b.Helper()
	var next atomic.Uint64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range adders {
		wg.Go(func() {
			for failed.Load() == nil {
				i := next.Add(1) - 1
				if i >= uint64(len(entries)) {
					return
				}
				if _, err := l.Add(context.Background(), entries[i]); err != nil {
					err = fmt.Errorf("entry %d: %w", i, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// submitEntries submits the entries from a few goroutines, each keeping up
// to window/producers futures outstanding, and fails b on the first error.
func submitEntries(b *testing.B, l *log.Log, entries [][]byte, producers, window int) {
	b.Helper()
	submitWithTerms(b, l, entries, nil, producers, window)
}

// BenchmarkAdd measures the engine's durable throughput: every Add returns
// only once its entry is committed and synced. Entries are already
// admitted (the engine does not parse them), so this is the sequencer,
// the tree, the checkpoint signature and the pebble commit. One op is one
// entry.
func BenchmarkAdd(b *testing.B) {
	for _, adders := range []int{64, 1024, 4096} {
		b.Run(fmt.Sprintf("adders=%d", adders), func(b *testing.B) {
			benchWrites(b, func(l *log.Log, entries [][]byte) { addEntries(b, l, entries, adders) })
		})
	}
}

// BenchmarkSubmit is BenchmarkAdd with Submit's futures: two goroutines
// keep a window of entries in flight, as a server that batches its own
// requests would, without a goroutine per entry.
func BenchmarkSubmit(b *testing.B) {
	for _, window := range []int{1024, 4096, 16384} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			benchWrites(b, func(l *log.Log, entries [][]byte) { submitEntries(b, l, entries, 2, window) })
		})
	}
}

// benchWrites runs write, which must add every entry, on a new log and
// reports the throughput, the batches, the storage time and the disk use.
func benchWrites(b *testing.B, write func(l *log.Log, entries [][]byte)) {
	reg := prometheus.NewRegistry()
	dir := b.TempDir()
	l, timed := newBenchLog(b, dir, reg)
	entries := benchEntries(0, uint64(b.N))
	b.SetBytes(benchEntrySize)
	b.ResetTimer()
	start := time.Now()
	write(l, entries)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	reportBatches(b, reg)
	timed.report(b, elapsed)
	if _, size := l.Checkpoint(); size != uint64(b.N) {
		b.Fatalf("tree size %d after %d adds", size, b.N)
	}
	b.ReportMetric(float64(diskUsage(b, dir))/float64(b.N), "disk-B/entry")
}

// diskUsage returns the bytes in the files under dir, the write-ahead log
// included: pebble keeps up to a few memtables' worth of it, so the
// figure per entry is high for small logs.
func diskUsage(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted by a compaction during the walk
		}
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// reportBatches reports the mean entries and time per committed batch, from
// the log's own histograms: they tell whether the sequencer is starved
// (small batches) or slow (long integrations).
func reportBatches(b *testing.B, g prometheus.Gatherer) {
	b.Helper()
	mfs, err := g.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetHistogram() == nil {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() == 0 {
			continue
		}
		mean := h.GetSampleSum() / float64(h.GetSampleCount())
		switch mf.GetName() {
		case "candor_log_batch_entries":
			b.ReportMetric(mean, "entries/batch")
		case "candor_log_integrate_seconds":
			b.ReportMetric(mean*1e3, "ms/batch")
		}
	}
}

// readBenchSize is the size of the log the read benchmarks use.
const readBenchSize = 100_000

// newReadBenchLog returns a log of readBenchSize entries. Callers build it
// once and run their measurements as sub-benchmarks, which share it.
func newReadBenchLog(b *testing.B) *log.Log {
	b.Helper()
	l, _ := newBenchLog(b, b.TempDir(), nil)
	addEntries(b, l, benchEntries(0, readBenchSize), 1024)
	return l
}

// BenchmarkInclusionProof measures inclusion proofs of random entries
// against the latest checkpoint of a 100k-entry log, from every CPU.
func BenchmarkInclusionProof(b *testing.B) {
	l := newReadBenchLog(b)
	b.Run(fmt.Sprintf("size=%d", readBenchSize), func(b *testing.B) {
		_, size := l.Checkpoint()
		ctx := context.Background()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.InclusionProof(ctx, rand.Uint64N(size), size); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "proofs/s")
	})
}

// BenchmarkTileRead measures reads of random full level-0 tiles and entry
// bundles of a 100k-entry log, from every CPU.
func BenchmarkTileRead(b *testing.B) {
	l := newReadBenchLog(b)
	tiles := uint64(readBenchSize / api.TileWidth)
	for _, level := range []int{0, api.EntriesLevel} {
		name := fmt.Sprintf("level=%d", level)
		if level == api.EntriesLevel {
			name = "level=entries"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t := api.Tile{Level: level, Index: rand.Uint64N(tiles), Width: api.TileWidth}
					var err error
					if level == api.EntriesLevel {
						_, err = l.EntryBundle(ctx, t)
					} else {
						_, err = l.Tile(ctx, t)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reads/s")
		})
	}
}
