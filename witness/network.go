package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
)

// The witness network: what the witness learns from other witnesses
// (gossip, witness/gossip) and from clients (POST /v1/gossip/checkpoint).
//
// Beside the checkpoint it cosigned (State), the witness keeps, in memory,
// its view of each log: the newest checkpoint of the log it has seen
// verified, with every valid cosignature by itself or a peer on it. Each
// checkpoint it is shown (Observe) is compared with both:
//
//   - same size, different root: equivocation, proven by the two signed
//     checkpoints alone;
//   - different sizes: if the log has a URL, the witness reads the larger
//     tree's tiles from it and computes the smaller tree's root. If it is
//     not the smaller checkpoint's, that is an inconsistency, proven by the
//     two checkpoints and the tiles (which the larger root authenticates).
//     Without a URL, the newer checkpoint is kept unchecked;
//   - otherwise the checkpoints are consistent, and cosignatures on the
//     newest one are merged.
//
// Evidence (api.Evidence) is verified with the log's key, made canonical
// (api.Evidence.Canonical), persisted (EvidenceStore), announced to the
// network, and from then on the witness refuses to cosign for that log
// (ErrMisbehaved) until an operator clears it. The witness keeps one copy
// of each piece of evidence (by its ID, which its variants share), and at
// most MaxEvidencePerLog pieces per log: the first proofs of a log's
// misbehaviour are what matter, and a hostile peer must not be able to
// fill the witness's disk with them.

// ErrMisbehaved means the witness holds evidence that the log misbehaved,
// and refuses to cosign its checkpoints (HTTP 422) until an operator
// clears the evidence.
var ErrMisbehaved = errors.New("the witness holds evidence that the log misbehaved, and refuses to cosign for it")

// MaxEvidencePerLog is the most pieces of evidence the witness stores,
// announces and serves against one log. Later pieces are verified and
// counted (candor_witness_evidence_dropped_total), and dropped.
const MaxEvidencePerLog = 8

// ErrUntrusted means a gossiped checkpoint carries no valid cosignature by
// a witness this witness trusts (a peer, or itself).
var ErrUntrusted = errors.New("no cosignature by a trusted witness")

// Announcer is told what the witness wants the network to know, such as a
// gossip node. Its methods must not block, nor keep the slices.
type Announcer interface {
	// AnnounceCheckpoint is called with a signed checkpoint of origin and
	// the cosignatures the witness holds on it: with own, the checkpoint
	// the witness cosigned last; without, the newest it has seen. A newer
	// announcement of either kind replaces the older one of that kind.
	AnnounceCheckpoint(origin string, signed []byte, own bool)
	// AnnounceEvidence is called with encoded evidence the witness did
	// not hold before.
	AnnounceEvidence(origin string, evidence []byte)
}

// The results of Observe.
const (
	// ObservedConsistent: consistent with everything the witness holds.
	ObservedConsistent = "consistent"
	// ObservedUnchecked: of another size than what the witness holds, for
	// a log without a URL: it cannot tell. The newer one is kept.
	ObservedUnchecked = "unchecked"
	// ObservedUnproven: the log's tiles could not be read, or do not hash
	// to the larger checkpoint's root: neither consistency nor a fork is
	// proven. Nothing changes.
	ObservedUnproven = "unproven"
	// ObservedEvidence: the witness holds evidence against the log.
	ObservedEvidence = "evidence"
)

// Observation is the outcome of Observe.
type Observation struct {
	// Result is one of the Observed constants.
	Result string
	// Detail says why, for people.
	Detail string
	// Evidence is the evidence, with ObservedEvidence, when this
	// observation found it.
	Evidence []byte
}

// maxServedSignatures bounds the signatures of a served checkpoint: the
// most note.Open accepts.
const maxServedSignatures = 100

// sigKey identifies a note signature's key.
type sigKey struct {
	name string
	id   uint32
}

// checkpointView is a verified checkpoint of a log with its log signatures
// and the verified cosignatures of trusted witnesses on it.
type checkpointView struct {
	c       api.Checkpoint
	text    string
	logSigs []note.Signature
	cosigs  []note.Signature // at most one per key
}

