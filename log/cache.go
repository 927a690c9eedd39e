package log

import (
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/candorlog/candor/api"
)

// tileCache keeps tiles expanded into every perfect subtree hash they hold,
// so that a proof's nodes below a tile level cost a lookup, not up to 127
// hashes each. A tile's content at a given width never changes, so entries
// are keyed by width and never invalidated.
type tileCache struct {
	c *lru.Cache[tileCacheKey, [][]byte]
}

type tileCacheKey struct {
	level uint8
	index uint64
	width int
}

func newTileCache(size int) *tileCache {
	c, err := lru.New[tileCacheKey, [][]byte](size)
	if err != nil {
		panic(err) // only for size <= 0
	}
	return &tileCache{c: c}
}

// get returns the hashes of the tile at the given width if the cache has
// it: a tile's content at a width never changes, so it need not be read
// again.
func (tc *tileCache) get(level uint8, index uint64, width int) ([]byte, bool) {
	if tc == nil {
		return nil, false
	}
	rows, ok := tc.c.Get(tileCacheKey{level, index, width})
	if !ok {
		return nil, false
	}
	return rows[0], true
}

// rows returns the expanded tile: rows[s] holds the hashes of the perfect
// subtrees of height s over the tile's hashes, concatenated.
func (tc *tileCache) rows(level uint8, index uint64, data []byte) [][]byte {
	key := tileCacheKey{level, index, len(data) / api.HashSize}
	if tc != nil {
		if rows, ok := tc.c.Get(key); ok {
			return rows
		}
	}
	rows := expandTile(data)
	if tc != nil {
		tc.c.Add(key, rows)
	}
	return rows
}

func expandTile(data []byte) [][]byte {
	rows := make([][]byte, 1, api.TileHeight)
	rows[0] = data
	for prev := data; len(prev) >= 2*api.HashSize; {
		n := len(prev) / (2 * api.HashSize)
		next := make([]byte, 0, n*api.HashSize)
		for i := 0; i < n; i++ {
			l := prev[2*i*api.HashSize : (2*i+1)*api.HashSize]
			r := prev[(2*i+1)*api.HashSize : (2*i+2)*api.HashSize]
			next = append(next, hasher.HashChildren(l, r)...)
		}
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
