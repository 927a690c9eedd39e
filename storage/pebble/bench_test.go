package pebble_test

import (
	"context"
	"encoding/binary"
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
	bundle []byte   // the rightmost entry bundle
	entry  []byte
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
		var err error
		if cb.bundle, err = api.AppendBundleEntry(cb.bundle, cb.entry); err != nil {
			panic(err)
		}
		if (i+1)%api.TileWidth == 0 {
			c.Bundles = append(c.Bundles, log.BundleData{Index: i / api.TileWidth, Bundle: cb.bundle})
			cb.bundle = nil
		}
		leaf := hash()
		c.Leaves = append(c.Leaves, log.LeafIndex{LeafHash: leaf, Index: i})
		// Level l of tiles gets a hash every 256^l leaves.
		for level, count := 0, i+1; ; level, count = level+1, count/api.TileWidth {
			if level == len(cb.levels) {
				cb.levels = append(cb.levels, nil)
			}
			cb.levels[level] = append(cb.levels[level], hash()...)
			if count%api.TileWidth != 0 {
				break
			}
			c.Tiles = append(c.Tiles, log.TileData{Level: uint8(level), Index: count/api.TileWidth - 1, Hashes: cb.levels[level]})
			cb.levels[level] = nil
		}
		cb.size++
	}
	for level, t := range cb.levels {
		if len(t) > 0 {
			c.Tiles = append(c.Tiles, log.TileData{Level: uint8(level), Index: cb.size >> (api.TileHeight * (level + 1)), Hashes: t[:len(t):len(t)]})
		}
	}
	if len(cb.bundle) > 0 {
		c.Bundles = append(c.Bundles, log.BundleData{Index: cb.size / api.TileWidth, Bundle: cb.bundle[:len(cb.bundle):len(cb.bundle)]})
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
