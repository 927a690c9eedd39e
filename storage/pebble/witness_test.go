package pebble_test

import (
	"testing"

	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
	"github.com/candorlog/candor/witness/statetest"
)

func TestWitnessState(t *testing.T) {
	statetest.Run(t, func(t *testing.T) witness.State {
		s, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

func TestWitnessStateDurable(t *testing.T) {
	statetest.RunDurable(t, func(t *testing.T, dir string) (witness.State, func() error) {
		s, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Close
	})
}

func TestWitnessEvidence(t *testing.T) {
	statetest.RunEvidence(t, func(t *testing.T, dir string) (witness.EvidenceStore, func() error) {
		s, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Close
	})
}

func TestWitnessAudit(t *testing.T) {
	statetest.RunAudit(t, func(t *testing.T, dir string) (witness.AuditState, func() error) {
		s, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Close
	})
}
