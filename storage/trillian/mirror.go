package trillian

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	tpb "github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

// The log on Trillian.
//
// Trillian's log servers take the entries (QueueLeaf) and its signer, the
// one elected among several, orders them into its tree, in its database.
// Every candor-log front end mirrors that tree, in Trillian's order, into
// a log.Log of its own (the embedded storage, a cache that can be deleted
// and rebuilt from Trillian): it reads the new leaves, appends them to its
// log, and checks that its root is Trillian's at that size before it goes
// on. The log signs its checkpoints with the log's key and serves tiles,
// entry bundles, proofs and search from the mirror, as the embedded log
// does. A submission is admitted by the front end, queued in Trillian, and
// answered once the mirror has published it: then Trillian holds it
// durably, sequenced, and the proof is from a checkpoint of the log.
//
// A front end tags the entries it queues (admissionTag, in the leaf's
// ExtraData, under a key derived from the log's private key), so that
// the other front ends, finding them in the tree, take them without
// checking their signatures again; an entry without a valid tag is
// checked in full, as a submission is.
//
// Every front end mirrors the same sequence, so their checkpoints are of
// one tree; and each publishes only through the tree's shared checkpoint
// record (record.go, publisher.go), checked against the checkpoints
// published before, so that what the front ends publish only grows.

// MirrorConfig configures a Mirror.
type MirrorConfig struct {
	// Log is the mirror: a log that only the Mirror adds entries to.
	Log *log.Log
	// Client is the Trillian log server's API.
	Client tpb.TrillianLogClient
	// TreeID is the Trillian tree the log runs on.
	TreeID int64
	// PollInterval is how often the mirror asks Trillian for a new root
	// while no submission waits. Default: 1s. The first submission to
	// wait makes it ask at once; while submissions wait it asks once the
	// signer's next root can be there, and then every 10ms (waitingPoll)
	// until it is (signerPace).
	PollInterval time.Duration
	// AddWait bounds the wait of a submission for Trillian to sequence it
	// and the mirror to publish it; then it gets 503 (the entry stays
	// queued: submitted again, it gets its proof). Default: 30s.
	AddWait time.Duration
	// Publisher, if set, is the log's Witnessing: Sync also publishes the
	// checkpoint other front ends put in the shared record.
	Publisher *Publisher
	// AdmissionKey, if set, is the key the log's front ends share
	// (AdmissionKey derives it from the log's private key): the mirror
	// tags each entry it queues with it, and takes an entry another
	// front end tagged without checking its signatures again, which that
	// front end did when it admitted it. Entries without a valid tag are
	// checked in full.
	AdmissionKey []byte
	// Logger. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the mirror's metrics. Optional.
	Registerer prometheus.Registerer
}

// mirrorMetrics are what an operator watches of a front end on Trillian.
type mirrorMetrics struct {
	treeSize prometheus.Gauge       // Trillian's latest root
	lag      prometheus.Gauge       // Trillian's size minus the mirror's
	rounds   *prometheus.CounterVec // by result
	stopped  prometheus.Gauge
	checked  *prometheus.CounterVec // entries mirrored, by how they were checked
}

func newMirrorMetrics(reg prometheus.Registerer) *mirrorMetrics {
	m := &mirrorMetrics{
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_log_trillian_tree_size",
			Help: "Size of the Trillian tree at its latest root the front end read.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_log_trillian_mirror_lag_entries",
			Help: "Entries of the Trillian tree the front end's mirror does not have yet.",
		}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_log_trillian_rounds_total",
			Help: "Rounds of following the Trillian tree, by result (ok, error, stopped).",
		}, []string{"result"}),
		stopped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_log_trillian_mirror_stopped",
			Help: "1 once the mirror stopped following the Trillian tree (an entry it cannot take; see the log), else 0.",
		}),
		checked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_log_trillian_mirrored_entries_total",
			Help: "Entries the front end's mirror took from the Trillian tree, by how it checked them: admitted (by this front end), tagged (admitted by another front end of the log, its admission tag checked), full (parsed and its signatures checked).",
		}, []string{"check"}),
	}
	for _, r := range []string{"ok", "error", "stopped"} {
		m.rounds.WithLabelValues(r)
	}
	for _, c := range []string{checkAdmitted, checkTagged, checkFull} {
		m.checked.WithLabelValues(c)
	}
	if reg != nil {
		reg.MustRegister(m.treeSize, m.lag, m.rounds, m.stopped, m.checked)
	}
	return m
}

