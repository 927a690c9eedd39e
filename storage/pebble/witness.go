package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/witness"
)

// Witness key layout, in its own database.
const (
	prefixWitnessCheckpoint = 'w' // 'w' ‖ origin -> signed, cosigned checkpoint
	prefixWitnessEvidence   = 'e' // 'e' ‖ uint16 len(origin) ‖ origin ‖ id -> evidence
)

// WitnessState is a witness's state in one pebble database. It implements
// witness.State.
type WitnessState struct {
	db *pebble.DB
	mu sync.Mutex // serialises Swap's compare-and-swap
}

var (
	_ witness.State         = (*WitnessState)(nil)
	_ witness.EvidenceStore = (*WitnessState)(nil)
)

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

// evidencePrefix returns the prefix of the evidence keys of origin.
func evidencePrefix(origin string) ([]byte, error) {
	if len(origin) > math.MaxUint16 {
		return nil, fmt.Errorf("origin of %d bytes is too long", len(origin))
	}
	k := []byte{prefixWitnessEvidence}
	k = binary.BigEndian.AppendUint16(k, uint16(len(origin)))
	return append(k, origin...), nil
}

// AddEvidence implements witness.EvidenceStore.
func (s *WitnessState) AddEvidence(ctx context.Context, origin, id string, evidence []byte) error {
	if len(evidence) == 0 || id == "" {
		return errors.New("witness state: refusing to store empty evidence")
	}
	k, err := evidencePrefix(origin)
	if err != nil {
		return err
	}
	k = append(k, id...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := get(s.db, k); err == nil {
		return nil
	} else if !errors.Is(err, log.ErrNotFound) {
		return fmt.Errorf("couldn't read the evidence of %q: %w", origin, err)
	}
	if err := s.db.Set(k, evidence, pebble.Sync); err != nil {
		return fmt.Errorf("couldn't write the evidence of %q: %w", origin, err)
	}
	return nil
}

// ListEvidence implements witness.EvidenceStore.
func (s *WitnessState) ListEvidence(ctx context.Context) ([]string, [][]byte, error) {
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: []byte{prefixWitnessEvidence},
		UpperBound: []byte{prefixWitnessEvidence + 1},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't list the evidence: %w", err)
	}
	defer it.Close()
	var origins []string
	var evidence [][]byte
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 3 || len(k) < 3+int(binary.BigEndian.Uint16(k[1:])) {
			return nil, nil, fmt.Errorf("malformed evidence key %q", k)
		}
		origins = append(origins, string(k[3:3+int(binary.BigEndian.Uint16(k[1:]))]))
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, nil, fmt.Errorf("couldn't read the evidence: %w", err)
		}
		evidence = append(evidence, bytes.Clone(v))
	}
	if err := it.Error(); err != nil {
		return nil, nil, fmt.Errorf("couldn't list the evidence: %w", err)
	}
	return origins, evidence, nil
}

// ClearEvidence implements witness.EvidenceStore.
func (s *WitnessState) ClearEvidence(ctx context.Context, origin string) (int, error) {
	prefix, err := evidencePrefix(origin)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	upper := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	// IDs are printable, so every key under prefix sorts below upper.
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("couldn't clear the evidence of %q: %w", origin, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if err := b.Delete(it.Key(), nil); err != nil {
			it.Close()
			return 0, err
		}
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("couldn't clear the evidence of %q: %w", origin, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("couldn't clear the evidence of %q: %w", origin, err)
	}
	return n, nil
}