// signed returns the signed note: the text, then the log's signatures,
// then the cosignatures, own first, at most maxServedSignatures in all.
func (v *checkpointView) signed(own sigKey, limit int) []byte {
	sigs := slices.Clone(v.logSigs)
	for _, s := range v.cosigs {
		if (sigKey{s.Name, s.Hash}) == own {
			sigs = append(sigs, s)
		}
	}
	for _, s := range v.cosigs {
		if (sigKey{s.Name, s.Hash}) != own {
			sigs = append(sigs, s)
		}
	}
	sigs = sigs[:min(len(sigs), maxServedSignatures)]
	for {
		b := []byte(v.text + "\n")
		b = append(b, api.MarshalCosignatureLines(sigs)...)
		if len(b) <= limit || len(sigs) <= len(v.logSigs)+1 {
			return b
		}
		sigs = sigs[:len(sigs)-1]
	}
}

// logSigned returns the checkpoint with the log's signatures only, as
// evidence carries it.
func (v *checkpointView) logSigned() []byte {
	return append([]byte(v.text+"\n"), api.MarshalCosignatureLines(v.logSigs)...)
}

// merge adds the cosignatures by keys that have none on v yet, and
// reports whether it added any.
func (v *checkpointView) merge(cosigs []note.Signature) bool {
	added := false
	for _, s := range cosigs {
		if !slices.ContainsFunc(v.cosigs, func(o note.Signature) bool { return o.Name == s.Name && o.Hash == s.Hash }) {
			v.cosigs = append(v.cosigs, s)
			added = true
		}
	}
	return added
}

// network is the witness's view of the network, guarded by mu. The
// per-origin locks of the Witness order the changes of one origin.
type network struct {
	peers map[sigKey]note.Verifier // by name and key ID; includes the witness
	store EvidenceStore

	mu          sync.Mutex
	views       map[string]*checkpointView
	evidence    map[string][][]byte // origin -> canonical encoded evidence, MaxEvidencePerLog at most
	evidenceIDs map[string]bool
	consistent  map[[2]string]bool // pairs of checkpoint texts proven consistent
	announcer   Announcer

	checks checkCache // outcomes of checked gossip (checkcache.go)

	evidenceTotal   *prometheus.CounterVec
	evidenceDropped *prometheus.CounterVec
	observed        *prometheus.CounterVec
}

func newNetwork(ctx context.Context, cfg Config, self note.Verifier) (*network, error) {
	n := &network{
		peers:       make(map[sigKey]note.Verifier),
		store:       cfg.Evidence,
		views:       make(map[string]*checkpointView),
		evidence:    make(map[string][][]byte),
		evidenceIDs: make(map[string]bool),
		consistent:  make(map[[2]string]bool),
		evidenceTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_evidence_total",
			Help: "Evidence of log misbehaviour the witness stored, by origin and kind.",
		}, []string{"origin", "kind"}),
		evidenceDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_evidence_dropped_total",
			Help: fmt.Sprintf("Verified evidence of log misbehaviour that the witness neither stored, announced nor served because it held %d pieces against the log already, by origin. "+
				"A piece is counted each time it arrives; pieces stored by an older witness beyond the cap are counted once at start.", MaxEvidencePerLog),
		}, []string{"origin"}),
		observed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_observed_checkpoints_total",
			Help: "Checkpoints shown to the witness by peers or clients, by result (consistent, unchecked, unproven, evidence, unknown_log, untrusted, invalid).",
		}, []string{"result"}),
	}
	if n.store == nil {
		n.store = &memEvidence{}
	}
	// Every counter is present from the start, at zero.
	for _, l := range cfg.Logs {
		for _, kind := range api.EvidenceKinds {
			n.evidenceTotal.WithLabelValues(l.Origin, kind)
		}
		n.evidenceDropped.WithLabelValues(l.Origin)
	}
	for _, r := range []string{ObservedConsistent, ObservedUnchecked, ObservedUnproven, ObservedEvidence} {
		n.observed.WithLabelValues(r)
	}
	if self != nil {
		n.peers[sigKey{self.Name(), self.KeyHash()}] = self
	}
	for _, v := range cfg.Peers {
		if v == nil {
			return nil, errors.New("witness: nil peer verifier")
		}
		n.peers[sigKey{v.Name(), v.KeyHash()}] = v
	}
	if err := n.loadEvidence(ctx, cfg); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{n.evidenceTotal, n.evidenceDropped, n.observed} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("couldn't register the witness metrics: %w", err)
			}
		}
	}
	return n, nil
}

