package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"

	"github.com/candorlog/candor/api"
)

// The witness seam. Without a Witnessing the log publishes every checkpoint
// as soon as its commit returns, as it always did. With one, the log keeps
// two checkpoints: the committed one (signed by the log only), which bounds
// what it stores and serves as data (tiles, entry bundles, entries), and the
// published one, which the Witnessing handed back with a quorum of witness
// cosignatures: GET /checkpoint, proofs and submission replies carry only
// that one. The sequencer is unchanged: it only closes a channel when a
// commit returns, so that the Witnessing hears of it.

var (
	// ErrNotWitnessed means an entry is sequenced and durable, but no
	// published (cosigned) checkpoint includes it yet: retry later.
	ErrNotWitnessed = errors.New("entry is sequenced and durable but not yet in a checkpoint cosigned by the witnesses")
	// ErrNoCheckpoint means the log has a witness policy and no checkpoint
	// satisfied it yet, so it has no checkpoint to publish.
	ErrNoCheckpoint = errors.New("no checkpoint cosigned by the witness policy yet")
)

// Witnessing gets the log's checkpoints cosigned by witnesses, such as a
// *witnessing.Collector (package log/witnessing), and gives them back for
// publication. It must only publish checkpoints whose cosignatures satisfy
// its witness policy: the log checks that a published checkpoint is its own
// and consistent with what it committed, not the cosignatures.
type Witnessing interface {
	// Run collects cosignatures for l's committed checkpoints until ctx is
	// done, then returns. New calls it once, in its own goroutine; Close
	// cancels ctx and waits for Run to return.
	Run(ctx context.Context, l WitnessedLog)
}

// WitnessedLog is the log as its Witnessing sees it. It is safe for
// concurrent use.
type WitnessedLog interface {
	// Committed returns the newest committed checkpoint, signed by the log
	// only, its size, and a channel that is closed once a newer checkpoint
	// is committed (any number of commits close it once).
	Committed() (checkpoint []byte, size uint64, newer <-chan struct{})
	// ConsistencyProof returns the RFC 6962 consistency proof from the
	// tree of size old to the tree of size new; new must not exceed the
	// committed size.
	ConsistencyProof(ctx context.Context, old, new uint64) ([][]byte, error)
	// Publish makes signed, one of the log's checkpoints with witness
	// cosignatures appended, the log's published checkpoint. It refuses,
	// and publishes nothing, a note without the log's valid signature, a
	// tree that is not the committed tree at its size, or a size below the
	// published one; at the published size the new note replaces the old
	// one (to carry more cosignatures).
	Publish(ctx context.Context, signed []byte) error
}

// witnessedLog implements WitnessedLog. It is not the Log itself, so that
// Publish is not part of the Log's API.
type witnessedLog struct{ l *Log }

var _ WitnessedLog = witnessedLog{}

func (w witnessedLog) Committed() ([]byte, uint64, <-chan struct{}) {
	p := w.l.cur.Load()
	return p.checkpoint, p.size, p.next
}

func (w witnessedLog) ConsistencyProof(ctx context.Context, old, new uint64) ([][]byte, error) {
	if cur := w.l.cur.Load().size; new > cur {
		return nil, fmt.Errorf("%w: tree size %d is larger than the committed size %d", ErrOutOfRange, new, cur)
	}
	p, err := consistencyProof(ctx, w.l.store, w.l.cache, old, new)
	return p, mustExist(err)
}

