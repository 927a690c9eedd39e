package log

import (
	"crypto/sha256"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/candorlog/candor/api"
)

// tileCache keeps tiles expanded into every perfect subtree hash they hold,
// so that a proof's nodes below a tile level cost a lookup, not up to 127
// hashes each. A tile's content at a given width never changes, so entries
// are keyed by width and never invalidated.
//
// Partial tiles have a cache of their own: the sequencer adds the edge
// tiles of every batch it publishes, which the proofs of the batch's
// entries and the reads at the new size need, and which would otherwise
// push the full tiles out. So do the full tiles above level 0: one in 256
// of a tree's tiles, each on the path of 65,536 entries or more, which
// random proofs need over and over, where each proof brings a level-0
// tile that the next rarely needs.
type tileCache struct {
	full, upper, partial *lru.Cache[tileCacheKey, [][]byte]
}

type tileCacheKey struct {
	level uint8
	index uint64
	width int
}

// partialTileCacheSize is how many partial tiles are kept: the edge tiles
// of the last few dozen batches, a few at each; fullTileCacheSize is how
// many full ones of level 0, and upperTileCacheSize of the levels above:
// all of those of a log of up to 134 M entries.
const (
	partialTileCacheSize = 128
	fullTileCacheSize    = 1024
	upperTileCacheSize   = 2048
)

// TileCacheBytes is the most memory the log's tile caches hold: every
// tile expanded into its 511 subtree hashes.
const TileCacheBytes = (fullTileCacheSize + upperTileCacheSize + partialTileCacheSize) * (2*api.TileWidth - 1) * api.HashSize

// newTileCache returns a cache of size full tiles of each kind (level 0,
// above), and partialTileCacheSize partial ones.
func newTileCache(full, upper int) *tileCache {
	newLRU := func(size int) *lru.Cache[tileCacheKey, [][]byte] {
		c, err := lru.New[tileCacheKey, [][]byte](size)
		if err != nil {
			panic(err) // only for size <= 0
		}
		return c
	}
	return &tileCache{full: newLRU(full), upper: newLRU(upper), partial: newLRU(partialTileCacheSize)}
}

func (tc *tileCache) lru(level uint8, width int) *lru.Cache[tileCacheKey, [][]byte] {
	switch {
	case width < api.TileWidth:
		return tc.partial
	case level > 0:
		return tc.upper
	default:
		return tc.full
	}
}

// get returns the hashes of the tile at the given width if the cache has
// it: a tile's content at a width never changes, so it need not be read
// again.
func (tc *tileCache) get(level uint8, index uint64, width int) ([]byte, bool) {
	if tc == nil {
		return nil, false
	}
	rows, ok := tc.lru(level, width).Get(tileCacheKey{level, index, width})
	if !ok {
		return nil, false
	}
	return rows[0], true
}

// rows returns the expanded tile: rows[s] holds the hashes of the perfect
// subtrees of height s over the tile's hashes, concatenated; for a tile
// cached by addStored, rows below storedRowsFrom (but 0) are nil.
func (tc *tileCache) rows(level uint8, index uint64, data []byte) [][]byte {
	key := tileCacheKey{level, index, len(data) / api.HashSize}
	if tc != nil {
		if rows, ok := tc.lru(level, key.width).Get(key); ok {
			return rows
		}
	}
	rows := expandTile(data)
	if tc != nil {
		tc.lru(level, key.width).Add(key, rows)
	}
	return rows
}

// addStored caches the full tile data with the rows stored with it
// (TileData.Rows): the rows from storedRowsFrom up are those stored, and
// those below are nil, for the reader to compute from data.
func (tc *tileCache) addStored(level uint8, index uint64, data, stored []byte) {
	rows := make([][]byte, api.TileHeight)
	rows[0] = data
	for s := storedRowsFrom; s < api.TileHeight; s++ {
		off := storedRowsOffset(s)
		rows[s] = stored[off : off+(api.TileWidth>>s)*api.HashSize : off+(api.TileWidth>>s)*api.HashSize]
	}
	tc.lru(level, api.TileWidth).Add(tileCacheKey{level, index, api.TileWidth}, rows)
}

// add caches tiles of the tree, already expanded as expandTile would. The
// tiles must be durable: the cache is never invalidated.
func (tc *tileCache) add(tiles []expandedTile) {
	for _, t := range tiles {
		key := tileCacheKey{t.level, t.index, len(t.rows[0]) / api.HashSize}
		tc.lru(t.level, key.width).Add(key, t.rows)
	}
}

func expandTile(data []byte) [][]byte {
	rows := make([][]byte, 1, api.TileHeight+1)
	rows[0] = data
	// All the rows above data in one allocation, and each node hashed
	// from a buffer on the stack (hashChildren allocates its result): a
	// proof whose tile is not in the cache spends most of its time here.
	above := make([]byte, 0, len(data))
	var buf [1 + 2*api.HashSize]byte
	buf[0] = 1
	for prev := data; len(prev) >= 2*api.HashSize; {
		n := len(prev) / (2 * api.HashSize)
		start := len(above)
		for i := 0; i < n; i++ {
			copy(buf[1:], prev[2*i*api.HashSize:(2*i+2)*api.HashSize])
			h := sha256.Sum256(buf[:])
			above = append(above, h[:]...)
		}
		next := above[start:len(above):len(above)]
		rows = append(rows, next)
		prev = next
	}
	return rows
}

// subtreeHash returns the root of the perfect subtree whose bottom row is
// the concatenated hashes (a power of two of them).
func subtreeHash(hashes []byte) []byte {
	rows := expandTile(hashes)
	return rows[len(rows)-1]
}

// hashChildren is RFC 6962's hash of an interior node, SHA-256(0x01 ‖
// left ‖ right), as rfc6962.Hasher.HashChildren computes it with one
// allocation, for its result, rather than three.
func hashChildren(l, r []byte) []byte {
	var buf [1 + 2*api.HashSize]byte
	buf[0] = 1
	copy(buf[1:], l)
	copy(buf[1+api.HashSize:], r)
	h := sha256.Sum256(buf[:])
	return h[:]
}