// loadEvidence reads the stored evidence. An older witness stored evidence
// as it was given, so the same misbehaviour may be stored in many forms:
// each piece is made canonical with its log's key, and held once, and at
// most MaxEvidencePerLog per log, the first ones in the store's order.
// The store itself is not rewritten: EvidenceStore cannot replace a piece
// atomically, and evidence must never be lost. Evidence of a log no longer
// followed, or whose key no longer verifies it, is held as stored.
func (n *network) loadEvidence(ctx context.Context, cfg Config) error {
	origins, evs, err := n.store.ListEvidence(ctx)
	if err != nil {
		return fmt.Errorf("witness: couldn't read the stored evidence: %w", err)
	}
	verifiers := make(map[string]note.Verifier, len(cfg.Logs))
	for _, l := range cfg.Logs {
		verifiers[l.Origin] = l.Verifier
	}
	variants := 0
	dropped := make(map[string]bool)
	for i, b := range evs {
		origin := origins[i]
		e, err := api.ParseEvidence(b)
		if err != nil {
			return fmt.Errorf("witness: stored evidence of %q: %w", origin, err)
		}
		if v := verifiers[origin]; v != nil {
			c, _, err := e.Canonical(v)
			var cb []byte
			if err == nil {
				cb, err = c.Marshal()
			}
			if err != nil {
				cfg.Logger.Warn("stored evidence does not verify with the log's key; the witness keeps it as stored", "origin", origin, "id", e.ID(), "error", err)
			} else {
				e, b = c, cb
			}
		}
		id := e.ID()
		switch {
		case n.evidenceIDs[id] || dropped[id]:
			variants++
		case len(n.evidence[origin]) >= MaxEvidencePerLog:
			dropped[id] = true
			n.evidenceDropped.WithLabelValues(origin).Inc()
		default:
			n.evidenceIDs[id] = true
			n.evidence[origin] = append(n.evidence[origin], b)
		}
	}
	if variants > 0 {
		cfg.Logger.Info("the stored evidence holds several forms of some pieces of evidence; the witness serves each piece once, in canonical form", "forms", variants)
	}
	return nil
}

// SetAnnouncer sets the Announcer the witness tells about new checkpoints
// and evidence. nil stops announcements.
func (w *Witness) SetAnnouncer(a Announcer) {
	w.net.mu.Lock()
	defer w.net.mu.Unlock()
	w.net.announcer = a
}

// misbehaved reports whether the witness holds evidence against origin.
func (w *Witness) misbehaved(origin string) bool {
	w.net.mu.Lock()
	defer w.net.mu.Unlock()
	return len(w.net.evidence[origin]) > 0
}

// Evidence returns the encoded evidence the witness holds, by origin.
func (w *Witness) Evidence() map[string][][]byte {
	w.net.mu.Lock()
	defer w.net.mu.Unlock()
	out := make(map[string][][]byte, len(w.net.evidence))
	for o, evs := range w.net.evidence {
		out[o] = slices.Clone(evs)
	}
	return out
}

