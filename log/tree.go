package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/api"
)

var (
	hasher       = rfc6962.DefaultHasher
	rangeFactory = &compact.RangeFactory{Hash: hashChildren}
)

// edgeTile is the rightmost, growing tile of one tile level (or the
// rightmost entry bundle). Its data is only ever appended to, and a fresh
// buffer is started for the next tile once it is full, so slices handed out
// of it stay valid.
type edgeTile struct {
	index  uint64
	data   []byte
	n      int  // hashes or entries in data
	stored int  // bytes of data in storage as of the last flush
	dirty  bool // touched since the last flush
	// rows[s-1] holds, for a hash tile, the perfect subtrees of height s
	// over data, as the tree makes them: with data, what expandTile would
	// compute. Like data, rows are only appended to, in buffers of the
	// full tile's size.
	rows [api.TileHeight - 1][]byte
	// grown is set when data or rows changed since the tile was last
	// reported to the tile cache.
	grown bool
}

// expanded returns the tile's rows as expandTile would return them for
// its current data, in slices that appending to cannot change.
func (t *edgeTile) expanded() [][]byte {
	rows := make([][]byte, 1, api.TileHeight+1)
	rows[0] = t.data[:len(t.data):len(t.data)]
	for s := 1; t.n>>s > 0 && s < api.TileHeight; s++ {
		r := t.rows[s-1][:(t.n>>s)*api.HashSize]
		rows = append(rows, r[:len(r):len(r)])
	}
	if t.n == api.TileWidth {
		// The root of the full tile, which the tile above holds.
		last := rows[len(rows)-1]
		rows = append(rows, hashChildren(last[:api.HashSize], last[api.HashSize:]))
	}
	return rows
}

// storedRowsFrom is the lowest height of the subtrees of a full tile
// whose hashes are stored with it (TileData.Rows): a proof computes those
// below, from the tile's hashes, with at most 2^storedRowsFrom - 1 hashes
// each.
const storedRowsFrom = 4

// storedRowsOffset returns the offset in TileData.Rows of the hashes of
// height h (storedRowsFrom <= h < api.TileHeight).
func storedRowsOffset(h int) int {
	off := 0
	for s := storedRowsFrom; s < h; s++ {
		off += (api.TileWidth >> s) * api.HashSize
	}
	return off
}

// storedRows returns the full tile's TileData.Rows.
func (t *edgeTile) storedRows() []byte {
	rows := make([]byte, 0, storedRowsOffset(api.TileHeight))
	for s := storedRowsFrom; s < api.TileHeight; s++ {
		rows = append(rows, t.rows[s-1][:(api.TileWidth>>s)*api.HashSize]...)
	}
	return rows
}

// expandedTile is a hash tile of the tree with its rows, for the tile
// cache.
type expandedTile struct {
	level uint8
	index uint64
	rows  [][]byte
}

// treeBuilder extends the Merkle tree one leaf at a time and keeps the
// tiles and the entry bundle that the new leaves touch.
type treeBuilder struct {
	rng    *compact.Range
	levels []edgeTile // tile level -> rightmost tile
	bundle edgeTile
	tiles  []TileData // full tiles completed since the last flush
	bunds  []BundleData
	// grown holds the hash tiles that grew since the last flush and have
	// since been replaced by the next tile of their level.
	grown []expandedTile
}