// fetchLeaves is the most leaves read from Trillian at once.
const fetchLeaves = 1024

// waitingPoll is how often the mirror asks Trillian for a new root while
// submissions wait and the signer's next root is due.
const waitingPoll = 10 * time.Millisecond

// Mirror follows a Trillian tree into a log, and adds the log's
// submissions to Trillian (it is the log handler's log.Adder).
type Mirror struct {
	cfg     MirrorConfig
	metrics *mirrorMetrics
	hasher  *rfc6962.Hasher
	poke    chan struct{}

	mu       sync.Mutex
	progress chan struct{} // closed and replaced when the mirror grows or fails
	failed   error         // why the mirror stopped following, if it did
	roundErr error         // why the last round failed, or nil
	waiting  int           // submissions waiting for the mirror
	pace     signerPace    // of the roots the mirror saw
	// admitted are the entries this front end admitted and is waiting
	// for, by leaf hash: the mirror takes their search terms from the
	// admission rather than parse and verify them again.
	admitted map[[32]byte]*admission
}

// admission is an entry admitted by this front end, waiting for the
// mirror.
type admission struct {
	terms []api.SearchTerm
	n     int // submissions of it waiting
}

// NewMirror checks that the log is a mirror of the Trillian tree (its
// tree is the start of Trillian's) and returns the Mirror, which follows
// the tree once Run runs.
func NewMirror(ctx context.Context, cfg MirrorConfig) (*Mirror, error) {
	if cfg.Log == nil || cfg.Client == nil || cfg.TreeID == 0 {
		return nil, errors.New("a Trillian mirror needs a log, a Trillian client and a tree ID")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.AddWait <= 0 {
		cfg.AddWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Mirror{cfg: cfg, metrics: newMirrorMetrics(cfg.Registerer), hasher: rfc6962.DefaultHasher, poke: make(chan struct{}, 1), progress: make(chan struct{}), admitted: make(map[[32]byte]*admission)}
	root, err := LatestRoot(ctx, cfg.Client, cfg.TreeID)
	if err != nil {
		return nil, err
	}
	size, hash, err := m.localRoot()
	if err != nil {
		return nil, err
	}
	if err := m.checkPrefix(ctx, size, hash, root); err != nil {
		return nil, err
	}
	return m, nil
}

// localRoot returns the size and root hash of the log's newest committed
// checkpoint (with a witness policy, it may not be cosigned yet).
func (m *Mirror) localRoot() (uint64, []byte, error) {
	cp, size := m.cfg.Log.CommittedCheckpoint()
	if size == 0 {
		return 0, m.hasher.EmptyRoot(), nil
	}
	// The log's own checkpoint, signed here: its text is what comes
	// before the blank line.
	i := bytes.Index(cp, []byte("\n\n"))
	if i < 0 {
		return 0, nil, errors.New("the mirror's checkpoint is not a signed note")
	}
	c, err := api.ParseCheckpoint(cp[:i+1])
	if err != nil {
		return 0, nil, fmt.Errorf("the mirror's checkpoint: %w", err)
	}
	return c.Size, c.Hash[:], nil
}

// checkPrefix checks that the tree of the given size and root is the start
// of Trillian's tree at root.
func (m *Mirror) checkPrefix(ctx context.Context, size uint64, hash []byte, root *types.LogRootV1) error {
	switch {
	case size > root.TreeSize:
		return fmt.Errorf("the mirror has %d entries, Trillian's tree %d only %d: was Trillian's database restored from an older backup? Delete the mirror to follow the tree as it is", size, m.cfg.TreeID, root.TreeSize)
	case size == 0:
		return nil
	case size == root.TreeSize:
		if !bytes.Equal(hash, root.RootHash) {
			return fmt.Errorf("the mirror's root at size %d is %x, Trillian's tree %d has %x: the mirror is of another tree", size, hash, m.cfg.TreeID, root.RootHash)
		}
		return nil
	}
	resp, err := m.cfg.Client.GetConsistencyProof(ctx, &tpb.GetConsistencyProofRequest{
		LogId: m.cfg.TreeID, FirstTreeSize: int64(size), SecondTreeSize: int64(root.TreeSize),
	})
	if err != nil {
		return fmt.Errorf("couldn't get Trillian's consistency proof from %d to %d: %w", size, root.TreeSize, err)
	}
	if resp.Proof == nil {
		return fmt.Errorf("the Trillian server returned no consistency proof from %d to %d", size, root.TreeSize)
	}
	if err := proof.VerifyConsistency(m.hasher, size, root.TreeSize, resp.Proof.Hashes, hash, root.RootHash); err != nil {
		return fmt.Errorf("the mirror's tree of %d entries is not the start of Trillian's tree %d: %w", size, m.cfg.TreeID, err)
	}
	return nil
}

// Run follows Trillian's tree into the log until ctx ends, or the tree is
// one the log cannot mirror (an entry that is not a Candor entry, a
// duplicate entry, a root that is not the mirror's): then it returns why,
// and submissions fail with it.
func (m *Mirror) Run(ctx context.Context) error {
	for {
		err := m.follow(ctx)
		var stop *stopError
		stopped := errors.As(err, &stop)
		// Waiters check again after every round: with a witness policy
		// the log publishes what it appended once it is cosigned; and a
		// round that failed fails them (a full disk, Trillian away, or
		// the mirror stopped) rather than keep them until AddWait.
		m.mu.Lock()
		m.roundErr = err
		if stopped {
			m.failed = stop.err
		}
		m.mu.Unlock()
		m.signal()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case stopped:
			m.metrics.rounds.WithLabelValues("stopped").Inc()
			m.metrics.stopped.Set(1)
			m.cfg.Logger.Error("the log stopped following its Trillian tree", "tree", m.cfg.TreeID, "error", stop.err)
			return stop.err
		case err != nil:
			m.metrics.rounds.WithLabelValues("error").Inc()
			m.cfg.Logger.Warn("couldn't follow the Trillian tree; trying again", "tree", m.cfg.TreeID, "error", err)
		default:
			m.metrics.rounds.WithLabelValues("ok").Inc()
		}
		m.mu.Lock()
		poll := m.cfg.PollInterval
		if m.waiting > 0 {
			poll = m.pace.wait(time.Now())
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.poke:
		case <-time.After(poll):
		}
	}
}

// signerPace is what the mirror knows of when Trillian's signer makes its
// roots: the signer integrates what was queued every sequencer interval
// (100ms by default), so while submissions wait the mirror asks for a new
// root once the next can be there, then every waitingPoll until it is,
// rather than every waitingPoll throughout.
type signerPace struct {
	size    uint64    // of the newest root seen
	created uint64    // its TimestampNanos (the signer's clock)
	seen    time.Time // when the round that first saw it asked (this clock)
	gaps    [16]time.Duration
	n, next int // gaps held, and where the next goes
}

// saw records root, which a round that asked at the given time got.
func (p *signerPace) saw(root *types.LogRootV1, asked time.Time) {
	if root.TreeSize <= p.size && !p.seen.IsZero() {
		return
	}
	// The signer's interval is at most the time between two of its roots
	// (more when it had nothing to integrate, or the mirror missed one).
	if !p.seen.IsZero() && root.TimestampNanos > p.created {
		p.gaps[p.next] = time.Duration(root.TimestampNanos - p.created)
		p.next = (p.next + 1) % len(p.gaps)
		p.n = min(p.n+1, len(p.gaps))
	}
	p.size, p.created, p.seen = root.TreeSize, root.TimestampNanos, asked
}

// wait returns how long the mirror waits, after a round at now, before it
// asks Trillian again while submissions wait: until one interval of the
// signer's (the shortest seen between its roots) after the newest root,
// which was made at most waitingPoll before a round saw it; at least
// waitingPoll, and every waitingPoll until a few roots were seen.
func (p *signerPace) wait(now time.Time) time.Duration {
	if p.n < 4 {
		return waitingPoll
	}
	interval := slices.Min(p.gaps[:p.n])
	next := p.seen.Add(interval - waitingPoll)
	return min(max(next.Sub(now), waitingPoll), interval)
}

// stopError is an error after which the mirror cannot go on.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// follow reads Trillian's latest root and appends the leaves the log lacks.
func (m *Mirror) follow(ctx context.Context) error {
	asked := time.Now()
	root, err := LatestRoot(ctx, m.cfg.Client, m.cfg.TreeID)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.pace.saw(root, asked)
	m.mu.Unlock()
	m.metrics.treeSize.Set(float64(root.TreeSize))
	size, hash, err := m.localRoot()
	if err != nil {
		return &stopError{err}
	}
	m.metrics.lag.Set(float64(root.TreeSize - min(size, root.TreeSize)))
	if size >= root.TreeSize {
		if err := m.checkPrefix(ctx, size, hash, root); err != nil {
			return &stopError{err}
		}
		return nil
	}
	for size < root.TreeSize {
		n := min(root.TreeSize-size, fetchLeaves)
		resp, err := m.cfg.Client.GetLeavesByRange(ctx, &tpb.GetLeavesByRangeRequest{
			LogId: m.cfg.TreeID, StartIndex: int64(size), Count: int64(n),
		})
		if err != nil {
			return fmt.Errorf("couldn't read leaves %d to %d: %w", size, size+n, err)
		}
		if len(resp.Leaves) == 0 {
			return fmt.Errorf("the Trillian server returned no leaves from %d of its %d", size, root.TreeSize)
		}
		if err := m.append(ctx, size, resp.Leaves); err != nil {
			return err
		}
		size += uint64(len(resp.Leaves))
		m.metrics.lag.Set(float64(root.TreeSize - size))
		m.signal()
	}
	_, hash, err = m.localRoot()
	if err != nil {
		return &stopError{err}
	}
	if !bytes.Equal(hash, root.RootHash) {
		return &stopError{fmt.Errorf("the mirror's root at size %d is %x, Trillian's tree %d has %x", size, hash, m.cfg.TreeID, root.RootHash)}
	}
	return nil
}

// append appends leaves, those of Trillian's tree from index from on, to
// the log, in order, and waits until it published them.
func (m *Mirror) append(ctx context.Context, from uint64, leaves []*tpb.LogLeaf) error {
	futures := make([]*log.Future, len(leaves))
	for i, leaf := range leaves {
		idx := from + uint64(i)
		if leaf.LeafIndex != int64(idx) {
			return fmt.Errorf("the Trillian server returned leaf %d where %d was asked for", leaf.LeafIndex, idx)
		}
		hash := m.hasher.HashLeaf(leaf.LeafValue)
		if !bytes.Equal(leaf.MerkleLeafHash, hash) {
			return &stopError{fmt.Errorf("leaf %d of the Trillian tree has hash %x, its value hashes to %x", idx, leaf.MerkleLeafHash, hash)}
		}
		// What the log's front ends admitted; anything else in the tree
		// was put there by something else, and the log stops there
		// rather than publish it.
		terms, err := m.check(leaf, hash)
		if err != nil {
			return &stopError{fmt.Errorf("entry %d of Trillian's tree %d is not one the log takes: %w", idx, m.cfg.TreeID, err)}
		}
		futures[i] = m.cfg.Log.SubmitWithTerms(ctx, leaf.LeafValue, terms)
	}
	for i, f := range futures {
		idx := from + uint64(i)
		r, err := f.Wait(ctx)
		if err != nil {
			return fmt.Errorf("couldn't append entry %d to the mirror: %w", idx, err)
		}
		if r.Index != idx {
			return &stopError{fmt.Errorf("entry %d of Trillian's tree %d is entry %d again: the log holds each entry once", idx, m.cfg.TreeID, r.Index)}
		}
	}
	return nil
}

// How the mirror checked an entry (the label of candor_log_trillian_mirrored_entries_total).
const (
	checkAdmitted = "admitted"
	checkTagged   = "tagged"
	checkFull     = "full"
)

// check checks that leaf, of leaf hash h, is an entry the log takes, and
// returns its search terms. An entry this front end admitted (the same
// bytes: the same leaf hash) is not checked again; one with another front
// end's admission tag is read without checking its signatures; anything
// else is checked in full, as a submission is.
func (m *Mirror) check(leaf *tpb.LogLeaf, h []byte) ([]api.SearchTerm, error) {
	if terms, ok := m.admittedTerms(h); ok {
		m.metrics.checked.WithLabelValues(checkAdmitted).Inc()
		return terms, nil
	}
	if m.cfg.AdmissionKey != nil && hmac.Equal(leaf.ExtraData, admissionTag(m.cfg.AdmissionKey, h)) {
		terms, err := api.StoredEntryTerms(leaf.LeafValue)
		if err == nil {
			m.metrics.checked.WithLabelValues(checkTagged).Inc()
		}
		return terms, err
	}
	st, err := api.ParseEntry(leaf.LeafValue)
	if err != nil {
		return nil, err
	}
	m.metrics.checked.WithLabelValues(checkFull).Inc()
	return api.SearchTerms(st), nil
}

// AdmissionKey derives from the log's signed-note private key the key
// its front ends on Trillian tag the entries they admit with
// (MirrorConfig.AdmissionKey). Whoever has it could as well sign the
// log's checkpoints.
func AdmissionKey(privateKey string) []byte {
	mac := hmac.New(sha256.New, []byte(privateKey))
	mac.Write([]byte("candor: the key of the admission tags of the log's front ends on Trillian"))
	return mac.Sum(nil)
}

// admissionTag is the tag, under key, of the entry of leaf hash h: what a
// front end puts in the leaf's ExtraData when it queues an entry it
// admitted.
func admissionTag(key, h []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(h)
	return mac.Sum(nil)
}

// admittedTerms returns the search terms of the entry of leaf hash h if
// this front end admitted it and waits for it.
func (m *Mirror) admittedTerms(h []byte) ([]api.SearchTerm, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.admitted[[32]byte(h)]
	if !ok {
		return nil, false
	}
	return a.terms, true
}

// admit records an entry this front end admitted, with its search terms,
// until the returned function is called.
func (m *Mirror) admit(h []byte, terms []api.SearchTerm) func() {
	key := [32]byte(h)
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.admitted[key]
	if !ok {
		a = &admission{terms: terms}
		m.admitted[key] = a
	}
	a.n++
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if a.n--; a.n == 0 {
			delete(m.admitted, key)
		}
	}
}

