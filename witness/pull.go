package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/internal/noredirect"
)

// Pull mode: for a log that does not push its checkpoints to the witness
// (c2sp.org/tlog-witness add-checkpoint), a Puller polls the log's
// c2sp.org/tlog-tiles API, GET <url>/checkpoint and GET <url>/tile/..., and
// builds the consistency proof from the witness's cosigned size itself. It
// reads nothing else, so it follows any tlog-tiles log, not only Candor.
//
// A pulled checkpoint goes through AddCheckpoint, the very compare-and-swap
// path of a pushed one, with every check that implies.

const (
	// DefaultPullInterval is the time between two polls of a log when
	// Source.Interval is zero.
	DefaultPullInterval = 10 * time.Second
	// maxPullAttempts bounds the retries of a poll that races a pushed
	// checkpoint (a *ConflictError from AddCheckpoint).
	maxPullAttempts = 3
)

// PullResult is the outcome of one poll, and the result label of the
// candor_witness_pull_total metric.
type PullResult string

const (
	// PullCosigned: the witness cosigned and stored the log's checkpoint.
	PullCosigned PullResult = "cosigned"
	// PullUnchanged: the log serves the checkpoint the witness cosigned.
	PullUnchanged PullResult = "unchanged"
	// PullBehind: the log serves a checkpoint smaller than the one the
	// witness cosigned (say, a stale cache in front of the log). Nothing
	// is done.
	PullBehind PullResult = "behind"
	// PullUnverified: the log's /checkpoint is not a checkpoint of the
	// log signed by its key. It is ignored.
	PullUnverified PullResult = "unverified"
	// PullInconsistent: the log's checkpoint is not consistent with the
	// one the witness cosigned. It is refused: the log forked, or serves
	// tiles that do not prove its own checkpoint.
	PullInconsistent PullResult = "inconsistent"
	// PullRefused: the witness holds evidence that the log misbehaved,
	// and cosigns nothing more for it until an operator clears it.
	PullRefused PullResult = "refused"
	// PullAuditing: the witness audits the log (Log.Audit) and has not
	// checked every entry of the log's checkpoint yet; it goes on from
	// where it stopped at the next poll, without backing off.
	PullAuditing PullResult = "auditing"
	// PullError: the log could not be read (network, status, size, tiles
	// of the wrong length), or the witness failed.
	PullError PullResult = "error"
)

// Source is a log the witness pulls checkpoints from.
type Source struct {
	// Origin is the log's origin; it must be one of the Witness's logs.
	Origin string
	// URL is the base URL of the log's c2sp.org/tlog-tiles API: the
	// checkpoint is at URL + "/checkpoint". http or https.
	URL string
	// Interval is the time between two polls. Default: DefaultPullInterval.
	Interval time.Duration
}

// PullerConfig configures NewPuller. Sources is required.
type PullerConfig struct {
	// Sources are the logs to poll, at most one per origin.
	Sources []Source
	// Client makes the requests. Default: an http.Client with a 30s
	// timeout per request. The Puller uses a copy that follows no
	// redirects: a 3xx reply is an error.
	Client *http.Client
	// Timeout bounds one poll: the checkpoint, the tiles and the
	// compare-and-swap. Default: 1 minute.
	Timeout time.Duration
	// MaxBackoff bounds the time between polls after failures, which
	// doubles from the source's Interval at each consecutive failure.
	// Default: 10 minutes, or the Interval if that is longer.
	MaxBackoff time.Duration
	// Logger receives structured logs. Default: the Witness's logger.
	Logger *slog.Logger
	// Registerer, if set, receives candor_witness_pull_total{origin,result}.
	Registerer prometheus.Registerer
}

// Puller polls logs and cosigns their new checkpoints. It is safe for
// concurrent use.
type Puller struct {
	w          *Witness
	sources    map[string]Source
	hc         *http.Client
	timeout    time.Duration
	maxBackoff time.Duration
	logger     *slog.Logger
	pulls      *prometheus.CounterVec
}

