// Package witnessing gets a log's checkpoints cosigned by the witnesses of
// a c2sp.org/tlog-policy, over the c2sp.org/tlog-witness protocol, and hands
// back to the log (log.WitnessedLog.Publish) only the checkpoints whose
// cosignatures satisfy the policy's quorum. A Collector is the log's
// log.Witnessing.
//
// The Collector asks every witness of the policy that has a URL, each from
// its own goroutine, and works in rounds. A round's checkpoint is the newest
// committed one when the round starts. Each witness is sent it with a
// consistency proof from the size that witness last cosigned (zero at
// first: a 409 answer tells the witness's size, and the request is proven
// again from it). Once the cosignatures on the round's checkpoint satisfy
// the quorum, it is published and the next round starts with the newest
// committed checkpoint. So:
//
//   - checkpoints are coalesced: a witness gets at most one request per
//     round, however fast the log commits, and all witnesses are asked
//     about the same checkpoint, so their cosignatures add up;
//   - a witness that was down, slow or reset catches up with one request
//     proven from the size it has; one that fails is retried with
//     exponential backoff, and the round waits for the quorum; a round
//     without a quorum after twice the request timeout starts again with
//     the newest committed checkpoint, so that a witness that comes back
//     is asked about a recent one;
//   - a cosignature that arrives after its round was published is added to
//     the published checkpoint.
//
// Only the protocol of the specification is used, so any tlog-witness
// witness works. witnessing_test.go runs the log engine on pebble with
// Candor witnesses over HTTP, and with a minimal witness written from the
// specification alone.
package witnessing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/atomicfile"
	"github.com/candorlog/candor/internal/noredirect"
	"github.com/candorlog/candor/log"
)

// maxResponseBody bounds a witness's reply: a few cosignature lines.
const maxResponseBody = 64 << 10

// maxConflicts is how many 409 answers in a row one push accepts before it
// counts as a failure and backs off.
const maxConflicts = 3

// minBackoff is the first delay before retrying a witness that failed.
const minBackoff = 100 * time.Millisecond

// caughtUpAfter is how long entries must have waited for a cosigned
// checkpoint for its publication to be logged at info level.
const caughtUpAfter = 5 * time.Second

// The results counted in candor_log_witness_requests_total.
const (
	resultCosigned = "cosigned" // 200 with a valid cosignature
	resultConflict = "conflict" // 409: proven again from the witness's size
	resultRefused  = "refused"  // 422, 409 at the same size or beyond the log's tree: the witness refuses the checkpoint
	resultInvalid  = "invalid"  // a reply that breaks the protocol, or a cosignature that does not verify
	resultTimeout  = "timeout"  // no reply within Config.Timeout
	resultError    = "error"    // no connection, or any other status
)

// Config configures a Collector.
type Config struct {
	// Policy names the witnesses, their cosignature/v1 keys and their
	// submission URLs, and the quorum. Required. Its quorum must not be
	// "none", and the witnesses that have a URL must be able to satisfy
	// it. If it lists logs, the log must be one of them.
	Policy *api.Policy
	// Verifier is the log's signed-note verifier; its name is the origin.
	// Required.
	Verifier note.Verifier
	// Client sends the add-checkpoint requests. Default: a new
	// http.Client. The Collector uses a copy that follows no redirects:
	// a 3xx reply is an error.
	Client *http.Client
	// Timeout bounds each add-checkpoint request. Default: 10s.
	Timeout time.Duration
	// MaxBackoff is the longest wait before retrying a witness that failed;
	// the wait doubles from 100ms up to it. Default: 10s.
	MaxBackoff time.Duration
	// StateFile, if set, keeps the latest published checkpoint (a cache:
	// replaced atomically after each publication, checked again against
	// the policy and the log's tree when read), so that a restarted log
	// publishes it again before the witnesses answer. Optional.
	StateFile string
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Optional.
	Registerer prometheus.Registerer
	// ReadyWait is how long the newest commit may wait for a published
	// cosigned checkpoint before Ready fails (status.go). Default: 5s.
	ReadyWait time.Duration
	// SharedTree says the log is one of several front ends of one tree
	// (storage/trillian), each pushing its own checkpoints: a witness
	// that cosigned a larger tree than this one committed is then
	// expected (another front end's), logged at info rather than as an
	// error, and asked again as the front end catches up.
	SharedTree bool
}

