// Package witness is Candor's witness. For every log it follows it keeps the
// latest checkpoint it cosigned, and cosigns a new checkpoint
// (c2sp.org/tlog-cosignature, cosignature/v1) only if it is signed by the
// log and provably consistent with that one (c2sp.org/tlog-witness). The
// check and the update are one compare-and-swap on State, synced before the
// cosignature leaves: a witness never cosigns two inconsistent checkpoints
// of one log, also across crashes.
//
// A Puller (pull.go) does the same for logs that do not push: it polls
// their c2sp.org/tlog-tiles API and proves consistency from their tiles.
//
// witness_test.go runs the tlog-witness status-code table and concurrent
// add-checkpoint races against the pebble State over real HTTP;
// pull_test.go follows a real Candor log and a tlog-tiles log built with
// golang.org/x/mod/sumdb alone, and refuses their forks.
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/noredirect"
)

// The errors of AddCheckpoint. The HTTP handler maps each to its
// c2sp.org/tlog-witness status code in one switch.
var (
	// ErrUnknownLog means the checkpoint's origin is not a log the witness
	// follows (HTTP 404).
	ErrUnknownLog = errors.New("unknown log")
	// ErrNotSigned means the checkpoint carries no valid signature of the
	// log's key, or a signature line of the log's key that fails to verify
	// (HTTP 403).
	ErrNotSigned = errors.New("checkpoint is not signed by the log's key")
	// ErrBadRequest means the request is malformed, or its old size is
	// larger than the checkpoint's size (HTTP 400).
	ErrBadRequest = errors.New("bad request")
	// ErrInconsistent means the checkpoint is not provably consistent with
	// the one the witness cosigned: a consistency proof that doesn't
	// verify, a proof from size 0 that is not empty, a different root at
	// the same size, or a root at size 0 that is not the empty tree's
	// (HTTP 422).
	ErrInconsistent = errors.New("checkpoint is not consistent with the witness's view")
	// ErrNoSpace means the disk that holds the witness's state is below
	// its free-space reserve (Config.CheckSpace): the witness cosigns
	// nothing new until space is freed (HTTP 503).
	ErrNoSpace = errors.New("the witness is out of disk space: it cosigns nothing new until space is freed")
)

// ConflictError means the request's old size is not the size of the latest
// checkpoint the witness cosigned for the log (HTTP 409).
type ConflictError struct {
	// Size is the size of the witness's latest cosigned checkpoint, zero
	// if it never cosigned one.
	Size uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("old size does not match the witness's latest size %d", e.Size)
}

// Log is a log the witness follows.
type Log struct {
	// Origin is the log's origin line.
	Origin string
	// Verifier checks the log's checkpoint signatures; its name is Origin.
	// It must verify the log's signatures only: a cosignature/v1 verifier
	// here would let a witness's cosignature pass for the log's signature.
	Verifier note.Verifier
	// URL is the base URL of the log's c2sp.org/tlog-tiles API, or empty.
	// With it, the witness checks checkpoints of different sizes that
	// peers and clients show it against each other, from the log's tiles
	// (network.go). Optional.
	URL string
	// Audit, with a URL, has the witness check every entry of the log
	// before it cosigns a tree that holds it (audit.go).
	Audit bool
}

// Config configures a Witness. Cosigner and State are required.
type Config struct {
	// Cosigner makes the witness's cosignatures, such as an *api.Cosigner.
	Cosigner note.Signer
	// Logs are the logs the witness follows.
	Logs []Log
	// State holds the latest cosigned checkpoint of each log.
	State State
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger

	// Peers are the verifiers of the cosignatures of the witnesses this
	// one trusts (cosignature/v1, see api.NewCosignatureVerifier): a
	// gossiped checkpoint must carry a valid cosignature by one of them,
	// or by this witness, and their cosignatures are merged. Optional.
	Peers []note.Verifier
	// Evidence keeps the evidence of misbehaviour. Default: in memory
	// only, forgotten when the process ends.
	Evidence EvidenceStore
	// Client reads logs' tiles to check checkpoints against each other.
	// Default: an http.Client with a 30s timeout. The witness uses a copy
	// that follows no redirects: a 3xx reply is an error.
	Client *http.Client
	// Registerer, if set, receives candor_witness_evidence_total,
	// candor_witness_evidence_dropped_total,
	// candor_witness_observed_checkpoints_total,
	// candor_witness_cosigned_size,
	// candor_witness_last_cosigned_timestamp_seconds and, with audited
	// logs, candor_witness_audited_entries and
	// candor_witness_audit_lag_entries.
	Registerer prometheus.Registerer
	// Audit keeps the position of the audit of the logs with Log.Audit
	// (witness/statetest.RunAudit checks an implementation). Default: in
	// memory only, so that a restarted witness audits them again from the
	// start.
	Audit AuditState
	// CheckSpace, if set, says whether the disk has room for the state:
	// nil, or why not. While it fails, AddCheckpoint refuses, with
	// ErrNoSpace, a checkpoint it would have to store, and Ready fails.
	// Evidence is still stored. Optional.
	CheckSpace func() error
}