// NewPuller returns a Puller of w for the sources. It checks the sources
// but does not contact them: Run and Poll do.
func NewPuller(w *Witness, cfg PullerConfig) (*Puller, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = w.logger
	}
	p := &Puller{
		w:          w,
		sources:    make(map[string]Source),
		hc:         noredirect.Client(cfg.Client),
		timeout:    cfg.Timeout,
		maxBackoff: cfg.MaxBackoff,
		logger:     cfg.Logger,
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_pull_total",
			Help: "Polls of logs in pull mode, by origin and result (cosigned, unchanged, behind, unverified, inconsistent, refused, auditing, error).",
		}, []string{"origin", "result"}),
	}
	for _, s := range cfg.Sources {
		if _, ok := w.logs[s.Origin]; !ok {
			return nil, fmt.Errorf("witness: pull source %q is not a log the witness follows", s.Origin)
		}
		if _, ok := p.sources[s.Origin]; ok {
			return nil, fmt.Errorf("witness: pull source %q is configured twice", s.Origin)
		}
		base, err := CheckPullURL(s.URL)
		if err != nil {
			return nil, fmt.Errorf("witness: pull source %q: %w", s.Origin, err)
		}
		s.URL = base
		for _, r := range []PullResult{PullCosigned, PullUnchanged, PullBehind, PullUnverified, PullInconsistent, PullRefused, PullAuditing, PullError} {
			p.pulls.WithLabelValues(s.Origin, string(r)) // present from the start, at zero
		}
		if s.Interval < 0 {
			return nil, fmt.Errorf("witness: pull source %q: negative interval", s.Origin)
		}
		if s.Interval == 0 {
			s.Interval = DefaultPullInterval
		}
		p.sources[s.Origin] = s
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(p.pulls); err != nil {
			return nil, fmt.Errorf("couldn't register the pull metrics: %w", err)
		}
	}
	return p, nil
}

