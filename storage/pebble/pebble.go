// Package pebble is Candor's embedded storage on cockroachdb/pebble: the
// log's tiles, entry bundles, leaf index and checkpoint, written in one
// synced batch per commit.
package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/candorlog/candor/log"
)

// Key layout. Every key starts with a one-byte table prefix.
const (
	prefixCheckpoint = 'c' // 'c' -> u64 BE size ‖ signed checkpoint
	prefixTile       = 't' // 't' ‖ level ‖ u64 BE index -> hashes
	prefixBundle     = 'e' // 'e' ‖ u64 BE index -> entry bundle
	prefixLeaf       = 'h' // 'h' ‖ leaf hash -> uvarint index
)

// Options tunes the store. The zero value is a good default.
type Options struct {
	// CacheBytes is the size of pebble's block cache. Default: 64 MiB.
	CacheBytes int64
	// Logger receives pebble's own logs. Default: slog.Default().
	Logger *slog.Logger
}

// Storage is the log's storage in one pebble database. It implements
// log.Storage.
type Storage struct {
	db *pebble.DB
	mu sync.Mutex // serialises Commit's compare-and-swap
}

var _ log.Storage = (*Storage)(nil)

// Open opens (creating if needed) the log's database in dir.
func Open(dir string, o Options) (*Storage, error) {
	db, err := openDB(dir, o)
	if err != nil {
		return nil, err
	}
	return &Storage{db: db}, nil
}

func openDB(dir string, o Options) (*pebble.DB, error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: 64 << 20,
		Logger:       pebbleLogger{o.Logger.With("component", "pebble")},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("couldn't open pebble in %s: %w", dir, err)
	}
	return db, nil
}

// Close closes the database.
func (s *Storage) Close() error { return s.db.Close() }

func (s *Storage) get(key []byte) ([]byte, error) { return get(s.db, key) }

func get(db *pebble.DB, key []byte) ([]byte, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, log.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func tileKey(level uint8, index uint64) []byte {
	k := make([]byte, 10)
	k[0], k[1] = prefixTile, level
	binary.BigEndian.PutUint64(k[2:], index)
	return k
}

func bundleKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixBundle
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func leafKey(hash []byte) []byte {
	return append([]byte{prefixLeaf}, hash...)
}

var checkpointKey = []byte{prefixCheckpoint}

// ReadCheckpoint implements log.Storage.
func (s *Storage) ReadCheckpoint(ctx context.Context) ([]byte, uint64, error) {
	v, err := s.get(checkpointKey)
	if errors.Is(err, log.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	if len(v) < 8 {
		return nil, 0, fmt.Errorf("stored checkpoint record is %d bytes long", len(v))
	}
	return v[8:], binary.BigEndian.Uint64(v), nil
}

// ReadTile implements log.Storage.
func (s *Storage) ReadTile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	return s.get(tileKey(level, index))
}

// ReadEntryBundle implements log.Storage.
func (s *Storage) ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error) {
	return s.get(bundleKey(index))
}

// LookupLeaf implements log.Storage.
func (s *Storage) LookupLeaf(ctx context.Context, leafHash []byte) (uint64, error) {
	v, err := s.get(leafKey(leafHash))
	if err != nil {
		return 0, err
	}
	idx, n := binary.Uvarint(v)
	if n <= 0 || n != len(v) {
		return 0, fmt.Errorf("corrupt leaf index value %x", v)
	}
	return idx, nil
}

// Commit implements log.Storage.
func (s *Storage) Commit(ctx context.Context, c *log.Commit) error {
	if c.NewSize < c.OldSize {
		return fmt.Errorf("commit shrinks the tree from %d to %d", c.OldSize, c.NewSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		return err
	}
	if size != c.OldSize {
		return fmt.Errorf("%w: stored size %d, commit expects %d", log.ErrConflict, size, c.OldSize)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, t := range c.Tiles {
		if err := b.Set(tileKey(t.Level, t.Index), t.Hashes, nil); err != nil {
			return err
		}
	}
	for _, e := range c.Bundles {
		if err := b.Set(bundleKey(e.Index), e.Bundle, nil); err != nil {
			return err
		}
	}
	var vb [binary.MaxVarintLen64]byte
	for _, l := range c.Leaves {
		if err := b.Set(leafKey(l.LeafHash), vb[:binary.PutUvarint(vb[:], l.Index)], nil); err != nil {
			return err
		}
	}
	cp := make([]byte, 8+len(c.Checkpoint))
	binary.BigEndian.PutUint64(cp, c.NewSize)
	copy(cp[8:], c.Checkpoint)
	if err := b.Set(checkpointKey, cp, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("couldn't write the batch: %w", err)
	}
	return nil
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
