// Package log is Candor's log engine: it sequences entries into an RFC 6962
// Merkle tree in batches, writes each batch with the tiles
// (c2sp.org/tlog-tiles) it touches and a newly signed checkpoint
// (c2sp.org/tlog-checkpoint) in one atomic, durable Storage commit, and
// serves the tree, the entries and proofs from storage.
//
// The log never publishes a checkpoint before the commit that backs it has
// returned, and a commit always extends the tree it was built on, so every
// checkpoint it ever publishes is consistent with every earlier one.
//
// With a Witnessing (witnessing.go; package log/witnessing implements it
// for a c2sp.org/tlog-policy), the log publishes only the committed
// checkpoints that come back cosigned by witnesses.
package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
)

var (
	// ErrOverloaded means the log has more pending entries than it accepts;
	// the client should retry later.
	ErrOverloaded = errors.New("log is overloaded: too many pending entries")
	// ErrOutOfRange means a requested index, size or tile is beyond the
	// published tree.
	ErrOutOfRange = errors.New("out of range")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("log is closed")
	// ErrUnavailable means storage failed and the log refuses entries until
	// it can reload its state.
	ErrUnavailable = errors.New("log storage is unavailable")
	// ErrNoSpace means the disk that holds the log is below its free-space
	// reserve (Config.CheckSpace): the log refuses new entries until space
	// is freed, and keeps serving reads and duplicates.
	ErrNoSpace = errors.New("log is out of disk space: new entries are refused until space is freed")
)

// Config configures a Log. Storage, Signer and Verifier are required.
type Config struct {
	// Storage holds the log.
	Storage Storage
	// Signer signs checkpoints; its name is the log's origin.
	Signer note.Signer
	// Verifier is the Signer's public half.
	Verifier note.Verifier
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// MaxBatchSize is the most entries integrated in one commit.
	// Default: 4096.
	MaxBatchSize int
	// MaxPending is the most entries waiting to be integrated; Add returns
	// ErrOverloaded beyond it. Default: 65536.
	MaxPending int
	// MaxInflight is the most batches built and not yet durable: while
	// they are committed the next one is built, and a PipelinedStorage
	// writes them while the earlier ones sync. Default: 3 with a
	// PipelinedStorage, else 2 (one committing, one built meanwhile).
	MaxInflight int
	// PipelineMin is how many entries must be queued before a batch is
	// built while another is still being committed; fewer wait for the
	// oldest commit and go into the batch after it. A lightly loaded log
	// so syncs fewer, larger batches, and answers sooner for it.
	// Default: 64, at most MaxPending. Negative: a batch is built as soon
	// as an entry is queued and a batch may be in flight.
	PipelineMin int
	// Registerer receives the log's metrics. Optional.
	Registerer prometheus.Registerer
	// Witnessing, if set, gets the log's checkpoints cosigned, and the log
	// publishes only the checkpoints it hands back (see Witnessing).
	// Optional: without it every committed checkpoint is published.
	Witnessing Witnessing
	// CheckSpace, if set, says whether the disk has room for new entries:
	// nil, or why not. Submit and Ready call it; while it fails, new
	// entries fail with ErrNoSpace. It must be fast (it runs once per
	// entry), like internal/diskspace's Monitor.Check. Optional.
	CheckSpace func() error
}

// Receipt tells where an entry is in the log.
type Receipt struct {
	Index    uint64
	LeafHash []byte
	// Duplicate is true when the entry was already in the log.
	Duplicate bool
	// Size and Checkpoint are the first committed checkpoint that includes
	// the entry. Without a Witnessing it is published; with one it carries
	// the log's signature only, and WaitWitnessed waits for a cosigned one.
	Size       uint64
	Checkpoint []byte
}