func (w witnessedLog) Publish(ctx context.Context, signed []byte) error {
	l := w.l
	c, _, err := api.OpenCheckpoint(signed, l.origin, l.verifier)
	if err != nil {
		return fmt.Errorf("couldn't publish: %w", err)
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	old := l.witnessed.Load()
	if old.checkpoint != nil && c.Size < old.size {
		return fmt.Errorf("couldn't publish: size %d is below the published size %d", c.Size, old.size)
	}
	cur := l.cur.Load()
	if c.Size > cur.size {
		return fmt.Errorf("couldn't publish: size %d is beyond the committed size %d", c.Size, cur.size)
	}
	body, err := api.CheckpointBody(cur.checkpoint)
	if err != nil {
		return fmt.Errorf("couldn't publish: the committed checkpoint: %w", err)
	}
	committed, err := api.ParseCheckpoint(body)
	if err != nil {
		return fmt.Errorf("couldn't publish: the committed checkpoint: %w", err)
	}
	switch {
	case c.Size == 0:
		if !bytes.Equal(c.Hash[:], hasher.EmptyRoot()) {
			return errors.New("couldn't publish: a checkpoint of size 0 without the empty tree's root")
		}
	default:
		hashes, err := w.ConsistencyProof(ctx, c.Size, cur.size)
		if err != nil {
			return fmt.Errorf("couldn't publish: %w", err)
		}
		if err := proof.VerifyConsistency(hasher, c.Size, cur.size, hashes, c.Hash[:], committed.Hash[:]); err != nil {
			return fmt.Errorf("couldn't publish: the checkpoint of size %d is not the committed tree: %w", c.Size, err)
		}
	}
	l.witnessed.Store(&published{size: c.Size, checkpoint: bytes.Clone(signed), next: make(chan struct{})})
	close(old.next)
	l.metrics.witnessedSize.Set(float64(c.Size))
	return nil
}

// Witnessed reports whether the log has a Witnessing, and so publishes only
// cosigned checkpoints.
func (l *Log) Witnessed() bool { return l.witnessing != nil }

// Cosigned reports whether the published checkpoints carry witness
// cosignatures: the log has a Witnessing, and it does not say otherwise
// with a method Cosigned() bool (one that only orders the publication of
// checkpoints, as storage/trillian's Publisher without a policy).
func (l *Log) Cosigned() bool {
	if c, ok := l.witnessing.(interface{ Cosigned() bool }); ok {
		return c.Cosigned()
	}
	return l.witnessing != nil
}

// WaitWitnessed waits until a published checkpoint includes the entry at
// index and returns it and its size. Without a Witnessing it returns the
// published checkpoint if it includes the entry, and ErrOutOfRange if not.
func (l *Log) WaitWitnessed(ctx context.Context, index uint64) ([]byte, uint64, error) {
	for {
		p := l.pub.Load()
		if index < p.size {
			return p.checkpoint, p.size, nil
		}
		if p.next == nil {
			return nil, 0, fmt.Errorf("%w: index %d is not below the tree size %d", ErrOutOfRange, index, p.size)
		}
		select {
		case <-p.next:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-l.stopped:
			return nil, 0, ErrClosed
		}
	}
}

// checkWitnessed returns an error wrapping ErrNotWitnessed if the entry at
// index is committed but not in the published checkpoint, and nil
// otherwise.
func (l *Log) checkWitnessed(index uint64) error {
	if l.witnessing == nil {
		return nil
	}
	pub, cur := l.pub.Load().size, l.cur.Load().size
	if index >= pub && index < cur {
		return fmt.Errorf("%w: entry %d is in the committed tree of size %d, the newest cosigned checkpoint has size %d; retry later", ErrNotWitnessed, index, cur, pub)
	}
	return nil
}

// setCommitted makes p the committed checkpoint and, with a Witnessing,
// tells it. Only New and the sequencer call it.
func (l *Log) setCommitted(p *published) {
	if l.witnessing != nil {
		p.next = make(chan struct{})
	}
	if old := l.cur.Swap(p); old != nil && old.next != nil {
		close(old.next)
	}
}

// startWitnessing starts the Witnessing, if any.
func (l *Log) startWitnessing() {
	if l.witnessing == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stopWitnessing = cancel
	l.witnessingDone = make(chan struct{})
	go func() {
		defer close(l.witnessingDone)
		l.witnessing.Run(ctx, witnessedLog{l})
	}()
}
