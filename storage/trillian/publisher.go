package trillian

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

// Cosigner gets a front end's checkpoints cosigned by witnesses: a
// *witnessing.Collector.
type Cosigner interface {
	log.Witnessing
	// Check returns nil if signed, a checkpoint of the log, carries the
	// cosignatures its witness policy asks for.
	Check(signed []byte) error
	// Adopted says the log published a cosigned checkpoint of size
	// another front end got cosigned, so that the Cosigner does not ask
	// the witnesses about checkpoints no larger.
	Adopted(size uint64)
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Record is the tree's shared checkpoint record. Required.
	Record *Record
	// Verifier is the log's signed-note verifier. Required.
	Verifier note.Verifier
	// Cosigner, if set, gets the checkpoints cosigned before they are
	// published; without one the log publishes what it commits.
	Cosigner Cosigner
	// PollInterval is how often the record is read for a checkpoint that
	// another front end published. Default: 1s. It is also read before
	// every /checkpoint reply (Sync).
	PollInterval time.Duration
	// Wait bounds how long a read of /checkpoint waits for the mirror to
	// reach a checkpoint another front end published. Default: 30s.
	Wait time.Duration
	// Logger. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Optional.
	Registerer prometheus.Registerer
}

// Publisher is the log.Witnessing of a front end on Trillian: it publishes
// a checkpoint only through the tree's shared record (record.go), and
// publishes the checkpoints other front ends put there. With a Cosigner,
// the checkpoints it publishes of its own are those the Cosigner had
// cosigned.
//
// If the record holds a checkpoint that is not of the tree the front end
// mirrors (the database or Trillian was restored from an old backup, or
// another tree's front end writes to this tree's row), the Publisher
// publishes nothing more, logs the two checkpoints, and the front end is
// not ready until it is restarted on a consistent tree.
type Publisher struct {
	cfg     PublisherConfig
	started chan struct{} // closed once Run set log
	log     log.WitnessedLog

	mu      sync.Mutex // serializes publication
	pubNote []byte     // the note the log publishes, or nil
	pubSize uint64

	faultMu sync.Mutex
	fault   error // sticky: the record and the tree disagree

	adopted     atomic.Uint64 // the largest size published without the Cosigner knowing
	adoptedPoke chan struct{}

	retryMu   sync.Mutex
	retry     []byte // a cosigned checkpoint the record refused, to try again
	retrySize uint64

	published *prometheus.CounterVec
	conflict  prometheus.Gauge
}

// The results counted in candor_log_trillian_checkpoints_total.
const (
	pubOwn     = "own"     // this front end's checkpoint, swapped into the record
	pubAdopted = "adopted" // another front end's, from the record
	pubLost    = "lost"    // a swap that found the record changed
)

// NewPublisher returns a Publisher.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Record == nil || cfg.Verifier == nil {
		return nil, errors.New("trillian: a publisher needs the checkpoint record and the log's verifier")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Publisher{
		cfg:     cfg,
		started: make(chan struct{}),

		adoptedPoke: make(chan struct{}, 1),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_log_trillian_checkpoints_total",
			Help: "Checkpoints published through the shared checkpoint record, by origin: own (this front end's, swapped in), adopted (another front end's), lost (a swap that found the record changed).",
		}, []string{"result"}),
		conflict: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_log_trillian_checkpoint_conflict",
			Help: "1 if the shared checkpoint record holds a checkpoint that is not of the tree this front end mirrors: it publishes nothing more.",
		}),
	}
	for _, r := range []string{pubOwn, pubAdopted, pubLost} {
		p.published.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		if err := errors.Join(cfg.Registerer.Register(p.published), cfg.Registerer.Register(p.conflict)); err != nil {
			return nil, fmt.Errorf("trillian: publisher metrics: %w", err)
		}
	}
	return p, nil
}