// Log is the log engine. It is safe for concurrent use.
type Log struct {
	origin   string
	store    Storage
	signer   note.Signer
	verifier note.Verifier
	logger   *slog.Logger
	maxBatch int
	inflight int // Config.MaxInflight
	pipeMin  int // Config.PipelineMin, ≥ 0
	metrics  *metrics
	cache    *tileCache
	// bundleReads holds a place for each entry bundle being read from
	// storage (MaxBundleReads).
	bundleReads chan struct{}

	queue   chan *request
	wake    chan struct{} // pipeMin entries are queued
	quit    chan struct{}
	stopped chan struct{}
	closed  atomic.Bool
	broken  atomic.Bool // storage failed and the tree could not be reloaded

	cur atomic.Pointer[published] // the newest committed checkpoint

	// pub is the published checkpoint: &cur without a Witnessing, else
	// &witnessed, which only Publish (witnessing.go) changes.
	pub            *atomic.Pointer[published]
	witnessed      atomic.Pointer[published]
	pubMu          sync.Mutex
	witnessing     Witnessing
	checkSpace     func() error
	stopWitnessing context.CancelFunc
	witnessingDone chan struct{}

	// gen is the generation of the last batch whose commit returned.
	gen atomic.Uint64

	// tail is the state of deferred indexing; nil if the storage indexes
	// in its commits, or keeps no index.
	tail *searchTail

	// Owned by the sequencer goroutine.
	tree    *treeBuilder
	lastGen uint64              // generation of the last batch built
	recent  map[[32]byte]uint64 // leaf hash -> index for the batches in window
	window  []windowBatch       // the latest batches, oldest first
	evicted uint64              // every batch up to this generation left window
}

type published struct {
	size       uint64
	checkpoint []byte
	// next is closed when a newer checkpoint replaces this one; nil
	// without a Witnessing, where nothing waits for it.
	next chan struct{}
}

type request struct {
	Future
	entry []byte
	terms []api.SearchTerm
	hash  [32]byte
	// gen is the durable generation when Submit looked the hash up in
	// storage: that lookup saw every batch up to gen.
	gen uint64
	// set by the sequencer
	index uint64
	dup   bool
	fail  error
}

// Future is an entry submitted with Submit: its receipt once the entry is
// durably integrated, or the error that kept it out.
type Future struct {
	done    chan struct{} // closed when r and err are set
	stopped <-chan struct{}
	r       Receipt
	err     error
}

// Done is closed when the outcome is known; Wait then returns at once.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait waits for the outcome, or for ctx to end (which does not withdraw
// the entry: it may still be integrated).
func (f *Future) Wait(ctx context.Context) (Receipt, error) {
	select {
	case <-f.done:
		return f.r, f.err
	case <-f.stopped:
		// The sequencer may have answered just before it stopped.
		select {
		case <-f.done:
			return f.r, f.err
		default:
			return Receipt{}, ErrClosed
		}
	case <-ctx.Done():
		return Receipt{}, ctx.Err()
	}
}

// resolve sets the outcome. It is called once.
func (f *Future) resolve(r Receipt, err error) {
	f.r, f.err = r, err
	close(f.done)
}

// resolved returns a Future whose outcome is known.
func resolved(r Receipt, err error) *Future {
	f := &Future{done: make(chan struct{})}
	f.resolve(r, err)
	return f
}

// New opens the log in cfg.Storage, checks that the stored tree matches the
// stored checkpoint, and starts sequencing. An empty storage gets a signed
// checkpoint of the empty tree.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Storage == nil || cfg.Signer == nil || cfg.Verifier == nil {
		return nil, errors.New("log: Storage, Signer and Verifier are required")
	}
	if cfg.Signer.Name() != cfg.Verifier.Name() || cfg.Signer.KeyHash() != cfg.Verifier.KeyHash() {
		return nil, errors.New("log: Signer and Verifier are not the same key")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBatchSize <= 0 {
		cfg.MaxBatchSize = 4096
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 65536
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 2
		if _, ok := cfg.Storage.(PipelinedStorage); ok {
			cfg.MaxInflight = 3
		}
	}
	switch {
	case cfg.PipelineMin == 0:
		cfg.PipelineMin = min(64, cfg.MaxPending)
	case cfg.PipelineMin < 0:
		cfg.PipelineMin = 0
	case cfg.PipelineMin > cfg.MaxPending:
		cfg.PipelineMin = cfg.MaxPending // the most that can be queued
	}
	l := &Log{
		origin:   cfg.Signer.Name(),
		store:    cfg.Storage,
		signer:   cfg.Signer,
		verifier: cfg.Verifier,
		logger:   cfg.Logger,
		maxBatch: cfg.MaxBatchSize,
		inflight: cfg.MaxInflight,
		pipeMin:  cfg.PipelineMin,
		queue:    make(chan *request, cfg.MaxPending),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
		recent:   make(map[[32]byte]uint64),
		cache:    newTileCache(fullTileCacheSize, upperTileCacheSize),

		bundleReads: make(chan struct{}, MaxBundleReads),

		witnessing: cfg.Witnessing,
		checkSpace: cfg.CheckSpace,
	}
	l.pub = &l.cur
	if l.witnessing != nil {
		l.pub = &l.witnessed
		l.witnessed.Store(&published{next: make(chan struct{})})
	}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	if err := l.startIndexer(ctx); err != nil {
		return nil, fmt.Errorf("couldn't start the search indexer: %w", err)
	}
	l.metrics = newMetrics(cfg.Registerer, l)
	l.metrics.treeSize.Set(float64(l.cur.Load().size))
	go l.run()
	l.startWitnessing()
	return l, nil
}

