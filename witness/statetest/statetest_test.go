package statetest_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/candorlog/candor/witness"
	"github.com/candorlog/candor/witness/statetest"
)

// memState is the smallest state that follows the contract: it shows that
// the suite asks for nothing more.
type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memState) Latest(ctx context.Context, origin string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[origin]), nil
}

func (s *memState) Swap(ctx context.Context, origin string, old, new []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.m[origin]
	if ok != (old != nil) || !bytes.Equal(cur, old) {
		return witness.ErrStateConflict
	}
	s.m[origin] = bytes.Clone(new)
	return nil
}

func TestMemState(t *testing.T) {
	statetest.Run(t, func(t *testing.T) witness.State { return &memState{m: map[string][]byte{}} })
}

func TestMemStateDurable(t *testing.T) {
	// "Durable" across reopening: the state of a directory lives in a map.
	dirs := map[string]*memState{}
	statetest.RunDurable(t, func(t *testing.T, dir string) (witness.State, func() error) {
		if dirs[dir] == nil {
			dirs[dir] = &memState{m: map[string][]byte{}}
		}
		return dirs[dir], func() error { return nil }
	})
}