// Run publishes l's checkpoints until ctx is done.
func (p *Publisher) Run(ctx context.Context, l log.WitnessedLog) {
	p.log = l
	close(p.started)
	var wg sync.WaitGroup
	if c := p.cfg.Cosigner; c != nil {
		wg.Go(func() { c.Run(ctx, sharedLog{l, p}) })
		wg.Go(func() {
			for {
				select {
				case <-p.adoptedPoke:
					c.Adopted(p.adopted.Load())
				case <-ctx.Done():
					return
				}
			}
		})
	}
	defer wg.Wait()
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	p.adopt(ctx)
	for {
		// Without a Cosigner the committed checkpoint is published; with
		// one, a cosigned checkpoint the record refused (the database
		// away) is tried again. Both until they are published.
		var newer <-chan struct{}
		signed := p.retryNote()
		if p.cfg.Cosigner == nil {
			signed, _, newer = l.Committed()
		}
		if signed != nil && p.faulted() == nil {
			if err := p.publish(ctx, signed); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Warn("couldn't publish the checkpoint, trying again", "error", err)
			} else if p.cfg.Cosigner != nil && err == nil {
				p.retried(signed)
			}
		}
		select {
		case <-newer:
		case <-tick.C:
			p.adopt(ctx)
		case <-ctx.Done():
			return
		}
	}
}

// retryNote returns the cosigned checkpoint to publish again, or nil.
func (p *Publisher) retryNote() []byte {
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	return p.retry
}

// setRetry makes signed the checkpoint to publish again, if it is at
// least as large as the one there.
func (p *Publisher) setRetry(signed []byte) {
	c, err := p.open(signed)
	if err != nil {
		return
	}
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	if p.retry == nil || c.Size >= p.retrySize {
		p.retry, p.retrySize = signed, c.Size
	}
}

// retried clears done, published again, if it is still the checkpoint to
// publish again, and tells the Cosigner it is published.
func (p *Publisher) retried(done []byte) {
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	if bytes.Equal(done, p.retry) {
		p.retry = nil
		p.notifyCosigner(p.retrySize)
	}
}

// notifyCosigner tells the Cosigner, from Run's goroutine, that a
// checkpoint of size is published: it may be calling publish, holding its
// own lock, while the caller holds mu.
func (p *Publisher) notifyCosigner(size uint64) {
	for {
		old := p.adopted.Load()
		if size <= old || p.adopted.CompareAndSwap(old, size) {
			break
		}
	}
	select {
	case p.adoptedPoke <- struct{}{}:
	default:
	}
}

// adopt publishes the record's checkpoint if it is newer, logging why not.
func (p *Publisher) adopt(ctx context.Context) {
	rec, err := p.cfg.Record.Load(ctx)
	if err == nil && rec != nil {
		err = p.adoptNote(ctx, rec, p.cfg.PollInterval)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, errBehind) {
		p.cfg.Logger.Warn("couldn't read the shared checkpoint record", "error", err)
	}
}

// errBehind means the mirror has not reached the record's checkpoint yet.
var errBehind = errors.New("the mirror has not reached the published checkpoint yet")

// Sync publishes the checkpoint of the record if it is newer than the
// log's, waiting for the mirror to reach it, so that /checkpoint never
// answers with a checkpoint older than another front end published;
// without a Cosigner it first publishes the committed checkpoint.
func (p *Publisher) Sync(ctx context.Context) error {
	select {
	case <-p.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := p.faulted(); err != nil {
		return err
	}
	if p.cfg.Cosigner == nil {
		// What the mirror committed, the log publishes now (Run would a
		// moment later), so that /checkpoint has the tree Trillian had.
		signed, _, _ := p.log.Committed()
		if err := p.publish(ctx, signed); err != nil {
			return fmt.Errorf("%w: %v", log.ErrUnavailable, err)
		}
	}
	rec, err := p.cfg.Record.Load(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", log.ErrUnavailable, err)
	}
	if rec == nil {
		return nil
	}
	if err := p.adoptNote(ctx, rec, p.cfg.Wait); err != nil {
		return fmt.Errorf("%w: %v", log.ErrUnavailable, err)
	}
	return nil
}

// adoptNote publishes rec, the record's note, if it is larger than what
// the log publishes (or of the same size and different), once the mirror
// has committed its tree (waiting up to wait) and it is checked against
// that tree.
func (p *Publisher) adoptNote(ctx context.Context, rec []byte, wait time.Duration) error {
	// What every /checkpoint finds once the front ends agree: known
	// before the note's signatures are checked.
	if p.current(rec, nil) {
		return nil
	}
	c, err := p.open(rec)
	if err != nil {
		return fmt.Errorf("the shared checkpoint record holds no checkpoint of this log: %w", err)
	}
	if p.current(rec, &c) {
		return nil
	}
	if err := p.waitCommitted(ctx, c.Size, wait); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.currentLocked(rec, &c) {
		return nil
	}
	return p.adoptLocked(ctx, rec, c)
}

// current reports whether the log publishes rec, or a larger tree than
// c if c is known.
func (p *Publisher) current(rec []byte, c *api.Checkpoint) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.currentLocked(rec, c)
}