// CheckPullURL checks the base URL of a log's tile API, an absolute http
// or https URL with a host and no query, fragment or user information,
// and returns it without its trailing slashes.
func CheckPullURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("url %q: the scheme must be http or https", s)
	case u.Host == "":
		return "", fmt.Errorf("url %q: no host", s)
	case u.User != nil:
		return "", fmt.Errorf("url %q: user information is not supported", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("url %q: must have no query or fragment", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// Run polls every source until ctx is done, each at its interval, backing
// off after failures, and returns when every poll has stopped.
func (p *Puller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range p.sources {
		wg.Go(func() { p.run(ctx, s) })
	}
	wg.Wait()
}

func (p *Puller) run(ctx context.Context, s Source) {
	p.logger.Info("pulling checkpoints", "origin", s.Origin, "url", s.URL, "interval", s.Interval)
	failures := 0
	for {
		res, err := p.Poll(ctx, s.Origin)
		if ctx.Err() != nil {
			return
		}
		delay := s.Interval
		if err != nil && res != PullAuditing {
			failures++
			delay = backoff(s.Interval, p.maxBackoff, failures)
			p.logger.Debug("next poll", "origin", s.Origin, "result", res, "failures", failures, "in", delay)
		} else {
			failures = 0
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff returns the delay before the next poll after failures (at least
// 1) consecutive failed polls: interval doubled for each failure, at most
// max (or interval if larger), with up to 10% of jitter so that witnesses
// that failed together do not retry together.
func backoff(interval, limit time.Duration, failures int) time.Duration {
	limit = max(limit, interval)
	d := interval
	for range min(failures, 62) {
		if d >= limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	return d + rand.N(d/10+1)
}

// Poll polls the log of origin once: it fetches its checkpoint, verifies
// it, and if it is larger than the one the witness cosigned, proves their
// consistency from the log's tiles and hands both to AddCheckpoint. It
// returns the result and, unless the result is PullCosigned, PullUnchanged
// or PullBehind, an error saying why. For an audited log, PullAuditing is
// progress: its error (wrapping ErrNotAudited) says how far the audit got.
//
// A checkpoint that is inconsistent with the cosigned one gives an error
// wrapping ErrInconsistent, and one not signed by the log's key an error
// wrapping ErrNotSigned (or ErrBadRequest if it is malformed).
func (p *Puller) Poll(ctx context.Context, origin string) (PullResult, error) {
	s, ok := p.sources[origin]
	if !ok {
		return PullError, fmt.Errorf("%w: %q is not a pull source", ErrUnknownLog, origin)
	}
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	res, err := p.poll(pctx, s)
	if err != nil && ctx.Err() != nil {
		// Shutting down: not a failure of the log.
		return res, err
	}
	p.pulls.WithLabelValues(origin, string(res)).Inc()
	switch res {
	case PullUnverified:
		p.logger.Warn("the log serves a checkpoint not signed by its key; ignored", "origin", origin, "url", s.URL, "error", err)
	case PullError:
		p.logger.Warn("couldn't pull a checkpoint", "origin", origin, "url", s.URL, "error", err)
	}
	return res, err
}

func (p *Puller) poll(ctx context.Context, s Source) (PullResult, error) {
	l := p.w.logs[s.Origin]
	signed, err := p.client(s).Checkpoint(ctx)
	if err != nil {
		return PullError, err
	}
	// Verify before anything else is fetched or compared; the checkpoint
	// is verified again by AddCheckpoint, like a pushed one.
	c, _, err := api.OpenCheckpoint(signed, l.Origin, l.Verifier)
	switch {
	case errors.Is(err, api.ErrInvalidCheckpoint):
		return PullUnverified, fmt.Errorf("%w: %w", ErrBadRequest, err)
	case err != nil:
		return PullUnverified, fmt.Errorf("%w: %w", ErrNotSigned, err)
	case c.Size > math.MaxInt64:
		return PullError, fmt.Errorf("checkpoint size %d is too large", c.Size)
	}
	for attempt := 1; ; attempt++ {
		stored, err := p.w.Checkpoint(ctx, s.Origin)
		if err != nil {
			return PullError, err
		}
		var old api.Checkpoint
		if stored != nil {
			if old, err = parseStored(stored); err != nil {
				return PullError, fmt.Errorf("couldn't parse the stored checkpoint of %q: %w", s.Origin, err)
			}
		}
		switch {
		case stored != nil && c.Size < old.Size:
			p.logger.Debug("the log serves an older checkpoint than the cosigned one", "origin", s.Origin, "size", c.Size, "cosigned_size", old.Size)
			return PullBehind, nil
		case stored != nil && c.Size == old.Size && c.Hash == old.Hash:
			return PullUnchanged, nil
		}
		var proof [][]byte
		if stored != nil && old.Size > 0 && c.Size > old.Size {
			if proof, err = p.prove(ctx, s, old.Size, c); err != nil {
				return PullError, err
			}
		}
		_, err = p.w.AddCheckpoint(ctx, api.AddCheckpointRequest{OldSize: old.Size, Proof: proof, Checkpoint: signed})
		var conflict *ConflictError
		switch {
		case err == nil:
			p.logger.Info("cosigned a pulled checkpoint", "origin", s.Origin, "old_size", old.Size, "size", c.Size)
			return PullCosigned, nil
		case errors.As(err, &conflict) && attempt < maxPullAttempts:
			// A pushed checkpoint moved the state since it was read.
			continue
		case errors.Is(err, ErrMisbehaved):
			return PullRefused, err
		case errors.Is(err, ErrNotAudited):
			p.logger.Info("auditing the log's entries before cosigning", "origin", s.Origin, "size", c.Size, "detail", err)
			return PullAuditing, err
		case errors.Is(err, ErrInconsistent):
			p.inconsistent(ctx, s, old, stored, signed, err)
			return PullInconsistent, err
		case errors.Is(err, ErrNotSigned), errors.Is(err, ErrBadRequest):
			return PullUnverified, err
		default:
			return PullError, err
		}
	}
}

// inconsistent logs, loudly, a checkpoint of the log that is not
// consistent with the cosigned one, and has the witness compare the two as
// it does gossiped ones: that reads the log's tiles once more and turns
// the fork into evidence that is stored and gossiped.
func (p *Puller) inconsistent(ctx context.Context, s Source, old api.Checkpoint, stored, signed []byte, err error) {
	// The checkpoints' texts, not their notes: the served one may carry
	// any number of other signature lines. The evidence has both.
	p.logger.Error("THE LOG SERVES A CHECKPOINT INCONSISTENT WITH THE ONE THE WITNESS COSIGNED; refused",
		"origin", s.Origin, "url", s.URL, "cosigned_size", old.Size, "error", err,
		"cosigned", checkpointText(stored), "served", checkpointText(signed))
	o, oerr := p.w.Observe(ctx, signed, false)
	if oerr != nil {
		p.logger.Error("couldn't compare the inconsistent checkpoint with the cosigned one", "origin", s.Origin, "error", oerr)
		return
	}
	p.logger.Info("compared the inconsistent checkpoint with the cosigned one", "origin", s.Origin, "result", o.Result, "detail", o.Detail)
}

// checkpointText returns the text of a signed checkpoint for a log line:
// its origin, size and root hash, without extension lines or signatures.
func checkpointText(signed []byte) string {
	text, err := api.CheckpointBody(signed)
	if err != nil {
		return "(unparseable)"
	}
	lines := strings.SplitN(string(text), "\n", 4)
	return strings.Join(lines[:min(3, len(lines))], " ")
}

// prove returns the consistency proof from old to c, built from the log's
// tiles. The tiles are authenticated against c's root by tlog: tiles that
// do not hash to it give an error. That is a broken log, not a proven
// fork, which only AddCheckpoint can tell.
func (p *Puller) prove(ctx context.Context, s Source, old uint64, c api.Checkpoint) ([][]byte, error) {
	tr := &tileReader{ctx: ctx, c: p.client(s)}
	hr := tlog.TileHashReader(tlog.Tree{N: int64(c.Size), Hash: c.Hash}, tr)
	pr, err := tlog.ProveTree(int64(c.Size), int64(old), hr)
	if err != nil {
		if tr.err != nil {
			return nil, tr.err // the fetch failed, not the hashes
		}
		return nil, fmt.Errorf("the log's tiles do not hash to its checkpoint of size %d: %w", c.Size, err)
	}
	out := make([][]byte, len(pr))
	for i := range pr {
		out[i] = pr[i][:]
	}
	return out, nil
}

// client returns the client of the log of s, with the Puller's HTTP
// client, which follows no redirects, and a checkpoint no larger than
// the witness takes in a request.
func (p *Puller) client(s Source) *logclient.Client {
	return logclient.New(s.URL, p.hc).WithCheckpointLimit(maxAddCheckpointBody)
}

// tileReader reads c2sp.org/tlog-tiles hash tiles for tlog.TileHashReader,
// which authenticates them. It keeps the first fetch error, so that a
// failed fetch is not mistaken for tiles that do not hash to the root, and
// every tile it read, which are evidence when they prove a fork. Pull mode
// and the gossip's consistency checks (network.go) share it.
type tileReader struct {
	ctx   context.Context
	c     *logclient.Client
	err   error
	tiles []api.EvidenceTile
}

var _ tlog.TileReader = (*tileReader)(nil)

func (r *tileReader) Height() int { return api.TileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.H != api.TileHeight || t.L < 0 || t.N < 0 || t.W < 1 || t.W > api.TileWidth {
			r.err = fmt.Errorf("tlog asked for tile %+v, not a hash tile of c2sp.org/tlog-tiles", t)
			return nil, r.err
		}
		at := api.Tile{Level: t.L, Index: uint64(t.N), Width: t.W}
		if len(r.tiles) >= api.MaxEvidenceTiles {
			r.err = fmt.Errorf("tlog asked for more than %d tiles", api.MaxEvidenceTiles)
			return nil, r.err
		}
		b, err := r.c.Tile(r.ctx, at)
		if err != nil {
			r.err = err
			return nil, err
		}
		data[i] = b
		r.tiles = append(r.tiles, api.EvidenceTile{Level: t.L, Index: uint64(t.N), Width: t.W, Hashes: b})
	}
	return data, nil
}

// SaveTiles does nothing: tiles are fetched again at each poll.
func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}