// openObserved verifies a checkpoint of a log the witness follows, and
// returns its view: the log's signatures and the valid cosignatures by
// trusted witnesses. Other signatures are dropped unchecked. A note with
// signature lines the witness would not use is refused before any check,
// and each message and each signature is checked once (checkcache.go).
func (w *Witness) openObserved(signed []byte) (*checkpointView, error) {
	i := bytes.Index(signed, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("%w: the checkpoint is not a signed note", ErrBadRequest)
	}
	c, err := api.ParseCheckpoint(signed[:i+1])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	l, ok := w.logs[c.Origin]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, c.Origin)
	}
	logKey := sigKey{l.Origin, l.Verifier.KeyHash()}
	lines, err := scanSignatures(signed[i+2:], func(k sigKey) bool {
		_, peer := w.net.peers[k]
		return peer || k == logKey
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	key := messageKey(signed[:i+1], lines)
	if v, err, ok := w.net.checks.message(key); ok {
		return v, err
	}
	v, err := w.verifyObserved(signed, l)
	w.net.checks.addMessage(key, signed, v, err)
	return v.clone(), err
}

// verifyObserved is openObserved's check of a note it does not remember.
func (w *Witness) verifyObserved(signed []byte, l Log) (*checkpointView, error) {
	lv := cachedVerifier{Verifier: l.Verifier, kind: kindLog, cache: &w.net.checks}
	c, n, err := api.OpenCheckpoint(signed, l.Origin, lv)
	if errors.Is(err, api.ErrInvalidCheckpoint) {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSigned, err)
	}
	v := &checkpointView{c: c, text: n.Text}
	for _, s := range n.Sigs {
		s, ok := canonical(s)
		if !ok {
			return nil, fmt.Errorf("%w: malformed signature of %q", ErrBadRequest, s.Name)
		}
		v.logSigs = append(v.logSigs, s)
	}
	// scanSignatures let through at most one line per peer.
	for _, s := range n.UnverifiedSigs {
		pv, ok := w.net.peers[sigKey{s.Name, s.Hash}]
		if !ok {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(raw) < 4 || !w.net.checks.verify(kindWitness, pv, []byte(n.Text), raw[4:]) {
			continue
		}
		if s, ok := canonical(s); ok {
			v.merge([]note.Signature{s})
		}
	}
	return v, nil
}

// canonical returns s with its canonical base64 encoding.
func canonical(s note.Signature) (note.Signature, bool) {
	raw, err := base64.StdEncoding.DecodeString(s.Base64)
	if err != nil {
		return s, false
	}
	s.Base64 = base64.StdEncoding.EncodeToString(raw)
	return s, true
}

// ownView returns the view of the witness's stored checkpoint of origin,
// or nil.
func (w *Witness) ownView(ctx context.Context, origin string) (*checkpointView, error) {
	stored, err := w.state.Latest(ctx, origin)
	if err != nil || stored == nil {
		return nil, err
	}
	i := bytes.LastIndex(stored, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("the stored checkpoint of %q is not a signed note", origin)
	}
	c, err := api.ParseCheckpoint(stored[:i+1])
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the stored checkpoint of %q: %w", origin, err)
	}
	sigs, err := api.ParseCosignatureLines(stored[i+2:])
	if err != nil {
		return nil, fmt.Errorf("couldn't parse the stored checkpoint of %q: %w", origin, err)
	}
	v := &checkpointView{c: c, text: string(stored[:i+1])}
	for _, s := range sigs {
		if s.Name == origin {
			v.logSigs = append(v.logSigs, s)
		} else {
			v.cosigs = append(v.cosigs, s)
		}
	}
	return v, nil
}

// held returns the checkpoints of origin the witness holds: its own
// cosigned one and its view of the network's newest, without duplicates.
// The caller holds origin's lock.
func (w *Witness) held(ctx context.Context, origin string) ([]*checkpointView, error) {
	own, err := w.ownView(ctx, origin)
	if err != nil {
		return nil, err
	}
	w.net.mu.Lock()
	view := w.net.views[origin]
	w.net.mu.Unlock()
	var out []*checkpointView
	if own != nil {
		out = append(out, own)
	}
	if view != nil && (own == nil || view.text != own.text) {
		out = append(out, view)
	}
	return out, nil
}