// Collector is a log.Witnessing for a tlog-policy. Its Run may be called
// once.
type Collector struct {
	policy     *api.Policy
	origin     string
	verifiers  note.Verifiers // the log's and the witnesses'
	witnesses  []*witness
	hc         *http.Client
	timeout    time.Duration
	maxBackoff time.Duration
	stateFile  string
	logger     *slog.Logger

	requests     *prometheus.CounterVec
	witnessSizes *prometheus.GaugeVec

	log log.WitnessedLog // set by Run

	mu         sync.Mutex
	latest     *checkpoint   // the newest committed checkpoint
	round      *round        // the checkpoint being cosigned
	published  *round        // the latest round published, or nil
	pubSize    int64         // size of the published checkpoint, -1 if none
	changed    chan struct{} // closed when round changes
	lagSince   time.Time     // first commit not in the published checkpoint; zero if none
	readyWait  time.Duration
	sharedTree bool // Config.SharedTree
}

// witness is a witness of the policy that has a URL. size is owned by the
// witness's goroutine.
type witness struct {
	name     string // in the policy
	url      string // of add-checkpoint
	verifier *api.CosignatureVerifier
	size     uint64 // the size it last cosigned, as far as the log knows
	health   health // guarded by the Collector's mu
	// claimed is the size beyond the log's tree the witness claimed last,
	// logged once until it claims another; 0 once it cosigns again.
	claimed uint64
}

type checkpoint struct {
	signed []byte // signed by the log only
	text   []byte
	size   uint64
	// supersededAt is when a newer checkpoint was committed; zero while
	// this one is the newest.
	supersededAt time.Time
}

type round struct {
	cp      *checkpoint
	cosigs  []*note.Signature // by witness index
	done    bool              // published
	adopted bool              // another front end's larger checkpoint was published: not pushed more
	started time.Time
}