// newTreeBuilder returns a builder for the tree of the given size, reading
// its right edge from r.
func newTreeBuilder(ctx context.Context, r tileReader, size uint64) (*treeBuilder, error) {
	b := &treeBuilder{}
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	nr := nodeReader{r: r}
	for i, id := range ids {
		h, err := nr.hash(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("couldn't read the tree's right edge: %w", err)
		}
		hashes[i] = h
	}
	rng, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("couldn't rebuild the compact range: %w", err)
	}
	b.rng = rng
	for level := 0; size>>(api.TileHeight*level) > 0; level++ {
		count := size >> (api.TileHeight * level)
		t := edgeTile{index: count / api.TileWidth}
		if w := int(count % api.TileWidth); w > 0 {
			data, err := r.ReadTile(ctx, uint8(level), t.index)
			if err != nil {
				return nil, fmt.Errorf("couldn't read edge tile %d/%d: %w", level, t.index, err)
			}
			if len(data) < w*api.HashSize {
				return nil, fmt.Errorf("edge tile %d/%d has %d bytes, want at least %d", level, t.index, len(data), w*api.HashSize)
			}
			t.data = append(make([]byte, 0, api.TileWidth*api.HashSize), data[:w*api.HashSize]...)
			t.n = w
			t.stored = len(t.data)
			t.grown = true // for the tile cache, with the first flush
			for s, row := range expandTile(t.data)[1:] {
				t.rows[s] = append(make([]byte, 0, (api.TileWidth>>(s+1))*api.HashSize), row...)
			}
		}
		b.levels = append(b.levels, t)
	}
	b.bundle = edgeTile{index: size / api.TileWidth}
	if w := int(size % api.TileWidth); w > 0 {
		data, err := r.ReadEntryBundle(ctx, b.bundle.index)
		if err != nil {
			return nil, fmt.Errorf("couldn't read edge entry bundle %d: %w", b.bundle.index, err)
		}
		end, err := bundlePrefix(data, w)
		if err != nil {
			return nil, fmt.Errorf("edge entry bundle %d: %w", b.bundle.index, err)
		}
		b.bundle.data = append([]byte(nil), data[:end]...)
		b.bundle.n = w
		b.bundle.stored = end
	}
	return b, nil
}

// size returns the number of leaves in the tree.
func (b *treeBuilder) size() uint64 { return b.rng.End() }

// root returns the tree's root hash.
func (b *treeBuilder) root() ([]byte, error) {
	if b.size() == 0 {
		return hasher.EmptyRoot(), nil
	}
	return b.rng.GetRootHash(nil)
}

// append adds one entry with its leaf hash.
func (b *treeBuilder) append(entry, leafHash []byte) error {
	bt := &b.bundle
	if bt.n == api.TileWidth {
		*bt = edgeTile{index: bt.index + 1}
	}
	var err error
	if bt.data, err = api.AppendBundleEntry(bt.data, entry); err != nil {
		return err
	}
	bt.n++
	bt.dirty = true
	if bt.n == api.TileWidth {
		b.bunds = append(b.bunds, BundleData{Index: bt.index, Bundle: bt.data, Start: bt.stored, Full: true})
		bt.dirty = false
	}
	return b.rng.Append(leafHash, b.visit)
}

// visit records every node hash that belongs to a tile: the hashes of a
// tile level in its tiles, and those of the levels in between in the rows
// of the tile below them.
func (b *treeBuilder) visit(id compact.NodeID, hash []byte) {
	level := int(id.Level / api.TileHeight)
	if s := id.Level % api.TileHeight; s != 0 {
		// The node of a tile that is complete up to it: the edge tile of
		// its level, which has its hashes in data.
		t := &b.levels[level]
		if t.rows[s-1] == nil {
			t.rows[s-1] = make([]byte, 0, (api.TileWidth>>s)*api.HashSize)
		}
		t.rows[s-1] = append(t.rows[s-1], hash...)
		t.grown = true
		if s == api.TileHeight-1 && t.n == api.TileWidth {
			// The full tile's last subtree below its root: its rows
			// are complete, for the TileData added when it filled.
			for i := len(b.tiles) - 1; i >= 0; i-- {
				if d := &b.tiles[i]; d.Level == uint8(level) && d.Index == t.index {
					d.Rows = t.storedRows()
					break
				}
			}
		}
		return
	}
	for len(b.levels) <= level {
		b.levels = append(b.levels, edgeTile{})
	}
	t := &b.levels[level]
	if t.n == api.TileWidth {
		if t.grown {
			b.grown = append(b.grown, expandedTile{uint8(level), t.index, t.expanded()})
		}
		*t = edgeTile{index: t.index + 1}
	}
	if t.data == nil {
		t.data = make([]byte, 0, api.TileWidth*api.HashSize)
	}
	t.data = append(t.data, hash...)
	t.n++
	t.dirty = true
	t.grown = true
	if t.n == api.TileWidth {
		b.tiles = append(b.tiles, TileData{Level: uint8(level), Index: t.index, Hashes: t.data, Start: t.stored})
		t.dirty = false
	}
}

