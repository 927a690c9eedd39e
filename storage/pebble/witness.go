package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/witness"
)

// Witness key layout, in its own database.
const (
	prefixWitnessCheckpoint = 'w' // 'w' ‖ origin -> signed, cosigned checkpoint
)

// WitnessState is a witness's state in one pebble database. It implements
// witness.State.
type WitnessState struct {
	db *pebble.DB
	mu sync.Mutex // serialises Swap's compare-and-swap
}

var _ witness.State = (*WitnessState)(nil)

// OpenWitnessState opens (creating if needed) the witness database in dir.
func OpenWitnessState(dir string, o Options) (*WitnessState, error) {
	db, err := openDB(dir, o)
	if err != nil {
		return nil, err
	}
	return &WitnessState{db: db}, nil
}

// Close closes the database.
func (s *WitnessState) Close() error { return s.db.Close() }

func witnessKey(origin string) []byte {
	return append([]byte{prefixWitnessCheckpoint}, origin...)
}

// Latest implements witness.State.
func (s *WitnessState) Latest(ctx context.Context, origin string) ([]byte, error) {
	v, err := get(s.db, witnessKey(origin))
	if errors.Is(err, log.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read the checkpoint of %q: %w", origin, err)
	}
	return v, nil
}

// Swap implements witness.State.
func (s *WitnessState) Swap(ctx context.Context, origin string, old, new []byte) error {
	if len(new) == 0 {
		return errors.New("witness state: refusing to store an empty checkpoint")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.Latest(ctx, origin)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, old) || (cur == nil) != (old == nil) {
		return witness.ErrStateConflict
	}
	if err := s.db.Set(witnessKey(origin), new, pebble.Sync); err != nil {
		return fmt.Errorf("couldn't write the checkpoint of %q: %w", origin, err)
	}
	return nil
}