// New returns a Collector for cfg.
func New(cfg Config) (*Collector, error) {
	if cfg.Policy == nil || cfg.Verifier == nil {
		return nil, errors.New("witnessing: Policy and Verifier are required")
	}
	if cfg.Policy.Quorum() == "none" {
		return nil, errors.New("witnessing: the policy's quorum is none: it requires no cosignatures to collect")
	}
	if logs := cfg.Policy.Logs(); len(logs) > 0 {
		listed := false
		for _, l := range logs {
			listed = listed || l.Verifier.Name() == cfg.Verifier.Name() && l.Verifier.KeyHash() == cfg.Verifier.KeyHash()
		}
		if !listed {
			return nil, fmt.Errorf("witnessing: the policy lists logs, but not this one (%s)", cfg.Verifier.Name())
		}
	}
	if !satisfiable(cfg.Policy) {
		return nil, fmt.Errorf("witnessing: the witnesses with a URL can't satisfy the policy's quorum %q", cfg.Policy.Quorum())
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Collector{
		policy:     cfg.Policy,
		origin:     cfg.Verifier.Name(),
		hc:         noredirect.Client(cfg.Client),
		timeout:    cfg.Timeout,
		maxBackoff: max(cfg.MaxBackoff, minBackoff),
		stateFile:  cfg.StateFile,
		logger:     cfg.Logger,
		pubSize:    -1,
		changed:    make(chan struct{}),
		readyWait:  cfg.ReadyWait,
		sharedTree: cfg.SharedTree,
	}
	if c.readyWait <= 0 {
		c.readyWait = 5 * time.Second
	}
	vs := []note.Verifier{cfg.Verifier}
	for _, w := range cfg.Policy.Witnesses() {
		vs = append(vs, w.Verifier)
		if w.URL == "" {
			continue
		}
		c.witnesses = append(c.witnesses, &witness{
			name:     w.Name,
			url:      strings.TrimSuffix(w.URL, "/") + "/add-checkpoint",
			verifier: w.Verifier,
		})
	}
	c.verifiers = note.VerifierList(vs...)
	c.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "candor_log_witness_requests_total",
		Help: "add-checkpoint requests to witnesses, by witness (its name in the policy) and result: cosigned, conflict (409, proven again), refused (422), invalid, timeout or error.",
	}, []string{"witness", "result"})
	c.witnessSizes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "candor_log_witness_cosigned_size",
		Help: "Size of the latest checkpoint each witness cosigned, as far as the log knows.",
	}, []string{"witness"})
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_log_witness_lag_seconds",
		Help: "How long the oldest committed entry not in the published (cosigned) checkpoint has waited; 0 when every committed entry is published.",
	}, c.lag)
	for _, w := range c.witnesses {
		for _, r := range []string{resultCosigned, resultConflict, resultRefused, resultInvalid, resultTimeout, resultError} {
			c.requests.WithLabelValues(w.name, r)
		}
		c.witnessSizes.WithLabelValues(w.name)
	}
	if cfg.Registerer != nil {
		if err := errors.Join(cfg.Registerer.Register(c.requests), cfg.Registerer.Register(c.witnessSizes), cfg.Registerer.Register(lag)); err != nil {
			return nil, fmt.Errorf("witnessing: couldn't register the metrics: %w", err)
		}
	}
	return c, nil
}

// satisfiable reports whether the policy's witnesses that have a URL can
// satisfy its quorum. Groups only name witnesses and groups defined before
// them, so one pass in order evaluates them.
func satisfiable(p *api.Policy) bool {
	ok := make(map[string]bool)
	for _, w := range p.Witnesses() {
		ok[w.Name] = w.URL != ""
	}
	for _, g := range p.Groups() {
		n := 0
		for _, m := range g.Members {
			if ok[m] {
				n++
			}
		}
		ok[g.Name] = n >= g.K
	}
	return ok[p.Quorum()]
}

func (c *Collector) lag() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lagSince.IsZero() {
		return 0
	}
	return time.Since(c.lagSince).Seconds()
}

// Run collects cosignatures on l's checkpoints until ctx is done.
func (c *Collector) Run(ctx context.Context, l log.WitnessedLog) {
	c.log = l
	c.restore(ctx)
	var wg sync.WaitGroup
	for i := range c.witnesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx, i)
		}()
	}
	tick := time.NewTicker(max(c.timeout/2, 50*time.Millisecond))
	defer tick.Stop()
	for {
		signed, size, newer := l.Committed()
		c.committed(signed, size)
		select {
		case <-newer:
		case <-tick.C:
			c.refresh()
		case <-ctx.Done():
			wg.Wait()
			return
		}
	}
}

// refresh starts a new round with the newest committed checkpoint if the
// current one got no quorum within twice the request timeout: every
// witness that was up has answered by then, so the missing cosignatures
// are from witnesses that failed, and when they come back they should be
// asked about the newest checkpoint, not an old one.
func (c *Collector) refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.round
	if r == nil || r.done || r.cp == c.latest || time.Since(r.started) < 2*c.timeout {
		return
	}
	c.logger.Warn("no witness quorum: asking again with the newest checkpoint",
		"size", r.cp.size, "cosignatures", countCosigs(r), "waited", time.Since(r.started).Round(time.Millisecond), "newest_size", c.latest.size)
	c.startRound()
}

