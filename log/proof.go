package log

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// proofHashes reads the hashes of a proof's nodes in the tree of the given
// size from tiles and folds the ephemeral node, giving the proof in RFC 6962
// order.
func proofHashes(ctx context.Context, r tileReader, cache *tileCache, size uint64, nodes proof.Nodes) ([][]byte, error) {
	nr := nodeReader{r: r, cache: cache, size: size}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := nr.hash(ctx, id)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return nodes.Rehash(hashes, hashChildren)
}

// leafHash reads the hash of the leaf at index from the tree of the given
// size. Given the size, the reader puts a full tile in the cache with its
// stored rows, where the proof of the same entry then finds it, rather
// than expanded (255 hashes): a proof by index reads its leaf hash first.
func leafHash(ctx context.Context, r tileReader, cache *tileCache, index, size uint64) ([]byte, error) {
	nr := nodeReader{r: r, cache: cache, size: size}
	return nr.hash(ctx, compact.NewNodeID(0, index))
}

// inclusionProof returns the proof that the leaf at index is in the tree of
// the given size, which must be one that was committed.
func inclusionProof(ctx context.Context, r tileReader, cache *tileCache, index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return proofHashes(ctx, r, cache, size, nodes)
}

// consistencyProof returns the proof that the tree of size old is a prefix
// of the tree of size new.
func consistencyProof(ctx context.Context, r tileReader, cache *tileCache, old, new uint64) ([][]byte, error) {
	if old > new {
		return nil, fmt.Errorf("%w: old size %d is larger than new size %d", ErrOutOfRange, old, new)
	}
	nodes, err := proof.Consistency(old, new)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return proofHashes(ctx, r, cache, new, nodes)
}
