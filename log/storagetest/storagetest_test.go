package storagetest_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/storagetest"
)

// memStorage is the smallest storage that follows the contract: it shows
// that the suite asks for nothing more.
type memStorage struct {
	mu      sync.RWMutex
	size    uint64
	cp      []byte
	tiles   map[[2]uint64][]byte
	bundles map[uint64][]byte
	leaves  map[string]uint64
	// The search index: entry index -> its leaf hash and terms.
	indexed    map[uint64]log.LeafIndex
	incomplete bool
}

func newMemStorage() *memStorage {
	return &memStorage{tiles: map[[2]uint64][]byte{}, bundles: map[uint64][]byte{}, leaves: map[string]uint64{},
		indexed: map[uint64]log.LeafIndex{}}
}

// index records l in the search index. m.mu is held.
func (m *memStorage) index(l log.LeafIndex) {
	m.indexed[l.Index] = log.LeafIndex{Index: l.Index, LeafHash: bytes.Clone(l.LeafHash), Terms: slices.Clone(l.Terms)}
}

// Search scans every index in the range: the suite asks for no more than
// the right answers.
func (m *memStorage) Search(ctx context.Context, terms []api.SearchTerm, start, end uint64, limit int) ([]api.SearchHit, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.incomplete {
		return nil, log.ErrSearchUnavailable
	}
	var hits []api.SearchHit
	for i := start; i < end && i < m.size && len(hits) < limit; i++ {
		l, ok := m.indexed[i]
		if ok && !slices.ContainsFunc(terms, func(t api.SearchTerm) bool { return !slices.Contains(l.Terms, t) }) {
			hits = append(hits, api.SearchHit{Index: i, LeafHash: bytes.Clone(l.LeafHash)})
		}
	}
	return hits, nil
}

func (m *memStorage) ResetSearchIndex(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.indexed, m.incomplete = map[uint64]log.LeafIndex{}, true
	return nil
}

func (m *memStorage) IndexEntries(ctx context.Context, leaves []log.LeafIndex) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range leaves {
		m.index(l)
	}
	return nil
}

func (m *memStorage) FinishSearchIndex(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.incomplete = false
	return nil
}

func (m *memStorage) ReadCheckpoint(ctx context.Context) ([]byte, uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return bytes.Clone(m.cp), m.size, nil
}

func (m *memStorage) ReadTile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.tiles[[2]uint64{uint64(level), index}]
	if !ok {
		return nil, log.ErrNotFound
	}
	return bytes.Clone(t), nil
}

func (m *memStorage) ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.bundles[index]
	if !ok {
		return nil, log.ErrNotFound
	}
	return bytes.Clone(b), nil
}

func (m *memStorage) LookupLeaf(ctx context.Context, leafHash []byte) (uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i, ok := m.leaves[string(leafHash)]
	if !ok {
		return 0, log.ErrNotFound
	}
	return i, nil
}

func (m *memStorage) Commit(ctx context.Context, c *log.Commit) error {
	if c.NewSize < c.OldSize {
		return fmt.Errorf("commit shrinks the tree from %d to %d", c.OldSize, c.NewSize)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.size != c.OldSize {
		return fmt.Errorf("%w: stored size %d, commit expects %d", log.ErrConflict, m.size, c.OldSize)
	}
	for _, t := range c.Tiles {
		m.tiles[[2]uint64{uint64(t.Level), t.Index}] = bytes.Clone(t.Hashes)
	}
	for _, b := range c.Bundles {
		m.bundles[b.Index] = bytes.Clone(b.Bundle)
	}
	for _, l := range c.Leaves {
		m.leaves[string(l.LeafHash)] = l.Index
		m.index(l)
	}
	m.size, m.cp = c.NewSize, bytes.Clone(c.Checkpoint)
	return nil
}

func TestMemStorage(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) log.Storage { return newMemStorage() })
}

func TestMemStorageDurable(t *testing.T) {
	stores := map[string]*memStorage{}
	var mu sync.Mutex
	storagetest.RunDurable(t, func(t *testing.T, dir string) (log.Storage, func() error) {
		mu.Lock()
		defer mu.Unlock()
		if stores[dir] == nil {
			stores[dir] = newMemStorage()
		}
		return stores[dir], func() error { return nil }
	})
}