// committed records the newest committed checkpoint, and starts a round
// with it unless one is waiting for its quorum.
func (c *Collector) committed(signed []byte, size uint64) {
	text, err := api.CheckpointBody(signed)
	if err != nil {
		c.logger.Error("the log's committed checkpoint is malformed", "error", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latest != nil && bytes.Equal(c.latest.text, text) {
		return
	}
	now := time.Now()
	if c.latest != nil {
		c.latest.supersededAt = now
	}
	c.latest = &checkpoint{signed: signed, text: text, size: size}
	if c.lagSince.IsZero() && int64(size) > c.pubSize {
		c.lagSince = now
	}
	if (c.round == nil || c.round.done) && !(c.sharedTree && int64(size) <= c.pubSize) {
		c.startRound()
	}
}

// Adopted says the log published a cosigned checkpoint of size that
// another front end of its tree got cosigned (Config.SharedTree): a round
// of a checkpoint no larger ends without asking the witnesses more, and
// no round starts for one.
func (c *Collector) Adopted(size uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int64(size) <= c.pubSize {
		return
	}
	c.pubSize = int64(size)
	if c.latest == nil || c.latest.size <= size {
		c.lagSince = time.Time{}
	}
	if r := c.round; r != nil && r.cp.size <= size {
		r.done, r.adopted = true, true
		if c.latest != nil && c.latest.size > size {
			c.startRound()
		}
	}
}

// startRound starts a round with the newest committed checkpoint. The
// caller holds mu.
func (c *Collector) startRound() {
	c.round = &round{cp: c.latest, cosigs: make([]*note.Signature, len(c.witnesses)), started: time.Now()}
	close(c.changed)
	c.changed = make(chan struct{})
}

// work pushes each round's checkpoint to witness i.
func (c *Collector) work(ctx context.Context, i int) {
	w := c.witnesses[i]
	var last *round // the last round the witness answered
	failures := 0
	for {
		c.mu.Lock()
		r, changed := c.round, c.changed
		skip := r != nil && r.adopted
		c.mu.Unlock()
		if r == nil || r == last || skip {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		sig, err := c.push(ctx, w, r.cp)
		if ctx.Err() != nil {
			return
		}
		var ahead *aheadError
		if errors.As(err, &ahead) && c.witnessAhead(w, r, ahead) {
			last = r
			continue
		}
		c.recordHealth(w, err)
		if err != nil {
			failures++
			t := time.NewTimer(backoff(failures, c.maxBackoff))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		failures = 0
		last = r
		c.cosigned(ctx, i, r, sig)
	}
}

// backoff returns the wait after the nth failure in a row: 100ms doubling
// up to limit, with jitter.
func backoff(n int, limit time.Duration) time.Duration {
	d := minBackoff << min(n-1, 20)
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// aheadError means the witness cosigned a checkpoint larger than the one
// the log asks it to cosign, so it can't cosign that one. answered is true
// if the witness said so in a 409 reply, false if the log knew it.
type aheadError struct {
	size     uint64
	answered bool
}

func (e *aheadError) Error() string {
	return fmt.Sprintf("the witness cosigned size %d, larger than the checkpoint", e.size)
}

// witnessAhead handles a witness that cosigned size, beyond the round's
// checkpoint. If the log committed that size, the witness's size is size
// and a new round starts with the newest checkpoint, which the witness can
// cosign, and witnessAhead reports true. If not, the claim is a refusal of
// this round only, counted and logged (once per size claimed), and it
// reports false: the witness's size stays the one the log knew, so the
// next request is proven from it and the witness's 409 then tells the
// size it claims at that time. A witness that lied once, or that really
// follows another tree and later resets, is never dropped.
func (c *Collector) witnessAhead(w *witness, r *round, ahead *aheadError) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	size := ahead.size
	if size > c.latest.size {
		c.requests.WithLabelValues(w.name, resultRefused).Inc()
		msg := "a witness says it cosigned a checkpoint larger than the log's tree: a refusal, asking it again later (does it follow another log of this origin?)"
		attrs := []any{"witness", w.name, "witness_size", size, "committed_size", c.latest.size, "known_size", w.size}
		switch {
		case c.sharedTree:
			c.logger.Info("a witness cosigned a larger tree than this front end has yet (another front end's): asking it again as this one catches up", attrs...)
		case size != w.claimed:
			c.logger.Error(msg, attrs...)
		default:
			c.logger.Debug(msg, attrs...)
		}
		w.claimed = size
		return false
	}
	if ahead.answered {
		c.requests.WithLabelValues(w.name, resultConflict).Inc()
		w.size = size
		c.witnessSizes.WithLabelValues(w.name).Set(float64(size))
	}
	if c.round == r && c.latest != r.cp {
		c.logger.Info("a witness is ahead of the round: starting a new round", "witness", w.name, "witness_size", size, "round_size", r.cp.size)
		c.startRound()
	}
	return true
}

// push asks w to cosign cp, proving it from the size w cosigned last, and
// returns w's verified cosignature.
func (c *Collector) push(ctx context.Context, w *witness, cp *checkpoint) (note.Signature, error) {
	for conflicts := 0; ; conflicts++ {
		old := w.size
		if old > cp.size {
			return note.Signature{}, &aheadError{size: old}
		}
		var hashes [][]byte
		if old > 0 && old < cp.size {
			var err error
			if hashes, err = c.log.ConsistencyProof(ctx, old, cp.size); err != nil {
				c.logger.Error("couldn't prove consistency for a witness", "witness", w.name, "old", old, "size", cp.size, "error", err)
				return note.Signature{}, err
			}
		}
		body := api.AddCheckpointRequest{OldSize: old, Proof: hashes, Checkpoint: cp.signed}.Marshal()
		resp, reply, err := c.post(ctx, w, body)
		if err != nil {
			result := resultError
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				result = resultTimeout
			}
			c.requests.WithLabelValues(w.name, result).Inc()
			if ctx.Err() == nil {
				c.logger.Warn("a witness did not answer", "witness", w.name, "size", cp.size, "result", result, "error", err)
			}
			return note.Signature{}, err
		}
		if err := noredirect.Check(resp); err != nil {
			c.requests.WithLabelValues(w.name, resultError).Inc()
			c.logger.Warn("a witness answered add-checkpoint with a redirect, which is not followed", "witness", w.name, "size", cp.size, "error", err)
			return note.Signature{}, fmt.Errorf("witness %s answered add-checkpoint with %w", w.name, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			sig, err := c.checkCosignature(w, cp, reply)
			if err != nil {
				c.requests.WithLabelValues(w.name, resultInvalid).Inc()
				c.logger.Error("a witness answered add-checkpoint without a valid cosignature", "witness", w.name, "size", cp.size, "error", err)
				return note.Signature{}, err
			}
			c.requests.WithLabelValues(w.name, resultCosigned).Inc()
			w.size, w.claimed = cp.size, 0
			c.witnessSizes.WithLabelValues(w.name).Set(float64(cp.size))
			return sig, nil
		case http.StatusConflict:
			size, err := api.ParseTlogSize(reply)
			if ctype := resp.Header.Get("Content-Type"); err == nil && ctype != api.TlogSizeContentType {
				err = fmt.Errorf("409 with Content-Type %q, want %s", ctype, api.TlogSizeContentType)
			}
			if err != nil {
				c.requests.WithLabelValues(w.name, resultInvalid).Inc()
				c.logger.Error("a witness answered 409 without its size", "witness", w.name, "error", err)
				return note.Signature{}, err
			}
			if size > cp.size {
				// Ahead of the checkpoint: witnessAhead decides whether
				// the log's tree has that size, before the witness's size
				// is believed.
				return note.Signature{}, &aheadError{size: size, answered: true}
			}
			if size == old {
				// Its size is the one sent: at the same size, the roots
				// differ. The witness holds another tree for this log.
				c.requests.WithLabelValues(w.name, resultRefused).Inc()
				c.logger.Error("WITNESS REFUSED the log's checkpoint: it cosigned another tree of the same size",
					"witness", w.name, "size", cp.size, "checkpoint", string(cp.signed))
				return note.Signature{}, fmt.Errorf("witness %s refused checkpoint of size %d: another tree at its size %d", w.name, cp.size, size)
			}
			c.requests.WithLabelValues(w.name, resultConflict).Inc()
			c.logger.Debug("a witness has another size: proving again", "witness", w.name, "sent_old", old, "witness_size", size)
			w.size = size
			c.witnessSizes.WithLabelValues(w.name).Set(float64(size))
			if conflicts+1 >= maxConflicts {
				return note.Signature{}, fmt.Errorf("witness %s answered 409 %d times in a row", w.name, maxConflicts)
			}
		case http.StatusUnprocessableEntity:
			c.requests.WithLabelValues(w.name, resultRefused).Inc()
			c.logger.Error("WITNESS REFUSED the log's checkpoint as inconsistent with what it cosigned (422)",
				"witness", w.name, "old", old, "size", cp.size, "reply", printable(reply), "checkpoint", string(cp.signed))
			return note.Signature{}, fmt.Errorf("witness %s refused checkpoint of size %d from old size %d: 422 %s", w.name, cp.size, old, printable(reply))
		default:
			c.requests.WithLabelValues(w.name, resultError).Inc()
			c.logger.Warn("a witness answered add-checkpoint with an error", "witness", w.name, "size", cp.size, "status", resp.StatusCode, "reply", printable(reply))
			return note.Signature{}, fmt.Errorf("witness %s answered %d: %s", w.name, resp.StatusCode, printable(reply))
		}
	}
}

// printable returns the start of a reply body, for logs.
func printable(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.ToValidUTF8(strings.TrimSpace(string(b)), "?")
}

// post sends an add-checkpoint request to w and returns its reply, whose
// body is closed, and the body's content.
func (c *Collector) post(ctx context.Context, w *witness, body []byte) (*http.Response, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read the reply: %w", err)
	}
	if len(b) > maxResponseBody {
		return nil, nil, fmt.Errorf("reply larger than %d bytes", maxResponseBody)
	}
	return resp, b, nil
}

// checkCosignature finds w's cosignature of cp in the lines of a 200 reply
// and verifies it. Lines by other keys are ignored, as the specification
// says.
func (c *Collector) checkCosignature(w *witness, cp *checkpoint, body []byte) (note.Signature, error) {
	sigs, err := api.ParseCosignatureLines(body)
	if err != nil {
		return note.Signature{}, err
	}
	for _, s := range sigs {
		if s.Name != w.verifier.Name() || s.Hash != w.verifier.KeyHash() {
			continue
		}
		lines := api.MarshalCosignatureLines([]note.Signature{s})
		signed, err := api.AppendSignatures(cp.signed, lines)
		if err != nil {
			return note.Signature{}, err
		}
		n, err := note.Open(signed, note.VerifierList(w.verifier))
		if err != nil {
			return note.Signature{}, fmt.Errorf("the cosignature does not verify: %w", err)
		}
		if len(n.Sigs) != 1 {
			return note.Signature{}, errors.New("the cosignature does not verify")
		}
		return n.Sigs[0], nil
	}
	return note.Signature{}, fmt.Errorf("no cosignature by %s+%08x in the reply", w.verifier.Name(), w.verifier.KeyHash())
}

// cosigned adds witness i's cosignature on round r, and publishes r if it
// now satisfies the quorum (or carries one more cosignature once
// published).
func (c *Collector) cosigned(ctx context.Context, i int, r *round, sig note.Signature) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r != c.round && r != c.published {
		return // an abandoned round
	}
	r.cosigs[i] = &sig
	signed, ok := c.quorum(r)
	if !ok {
		return
	}
	if err := c.log.Publish(ctx, signed); err != nil {
		c.logger.Error("the log refused a cosigned checkpoint", "size", r.cp.size, "error", err)
		return
	}
	switch {
	case r.done:
		c.logger.Debug("added a cosignature to the published checkpoint", "size", r.cp.size, "witness", c.witnesses[i].name)
	case !c.lagSince.IsZero() && time.Since(c.lagSince) > caughtUpAfter:
		c.logger.Info("published a cosigned checkpoint after a delay", "size", r.cp.size,
			"cosignatures", countCosigs(r), "waited", time.Since(c.lagSince).Round(time.Millisecond))
	default:
		c.logger.Debug("published a cosigned checkpoint", "size", r.cp.size, "cosignatures", countCosigs(r))
	}
	r.done = true
	c.published = r
	c.pubSize = int64(r.cp.size)
	c.lagSince = r.cp.supersededAt
	c.save(signed)
	if r == c.round && c.latest != r.cp {
		c.startRound()
	}
}

func countCosigs(r *round) int {
	n := 0
	for _, s := range r.cosigs {
		if s != nil {
			n++
		}
	}
	return n
}

// quorum returns r's checkpoint with its cosignatures, if they satisfy the
// policy.
func (c *Collector) quorum(r *round) ([]byte, bool) {
	var sigs []note.Signature
	for _, s := range r.cosigs {
		if s != nil {
			sigs = append(sigs, *s)
		}
	}
	signed, err := api.AppendSignatures(r.cp.signed, api.MarshalCosignatureLines(sigs))
	if err != nil {
		c.logger.Error("couldn't add cosignatures to the checkpoint", "error", err)
		return nil, false
	}
	if err := c.Check(signed); err != nil {
		if !errors.Is(err, api.ErrQuorumNotMet) {
			c.logger.Error("the cosigned checkpoint does not verify", "error", err)
		}
		return nil, false
	}
	return signed, true
}

// Check returns nil if signed is signed by the log and carries the
// cosignatures the policy asks for.
func (c *Collector) Check(signed []byte) error {
	n, err := note.Open(signed, c.verifiers)
	if err != nil {
		return err
	}
	logSigned := false
	for _, s := range n.Sigs {
		logSigned = logSigned || s.Name == c.origin
	}
	if !logSigned {
		return errors.New("the log's signature is missing")
	}
	return c.policy.CheckCosignatures(n)
}

// save writes signed to the state file, if any, durably and atomically.
func (c *Collector) save(signed []byte) {
	if c.stateFile == "" {
		return
	}
	if err := atomicfile.Replace(c.stateFile, signed, 0o600); err != nil {
		c.logger.Warn("couldn't save the cosigned checkpoint", "file", c.stateFile, "error", err)
	}
}

// restore publishes the checkpoint of the state file, if any, after
// checking it against the policy (and, in Publish, against the log).
func (c *Collector) restore(ctx context.Context) {
	if c.stateFile == "" {
		return
	}
	b, err := os.ReadFile(c.stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		err = c.Check(b)
	}
	if err == nil {
		err = c.log.Publish(ctx, b)
	}
	if err != nil {
		c.logger.Warn("ignoring the saved cosigned checkpoint", "file", c.stateFile, "error", err)
		return
	}
	size, err := checkpointSize(b)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.pubSize = int64(size)
	c.mu.Unlock()
	c.logger.Info("published the saved cosigned checkpoint", "size", size)
}

func checkpointSize(signed []byte) (uint64, error) {
	text, err := api.CheckpointBody(signed)
	if err != nil {
		return 0, err
	}
	cp, err := api.ParseCheckpoint(text)
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

var _ log.Witnessing = (*Collector)(nil)