// flush returns every tile and entry bundle changed since the last flush,
// and the hash tiles among them expanded into their rows. The returned
// slices are never modified afterwards.
func (b *treeBuilder) flush() ([]TileData, []BundleData, []expandedTile) {
	tiles, bunds, grown := b.tiles, b.bunds, b.grown
	for i := range b.levels {
		t := &b.levels[i]
		if t.grown {
			grown = append(grown, expandedTile{uint8(i), t.index, t.expanded()})
			t.grown = false
		}
		if t.dirty {
			tiles = append(tiles, TileData{Level: uint8(i), Index: t.index, Hashes: t.data[:len(t.data):len(t.data)], Start: t.stored})
			t.stored = len(t.data)
			t.dirty = false
		}
	}
	if bt := &b.bundle; bt.dirty {
		bunds = append(bunds, BundleData{Index: bt.index, Bundle: bt.data[:len(bt.data):len(bt.data)], Start: bt.stored})
		bt.stored = len(bt.data)
		bt.dirty = false
	}
	b.tiles, b.bunds, b.grown = nil, nil, nil
	return tiles, bunds, grown
}

// bundlePrefix returns the length in bytes of the first n entries of an
// entry bundle.
func bundlePrefix(bundle []byte, n int) (int, error) {
	off := 0
	for i := 0; i < n; i++ {
		if len(bundle)-off < 2 {
			return 0, fmt.Errorf("entry bundle has %d entries, want at least %d", i, n)
		}
		l := int(bundle[off])<<8 | int(bundle[off+1])
		if len(bundle)-off-2 < l {
			return 0, fmt.Errorf("entry bundle truncated in entry %d", i)
		}
		off += 2 + l
	}
	return off, nil
}

// bundleEntry returns the i-th entry of an entry bundle.
func bundleEntry(bundle []byte, i int) ([]byte, error) {
	off, err := bundlePrefix(bundle, i)
	if err != nil {
		return nil, err
	}
	end, err := bundlePrefix(bundle[off:], 1)
	if err != nil {
		return nil, err
	}
	return bundle[off+2 : off+end], nil
}

// cacheStored puts the full tile (level, index) in the cache with the
// rows stored with it (TileRowsReader), read together, if it is not there
// yet: a proof then needs no expansion of the tile (hash computes the
// heights below storedRowsFrom from at most 2^storedRowsFrom of its
// hashes). A tile stored without rows (one filled before they were kept)
// is cached expanded. It does nothing for a tile not full at the reader's
// size or without a cache.
func (nr *nodeReader) cacheStored(ctx context.Context, level uint8, index uint64) error {
	rr, ok := nr.r.(TileRowsReader)
	if !ok || nr.cache == nil || nr.size == 0 {
		return nil
	}
	if t, ok := api.TileForSize(int(level), index, nr.size); !ok || t.Width != api.TileWidth {
		return nil
	}
	if _, ok := nr.cache.get(level, index, api.TileWidth); ok {
		return nil
	}
	data, rows, err := rr.ReadFullTile(ctx, level, index)
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("tile %d/%d is not full, the tree of %d entries needs it: %w", level, index, nr.size, err)
	case err != nil:
		return fmt.Errorf("couldn't read tile %d/%d: %w", level, index, err)
	case len(data) != api.TileWidth*api.HashSize:
		return fmt.Errorf("tile %d/%d has %d hashes, the tree of %d entries needs %d: %w", level, index, len(data)/api.HashSize, nr.size, api.TileWidth, ErrNotFound)
	case rows == nil:
		// Filled before rows were stored: expanded, as tile() would.
		nr.cache.rows(level, index, data)
		return nil
	case len(rows) != storedRowsOffset(api.TileHeight):
		return fmt.Errorf("the stored rows of tile %d/%d are %d bytes, want %d", level, index, len(rows), storedRowsOffset(api.TileHeight))
	}
	nr.cache.addStored(level, index, data, rows)
	return nil
}