// Witness checks and cosigns checkpoints. It is safe for concurrent use.
type Witness struct {
	cosigner note.Signer
	logs     map[string]Log
	state    State
	logger   *slog.Logger
	space    func() error

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per origin, to avoid needless CAS retries

	net         *network
	hc          *http.Client
	tileTimeout time.Duration
	auditors    map[string]*auditor // by origin, of the logs with Audit
}

// New returns a witness.
func New(cfg Config) (*Witness, error) {
	if cfg.Cosigner == nil || cfg.State == nil {
		return nil, errors.New("witness: Cosigner and State are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Witness{
		cosigner: cfg.Cosigner,
		logs:     make(map[string]Log),
		state:    cfg.State,
		logger:   cfg.Logger,
		space:    cfg.CheckSpace,
		locks:    make(map[string]*sync.Mutex),
	}
	for _, l := range cfg.Logs {
		if l.Verifier == nil || l.Verifier.Name() != l.Origin {
			return nil, fmt.Errorf("witness: log %q: the verifier's name must be the origin", l.Origin)
		}
		if _, ok := w.logs[l.Origin]; ok {
			return nil, fmt.Errorf("witness: log %q is configured twice", l.Origin)
		}
		if l.Audit && l.URL == "" {
			return nil, fmt.Errorf("witness: log %q: auditing a log needs its URL", l.Origin)
		}
		if l.URL != "" {
			base, err := CheckPullURL(l.URL)
			if err != nil {
				return nil, fmt.Errorf("witness: log %q: %w", l.Origin, err)
			}
			l.URL = base
		}
		w.logs[l.Origin] = l
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	// A log's tiles are read from its URL, and from nowhere a reply points.
	w.hc = noredirect.Client(cfg.Client)
	w.tileTimeout = time.Minute
	if cfg.Audit == nil {
		cfg.Audit = &memAudit{}
	}
	w.auditors = make(map[string]*auditor)
	for _, l := range w.logs {
		if !l.Audit {
			continue
		}
		a, err := newAuditor(context.Background(), w, l, cfg.Audit)
		if err != nil {
			return nil, fmt.Errorf("witness: log %q: %w", l.Origin, err)
		}
		w.auditors[l.Origin] = a
	}
	var self note.Verifier
	if vkey := cosignerVerifierKey(cfg.Cosigner); vkey != "" {
		v, err := api.NewNoteVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("witness: the cosigner's verifier: %w", err)
		}
		self = v
	}
	var err error
	if w.net, err = newNetwork(context.Background(), cfg, self); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(&cosignCollector{w: w, self: self}); err != nil {
			return nil, fmt.Errorf("witness: couldn't register the metrics: %w", err)
		}
		if len(w.auditors) > 0 {
			if err := cfg.Registerer.Register(auditCollector{w: w}); err != nil {
				return nil, fmt.Errorf("witness: couldn't register the audit metrics: %w", err)
			}
		}
	}
	return w, nil
}

// cosignerVerifierKey returns the verifier key of a cosigner that has one,
// such as an *api.Cosigner.
func cosignerVerifierKey(s note.Signer) string {
	if vk, ok := s.(interface{ VerifierKey() string }); ok {
		return vk.VerifierKey()
	}
	return ""
}

// Name returns the witness's key name.
func (w *Witness) Name() string { return w.cosigner.Name() }

// Origins returns the origins of the logs the witness follows, in no
// particular order.
func (w *Witness) Origins() []string {
	origins := make([]string, 0, len(w.logs))
	for o := range w.logs {
		origins = append(origins, o)
	}
	return origins
}