// signal wakes the submissions waiting for the mirror.
func (m *Mirror) signal() {
	m.mu.Lock()
	close(m.progress)
	m.progress = make(chan struct{})
	m.mu.Unlock()
}

// AddWithTerms implements log.Adder: it queues the entry in Trillian and
// waits until the log has committed it. The receipt is a duplicate's (200)
// only if the log had the entry before; an entry Trillian had
// queued but not sequenced gets the reply of a new one (201), like the
// same entry sent to two front ends at once. entry must be admitted (the
// log's handler checked it), and terms its search terms: the mirror takes
// them when it finds entry in Trillian's tree, rather than check it again.
func (m *Mirror) AddWithTerms(ctx context.Context, entry []byte, terms []api.SearchTerm) (log.Receipt, error) {
	if err := m.stopped(); err != nil {
		return log.Receipt{}, err
	}
	leafHash := m.hasher.HashLeaf(entry)
	// Already in the log: a duplicate, as the embedded log answers it.
	if r, ok, err := m.committed(ctx, leafHash); err != nil || ok {
		r.Duplicate = ok
		return r, err
	}
	// A front end whose disk cannot take its mirror's next entries
	// queues none: it could not answer for them.
	if err := m.cfg.Log.SpaceError(); err != nil {
		return log.Receipt{}, err
	}
	defer m.admit(leafHash, terms)()
	leaf := &tpb.LogLeaf{LeafValue: entry, LeafIdentityHash: leafHash}
	if m.cfg.AdmissionKey != nil {
		leaf.ExtraData = admissionTag(m.cfg.AdmissionKey, leafHash)
	}
	_, err := m.cfg.Client.QueueLeaf(ctx, &tpb.QueueLeafRequest{LogId: m.cfg.TreeID, Leaf: leaf})
	if err != nil {
		if status.Code(err) == codes.ResourceExhausted {
			return log.Receipt{}, fmt.Errorf("%w: Trillian: %v", log.ErrOverloaded, err)
		}
		return log.Receipt{}, fmt.Errorf("%w: couldn't queue the entry in Trillian: %v", log.ErrUnavailable, err)
	}
	// Trillian may have had it queued (a submission cut short, or sent
	// to another front end at once): it was not in the log, and the
	// reply is the log's first for it, as if this submission added it.
	var r log.Receipt
	err = m.wait(ctx, func() (bool, error) {
		var ok bool
		var err error
		r, ok, err = m.committed(ctx, leafHash)
		return ok, err
	}, func() error {
		return fmt.Errorf("%w: Trillian queued the entry but the log has not published it within %s; submit it again for its proof", log.ErrUnavailable, m.cfg.AddWait)
	})
	return r, err
}