// tileReader is the part of Storage that the tree is read from.
type tileReader interface {
	ReadTile(ctx context.Context, level uint8, index uint64) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error)
}

// nodeReader computes the hash of any complete subtree from tiles: a node
// at level l is either in a tile (l a multiple of 8) or the root of a
// stretch of at most 128 hashes of the tile level below it.
type nodeReader struct {
	r     tileReader
	cache *tileCache // optional
	// size is the tree size the nodes are read for, if known (not 0).
	size uint64
	// last tile read, since a proof's nodes often share tiles.
	lastLevel uint8
	lastIndex uint64
	last      []byte
}

func (nr *nodeReader) tile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	if nr.last != nil && nr.lastLevel == level && nr.lastIndex == index {
		return nr.last, nil
	}
	// The tile's width in the tree the proof is for: its hashes are all
	// the proof can need, and the same for every proof at that size.
	width := api.TileWidth
	if nr.size > 0 {
		if t, ok := api.TileForSize(int(level), index, nr.size); ok {
			width = t.Width
		}
	}
	if data, ok := nr.cache.get(level, index, width); ok {
		nr.lastLevel, nr.lastIndex, nr.last = level, index, data
		return data, nil
	}
	data, err := nr.r.ReadTile(ctx, level, index)
	if err != nil {
		return nil, fmt.Errorf("couldn't read tile %d/%d: %w", level, index, err)
	}
	if nr.size > 0 && len(data) > width*api.HashSize {
		// Grown since: cache it at the width this size needs.
		data = data[:width*api.HashSize]
	}
	if nr.cache != nil {
		data = nr.cache.rows(level, index, data)[0]
	}
	nr.lastLevel, nr.lastIndex, nr.last = level, index, data
	return data, nil
}

func (nr *nodeReader) hash(ctx context.Context, id compact.NodeID) ([]byte, error) {
	level := uint8(id.Level / api.TileHeight)
	sub := id.Level % api.TileHeight
	first := id.Index << sub
	count := uint64(1) << sub
	if err := nr.cacheStored(ctx, level, first/api.TileWidth); err != nil {
		return nil, err
	}
	data, err := nr.tile(ctx, level, first/api.TileWidth)
	if err != nil {
		return nil, err
	}
	off := first % api.TileWidth
	if uint64(len(data)) < (off+count)*api.HashSize {
		return nil, fmt.Errorf("tile %d/%d has %d hashes, node %d/%d needs %d: %w",
			level, first/api.TileWidth, len(data)/api.HashSize, id.Level, id.Index, off+count, ErrNotFound)
	}
	row, i := data, off
	if sub > 0 {
		row, i = nr.cache.rows(level, first/api.TileWidth, data)[sub], off>>sub
		if row == nil {
			// A row below storedRowsFrom of a tile cached with its
			// stored rows: a few of the tile's hashes.
			return subtreeHash(data[off*api.HashSize : (off+count)*api.HashSize]), nil
		}
	}
	// A copy: tiles and rows may be shared through the cache, and proofs
	// are handed to callers.
	return bytes.Clone(row[i*api.HashSize : (i+1)*api.HashSize]), nil
}