func (w *Witness) lock(origin string) func() {
	w.mu.Lock()
	m, ok := w.locks[origin]
	if !ok {
		m = new(sync.Mutex)
		w.locks[origin] = m
	}
	w.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// open verifies a checkpoint signed by a log the witness follows, and
// returns it with the log's signatures, canonically encoded.
func (w *Witness) open(signed []byte) (api.Checkpoint, string, []note.Signature, error) {
	// Find the origin without trusting anything yet: the note's text ends
	// at its first empty line, since a checkpoint has none.
	i := bytes.Index(signed, []byte("\n\n"))
	if i < 0 {
		return api.Checkpoint{}, "", nil, fmt.Errorf("%w: the checkpoint is not a signed note", ErrBadRequest)
	}
	c, err := api.ParseCheckpoint(signed[:i+1])
	if err != nil {
		return api.Checkpoint{}, "", nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	l, ok := w.logs[c.Origin]
	if !ok {
		return api.Checkpoint{}, "", nil, fmt.Errorf("%w: %q", ErrUnknownLog, c.Origin)
	}
	c, n, err := api.OpenCheckpoint(signed, l.Origin, l.Verifier)
	if errors.Is(err, api.ErrInvalidCheckpoint) {
		return api.Checkpoint{}, "", nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err != nil {
		return api.Checkpoint{}, "", nil, fmt.Errorf("%w: %w", ErrNotSigned, err)
	}
	// note.Open accepts base64 with non-zero padding bits; store and serve
	// the one canonical encoding of each signature.
	sigs := make([]note.Signature, len(n.Sigs))
	for i, s := range n.Sigs {
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil {
			return api.Checkpoint{}, "", nil, fmt.Errorf("%w: signature of %q: %w", ErrBadRequest, s.Name, err)
		}
		s.Base64 = base64.StdEncoding.EncodeToString(raw)
		sigs[i] = s
	}
	return c, n.Text, sigs, nil
}

// parseStored parses a checkpoint the witness stored itself. It trusts
// it, and does not verify its signatures: the log's key may have been
// rotated since.
func parseStored(stored []byte) (api.Checkpoint, error) {
	i := bytes.LastIndex(stored, []byte("\n\n"))
	if i < 0 {
		return api.Checkpoint{}, errors.New("not a signed note")
	}
	return api.ParseCheckpoint(stored[:i+1])
}

// AddCheckpoint checks req against the latest checkpoint cosigned for its
// log, stores it and returns the witness's cosignature as a note signature
// line ("— <name> <base64>\n"), the body of a c2sp.org/tlog-witness 200
// reply. The error wraps one of the package's sentinel errors, or is a
// *ConflictError, or is an internal error (of State, of the Cosigner).
//
// The checks run in the order of c2sp.org/tlog-witness: origin (404), log
// signature (403), old size at most the size (400), old size is the
// cosigned size (409), then consistency (422). For an audited log, the
// audit of the tree's entries comes before the old size is compared
// (ErrNotAudited, 503; or ErrMisbehaved, 422, if it found evidence).
func (w *Witness) AddCheckpoint(ctx context.Context, req api.AddCheckpointRequest) ([]byte, error) {
	c, text, logSigs, err := w.open(req.Checkpoint)
	if err != nil {
		return nil, err
	}
	if req.OldSize > c.Size {
		return nil, fmt.Errorf("%w: old size %d is larger than the checkpoint's size %d", ErrBadRequest, req.OldSize, c.Size)
	}
	if a := w.auditors[c.Origin]; a != nil {
		// Check the tree's entries first, outside the origin's lock: the
		// audit may take the request's whole time.
		if w.misbehaved(c.Origin) {
			return nil, fmt.Errorf("%w: %q", ErrMisbehaved, c.Origin)
		}
		if err := a.ensure(ctx, req.Checkpoint, c); err != nil {
			return nil, err
		}
	}
	unlock := w.lock(c.Origin)
	defer unlock()
	if w.misbehaved(c.Origin) {
		return nil, fmt.Errorf("%w: %q", ErrMisbehaved, c.Origin)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		stored, err := w.state.Latest(ctx, c.Origin)
		if err != nil {
			return nil, fmt.Errorf("couldn't read the witness state: %w", err)
		}
		var old api.Checkpoint // size 0 if nothing is stored
		if stored != nil {
			if old, err = parseStored(stored); err != nil {
				return nil, fmt.Errorf("couldn't parse the stored checkpoint of %q: %w", c.Origin, err)
			}
		}
		if req.OldSize != old.Size {
			return nil, &ConflictError{Size: old.Size}
		}
		// Never cosign a checkpoint that the network saw forked at its
		// size: that is evidence. (A fork of the witness's own checkpoint
		// is refused below, as c2sp.org/tlog-witness says.)
		if v := w.sameSizeConflict(c, stored); v != nil {
			in := &checkpointView{c: c, text: text, logSigs: logSigs}
			if _, err := w.recordLocked(ctx, w.logs[c.Origin], api.NewEquivocation(c.Origin, v.logSigned(), in.logSigned())); err != nil {
				return nil, fmt.Errorf("couldn't record evidence: %w", err)
			}
			return nil, fmt.Errorf("%w: %q", ErrMisbehaved, c.Origin)
		}
		if err := checkConsistent(old, c, req.Proof); err != nil {
			w.logger.Warn("refused a checkpoint not consistent with the cosigned one",
				"origin", c.Origin, "old_size", old.Size, "size", c.Size, "root", hex.EncodeToString(c.Hash[:]), "error", err)
			if stored != nil && old.Size == c.Size && old.Hash != c.Hash {
				w.equivocated(ctx, stored, &checkpointView{c: c, text: text, logSigs: logSigs})
			}
			return nil, err
		}
		if err := w.spaceError(); err != nil {
			return nil, err
		}
		cosig, err := api.NoteSignature(w.cosigner, []byte(text))
		if err != nil {
			return nil, fmt.Errorf("couldn't cosign: %w", err)
		}
		// The stored note: the checkpoint, the log's verified signatures
		// and this cosignature, as the monitoring read path serves it.
		signed := make([]byte, 0, len(text)+256)
		signed = append(signed, text...)
		signed = append(signed, '\n')
		signed = append(signed, api.MarshalCosignatureLines(append(logSigs, cosig))...)
		err = w.state.Swap(ctx, c.Origin, stored, signed)
		if errors.Is(err, ErrStateConflict) {
			w.logger.Debug("witness state changed concurrently, retrying", "origin", c.Origin)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("couldn't store the checkpoint: %w", err)
		}
		w.logger.Debug("cosigned", "origin", c.Origin, "old_size", old.Size, "size", c.Size)
		w.cosigned(&checkpointView{c: c, text: text, logSigs: logSigs, cosigs: []note.Signature{cosig}})
		return api.MarshalCosignatureLines([]note.Signature{cosig}), nil
	}
}

// spaceError returns an error wrapping ErrNoSpace if Config.CheckSpace
// says the disk has no room for the state.
func (w *Witness) spaceError() error {
	if w.space == nil {
		return nil
	}
	if err := w.space(); err != nil {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return nil
}

// equivocated records, as evidence, that the log signed in at the size of
// the stored checkpoint with another root. The caller holds the origin's
// lock. Two checkpoints signed by the log prove it, whoever sent them; if
// the stored one no longer verifies (the log's key was rotated), the
// refusal stands without evidence.
func (w *Witness) equivocated(ctx context.Context, stored []byte, in *checkpointView) {
	c, text, logSigs, err := w.open(stored)
	if err != nil {
		w.logger.Warn("couldn't make evidence of a fork at the cosigned size", "origin", in.c.Origin, "error", err)
		return
	}
	mine := &checkpointView{c: c, text: text, logSigs: logSigs}
	if _, err := w.recordLocked(ctx, w.logs[c.Origin], api.NewEquivocation(c.Origin, mine.logSigned(), in.logSigned())); err != nil {
		w.logger.Error("couldn't record evidence", "origin", c.Origin, "error", err)
	}
}

// checkConsistent checks that c extends old (the zero Checkpoint if the
// witness never cosigned one), with hashes the consistency proof from
// old.Size to c.Size.
func checkConsistent(old, c api.Checkpoint, hashes [][]byte) error {
	if c.Size == 0 && !bytes.Equal(c.Hash[:], rfc6962.DefaultHasher.EmptyRoot()) {
		return fmt.Errorf("%w: a checkpoint of size 0 must have the empty tree's root", ErrInconsistent)
	}
	if old.Size == 0 {
		if len(hashes) > 0 {
			return fmt.Errorf("%w: a proof from size 0 must be empty", ErrInconsistent)
		}
		return nil // the empty tree is a prefix of every tree
	}
	if old.Size == c.Size {
		if old.Hash != c.Hash {
			return fmt.Errorf("%w: root %x at size %d, the witness cosigned %x", ErrInconsistent, c.Hash, c.Size, old.Hash)
		}
		if len(hashes) > 0 {
			return fmt.Errorf("%w: a proof between equal sizes must be empty", ErrInconsistent)
		}
		return nil
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, c.Size, hashes, old.Hash[:], c.Hash[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrInconsistent, err)
	}
	return nil
}

// Checkpoint returns the latest checkpoint the witness cosigned for origin,
// with the log's signature and the witness's cosignature, or ErrUnknownLog.
// It returns (nil, nil) for a known log the witness never cosigned.
func (w *Witness) Checkpoint(ctx context.Context, origin string) ([]byte, error) {
	if _, ok := w.logs[origin]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, origin)
	}
	cp, err := w.state.Latest(ctx, origin)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the witness state: %w", err)
	}
	return cp, nil
}
