package pebble_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// commitBuilder makes the commits a log of benchEntrySize-byte entries
// would write, batch after batch: the entry bundles and tiles the batch
// touches (full ones and the growing right edge, on every level), the leaf
// index and a checkpoint. The hashes are random, not a Merkle tree: storage
// does not check them.
type commitBuilder struct {
	size   uint64
	rng    *rand.ChaCha8
	levels [][]byte // tile level -> hashes of its rightmost tile
	stored []int    // tile level -> bytes of levels[level] already committed
	bundle []byte   // the rightmost entry bundle
	bstore int      // bytes of bundle already committed
	entry  []byte
	// leafOf, if set, gives the leaf hash of entry i, which its level-0
	// tile holds too, as a log's does.
	leafOf func(i uint64) []byte
}

const benchEntrySize = 300

func newCommitBuilder() *commitBuilder {
	return &commitBuilder{rng: rand.NewChaCha8([32]byte{}), entry: make([]byte, benchEntrySize)}
}

func (cb *commitBuilder) next(n int) *log.Commit {
	c := &log.Commit{OldSize: cb.size, NewSize: cb.size + uint64(n)}
	hash := func() []byte {
		h := make([]byte, api.HashSize)
		cb.rng.Read(h)
		return h
	}
	for range n {
		i := cb.size
		binary.BigEndian.PutUint64(cb.entry, i)
		cb.rng.Read(cb.entry[8:]) // random, so that pebble cannot compress it
		var err error
		if cb.bundle, err = api.AppendBundleEntry(cb.bundle, cb.entry); err != nil {
			panic(err)
		}
		if (i+1)%api.TileWidth == 0 {
			c.Bundles = append(c.Bundles, log.BundleData{Index: i / api.TileWidth, Bundle: cb.bundle, Start: cb.bstore, Full: true})
			cb.bundle, cb.bstore = nil, 0
		}
		leaf := hash()
		if cb.leafOf != nil {
			leaf = cb.leafOf(i)
		}
		c.Leaves = append(c.Leaves, log.LeafIndex{LeafHash: leaf, Index: i})
		// Level l of tiles gets a hash every 256^l leaves.
		for level, count := 0, i+1; ; level, count = level+1, count/api.TileWidth {
			if level == len(cb.levels) {
				cb.levels = append(cb.levels, nil)
				cb.stored = append(cb.stored, 0)
			}
			if level == 0 && cb.leafOf != nil {
				cb.levels[level] = append(cb.levels[level], leaf...)
			} else {
				cb.levels[level] = append(cb.levels[level], hash()...)
			}
			if count%api.TileWidth != 0 {
				break
			}
			c.Tiles = append(c.Tiles, log.TileData{Level: uint8(level), Index: count/api.TileWidth - 1, Hashes: cb.levels[level], Start: cb.stored[level]})
			cb.levels[level], cb.stored[level] = nil, 0
		}
		cb.size++
	}
	// The right edge: the partial tiles and bundle that grew.
	for level, t := range cb.levels {
		if len(t) > cb.stored[level] {
			c.Tiles = append(c.Tiles, log.TileData{Level: uint8(level), Index: cb.size >> (api.TileHeight * (level + 1)), Hashes: t[:len(t):len(t)], Start: cb.stored[level]})
			cb.stored[level] = len(t)
		}
	}
	if len(cb.bundle) > cb.bstore {
		c.Bundles = append(c.Bundles, log.BundleData{Index: cb.size / api.TileWidth, Bundle: cb.bundle[:len(cb.bundle):len(cb.bundle)], Start: cb.bstore})
		cb.bstore = len(cb.bundle)
	}
	c.Checkpoint = fmt.Appendf(nil, "example.com/bench\n%d\n%044d\n\n— example.com/bench %0104d\n", cb.size, 0, 0)
	return c
}

// BenchmarkCommit measures one synced commit of a batch of 300-byte
// entries with its tiles, entry bundles and leaf index. One op is one
// commit.
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{1024, 4096} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			s, err := pebble.Open(b.TempDir(), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			cb := newCommitBuilder()
			b.SetBytes(int64(n * benchEntrySize))
			var busy time.Duration
			for b.Loop() {
				b.StopTimer()
				c := cb.next(n)
				b.StartTimer()
				start := time.Now()
				if err := s.Commit(ctx, c); err != nil {
					b.Fatal(err)
				}
				busy += time.Since(start)
			}
			b.ReportMetric(float64(b.N*n)/busy.Seconds(), "entries/s")
		})
	}
}

// BenchmarkSmallCommits grows a log by many small synced commits, as a log
// under light load does, and reports what that costs in writes and in disk
// space. One op is one entry. WAL-B/entry is what the commits write
// (the logical batch bytes); written-B/entry adds pebble's flushes and
// compactions; disk-B/entry is the size of the live tables after a full
// compaction, the steady-state cost of keeping the log.
func BenchmarkSmallCommits(b *testing.B) {
	for _, n := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			s, err := pebble.Open(b.TempDir(), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			cb := newCommitBuilder()
			b.SetBytes(benchEntrySize)
			for done := 0; done < b.N; done += n {
				if err := s.Commit(ctx, cb.next(min(n, b.N-done))); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			db := s.DB()
			m := db.Metrics()
			total := m.Total()
			entries := float64(b.N)
			b.ReportMetric(float64(m.WAL.BytesIn)/entries, "WAL-B/entry")
			b.ReportMetric(float64(m.WAL.BytesWritten+total.TableBytesFlushed+total.TableBytesCompacted)/entries, "written-B/entry")
			if err := db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
				b.Fatal(err)
			}
			m = db.Metrics()
			b.ReportMetric(float64(m.Table.Local.LiveSize)/entries, "disk-B/entry")
		})
	}
}

// BenchmarkLookupLeafMiss measures looking up leaf hashes that are not in
// a log of 256 Ki entries, in parallel: what deduplicating every new entry
// costs. One op is one lookup.
func BenchmarkLookupLeafMiss(b *testing.B) {
	s, err := pebble.Open(b.TempDir(), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	cb := newCommitBuilder()
	for range 1 << 8 {
		if err := s.Commit(ctx, cb.next(1<<10)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.NewChaCha8([32]byte{1})
		h := make([]byte, 32)
		for pb.Next() {
			rng.Read(h)
			if _, err := s.LookupLeaf(ctx, h); !errors.Is(err, log.ErrNotFound) {
				b.Fatal(err)
			}
		}
	})
}