// Observe compares a signed checkpoint that a peer or a client was shown
// with what the witness holds (see the package's network documentation),
// records evidence, and merges the cosignatures of trusted witnesses. If
// fromPeer, the checkpoint must carry a valid cosignature by a peer or the
// witness itself (ErrUntrusted). Other errors wrap ErrUnknownLog,
// ErrNotSigned or ErrBadRequest, or are internal.
func (w *Witness) Observe(ctx context.Context, signed []byte, fromPeer bool) (Observation, error) {
	o, err := w.observe(ctx, signed, fromPeer)
	result := o.Result
	switch {
	case errors.Is(err, ErrUnknownLog):
		result = "unknown_log"
	case errors.Is(err, ErrUntrusted):
		result = "untrusted"
	case errors.Is(err, ErrNotSigned), errors.Is(err, ErrBadRequest):
		result = "invalid"
	case err != nil:
		result = "error"
	}
	w.net.observed.WithLabelValues(result).Inc()
	return o, err
}

func (w *Witness) observe(ctx context.Context, signed []byte, fromPeer bool) (Observation, error) {
	in, err := w.openObserved(signed)
	if err != nil {
		return Observation{}, err
	}
	if fromPeer && len(in.cosigs) == 0 {
		return Observation{}, fmt.Errorf("%w: checkpoint of %q at size %d", ErrUntrusted, in.c.Origin, in.c.Size)
	}
	origin := in.c.Origin
	if w.misbehaved(origin) {
		return Observation{Result: ObservedEvidence, Detail: "the witness already holds evidence that this log misbehaved"}, nil
	}
	l := w.logs[origin]
	result := Observation{Result: ObservedConsistent}
	checked := make(map[string]bool) // texts compared with in
	for attempt := 0; ; attempt++ {
		// Compare with checkpoints of other sizes outside the lock: it
		// may read the log's tiles.
		unlock := w.lock(origin)
		held, err := w.held(ctx, origin)
		unlock()
		if err != nil {
			return Observation{}, err
		}
		for _, h := range held {
			if h.c.Size == in.c.Size || checked[h.text] {
				continue
			}
			checked[h.text] = true
			o, err := w.compare(ctx, l, h, in)
			if err != nil {
				return Observation{}, err
			}
			if o.Result != ObservedConsistent {
				result = o
			}
			if o.Result == ObservedEvidence || o.Result == ObservedUnproven {
				return o, nil
			}
		}
		unlock = w.lock(origin)
		held, err = w.held(ctx, origin)
		if err != nil {
			unlock()
			return Observation{}, err
		}
		if attempt < 3 && slices.ContainsFunc(held, func(h *checkpointView) bool { return h.c.Size != in.c.Size && !checked[h.text] }) {
			unlock() // the witness moved on meanwhile: compare again
			continue
		}
		o, err := w.decideLocked(ctx, l, held, in, result)
		unlock()
		return o, err
	}
}

// decideLocked records an equivocation between in and a held checkpoint,
// or adopts in. The caller holds the origin's lock.
func (w *Witness) decideLocked(ctx context.Context, l Log, held []*checkpointView, in *checkpointView, result Observation) (Observation, error) {
	for _, h := range held {
		if h.c.Size == in.c.Size && h.c.Hash != in.c.Hash {
			return w.recordLocked(ctx, l, api.NewEquivocation(l.Origin, h.logSigned(), in.logSigned()))
		}
	}
	w.adopt(held, in)
	return result, nil
}