// load reads the committed state and rebuilds the tree's right edge from it.
func (l *Log) load(ctx context.Context) error {
	cp, size, err := l.store.ReadCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	tree, err := newTreeBuilder(ctx, l.store, size)
	if err != nil {
		return err
	}
	root, err := tree.root()
	if err != nil {
		return fmt.Errorf("couldn't compute the root: %w", err)
	}
	if cp == nil {
		cp, err = l.sign(0, root)
		if err != nil {
			return err
		}
		if err := l.store.Commit(ctx, &Commit{Checkpoint: cp}); err != nil {
			return fmt.Errorf("couldn't commit the empty checkpoint: %w", err)
		}
		l.logger.Info("created a new log", "origin", l.origin)
	} else {
		c, _, err := api.OpenCheckpoint(cp, l.origin, l.verifier)
		if err != nil {
			return fmt.Errorf("stored checkpoint: %w", err)
		}
		if c.Size != size {
			return fmt.Errorf("stored checkpoint is for size %d, storage says %d", c.Size, size)
		}
		if !bytes.Equal(c.Hash[:], root) {
			return fmt.Errorf("stored tiles give root %x at size %d, the checkpoint says %x", root, size, c.Hash)
		}
	}
	l.tree = tree
	l.setCommitted(&published{size: size, checkpoint: cp})
	return nil
}

func (l *Log) sign(size uint64, root []byte) ([]byte, error) {
	c := api.Checkpoint{Origin: l.origin, Size: size}
	copy(c.Hash[:], root)
	cp, err := api.SignCheckpoint(c, l.signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign the checkpoint: %w", err)
	}
	return cp, nil
}

// Origin returns the log's origin (its key name).
func (l *Log) Origin() string { return l.origin }

// Checkpoint returns the latest published signed checkpoint and its size.
// With a Witnessing it is the latest one cosigned by the witnesses (nil and
// 0 before the first one).
func (l *Log) Checkpoint() ([]byte, uint64) {
	p := l.pub.Load()
	return p.checkpoint, p.size
}

// CommittedCheckpoint returns the newest committed signed checkpoint and
// its size. Without a Witnessing it is the published one; with one it is
// signed by the log only, and may be ahead of Checkpoint.
func (l *Log) CommittedCheckpoint() ([]byte, uint64) {
	c := l.cur.Load()
	return c.checkpoint, c.size
}

// committedSize returns the size of the newest committed checkpoint, the
// bound of the data the log serves. Without a Witnessing it is the
// published size.
func (l *Log) committedSize() uint64 { return l.cur.Load().size }

// Add submits an entry, which must already be admitted (canonical and
// verified), and waits until it is durably integrated: Submit, then Wait.
// The entry must not change until Add returns. Search does not find it:
// AddWithTerms adds an entry with its search terms.
func (l *Log) Add(ctx context.Context, entry []byte) (Receipt, error) {
	return l.Submit(ctx, entry).Wait(ctx)
}

