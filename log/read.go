package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/candorlog/candor/api"
)

// Tile returns the hashes of tile t, which must be part of the committed
// tree (t.Width no more than the tile has there). Tiles are immutable at
// their path, so serving those of the committed tree before its checkpoint
// is cosigned changes nothing for clients, which ask for the tiles of the
// checkpoint they hold.
func (l *Log) Tile(ctx context.Context, t api.Tile) ([]byte, error) {
	size := l.committedSize()
	if err := checkTile(t, size); err != nil {
		return nil, err
	}
	// Tiles that proofs use are cached; the cache does not take in every
	// tile clients read, so that a client reading the whole tree does not
	// push out what proofs need.
	if data, ok := l.cache.get(uint8(t.Level), t.Index, t.Width); ok {
		return bytes.Clone(data), nil
	}
	data, err := l.store.ReadTile(ctx, uint8(t.Level), t.Index)
	if err != nil {
		return nil, fmt.Errorf("couldn't read tile %s: %w", t.Path(), mustExist(err))
	}
	if len(data) < t.Width*api.HashSize {
		return nil, fmt.Errorf("%w: tile %s has %d hashes", errMissing, t.Path(), len(data)/api.HashSize)
	}
	return data[:t.Width*api.HashSize], nil
}

// EntryBundle returns the entry bundle t (t.Level is api.EntriesLevel),
// which must be part of the committed tree.
func (l *Log) EntryBundle(ctx context.Context, t api.Tile) ([]byte, error) {
	data, release, err := l.entryBundle(ctx, t)
	if err != nil {
		return nil, err
	}
	defer release()
	return bytes.Clone(data), nil
}

// entryBundle is EntryBundle in a buffer the caller gives back with
// release once done with it.
func (l *Log) entryBundle(ctx context.Context, t api.Tile) (data []byte, release func(), err error) {
	size := l.committedSize()
	if err := checkTile(t, size); err != nil {
		return nil, nil, err
	}
	data, release, err = l.readBundle(ctx, t.Index)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read entry bundle %s: %w", t.Path(), mustExist(err))
	}
	end, err := bundlePrefix(data, t.Width)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("entry bundle %s: %w", t.Path(), err)
	}
	return data[:end], release, nil
}

// encodedEntryBundle is entryBundle compressed in the content coding
// coding, as storage keeps it; ok is false if storage does not keep the
// bundle so (not full; an older codec; not an EncodedEntryBundleReader).
// release gives the buffer back.
func (l *Log) encodedEntryBundle(ctx context.Context, t api.Tile, coding string) (data []byte, release func(), ok bool, err error) {
	er, can := l.store.(EncodedEntryBundleReader)
	if !can || t.Width != api.TileWidth {
		return nil, nil, false, nil
	}
	if err := checkTile(t, l.committedSize()); err != nil {
		return nil, nil, false, err
	}
	data, release, ok, err = l.pooledBundleRead(ctx, t.Index, func(dst []byte) ([]byte, bool, error) {
		return er.AppendEncodedEntryBundle(ctx, dst, t.Index, coding)
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("couldn't read entry bundle %s: %w", t.Path(), mustExist(err))
	}
	return data, release, ok, nil
}

// MaxBundleReads is the most entry bundles the log reads from storage at
// once; more reads wait for a place (or for their context to end). A
// bundle read outside pebble's block cache allocates its compressed and
// decompressed blocks and the log's buffer, about 230 KB each: a burst of
// reads missing the cache otherwise allocates them for every client at
// once, faster than the collector frees the blocks the cache evicts. On
// two cores, 64 clients reading random bundles of a 100 M log (mostly
// outside the block cache) get as many a second with 8 reads at once as
// with 64, at half the p99, and a 1 M log's as many too.
const MaxBundleReads = 8

// BundleReadBytes is the most memory the bundle reads in progress hold:
// for each, the bundle's buffer and storage's two blocks, of 256 entries
// of 1 KiB.
const BundleReadBytes = MaxBundleReads * 3 * api.TileWidth << 10

// readBundle reads entry bundle index, into a pooled buffer if the
// storage is an EntryBundleAppender; release gives the buffer back. It
// waits for one of MaxBundleReads places while storage reads.
func (l *Log) readBundle(ctx context.Context, index uint64) (data []byte, release func(), err error) {
	a, ok := l.store.(EntryBundleAppender)
	if !ok {
		done, err := l.startBundleRead(ctx, index)
		if err != nil {
			return nil, nil, err
		}
		defer done()
		data, err := l.store.ReadEntryBundle(ctx, index)
		return data, func() {}, err
	}
	data, release, _, err = l.pooledBundleRead(ctx, index, func(dst []byte) ([]byte, bool, error) {
		data, err := a.AppendEntryBundle(ctx, dst, index)
		return data, true, err
	})
	return data, release, err
}

// startBundleRead waits for one of MaxBundleReads places for a read of
// entry bundle index; done gives it back.
func (l *Log) startBundleRead(ctx context.Context, index uint64) (done func(), err error) {
	select {
	case l.bundleReads <- struct{}{}:
		return func() { <-l.bundleReads }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to read entry bundle %d: %w", index, ctx.Err())
	}
}

// pooledBundleRead has read append entry bundle index to a pooled buffer,
// in one of MaxBundleReads places; release gives the buffer back. If read
// returns false (no bundle, no error), so does pooledBundleRead.
func (l *Log) pooledBundleRead(ctx context.Context, index uint64, read func(dst []byte) ([]byte, bool, error)) (data []byte, release func(), ok bool, err error) {
	done, err := l.startBundleRead(ctx, index)
	if err != nil {
		return nil, nil, false, err
	}
	defer done()
	buf := bundleBuffers.Get().(*[]byte)
	data, ok, err = read((*buf)[:0])
	if err != nil || !ok {
		bundleBuffers.Put(buf)
		return nil, nil, false, err
	}
	return data, func() {
		// A buffer grown by a bundle of large entries goes to the
		// collector rather than stay in the pool.
		if cap(data) <= maxPooledBundle {
			*buf = data[:0]
			bundleBuffers.Put(buf)
		}
	}, true, nil
}

// bundleBuffers holds buffers for entry bundles; maxPooledBundle is the
// largest it keeps: 256 entries of 2 KiB.
var bundleBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBundle = api.TileWidth * 2 << 10

// errMissing means storage lacks data that a published checkpoint covers:
// corruption, not a client error.
var errMissing = errors.New("storage is missing data of the published tree")

// mustExist turns ErrNotFound for data that must exist into errMissing.
func mustExist(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %v", errMissing, err)
	}
	return err
}