// Sync returns once the log has committed at least the tree Trillian had
// when it was called and, with a Publisher, publishes the checkpoint of
// the shared record if it is newer than the log's. It is called before
// the log's /checkpoint is served, and costs a read of Trillian's latest
// root and one of the record: a client reading checkpoints through several
// front ends never gets one older than a checkpoint it got before.
func (m *Mirror) Sync(ctx context.Context) error {
	if err := m.stopped(); err != nil {
		return err
	}
	root, err := LatestRoot(ctx, m.cfg.Client, m.cfg.TreeID)
	if err != nil {
		return fmt.Errorf("%w: %v", log.ErrUnavailable, err)
	}
	if err := m.waitSize(ctx, root.TreeSize); err != nil {
		return err
	}
	if m.cfg.Publisher != nil {
		return m.cfg.Publisher.Sync(ctx)
	}
	return nil
}

// waitSize waits until the log has committed a tree of at least size
// entries, or AddWait passed.
func (m *Mirror) waitSize(ctx context.Context, size uint64) error {
	return m.wait(ctx, func() (bool, error) {
		_, n := m.cfg.Log.CommittedCheckpoint()
		return n >= size, nil
	}, func() error {
		return fmt.Errorf("%w: the log has not caught up with its Trillian tree of %d entries within %s", log.ErrUnavailable, size, m.cfg.AddWait)
	})
}