// currentLocked is current for a caller that holds mu.
func (p *Publisher) currentLocked(rec []byte, c *api.Checkpoint) bool {
	return bytes.Equal(rec, p.pubNote) || (c != nil && c.Size < p.pubSize)
}

// adoptLocked publishes rec, of checkpoint c, checked against the
// committed tree, which is at least as large. The caller holds mu.
func (p *Publisher) adoptLocked(ctx context.Context, rec []byte, c api.Checkpoint) error {
	if err := p.faulted(); err != nil {
		return err
	}
	if p.cfg.Cosigner != nil {
		// Not a fault of the tree: front ends with different policies,
		// during a change of the policy.
		if err := p.cfg.Cosigner.Check(rec); err != nil {
			return fmt.Errorf("the shared checkpoint record holds a checkpoint of size %d without this front end's witness policy's cosignatures: %w", c.Size, err)
		}
	}
	committed, size, _ := p.log.Committed()
	if c.Size > size {
		return fmt.Errorf("%w: another front end published size %d, the mirror has %d", errBehind, c.Size, size)
	}
	to, err := p.open(committed)
	if err != nil {
		return err
	}
	if err := p.consistent(ctx, c, to); err != nil {
		return p.notOfTree(err, rec, committed)
	}
	if err := p.log.Publish(ctx, rec); err != nil {
		return fmt.Errorf("couldn't publish the checkpoint of the shared record: %w", err)
	}
	p.pubNote, p.pubSize = rec, c.Size
	p.published.WithLabelValues(pubAdopted).Inc()
	p.notifyCosigner(c.Size)
	return nil
}