// compare compares two checkpoints of l of different sizes.
func (w *Witness) compare(ctx context.Context, l Log, a, b *checkpointView) (Observation, error) {
	small, big := a, b
	if small.c.Size > big.c.Size {
		small, big = big, small
	}
	pair := [2]string{small.text, big.text}
	w.net.mu.Lock()
	known := w.net.consistent[pair]
	w.net.mu.Unlock()
	switch {
	case known || small.c.Size == 0:
		return Observation{Result: ObservedConsistent}, nil
	case l.URL == "":
		return Observation{Result: ObservedUnchecked, Detail: fmt.Sprintf("the witness cannot read the log's tiles to check size %d against size %d", small.c.Size, big.c.Size)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.tileTimeout)
	defer cancel()
	tr := &tileReader{ctx: ctx, c: logclient.New(l.URL, w.hc)}
	root, err := api.InconsistencyRoot(small.c.Size, big.c, tr)
	if err != nil {
		w.logger.Warn("couldn't check two checkpoints of a log against each other", "origin", l.Origin,
			"small", small.c.Size, "big", big.c.Size, "error", err)
		return Observation{Result: ObservedUnproven, Detail: fmt.Sprintf("the log's tiles do not prove its checkpoint of size %d: %v", big.c.Size, err)}, nil
	}
	if root == small.c.Hash {
		w.net.mu.Lock()
		if len(w.net.consistent) > 1024 {
			clear(w.net.consistent)
		}
		w.net.consistent[pair] = true
		w.net.mu.Unlock()
		return Observation{Result: ObservedConsistent}, nil
	}
	ev := api.NewInconsistency(l.Origin, small.logSigned(), big.logSigned(), tr.tiles)
	unlock := w.lock(l.Origin)
	defer unlock()
	return w.recordLocked(ctx, l, ev)
}

// adopt makes in the view of its origin if it is newer than the view (or
// the witness's own checkpoint), or merges its cosignatures into the view
// if it is the same checkpoint, and announces a changed view. The caller
// holds the origin's lock, and checked in against held.
func (w *Witness) adopt(held []*checkpointView, in *checkpointView) {
	origin := in.c.Origin
	w.net.mu.Lock()
	view := w.net.views[origin]
	// Start from the witness's own checkpoint, so that its cosignature
	// is never dropped.
	for _, h := range held {
		if view == nil || h.c.Size > view.c.Size {
			view = &checkpointView{c: h.c, text: h.text, logSigs: h.logSigs, cosigs: slices.Clone(h.cosigs)}
		}
	}
	announce := false
	switch {
	case view == nil || in.c.Size > view.c.Size:
		view = in
		announce = true
	case in.text == view.text:
		view.merge(in.cosigs)
	}
	w.net.views[origin] = view
	a := w.net.announcer
	var msg []byte
	if announce && a != nil {
		msg = view.signed(w.ownKey(), maxAnnounced)
	}
	w.net.mu.Unlock()
	if msg != nil {
		a.AnnounceCheckpoint(origin, msg, false)
	}
}

// maxAnnounced bounds an announced checkpoint: some cosignatures are left
// out of larger ones, to fit a gossip packet. Push/pull state sync carries
// them all.
const maxAnnounced = 1100

func (w *Witness) ownKey() sigKey {
	return sigKey{w.cosigner.Name(), w.cosigner.KeyHash()}
}

// cosigned records the witness's own new cosigned checkpoint in its view
// and announces it. The caller holds the origin's lock.
func (w *Witness) cosigned(v *checkpointView) {
	origin := v.c.Origin
	w.net.mu.Lock()
	view := w.net.views[origin]
	switch {
	case view == nil || v.c.Size > view.c.Size:
		view = v
	case view.text == v.text:
		view.merge(v.cosigs)
	default:
		view = v // serve and announce the checkpoint the witness cosigned
	}
	w.net.views[origin] = view
	a := w.net.announcer
	msg := view.signed(w.ownKey(), maxAnnounced)
	w.net.mu.Unlock()
	if a != nil {
		a.AnnounceCheckpoint(origin, msg, view.text == v.text)
		if view.text != v.text {
			a.AnnounceCheckpoint(origin, v.signed(w.ownKey(), maxAnnounced), true)
		}
	}
}

// sameSizeConflict returns the view of c's origin if it has c's size and
// another root, and is not the witness's stored checkpoint. The caller
// holds the origin's lock.
func (w *Witness) sameSizeConflict(c api.Checkpoint, stored []byte) *checkpointView {
	w.net.mu.Lock()
	defer w.net.mu.Unlock()
	v := w.net.views[c.Origin]
	if v == nil || v.c.Size != c.Size || v.c.Hash == c.Hash || bytes.HasPrefix(stored, []byte(v.text+"\n")) {
		return nil
	}
	return v
}

// AddEvidence verifies evidence, such as a peer gossips it, with the key
// of its log, and stores and announces its canonical form if it is new (no
// piece with its ID is held) and the witness holds fewer than
// MaxEvidencePerLog pieces against the log. It reports whether it stored
// it. Errors wrap ErrUnknownLog or api.ErrInvalidEvidence, or are
// internal.
func (w *Witness) AddEvidence(ctx context.Context, b []byte) (bool, error) {
	e, err := api.ParseEvidence(b)
	if err != nil {
		return false, err
	}
	l, ok := w.logs[e.Origin]
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownLog, e.Origin)
	}
	// The ID of any variant of a piece of evidence is the piece's: known
	// evidence is not verified again.
	w.net.mu.Lock()
	known := w.net.evidenceIDs[e.ID()]
	w.net.mu.Unlock()
	if known {
		return false, nil
	}
	unlock := w.lock(e.Origin)
	defer unlock()
	o, err := w.recordLocked(ctx, l, e)
	return o.Evidence != nil, err
}

