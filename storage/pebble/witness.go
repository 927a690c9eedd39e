package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"syscall"

	"github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/witness"
)

// Witness key layout, in its own database.
const (
	prefixWitnessCheckpoint = 'w' // 'w' ‖ origin -> signed, cosigned checkpoint
	prefixWitnessEvidence   = 'e' // 'e' ‖ uint16 len(origin) ‖ origin ‖ id -> evidence
	prefixWitnessAudit      = 'a' // 'a' ‖ origin -> u64 BE next ‖ signed checkpoint
)

// WitnessState is a witness's state in one pebble database. It implements
// witness.State.
type WitnessState struct {
	h  *handle
	mu sync.Mutex // serialises Swap's compare-and-swap and the other writes
}

var (
	_ witness.State         = (*WitnessState)(nil)
	_ witness.EvidenceStore = (*WitnessState)(nil)
	_ witness.AuditState    = (*WitnessState)(nil)
)

// OpenWitnessState opens (creating if needed) the witness database in dir.
func OpenWitnessState(dir string, o Options) (*WitnessState, error) {
	h, err := openHandle(dir, o)
	if err != nil {
		return nil, err
	}
	return &WitnessState{h: h}, nil
}

// Close closes the database.
func (s *WitnessState) Close() error { return s.h.close() }

// set writes value at key, synced. s.mu is held.
func (s *WitnessState) set(key, value []byte) error {
	return s.commit(func(b *pebble.Batch) error { return b.Set(key, value, nil) })
}

// commit writes the batch fill builds, synced. s.mu is held. A full disk
// is witness.ErrNoSpace, which the witness answers with 503.
func (s *WitnessState) commit(fill func(*pebble.Batch) error) error {
	wait, err := s.h.write(fill)
	if err == nil {
		err = wait()
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %w", witness.ErrNoSpace, err)
	}
	return err
}

func witnessKey(origin string) []byte {
	return append([]byte{prefixWitnessCheckpoint}, origin...)
}

// Latest implements witness.State.
func (s *WitnessState) Latest(ctx context.Context, origin string) ([]byte, error) {
	v, err := s.h.get(witnessKey(origin))
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
	if err := s.set(witnessKey(origin), new); err != nil {
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
	if _, err := s.h.get(k); err == nil {
		return nil
	} else if !errors.Is(err, log.ErrNotFound) {
		return fmt.Errorf("couldn't read the evidence of %q: %w", origin, err)
	}
	if err := s.set(k, evidence); err != nil {
		return fmt.Errorf("couldn't write the evidence of %q: %w", origin, err)
	}
	return nil
}

// ListEvidence implements witness.EvidenceStore.
func (s *WitnessState) ListEvidence(ctx context.Context) ([]string, [][]byte, error) {
	db, release, err := s.h.read()
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't list the evidence: %w", err)
	}
	defer release()
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{
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
	n, err := s.count(ctx, prefix, upper)
	if err != nil {
		return 0, fmt.Errorf("couldn't clear the evidence of %q: %w", origin, err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.commit(func(b *pebble.Batch) error { return b.DeleteRange(prefix, upper, nil) }); err != nil {
		return 0, fmt.Errorf("couldn't clear the evidence of %q: %w", origin, err)
	}
	return n, nil
}

// count returns the number of keys in [lower, upper).
func (s *WitnessState) count(ctx context.Context, lower, upper []byte) (int, error) {
	db, release, err := s.h.read()
	if err != nil {
		return 0, err
	}
	defer release()
	it, err := db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n, it.Close()
}

// LoadAudit implements witness.AuditState.
func (s *WitnessState) LoadAudit(ctx context.Context, origin string) ([]byte, uint64, error) {
	v, err := s.h.get(append([]byte{prefixWitnessAudit}, origin...))
	if errors.Is(err, log.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't read the audit position of %q: %w", origin, err)
	}
	if len(v) < 8 {
		return nil, 0, fmt.Errorf("malformed audit position of %q: %d bytes", origin, len(v))
	}
	return v[8:], binary.BigEndian.Uint64(v), nil
}

// StoreAudit implements witness.AuditState.
func (s *WitnessState) StoreAudit(ctx context.Context, origin string, checkpoint []byte, next uint64) error {
	if len(checkpoint) == 0 {
		return errors.New("witness state: refusing to store an audit position without its checkpoint")
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(checkpoint)), next)
	v = append(v, checkpoint...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.set(append([]byte{prefixWitnessAudit}, origin...), v); err != nil {
		return fmt.Errorf("couldn't write the audit position of %q: %w", origin, err)
	}
	return nil
}