// wait waits until done reports true, checking after every round of the
// mirror, which asks Trillian more often while someone waits. It fails
// with done's error, the last round's, the mirror's if it stopped, or
// late's after AddWait.
func (m *Mirror) wait(ctx context.Context, done func() (bool, error), late func() error) error {
	if ok, err := done(); ok || err != nil {
		return err
	}
	// The first to wait wakes a mirror that asks Trillian only every
	// PollInterval; while others wait it asks at the signer's pace.
	m.mu.Lock()
	m.waiting++
	first := m.waiting == 1
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.waiting--
		m.mu.Unlock()
	}()
	if first {
		select {
		case m.poke <- struct{}{}:
		default:
		}
	}
	deadline := time.NewTimer(m.cfg.AddWait)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		progress := m.progress
		m.mu.Unlock()
		if ok, err := done(); ok || err != nil {
			return err
		}
		if err := m.stopped(); err != nil {
			return err
		}
		select {
		case <-progress:
			if err := m.lastRoundError(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return late()
		}
	}
}

// committed returns the receipt of the entry with the leaf hash if the log
// has committed it (with a witness policy, the log's handler then waits
// for a cosigned checkpoint, as for the embedded log).
func (m *Mirror) committed(ctx context.Context, leafHash []byte) (log.Receipt, bool, error) {
	r, err := m.cfg.Log.Committed(ctx, leafHash)
	switch {
	case errors.Is(err, log.ErrNotFound):
		return log.Receipt{}, false, nil
	case err != nil:
		return log.Receipt{}, false, err
	}
	return r, true, nil
}

// Ready returns nil while the mirror follows Trillian's tree, else why it
// stopped (log.HandlerOptions.Adder: /readyz fails).
func (m *Mirror) Ready() error { return m.stopped() }

// lastRoundError returns the error of the mirror's last round, for a
// waiting submission, or nil. A round that stopped the mirror is stopped's.
func (m *Mirror) lastRoundError() error {
	if err := m.stopped(); err != nil {
		return err
	}
	m.mu.Lock()
	err := m.roundErr
	m.mu.Unlock()
	switch {
	case err == nil, errors.Is(err, log.ErrNoSpace):
		return err
	}
	return fmt.Errorf("%w: the log couldn't follow its Trillian tree (it tries again; the entry is queued there): %v", log.ErrUnavailable, err)
}

// stopped returns why the mirror stopped following, as an error for a
// submission, or nil.
func (m *Mirror) stopped() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != nil {
		return fmt.Errorf("%w: the log stopped following its Trillian tree: %v", log.ErrUnavailable, m.failed)
	}
	return nil
}