// recordLocked verifies evidence against l, and persists and announces
// its canonical form if it is new and the witness holds fewer than
// MaxEvidencePerLog pieces against l. The caller holds the origin's lock.
func (w *Witness) recordLocked(ctx context.Context, l Log, e api.Evidence) (Observation, error) {
	e, cps, err := e.Canonical(l.Verifier)
	if err != nil {
		return Observation{}, err
	}
	id := e.ID()
	detail := fmt.Sprintf("%s: checkpoints of size %d and %d", e.Kind, cps[0].Size, cps[1].Size)
	if e.Kind == api.EvidenceBadEntry {
		detail = fmt.Sprintf("%s: entry %d of the tree of size %d", e.Kind, e.Entry.Index, cps[0].Size)
	}
	w.net.mu.Lock()
	known := w.net.evidenceIDs[id]
	full := len(w.net.evidence[e.Origin]) >= MaxEvidencePerLog
	w.net.mu.Unlock()
	if known {
		return Observation{Result: ObservedEvidence, Detail: detail}, nil
	}
	if full {
		w.net.evidenceDropped.WithLabelValues(e.Origin).Inc()
		w.logger.Debug("dropped evidence against a log the witness holds enough evidence against", "origin", e.Origin, "kind", e.Kind, "id", id, "cap", MaxEvidencePerLog)
		return Observation{Result: ObservedEvidence, Detail: fmt.Sprintf("%s; not stored: the witness holds %d pieces of evidence against the log already", detail, MaxEvidencePerLog)}, nil
	}
	b, err := e.Marshal()
	if err != nil {
		return Observation{}, err
	}
	if err := w.net.store.AddEvidence(ctx, e.Origin, id, b); err != nil {
		return Observation{}, fmt.Errorf("couldn't store evidence: %w", err)
	}
	w.net.mu.Lock()
	w.net.evidenceIDs[id] = true
	w.net.evidence[e.Origin] = append(w.net.evidence[e.Origin], b)
	a := w.net.announcer
	w.net.mu.Unlock()
	w.net.evidenceTotal.WithLabelValues(e.Origin, e.Kind).Inc()
	w.logger.Error("EVIDENCE THAT THE LOG MISBEHAVED; the witness stops cosigning for it",
		"origin", e.Origin, "kind", e.Kind, "id", id,
		"size0", cps[0].Size, "root0", hex.EncodeToString(cps[0].Hash[:]),
		"size1", cps[1].Size, "root1", hex.EncodeToString(cps[1].Hash[:]))
	if a != nil {
		a.AnnounceEvidence(e.Origin, b)
	}
	return Observation{Result: ObservedEvidence, Detail: detail, Evidence: b}, nil
}

// Served returns what the monitoring path serves for origin: the newest
// checkpoint the witness holds, with every cosignature it holds on it (its
// own first), or its own cosigned checkpoint. It returns (nil, nil) for a
// known log it holds nothing of, and ErrUnknownLog.
func (w *Witness) Served(ctx context.Context, origin string) ([]byte, error) {
	if _, ok := w.logs[origin]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, origin)
	}
	own, err := w.state.Latest(ctx, origin)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the witness state: %w", err)
	}
	w.net.mu.Lock()
	defer w.net.mu.Unlock()
	v := w.net.views[origin]
	if v == nil {
		return own, nil
	}
	if own != nil {
		if c, err := parseStored(own); err == nil && c.Size > v.c.Size {
			return own, nil
		}
	}
	return v.signed(w.ownKey(), 1<<20), nil
}