// AddWithTerms is Add for an entry that search finds by terms, its
// api.SearchTerms (api.AdmitEntry gives the statement they come from at admission).
// A duplicate keeps the terms it was first added with. The log keeps
// terms: they must not change after the call.
func (l *Log) AddWithTerms(ctx context.Context, entry []byte, terms []api.SearchTerm) (Receipt, error) {
	return l.SubmitWithTerms(ctx, entry, terms).Wait(ctx)
}

// Submit submits an entry, which must already be admitted (canonical and
// verified), without waiting for it to be integrated: the Future tells
// when it is durable. A duplicate of an entry already in the log gets the
// existing index. The entry must not change until the Future is done.
// When too many entries are pending, the Future fails at once with
// ErrOverloaded. ctx bounds the duplicate lookup only.
func (l *Log) Submit(ctx context.Context, entry []byte) *Future {
	return l.SubmitWithTerms(ctx, entry, nil)
}

// SubmitWithTerms is Submit for an entry that search finds by terms, as
// AddWithTerms. The log keeps terms: they must not change after the call.
func (l *Log) SubmitWithTerms(ctx context.Context, entry []byte, terms []api.SearchTerm) *Future {
	if len(entry) > api.MaxEntrySize {
		return resolved(Receipt{}, api.ErrEntryTooLarge)
	}
	if l.closed.Load() {
		return resolved(Receipt{}, ErrClosed)
	}
	r := &request{entry: entry, terms: terms, Future: Future{done: make(chan struct{}), stopped: l.stopped}}
	copy(r.hash[:], hasher.HashLeaf(entry))
	// Look the entry up here, in the caller's goroutine, so that the
	// sequencer only has to check the batches committed since.
	r.gen = l.gen.Load()
	idx, err := l.store.LookupLeaf(ctx, r.hash[:])
	switch {
	case err == nil:
		if p := l.cur.Load(); idx < p.size {
			l.metrics.duplicate.Inc()
			return resolved(Receipt{Index: idx, LeafHash: r.hash[:], Duplicate: true, Size: p.size, Checkpoint: p.checkpoint}, nil)
		}
		// Committed but not published yet: the sequencer answers once it is.
	case !errors.Is(err, ErrNotFound):
		return resolved(Receipt{}, fmt.Errorf("couldn't look up the leaf hash: %w", err))
	}
	if err := l.SpaceError(); err != nil {
		return resolved(Receipt{}, err)
	}
	select {
	case l.queue <- r:
		if len(l.queue) >= l.pipeMin {
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
		return &r.Future
	default:
		l.metrics.overloaded.Inc()
		return resolved(Receipt{}, ErrOverloaded)
	}
}

// Close stops sequencing. Pending entries that were not integrated fail with
// ErrClosed.
func (l *Log) Close() error {
	if l.closed.CompareAndSwap(false, true) {
		close(l.quit)
	}
	<-l.stopped
	if l.tail != nil {
		l.tail.stop()
	}
	if l.stopWitnessing != nil {
		l.stopWitnessing()
		<-l.witnessingDone
	}
	return nil
}

// recover rebuilds the tree from what storage holds after a failed commit,
// and publishes the stored checkpoint if the commit did land after all.
// Until that succeeds the log refuses new entries rather than build on a
// tree that is not durable.
func (l *Log) recover(ctx context.Context) {
	l.resetWindow()
	if err := l.load(ctx); err != nil {
		l.logger.Error("couldn't reload the log from storage", "error", err)
		l.broken.Store(true)
		return
	}
	l.catchUpIndex()
	l.broken.Store(false)
}

// Ready reports whether the log is accepting entries and, with a
// Witnessing that implements WitnessingReadiness, publishing cosigned
// checkpoints in time.
func (l *Log) Ready() error {
	if l.closed.Load() {
		return ErrClosed
	}
	if l.broken.Load() {
		return ErrUnavailable
	}
	if err := l.SpaceError(); err != nil {
		return err
	}
	if r, ok := l.witnessing.(WitnessingReadiness); ok {
		return r.Ready()
	}
	return nil
}

// SpaceError returns an error wrapping ErrNoSpace if Config.CheckSpace
// says the disk has no room for new entries.
func (l *Log) SpaceError() error {
	if l.checkSpace == nil {
		return nil
	}
	if err := l.checkSpace(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return nil
}
