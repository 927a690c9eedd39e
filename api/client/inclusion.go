package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
)

// ErrEntryMismatch is wrapped by the errors for an entry bundle whose
// entries do not hash to the leaves of the verified tree: tampered with,
// reordered or from another tree.
var ErrEntryMismatch = errors.New("entry does not hash to the verified tree")

// LeafHash returns the RFC 6962 leaf hash of an entry, as the log's tree
// holds it.
func LeafHash(entry []byte) []byte {
	return rfc6962.DefaultHasher.HashLeaf(entry)
}

// ProveInclusion proves, from the log's tiles authenticated by cp's root,
// that leafHash is the leaf at index in the tree of cp, a checkpoint the
// Verifier verified (Update, Latest). It returns the
// c2sp.org/tlog-proof@v1 bundle of the entry in cp, which
// api.VerifyProofBundle accepts.
func (v *Verifier) ProveInclusion(ctx context.Context, cp Checkpoint, index uint64, leafHash []byte) (api.ProofBundle, error) {
	if len(leafHash) != api.HashSize {
		return api.ProofBundle{}, fmt.Errorf("couldn't prove inclusion: leaf hash is %d bytes, want %d", len(leafHash), api.HashSize)
	}
	if index >= cp.Size {
		return api.ProofBundle{}, fmt.Errorf("couldn't prove inclusion: index %d is not in the tree of size %d", index, cp.Size)
	}
	t := tlog.Tree{N: int64(cp.Size), Hash: cp.Hash}
	p, err := tlog.ProveRecord(t.N, int64(index), v.hashReader(ctx, cp.Checkpoint))
	if err != nil {
		return api.ProofBundle{}, fmt.Errorf("couldn't prove the inclusion of index %d in the tree of size %d from the log's tiles: %w", index, cp.Size, err)
	}
	if err := tlog.CheckRecord(p, t.N, t.Hash, int64(index), tlog.Hash(leafHash)); err != nil {
		return api.ProofBundle{}, fmt.Errorf("couldn't verify the inclusion of leaf %x at index %d in the tree of size %d: %w", leafHash, index, cp.Size, err)
	}
	b := api.ProofBundle{Index: index, Checkpoint: cp.Signed, Hashes: make([][]byte, len(p))}
	for i, h := range p {
		b.Hashes[i] = bytes.Clone(h[:])
	}
	return b, nil
}

// Entry is an entry of the log, re-hashed into a verified tree.
type Entry struct {
	Index uint64
	// Data is the entry's bytes, as the entry bundle holds them.
	Data []byte
}

// Entries reads the entries of indexes start to end-1 from the log's
// entry bundles, and checks that each hashes to its leaf in the tree of
// cp, a checkpoint the Verifier verified: the leaf hashes come from the
// log's tiles, authenticated by cp's root. It yields them in order, or
// an error and stops: a bundle that does not parse or holds another
// number of entries than the tree has, or an entry that does not hash to
// its leaf (ErrEntryMismatch), so that a tampered, truncated or reordered
// bundle is caught. It holds one bundle at a time.
func (v *Verifier) Entries(ctx context.Context, cp Checkpoint, start, end uint64) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if start > end || end > cp.Size {
			yield(Entry{}, fmt.Errorf("couldn't read entries: range %d to %d is not within the tree of size %d", start, end, cp.Size))
			return
		}
		hr := v.hashReader(ctx, cp.Checkpoint)
		full := cp.Size / api.TileWidth // full bundles
		last := (end + api.TileWidth - 1) / api.TileWidth
		var roots []tlog.Hash // of full bundles rootsFrom…
		var rootsFrom uint64
		for k := start / api.TileWidth; k < last; k++ {
			var entries [][]byte
			var err error
			if k < full {
				if k < rootsFrom || k >= rootsFrom+uint64(len(roots)) {
					rootsFrom = k
					if roots, err = bundleRoots(hr, k, min(k+maxRootsRead, full, last)); err != nil {
						yield(Entry{}, err)
						return
					}
				}
				entries, err = v.fullBundle(ctx, cp, hr, k, roots[k-rootsFrom])
			} else {
				entries, err = v.bundle(ctx, cp, hr, k)
			}
			if err != nil {
				yield(Entry{}, err)
				return
			}
			first := k * api.TileWidth
			for i, e := range entries {
				idx := first + uint64(i)
				if idx < start || idx >= end {
					continue
				}
				if !yield(Entry{Index: idx, Data: e}, nil) {
					return
				}
			}
		}
	}
}

// maxRootsRead bounds the tree hashes of full bundles read at once: as
// many as one level 1 tile holds.
const maxRootsRead = api.TileWidth

// bundleRoots reads, through hr, the tree hashes of full entry bundles
// from to end-1: the hashes of their 256 leaves, which level 1 tiles
// hold.
func bundleRoots(hr tlog.HashReader, from, end uint64) ([]tlog.Hash, error) {
	indexes := make([]int64, 0, end-from)
	for k := from; k < end; k++ {
		indexes = append(indexes, tlog.StoredHashIndex(api.TileHeight, int64(k)))
	}
	roots, err := hr.ReadHashes(indexes)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the tree hashes of entry bundles %d to %d from the log's tiles: %w", from, end-1, err)
	}
	return roots, nil
}