// Gossiped is a checkpoint the witness gossips.
type Gossiped struct {
	// Origin is the checkpoint's origin.
	Origin string
	// Signed is the signed checkpoint with the cosignatures the witness
	// holds on it.
	Signed []byte
	// Own is set for the checkpoint the witness cosigned last, as it
	// stored it (with the cosignatures of peers it holds on it).
	Own bool
}

// maxGossipedCheckpoint bounds a checkpoint in GossipState: the
// cosignatures that do not fit are left out.
const maxGossipedCheckpoint = 64 << 10

// GossipState returns the state the witness shares with a peer in a full
// sync: for each log it follows, the checkpoint it cosigned last (read
// from State, so that a restarted witness gossips what it cosigned before)
// and its view of the network's newest if that is another one; then all
// its evidence. Own checkpoints come first. A log whose stored checkpoint
// cannot be read is left out, and logged.
func (w *Witness) GossipState(ctx context.Context) (checkpoints []Gossiped, evidence [][]byte) {
	checkpoints = w.gossipedCheckpoints(ctx, maxGossipedCheckpoint)
	w.net.mu.Lock()
	defer w.net.mu.Unlock()
	for _, evs := range w.net.evidence {
		evidence = append(evidence, evs...)
	}
	return checkpoints, evidence
}

// gossipedCheckpoints returns the checkpoints of GossipState, each at most
// limit bytes (cosignatures are left out of larger ones).
func (w *Witness) gossipedCheckpoints(ctx context.Context, limit int) []Gossiped {
	var own, views []Gossiped
	for origin := range w.logs {
		stored, err := w.ownView(ctx, origin)
		if err != nil {
			w.logger.Warn("couldn't read the stored checkpoint to gossip it", "origin", origin, "error", err)
		}
		w.net.mu.Lock()
		view := w.net.views[origin]
		if stored != nil {
			if view != nil && view.text == stored.text {
				stored.merge(view.cosigs)
			}
			own = append(own, Gossiped{Origin: origin, Signed: stored.signed(w.ownKey(), limit), Own: true})
		}
		if view != nil && (stored == nil || view.text != stored.text) {
			views = append(views, Gossiped{Origin: origin, Signed: view.signed(w.ownKey(), limit)})
		}
		w.net.mu.Unlock()
	}
	return append(own, views...)
}

// AnnounceState announces, for every log the witness follows, the
// checkpoint it cosigned last and its view of the newest, as a gossip node
// does when it starts: what a witness cosigned before a restart is news to
// the peers it meets after it.
func (w *Witness) AnnounceState(ctx context.Context) {
	w.net.mu.Lock()
	a := w.net.announcer
	w.net.mu.Unlock()
	if a == nil {
		return
	}
	for _, g := range w.gossipedCheckpoints(ctx, maxAnnounced) {
		a.AnnounceCheckpoint(g.Origin, g.Signed, g.Own)
	}
}

// memEvidence is an EvidenceStore in memory, for a Witness configured
// without one.
type memEvidence struct {
	mu      sync.Mutex
	origins []string
	ids     []string
	ev      [][]byte
}

func (m *memEvidence) AddEvidence(ctx context.Context, origin, id string, evidence []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Contains(m.ids, id) {
		return nil
	}
	m.origins = append(m.origins, origin)
	m.ids = append(m.ids, id)
	m.ev = append(m.ev, bytes.Clone(evidence))
	return nil
}

func (m *memEvidence) ListEvidence(ctx context.Context) ([]string, [][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ev := make([][]byte, len(m.ev))
	for i := range m.ev {
		ev[i] = bytes.Clone(m.ev[i])
	}
	return slices.Clone(m.origins), ev, nil
}

func (m *memEvidence) ClearEvidence(ctx context.Context, origin string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for i := len(m.origins) - 1; i >= 0; i-- {
		if m.origins[i] == origin {
			m.origins = slices.Delete(m.origins, i, i+1)
			m.ids = slices.Delete(m.ids, i, i+1)
			m.ev = slices.Delete(m.ev, i, i+1)
			n++
		}
	}
	return n, nil
}