func checkTile(t api.Tile, size uint64) error {
	have, ok := api.TileForSize(t.Level, t.Index, size)
	if !ok || have.Width < t.Width {
		return fmt.Errorf("%w: %s is beyond the tree of size %d", ErrOutOfRange, t.Path(), size)
	}
	return nil
}

// Entry returns the entry at index, which must be below the committed size.
func (l *Log) Entry(ctx context.Context, index uint64) ([]byte, error) {
	if size := l.committedSize(); index >= size {
		return nil, fmt.Errorf("%w: index %d is not below the tree size %d", ErrOutOfRange, index, size)
	}
	data, release, err := l.readBundle(ctx, index/api.TileWidth)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the entry bundle of entry %d: %w", index, mustExist(err))
	}
	defer release()
	e, err := bundleEntry(data, int(index%api.TileWidth))
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	return bytes.Clone(e), nil
}

// LeafHash returns the leaf hash of the entry at index, which must be below
// the committed size. It reads the hash from the tree's tiles rather than
// hash the entry.
func (l *Log) LeafHash(ctx context.Context, index uint64) ([]byte, error) {
	size := l.committedSize()
	if index >= size {
		return nil, fmt.Errorf("%w: index %d is not below the tree size %d", ErrOutOfRange, index, size)
	}
	h, err := leafHash(ctx, l.store, l.cache, index, size)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the leaf hash of entry %d: %w", index, mustExist(err))
	}
	return h, nil
}

// Committed returns the receipt of the committed entry with the leaf hash,
// as AddWithTerms returns it: its index and the newest committed
// checkpoint (with a Witnessing, signed by the log only: WaitWitnessed
// waits for a cosigned one). An entry not committed gives ErrNotFound.
func (l *Log) Committed(ctx context.Context, leafHash []byte) (Receipt, error) {
	idx, err := l.store.LookupLeaf(ctx, leafHash)
	if err != nil {
		return Receipt{}, err
	}
	c := l.cur.Load()
	if idx >= c.size {
		return Receipt{}, ErrNotFound
	}
	return Receipt{Index: idx, LeafHash: leafHash, Size: c.size, Checkpoint: c.checkpoint}, nil
}

// LookupLeaf returns the index of the published entry with the leaf hash.
// An entry that is committed but not in the published checkpoint gives
// ErrNotFound, or with a Witnessing an error wrapping ErrNotWitnessed.
func (l *Log) LookupLeaf(ctx context.Context, leafHash []byte) (uint64, error) {
	idx, err := l.store.LookupLeaf(ctx, leafHash)
	if err != nil {
		return 0, err
	}
	if _, size := l.Checkpoint(); idx >= size {
		if err := l.checkWitnessed(idx); err != nil {
			return 0, err
		}
		// Committed, but its checkpoint is not published yet.
		return 0, ErrNotFound
	}
	return idx, nil
}

// InclusionProof returns the proof that the entry at index is in the tree of
// the given size, which must not exceed the published size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if _, cur := l.Checkpoint(); size > cur {
		return nil, fmt.Errorf("%w: tree size %d is larger than the published size %d", ErrOutOfRange, size, cur)
	}
	if index >= size {
		return nil, fmt.Errorf("%w: index %d is not below the tree size %d", ErrOutOfRange, index, size)
	}
	p, err := inclusionProof(ctx, l.store, l.cache, index, size)
	return p, mustExist(err)
}

// ConsistencyProof returns the proof that the tree of size old is a prefix
// of the tree of size new, which must not exceed the published size.
func (l *Log) ConsistencyProof(ctx context.Context, old, new uint64) ([][]byte, error) {
	if _, cur := l.Checkpoint(); new > cur {
		return nil, fmt.Errorf("%w: tree size %d is larger than the published size %d", ErrOutOfRange, new, cur)
	}
	p, err := consistencyProof(ctx, l.store, l.cache, old, new)
	return p, mustExist(err)
}