// waitCommitted waits until the log committed a tree of size entries, up
// to wait.
func (p *Publisher) waitCommitted(ctx context.Context, size uint64, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		_, n, newer := p.log.Committed()
		if n >= size {
			return nil
		}
		select {
		case <-newer:
		case <-t.C:
			return fmt.Errorf("%w: another front end published size %d, the mirror has %d", errBehind, size, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// publish publishes signed, a checkpoint of the log's committed tree (and
// cosigned, with a Cosigner), through the record: it swaps it in if it is
// larger than the record's and consistent with it, and otherwise
// publishes the record's, which is at least as large.
func (p *Publisher) publish(ctx context.Context, signed []byte) error {
	if err := p.faulted(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// What Run and every /checkpoint find once it is published: known
	// before the note's signature is checked.
	if p.currentLocked(signed, nil) {
		return nil
	}
	c, err := p.open(signed)
	if err != nil {
		return err
	}
	for {
		if p.currentLocked(signed, &c) {
			return nil
		}
		rec, err := p.cfg.Record.Load(ctx)
		if err != nil {
			return err
		}
		if rec != nil {
			r, err := p.open(rec)
			if err != nil {
				return fmt.Errorf("the shared checkpoint record holds no checkpoint of this log: %w", err)
			}
			if r.Size >= c.Size {
				// Another front end published as large a tree: that
				// one is published instead, now if the mirror has it,
				// else once it has.
				if bytes.Equal(rec, p.pubNote) {
					return nil
				}
				if err := p.adoptLocked(ctx, rec, r); !errors.Is(err, errBehind) {
					return err
				}
				return nil
			}
			if err := p.consistent(ctx, r, c); err != nil {
				return p.notOfTree(err, rec, signed)
			}
		}
		ok, err := p.cfg.Record.Swap(ctx, rec, signed, c.Size)
		if err != nil {
			return err
		}
		if !ok {
			p.published.WithLabelValues(pubLost).Inc()
			continue // read it again
		}
		if err := p.log.Publish(ctx, signed); err != nil {
			return err
		}
		p.pubNote, p.pubSize = signed, c.Size
		p.published.WithLabelValues(pubOwn).Inc()
		return nil
	}
}

// consistent checks that checkpoint c is of the tree of to, a checkpoint
// of the log's committed tree at least as large.
func (p *Publisher) consistent(ctx context.Context, c, to api.Checkpoint) error {
	switch {
	case c.Size > to.Size:
		return fmt.Errorf("%w: size %d is beyond the mirror's %d", errNotOfTree, c.Size, to.Size)
	case c.Size == 0:
		if !bytes.Equal(c.Hash[:], rfc6962.DefaultHasher.EmptyRoot()) {
			return fmt.Errorf("%w: a tree of size 0 whose root is not the empty tree's", errNotOfTree)
		}
		return nil
	case c.Size == to.Size:
		if c.Hash != to.Hash {
			return fmt.Errorf("%w: two roots at size %d", errNotOfTree, c.Size)
		}
		return nil
	}
	hashes, err := p.log.ConsistencyProof(ctx, c.Size, to.Size)
	if err != nil {
		return err // the mirror could not read its tree: not a verdict
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c.Size, to.Size, hashes, c.Hash[:], to.Hash[:]); err != nil {
		return fmt.Errorf("%w: %v", errNotOfTree, err)
	}
	return nil
}

// errNotOfTree means a checkpoint is not of the tree the front end
// mirrors.
var errNotOfTree = errors.New("not a checkpoint of the mirrored tree")

// notOfTree returns err from consistent, the record's note rec against
// mine, a checkpoint of the mirror: if it found rec not of the tree, it
// stops publishing (setFault).
func (p *Publisher) notOfTree(err error, rec, mine []byte) error {
	if !errors.Is(err, errNotOfTree) {
		return err
	}
	return p.setFault(fmt.Errorf("the shared checkpoint record holds a checkpoint that is not of the tree this front end mirrors: %w\nrecord:\n%s\nmirror:\n%s", err, rec, mine))
}

// open checks that signed is the log's checkpoint and parses it.
func (p *Publisher) open(signed []byte) (api.Checkpoint, error) {
	c, _, err := api.OpenCheckpoint(signed, p.cfg.Verifier.Name(), p.cfg.Verifier)
	return c, err
}

func (p *Publisher) setFault(err error) error {
	p.faultMu.Lock()
	defer p.faultMu.Unlock()
	if p.fault == nil {
		p.fault = fmt.Errorf("%w: %v", log.ErrUnavailable, err)
		p.conflict.Set(1)
		p.cfg.Logger.Error("publishing stopped: "+err.Error(), "tree", p.cfg.Record.treeID)
	}
	return p.fault
}

func (p *Publisher) faulted() error {
	p.faultMu.Lock()
	defer p.faultMu.Unlock()
	return p.fault
}

// Ready returns nil while the front end publishes, and the Cosigner's
// readiness.
func (p *Publisher) Ready() error {
	if err := p.faulted(); err != nil {
		return err
	}
	if r, ok := p.cfg.Cosigner.(log.WitnessingReadiness); ok {
		return r.Ready()
	}
	return nil
}

// Status is the Cosigner's status, if any.
func (p *Publisher) Status() any {
	if r, ok := p.cfg.Cosigner.(log.WitnessingReadiness); ok {
		return r.Status()
	}
	return nil
}

// Close closes the record. The log, whose Witnessing the Publisher is,
// must be closed first.
func (p *Publisher) Close() error { return p.cfg.Record.Close() }

// Cosigned reports whether the published checkpoints are cosigned.
func (p *Publisher) Cosigned() bool { return p.cfg.Cosigner != nil }

// sharedLog is the log as the Cosigner sees it: what it publishes goes
// through the record.
type sharedLog struct {
	log.WitnessedLog
	p *Publisher
}

// Publish publishes signed through the record. If that fails the
// Publisher tries again, and tells the Cosigner once it succeeded.
func (s sharedLog) Publish(ctx context.Context, signed []byte) error {
	err := s.p.publish(ctx, signed)
	if err != nil {
		s.p.setRetry(signed)
	}
	return err
}

var (
	_ log.Witnessing          = (*Publisher)(nil)
	_ log.WitnessingReadiness = (*Publisher)(nil)
)
