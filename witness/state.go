package witness

import (
	"context"
	"errors"
)

// ErrStateConflict is returned by State.Swap when the stored checkpoint is
// not the one the caller read. Nothing is written.
var ErrStateConflict = errors.New("witness state changed concurrently")

// State is the witness's durable memory: for each origin, the latest
// checkpoint it cosigned, as a signed note carrying the log's signature and
// the witness's cosignature. The conformance suite in witness/statetest
// checks these rules.
type State interface {
	// Latest returns the stored checkpoint for origin, or nil if the
	// witness never cosigned one. The caller may modify the result.
	Latest(ctx context.Context, origin string) ([]byte, error)

	// Swap stores new for origin if and only if the stored checkpoint is
	// byte for byte old (nil: nothing stored), atomically. Otherwise it
	// returns ErrStateConflict and writes nothing. When Swap returns nil,
	// new survives a crash of the process or the machine. new is not
	// empty, and Swap does not keep it: the caller may modify it later.
	Swap(ctx context.Context, origin string, old, new []byte) error
}

// EvidenceStore keeps the evidence of misbehaviour the witness found or
// was given, so that it survives restarts and the witness keeps refusing
// to cosign for a log it caught. The conformance suite in
// witness/statetest checks these rules (RunEvidence).
type EvidenceStore interface {
	// AddEvidence stores evidence (encoded api.Evidence) of origin under
	// id. It is synced to disk when AddEvidence returns nil. Adding an id
	// that is stored already keeps the stored evidence and returns nil.
	// AddEvidence does not keep evidence.
	AddEvidence(ctx context.Context, origin, id string, evidence []byte) error

	// ListEvidence returns all stored evidence, by origin then id, and the
	// origins it is about, in the same order. The caller may modify the
	// results.
	ListEvidence(ctx context.Context) (origins []string, evidence [][]byte, err error)

	// ClearEvidence deletes all evidence of origin, synced, and returns
	// how many were deleted.
	ClearEvidence(ctx context.Context, origin string) (int, error)
}