// fullBundle returns the entries of the full entry bundle k of the tree of
// cp, whose leaves hash to root, a hash of the tree authenticated by cp's
// root: the level 0 tile of their hashes is not read. If they do not, it
// tells which entry is wrong from that tile (bundle).
func (v *Verifier) fullBundle(ctx context.Context, cp Checkpoint, hr tlog.HashReader, k uint64, root tlog.Hash) ([][]byte, error) {
	t := api.Tile{Level: api.EntriesLevel, Index: k, Width: api.TileWidth}
	data, err := v.c.Tile(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("couldn't read entry bundle %d of the tree of size %d: %w", k, cp.Size, err)
	}
	entries, err := api.ParseEntryBundle(data)
	if err != nil || len(entries) != t.Width {
		return nil, fmt.Errorf("couldn't read entry bundle %d: %d entries, want %d: %v", k, len(entries), t.Width, err)
	}
	hashes := make([]byte, 0, api.TileWidth*api.HashSize)
	h := sha256.New()
	for _, e := range entries {
		h.Reset()
		h.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
		h.Write(e)
		hashes = h.Sum(hashes)
	}
	// The tile's two halves, then the bundle's root.
	lt := tlog.Tile{H: api.TileHeight, L: 0, N: int64(k), W: api.TileWidth}
	left, err := tlog.HashFromTile(lt, hashes, tlog.StoredHashIndex(api.TileHeight-1, 2*int64(k)))
	if err != nil {
		return nil, fmt.Errorf("couldn't hash entry bundle %d: %w", k, err)
	}
	right, err := tlog.HashFromTile(lt, hashes, tlog.StoredHashIndex(api.TileHeight-1, 2*int64(k)+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't hash entry bundle %d: %w", k, err)
	}
	if tlog.NodeHash(left, right) == root {
		return entries, nil
	}
	if _, err := v.bundle(ctx, cp, hr, k); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("entry bundle %d: %w: its entries hash to %x, the tree has %x", k, ErrEntryMismatch, tlog.NodeHash(left, right), root)
}

// bundle returns the entries of entry bundle k of the tree of cp, each
// checked against its leaf hash read through hr.
func (v *Verifier) bundle(ctx context.Context, cp Checkpoint, hr tlog.HashReader, k uint64) ([][]byte, error) {
	t, ok := api.TileForSize(api.EntriesLevel, k, cp.Size)
	if !ok {
		return nil, fmt.Errorf("couldn't read entry bundle %d: not in the tree of size %d", k, cp.Size)
	}
	data, err := v.c.Tile(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("couldn't read entry bundle %d of the tree of size %d: %w", k, cp.Size, err)
	}
	entries, err := api.ParseEntryBundle(data)
	if err != nil || len(entries) != t.Width {
		return nil, fmt.Errorf("couldn't read entry bundle %d: %d entries, want %d: %v", k, len(entries), t.Width, err)
	}
	hashes, err := tlog.ReadTileData(tlog.Tile{H: api.TileHeight, L: 0, N: int64(k), W: t.Width}, hr)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the leaf hashes of entry bundle %d from the log's tiles: %w", k, err)
	}
	for i, e := range entries {
		want := hashes[i*api.HashSize : (i+1)*api.HashSize]
		if got := LeafHash(e); !bytes.Equal(got, want) {
			return nil, fmt.Errorf("entry %d of bundle %d (index %d): %w: leaf hash %x, the tree has %x",
				i, k, k*api.TileWidth+uint64(i), ErrEntryMismatch, got, want)
		}
	}
	return entries, nil
}

// maxCachedTiles bounds the tiles a Verifier keeps: 8 MiB of full tiles.
const maxCachedTiles = 1024

// tileCache keeps tiles that tlog authenticated against a verified root,
// so that the tiles near the top and the right edge of the tree are not
// fetched again for every proof. tlog authenticates every tile it reads
// against the root of the tree it proves, cached or not, so a cached
// tile is never trusted on its own.
type tileCache struct {
	mu    sync.Mutex
	tiles map[tlog.Tile][]byte
}

func newTileCache() *tileCache { return &tileCache{tiles: make(map[tlog.Tile][]byte)} }

// cachingReader is a tlog.TileReader that serves tiles from a tileCache
// and fetches the others.
type cachingReader struct {
	r     *TileReader
	cache *tileCache
}

func (r *cachingReader) Height() int { return api.TileHeight }

func (r *cachingReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	var missing []tlog.Tile
	var where []int
	r.cache.mu.Lock()
	for i, t := range tiles {
		if d, ok := r.cache.tiles[t]; ok {
			data[i] = d
			continue
		}
		missing = append(missing, t)
		where = append(where, i)
	}
	r.cache.mu.Unlock()
	if len(missing) == 0 {
		return data, nil
	}
	fetched, err := r.r.ReadTiles(missing)
	if err != nil {
		return nil, err
	}
	for j, i := range where {
		data[i] = fetched[j]
	}
	return data, nil
}

// SaveTiles keeps the tiles tlog authenticated.
func (r *cachingReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	for i, t := range tiles {
		if _, ok := r.cache.tiles[t]; ok {
			continue
		}
		if len(r.cache.tiles) >= maxCachedTiles {
			clear(r.cache.tiles)
		}
		r.cache.tiles[t] = data[i]
	}
}

// recordingReader is a tlog.TileReader that records the hash tiles it
// reads, as evidence. It keeps nothing: the tiles of a tree that is not
// verified yet must not reach the cache.
type recordingReader struct {
	tileReader tlog.TileReader
	read       []api.EvidenceTile
}

func (r *recordingReader) Height() int { return api.TileHeight }

func (r *recordingReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data, err := r.tileReader.ReadTiles(tiles)
	if err != nil {
		return nil, err
	}
	for i, t := range tiles {
		if t.L >= 0 && len(r.read) < api.MaxEvidenceTiles {
			r.read = append(r.read, api.EvidenceTile{Level: t.L, Index: uint64(t.N), Width: t.W, Hashes: bytes.Clone(data[i])})
		}
	}
	return data, nil
}

func (r *recordingReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}
