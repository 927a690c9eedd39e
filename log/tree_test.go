package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/candorlog/candor/api"
)

// memTiles is a tileReader over maps, written by storing what a
// treeBuilder flushes.
type memTiles struct {
	tiles   map[[2]uint64][]byte
	bundles map[uint64][]byte
	rows    map[[2]uint64][]byte // TileData.Rows, which only withRows serves
}

func newMemTiles() *memTiles {
	return &memTiles{tiles: map[[2]uint64][]byte{}, bundles: map[uint64][]byte{}, rows: map[[2]uint64][]byte{}}
}

// withRows is memTiles that also serves the rows of full tiles, as
// storage/pebble does.
type withRows struct{ *memTiles }

func (m withRows) ReadTileRows(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	r, ok := m.rows[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(r), nil
}

func (m withRows) ReadFullTile(ctx context.Context, level uint8, index uint64) ([]byte, []byte, error) {
	t, ok := m.tiles[[2]uint64{uint64(level), index}]
	if !ok || len(t) != api.TileWidth*api.HashSize {
		return nil, nil, ErrNotFound
	}
	return bytes.Clone(t), bytes.Clone(m.rows[[2]uint64{uint64(level), index}]), nil
}

func (m *memTiles) ReadTile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	t, ok := m.tiles[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(t), nil
}

func (m *memTiles) ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error) {
	b, ok := m.bundles[index]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(b), nil
}

func (m *memTiles) store(tiles []TileData, bundles []BundleData) {
	for _, t := range tiles {
		m.tiles[[2]uint64{uint64(t.Level), t.Index}] = t.Hashes
		if t.Rows != nil {
			m.rows[[2]uint64{uint64(t.Level), t.Index}] = t.Rows
		}
	}
	for _, b := range bundles {
		m.bundles[b.Index] = b.Bundle
	}
}

// refTree is a straightforward reference: every complete subtree's hash,
// level by level, and the RFC 6962 root of any prefix by recursion.
type refTree struct {
	entries [][]byte
	levels  [][][]byte // levels[h][k]: the node at height h, index k
}

func (r *refTree) append(e []byte) {
	r.entries = append(r.entries, e)
	h := hasher.HashLeaf(e)
	for level := 0; ; level++ {
		if len(r.levels) == level {
			r.levels = append(r.levels, nil)
		}
		r.levels[level] = append(r.levels[level], h)
		n := len(r.levels[level])
		if n%2 == 1 {
			return
		}
		h = hasher.HashChildren(r.levels[level][n-2], r.levels[level][n-1])
	}
}

func (r *refTree) node(level uint, index uint64) []byte { return r.levels[level][index] }

// root returns the root of the tree of size n from the complete subtrees
// it decomposes into, largest first, folded from the right.
func (r *refTree) root(n uint64) []byte {
	if n == 0 {
		return hasher.EmptyRoot()
	}
	var nodes [][]byte
	var begin uint64
	for h := bits.Len64(n) - 1; h >= 0; h-- {
		if n&(1<<h) != 0 {
			nodes = append(nodes, r.node(uint(h), begin>>h))
			begin += 1 << h
		}
	}
	root := nodes[len(nodes)-1]
	for i := len(nodes) - 2; i >= 0; i-- {
		root = hasher.HashChildren(nodes[i], root)
	}
	return root
}

// mth returns MTH(D[0:n]) as RFC 6962 section 2.1 defines it, given the
// leaf hashes.

func mth(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		return hasher.EmptyRoot()
	case 1:
		return leaves[0]
	default:
		k := 1 << (bits.Len(uint(n-1)) - 1) // the largest power of 2 below n
		return hasher.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
	}
}

func mthOf(levels [][][]byte, n int) []byte {
	if n == 0 {
		return hasher.EmptyRoot()
	}
	return mth(levels[0][:n])
}

func randomEntry(rng *rand.Rand) []byte {
	n := rng.IntN(64)
	if rng.IntN(20) == 0 {
		n = 0
	}
	e := make([]byte, n)
	for i := range e {
		e[i] = byte(rng.Uint32())
	}
	return e
}

// flushed remembers a slice the builder handed out and what it held then:
// the builder promises never to modify it afterwards.
type flushed struct {
	what string
	s, v []byte
}

func TestTreeBuilder(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	sizes := []int{0, 1, 2, 255, 256, 257, 511, 512, 513, 65536 + 300}
	for range 12 {
		sizes = append(sizes, 1+rng.IntN(5000))
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			testTreeBuilder(t, rng, size)
		})
	}
}

func testTreeBuilder(t *testing.T, rng *rand.Rand, size int) {
	ctx := context.Background()
	mem := newMemTiles()
	ref := &refTree{}
	var handed []flushed
	b, err := newTreeBuilder(ctx, mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	for b.size() < uint64(size) {
		// Batches of random sizes, often tiny, sometimes across several
		// tiles.
		n := 1 + rng.IntN(8)
		if rng.IntN(4) == 0 {
			n = 1 + rng.IntN(700)
		}
		n = min(n, size-int(b.size()))
		for range n {
			e := randomEntry(rng)
			if err := b.append(e, hasher.HashLeaf(e)); err != nil {
				t.Fatal(err)
			}
			ref.append(e)
		}
		tiles, bundles, expanded := b.flush()
		for _, tl := range tiles {
			handed = append(handed, flushed{fmt.Sprintf("tile %d/%d", tl.Level, tl.Index), tl.Hashes, bytes.Clone(tl.Hashes)})
		}
		for _, et := range expanded {
			for s, row := range et.rows {
				handed = append(handed, flushed{fmt.Sprintf("tile %d/%d width %d row %d", et.level, et.index, len(et.rows[0])/api.HashSize, s), row, bytes.Clone(row)})
			}
		}
		for _, bd := range bundles {
			handed = append(handed, flushed{fmt.Sprintf("bundle %d", bd.Index), bd.Bundle, bytes.Clone(bd.Bundle)})
		}
		mem.store(tiles, bundles)
		checkExpanded(t, mem, tiles, expanded)

		root, err := b.root()
		if err != nil {
			t.Fatal(err)
		}
		if want := ref.root(b.size()); !bytes.Equal(root, want) {
			t.Fatalf("size %d: root %x, want %x", b.size(), root, want)
		}
		if size <= 5000 || b.size() == uint64(size) {
			checkTiles(t, mem, ref, b.size())
		}

		// Now and then start again from storage, as the log does when it
		// opens or after a failed commit. Storage may hold more than the
		// tree needs at its right edge.
		if rng.IntN(3) == 0 && b.size() < uint64(size) {
			n := b.size()
			padEdge(rng, mem, n)
			if b, err = newTreeBuilder(ctx, mem, n); err != nil {
				t.Fatalf("newTreeBuilder(%d): %v", n, err)
			}
			if root2, err := b.root(); err != nil || !bytes.Equal(root2, root) || b.size() != n {
				t.Fatalf("reloaded at size %d: size %d, root %x, %v; want %x", n, b.size(), root2, err, root)
			}
		}
	}
	if b.size() != uint64(size) {
		t.Fatalf("size %d, want %d", b.size(), size)
	}
	for _, f := range handed {
		if !bytes.Equal(f.s, f.v) {
			t.Fatalf("%s was modified after flush handed it out", f.what)
		}
	}
	// The reference agrees with RFC 6962's definition and with
	// transparency-dev's.
	tt := testonly.New(hasher)
	tt.AppendData(ref.entries...)
	want := ref.root(uint64(size))
	if !bytes.Equal(tt.Hash(), want) || !bytes.Equal(mthOf(ref.levels, size), want) {
		t.Fatalf("the reference root differs from testonly's or RFC 6962's")
	}
}

// padEdge appends junk to the partial level-0 tile and entry bundle at the
// right edge of the tree of size n. The next append overwrites them.
func padEdge(rng *rand.Rand, mem *memTiles, n uint64) {
	if n%api.TileWidth == 0 || rng.IntN(2) == 0 {
		return
	}
	k := [2]uint64{0, n / api.TileWidth}
	mem.tiles[k] = append(bytes.Clone(mem.tiles[k]), bytes.Repeat([]byte{0xee}, api.HashSize)...)
	mem.bundles[n/api.TileWidth], _ = api.AppendBundleEntry(bytes.Clone(mem.bundles[n/api.TileWidth]), []byte("junk"))
}

// checkTiles checks that mem holds exactly the tiles and bundles of the
// tree of size n.
func checkTiles(t *testing.T, mem *memTiles, ref *refTree, n uint64) {
	t.Helper()
	want := 0
	for level := 0; n>>(api.TileHeight*level) > 0; level++ {
		for ti := uint64(0); ; ti++ {
			tile, ok := api.TileForSize(level, ti, n)
			if !ok {
				break
			}
			want++
			got := mem.tiles[[2]uint64{uint64(level), ti}]
			if len(got) != tile.Width*api.HashSize {
				t.Fatalf("size %d: tile %s: %d bytes stored, want %d hashes", n, tile.Path(), len(got), tile.Width)
			}
			for j := 0; j < tile.Width; j++ {
				w := ref.node(uint(level*api.TileHeight), ti*api.TileWidth+uint64(j))
				if !bytes.Equal(got[j*api.HashSize:(j+1)*api.HashSize], w) {
					t.Fatalf("size %d: tile %s: hash %d is %x, want %x", n, tile.Path(), j, got[j*api.HashSize:(j+1)*api.HashSize], w)
				}
			}
		}
	}
	if len(mem.tiles) != want {
		t.Fatalf("size %d: %d tiles stored, want %d", n, len(mem.tiles), want)
	}
	for bi := uint64(0); bi*api.TileWidth < n; bi++ {
		entries, err := api.ParseEntryBundle(mem.bundles[bi])
		if err != nil {
			t.Fatalf("size %d: bundle %d: %v", n, bi, err)
		}
		first := bi * api.TileWidth
		if len(entries) != int(min(n-first, api.TileWidth)) {
			t.Fatalf("size %d: bundle %d has %d entries", n, bi, len(entries))
		}
		for i, e := range entries {
			if !bytes.Equal(e, ref.entries[first+uint64(i)]) {
				t.Fatalf("size %d: bundle %d: entry %d differs", n, bi, i)
			}
		}
	}
	if want := (n + api.TileWidth - 1) / api.TileWidth; uint64(len(mem.bundles)) != want {
		t.Fatalf("size %d: %d bundles stored, want %d", n, len(mem.bundles), want)
	}
}

// checkExpanded checks the expanded tiles of a flush, once stored: there
// is one for each tile the flush stores, and each has the rows expandTile
// computes from the stored hashes at its width. (A builder read from
// storage also expands its edge tiles with its first flush.)
func checkExpanded(t *testing.T, mem *memTiles, tiles []TileData, expanded []expandedTile) {
	t.Helper()
	type key struct {
		level uint8
		index uint64
	}
	got := map[key]int{}
	for _, et := range expanded {
		k := key{et.level, et.index}
		if _, ok := got[k]; ok {
			t.Fatalf("tile %d/%d expanded twice in one flush", et.level, et.index)
		}
		got[k] = len(et.rows[0]) / api.HashSize
		data, err := mem.ReadTile(context.Background(), et.level, et.index)
		if err != nil || len(data) < len(et.rows[0]) {
			t.Fatalf("tile %d/%d expanded at %d hashes, stored: %d bytes, %v", et.level, et.index, got[k], len(data), err)
		}
		if want := expandTile(data[:len(et.rows[0])]); !slices.EqualFunc(et.rows, want, bytes.Equal) {
			t.Fatalf("tile %d/%d at %d hashes: expanded rows differ from expandTile's (%d rows, want %d)", et.level, et.index, got[k], len(et.rows), len(want))
		}
	}
	for _, tl := range tiles {
		if w, ok := got[key{tl.Level, tl.Index}]; !ok || w != len(tl.Hashes)/api.HashSize {
			t.Fatalf("tile %d/%d grew to %d hashes but was not expanded at that width", tl.Level, tl.Index, len(tl.Hashes)/api.HashSize)
		}
	}
}

// buildTree appends n random entries to a new builder and stores the
// tiles in a new memTiles.
func buildTree(t *testing.T, rng *rand.Rand, n int) (*memTiles, *refTree) {
	t.Helper()
	mem := newMemTiles()
	ref := &refTree{}
	b, err := newTreeBuilder(context.Background(), mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		e := randomEntry(rng)
		if err := b.append(e, hasher.HashLeaf(e)); err != nil {
			t.Fatal(err)
		}
		ref.append(e)
	}
	tiles, bundles, _ := b.flush()
	mem.store(tiles, bundles)
	return mem, ref
}

func TestNewTreeBuilderErrors(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	mem, _ := buildTree(t, rng, 600)
	if _, err := newTreeBuilder(ctx, mem, 600); err != nil {
		t.Fatalf("newTreeBuilder(600): %v", err)
	}
	for _, tc := range []struct {
		name    string
		corrupt func(m *memTiles)
	}{
		{"edge tile missing", func(m *memTiles) { delete(m.tiles, [2]uint64{0, 2}) }},
		{"level-1 edge tile missing", func(m *memTiles) { delete(m.tiles, [2]uint64{1, 0}) }},
		{"edge tile short", func(m *memTiles) { m.tiles[[2]uint64{0, 2}] = m.tiles[[2]uint64{0, 2}][:87*api.HashSize] }},
		{"level-1 edge tile short", func(m *memTiles) { m.tiles[[2]uint64{1, 0}] = m.tiles[[2]uint64{1, 0}][:api.HashSize] }},
		{"edge bundle missing", func(m *memTiles) { delete(m.bundles, 2) }},
		{"edge bundle short", func(m *memTiles) {
			es, _ := api.ParseEntryBundle(m.bundles[2])
			var b []byte
			for _, e := range es[:87] {
				b, _ = api.AppendBundleEntry(b, e)
			}
			m.bundles[2] = b
		}},
		{"edge bundle truncated", func(m *memTiles) { m.bundles[2] = m.bundles[2][:len(m.bundles[2])-1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memTiles{tiles: map[[2]uint64][]byte{}, bundles: map[uint64][]byte{}}
			for k, v := range mem.tiles {
				m.tiles[k] = v
			}
			for k, v := range mem.bundles {
				m.bundles[k] = v
			}
			tc.corrupt(m)
			if _, err := newTreeBuilder(ctx, m, 600); err == nil {
				t.Fatal("newTreeBuilder succeeded")
			}
		})
	}
}

func TestTreeBuilderRefusesLargeEntry(t *testing.T) {
	b, err := newTreeBuilder(context.Background(), newMemTiles(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ref := &refTree{}
	for i := 0; i < 300; i++ {
		if i == 5 || i == 256 {
			big := make([]byte, 1<<16)
			if err := b.append(big, hasher.HashLeaf(big)); err == nil {
				t.Fatalf("appending an entry of %d bytes succeeded", len(big))
			}
			if b.size() != uint64(i) {
				t.Fatalf("a refused entry changed the size to %d", b.size())
			}
		}
		e := fmt.Appendf(nil, "%d", i)
		if i == 7 {
			e = make([]byte, 1<<16-1) // the largest entry a bundle holds
		}
		if err := b.append(e, hasher.HashLeaf(e)); err != nil {
			t.Fatal(err)
		}
		ref.append(e)
	}
	mem := newMemTiles()
	tiles, bundles, _ := b.flush()
	mem.store(tiles, bundles)
	checkTiles(t, mem, ref, 300)
}

func TestProofsAgainstReference(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{40, 600, 5000} {
		mem, ref := buildTree(t, rng, n)
		tt := testonly.New(hasher)
		tt.AppendData(ref.entries...)
		if n >= api.TileWidth && len(mem.rows) == 0 {
			t.Fatalf("n=%d: no rows stored with the full tiles", n)
		}
		// Without the rows of full tiles (a log filled before they were
		// stored) and with them; with no expanded-tile cache and with a
		// small one.
		for _, r := range []tileReader{mem, withRows{mem}} {
			for _, cache := range []*tileCache{nil, newTileCache(8, 8)} {
				_, rows := r.(TileRowsReader)
				check := func(what string, got [][]byte, err error, want [][]byte, werr error) {
					t.Helper()
					if werr != nil {
						t.Fatal(werr)
					}
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
					if len(got) != len(want) {
						t.Fatalf("%s: %d hashes, want %d", what, len(got), len(want))
					}
					for i := range got {
						if !bytes.Equal(got[i], want[i]) {
							t.Fatalf("%s: hash %d is %x, want %x", what, i, got[i], want[i])
						}
						// A caller that modifies a proof must not change
						// the next one.
						scribble(got[i])
					}
				}
				pairs := func(f func(a, b uint64)) {
					if n <= 40 {
						for b := uint64(0); b <= uint64(n); b++ {
							for a := uint64(0); a <= b; a++ {
								f(a, b)
							}
						}
						return
					}
					for _, b := range []uint64{1, 255, 256, 257, 512, uint64(n)} {
						for _, a := range []uint64{0, 1, 127, 128, 255, 256, 257, b - 1, b} {
							if a <= b && b <= uint64(n) {
								f(a, b)
							}
						}
					}
					for range 100 {
						b := 1 + rng.Uint64N(uint64(n))
						f(rng.Uint64N(b+1), b)
					}
				}
				pairs(func(a, b uint64) {
					got, err := consistencyProof(ctx, r, cache, a, b)
					want, werr := tt.ConsistencyProof(a, b)
					check(fmt.Sprintf("n=%d rows=%v consistency(%d, %d)", n, rows, a, b), got, err, want, werr)
					if a < b {
						got, err := inclusionProof(ctx, r, cache, a, b)
						want, werr := tt.InclusionProof(a, b)
						check(fmt.Sprintf("n=%d rows=%v inclusion(%d, %d)", n, rows, a, b), got, err, want, werr)
					}
				})
			}
		}
		if _, err := inclusionProof(ctx, mem, nil, uint64(n), uint64(n)); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("inclusionProof(n, n): got %v, want ErrOutOfRange", err)
		}
		if _, err := consistencyProof(ctx, mem, nil, 2, 1); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("consistencyProof(2, 1): got %v, want ErrOutOfRange", err)
		}
		if _, err := consistencyProof(ctx, mem, nil, 1, uint64(n)+300); err == nil {
			t.Errorf("consistencyProof(1, n+300) beyond the stored tiles succeeded")
		}
	}
}

func scribble(b []byte) {
	for i := range b {
		b[i] ^= 0xa5
	}
}

func TestNodeReader(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 5000
	mem, ref := buildTree(t, rng, n)
	for _, cache := range []*tileCache{nil, newTileCache(4, 4)} {
		nr := nodeReader{r: mem, cache: cache}
		for level := uint(0); level <= 12; level++ {
			count := uint64(n) >> level
			for _, index := range []uint64{0, count / 2, count - 1, rng.Uint64N(count)} {
				got, err := nr.hash(ctx, compact.NewNodeID(level, index))
				if err != nil {
					t.Fatalf("hash(%d, %d): %v", level, index, err)
				}
				if want := ref.node(level, index); !bytes.Equal(got, want) {
					t.Fatalf("hash(%d, %d) = %x, want %x", level, index, got, want)
				}
			}
			// The first node not complete in the tree.
			if _, err := nr.hash(ctx, compact.NewNodeID(level, count)); err == nil {
				t.Fatalf("hash(%d, %d) of a node beyond the tree of %d succeeded", level, count, n)
			}
		}
	}
}

// TestLeafHashKeepsStoredRows checks that reading a leaf hash caches its
// full tile with the rows stored with it, not expanded: a proof by index
// reads the leaf hash first, and the proof then uses the same cache entry.
func TestLeafHashKeepsStoredRows(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 600
	mem, ref := buildTree(t, rng, n)
	cache := newTileCache(8, 8)
	for _, index := range []uint64{0, 300, n - 1} {
		got, err := leafHash(ctx, withRows{mem}, cache, index, n)
		if err != nil {
			t.Fatalf("leafHash(%d): %v", index, err)
		}
		if want := ref.node(0, index); !bytes.Equal(got, want) {
			t.Fatalf("leafHash(%d) = %x, want %x", index, got, want)
		}
	}
	for _, tile := range []uint64{0, 1} {
		rows, ok := cache.full.Get(tileCacheKey{0, tile, api.TileWidth})
		if !ok {
			t.Fatalf("full tile 0/%d is not cached", tile)
		}
		if rows[1] != nil {
			t.Errorf("full tile 0/%d was cached expanded, not with its stored rows", tile)
		}
	}
}

// TestTileCacheKeepsUpperLevels checks that level-0 tiles, one new with
// each random proof, do not push the tiles above them out of the cache.
func TestTileCacheKeepsUpperLevels(t *testing.T) {
	cache := newTileCache(2, 2)
	data := make([]byte, api.TileWidth*api.HashSize)
	cache.rows(1, 0, data)
	for i := range uint64(10) {
		cache.rows(0, i, data)
	}
	if _, ok := cache.get(1, 0, api.TileWidth); !ok {
		t.Error("level-0 tiles pushed the level-1 tile out of the cache")
	}
	if _, ok := cache.get(0, 9, api.TileWidth); !ok {
		t.Error("the last level-0 tile is not cached")
	}
	if _, ok := cache.get(0, 0, api.TileWidth); ok {
		t.Error("the first of 10 level-0 tiles is still cached in a cache of 2")
	}
}

func TestTileRowsSize(t *testing.T) {
	if TileRowsSize != storedRowsOffset(api.TileHeight) {
		t.Fatalf("TileRowsSize = %d, the stored rows take %d bytes", TileRowsSize, storedRowsOffset(api.TileHeight))
	}
}

func TestSubtreeHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	ref := &refTree{}
	for range 512 {
		ref.append(randomEntry(rng))
	}
	for h := uint(0); h <= api.TileHeight; h++ {
		w := uint64(1) << h
		for _, k := range []uint64{0, 1, 512/w - 1} {
			var row []byte
			for i := k * w; i < (k+1)*w; i++ {
				row = append(row, ref.node(0, i)...)
			}
			if got, want := subtreeHash(row), ref.node(h, k); !bytes.Equal(got, want) {
				t.Fatalf("subtreeHash of %d hashes at %d: %x, want %x", w, k, got, want)
			}
		}
	}
}

func TestBundlePrefixAndEntry(t *testing.T) {
	var bundle []byte
	entries := [][]byte{{}, []byte("a"), make([]byte, 1<<16-1), {}, []byte("last")}
	for _, e := range entries {
		var err error
		if bundle, err = api.AppendBundleEntry(bundle, e); err != nil {
			t.Fatal(err)
		}
	}
	ends := []int{0, 2, 5, 5 + 2 + 1<<16 - 1, 5 + 2 + 1<<16 - 1 + 2, len(bundle)}
	for n, want := range ends {
		if got, err := bundlePrefix(bundle, n); err != nil || got != want {
			t.Errorf("bundlePrefix(bundle, %d) = %d, %v; want %d", n, got, err, want)
		}
	}
	if _, err := bundlePrefix(bundle, len(entries)+1); err == nil {
		t.Error("bundlePrefix beyond the last entry succeeded")
	}
	// Trailing bytes past the entries asked for don't matter.
	if got, err := bundlePrefix(append(bytes.Clone(bundle), 0x00), len(entries)); err != nil || got != len(bundle) {
		t.Errorf("bundlePrefix with a trailing byte = %d, %v", got, err)
	}
	for i, want := range entries {
		got, err := bundleEntry(bundle, i)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("bundleEntry(bundle, %d) = %d bytes, %v; want %d bytes", i, len(got), err, len(want))
		}
	}
	if _, err := bundleEntry(bundle, len(entries)); err == nil {
		t.Error("bundleEntry beyond the last entry succeeded")
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		n      int
	}{
		{"empty bundle", nil, 1},
		{"one byte of length", []byte{0}, 1},
		{"entry cut short", []byte{0, 3, 'a', 'b'}, 1},
		{"second length cut", []byte{0, 1, 'a', 0}, 2},
		{"huge length", []byte{0xff, 0xff, 'a'}, 1},
	} {
		if _, err := bundlePrefix(tc.bundle, tc.n); err == nil {
			t.Errorf("bundlePrefix(%s, %d) succeeded", tc.name, tc.n)
		}
		if _, err := bundleEntry(tc.bundle, tc.n-1); err == nil {
			t.Errorf("bundleEntry(%s, %d) succeeded", tc.name, tc.n-1)
		}
	}
	if got, err := bundlePrefix(nil, 0); err != nil || got != 0 {
		t.Errorf("bundlePrefix(nil, 0) = %d, %v", got, err)
	}
}

// BenchmarkExpandTile expands a full tile, as a proof whose level-0 tile
// is not in the expanded-tile cache does (most of them once the log has
// more full tiles than the cache holds).
func BenchmarkExpandTile(b *testing.B) {
	data := make([]byte, api.TileWidth*api.HashSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.ReportAllocs()
	for b.Loop() {
		expandTile(data)
	}
}

func TestHashChildren(t *testing.T) {
	l, r := bytes.Repeat([]byte{1}, api.HashSize), bytes.Repeat([]byte{2}, api.HashSize)
	if got, want := hashChildren(l, r), hasher.HashChildren(l, r); !bytes.Equal(got, want) {
		t.Fatalf("hashChildren %x, rfc6962 %x", got, want)
	}
}
