package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
)

// ErrStaleCosignatures is wrapped, with api.ErrQuorumNotMet, by the error
// for a checkpoint whose cosignatures satisfy the policy's quorum only if
// those older than VerifierConfig.MaxCosignatureAge count.
var ErrStaleCosignatures = errors.New("cosignatures too old")

// ErrOffline is the error of a Verifier made without a Client when it
// needs to read the log.
var ErrOffline = errors.New("client: the verifier is offline (made without a Client) and can't read the log")

// maxClockSkew is how far in the future of the verifier's clock a
// cosignature's timestamp may be and still count.
const maxClockSkew = 5 * time.Minute

// maxSwapAttempts bounds the retries of Update when its State changes
// under it.
const maxSwapAttempts = 8

// VerifierConfig configures a Verifier. Origin and LogVerifier are
// required.
type VerifierConfig struct {
	// Origin is the log's checkpoint origin.
	Origin string
	// LogVerifier verifies the log's checkpoint signatures; its name is
	// Origin. A checkpoint with a bad signature line under its key (name
	// and key ID) is refused, even if another line verifies.
	LogVerifier note.Verifier
	// Policy, if set, is the c2sp.org/tlog-policy whose witness quorum a
	// checkpoint's cosignatures must satisfy. If it lists logs, the log
	// (Origin and LogVerifier's key) must be one of them. Optional:
	// without it no cosignature is required.
	Policy *api.Policy
	// MaxCosignatureAge, with a Policy, is the age beyond which a
	// cosignature does not count towards the quorum, by its
	// c2sp.org/tlog-cosignature timestamp; a timestamp more than five
	// minutes ahead of Now does not count either. Optional: zero means no
	// limit.
	MaxCosignatureAge time.Duration
	// State keeps the last verified checkpoint. Default: a new
	// MemoryState.
	State State
	// Now is the clock cosignature ages are measured with. Default:
	// time.Now.
	Now func() time.Time
}

// Verifier follows one log and verifies what it serves: checkpoints (the
// log's signature, the policy's witness quorum and the cosignatures' age,
// and consistency with the last verified checkpoint, proven from tiles),
// inclusion proofs built from tiles, and entry bundles re-hashed into the
// tree. It is safe for concurrent use.
//
// The first checkpoint a Verifier verifies for a log with an empty State
// is trusted on first use; every later one must be consistent with it.
type Verifier struct {
	c      *Client
	origin string
	logV   note.Verifier
	policy *api.Policy
	maxAge time.Duration
	state  State
	now    func() time.Time
	tiles  *tileCache

	// updating serializes Update and Accept, so that a checkpoint
	// fetched before one that another goroutine stored meanwhile is not
	// taken for a rollback.
	updating sync.Mutex
}

// NewVerifier returns a Verifier of the log that c reads. With a nil c the
// Verifier is offline: it verifies the checkpoints and proof bundles it is
// given (VerifyCheckpoint, VerifyBundle), and what would read the log
// fails with ErrOffline.
func NewVerifier(c *Client, cfg VerifierConfig) (*Verifier, error) {
	if cfg.Origin == "" || cfg.LogVerifier == nil {
		return nil, errors.New("client: Origin and LogVerifier are required")
	}
	if cfg.LogVerifier.Name() != cfg.Origin {
		return nil, fmt.Errorf("client: the log verifier is named %q, not the origin %q", cfg.LogVerifier.Name(), cfg.Origin)
	}
	if _, ok := cfg.LogVerifier.(*api.CosignatureVerifier); ok {
		return nil, errors.New("client: the log verifier is a witness's cosignature verifier")
	}
	if cfg.MaxCosignatureAge < 0 || cfg.MaxCosignatureAge > 0 && cfg.Policy == nil {
		return nil, errors.New("client: MaxCosignatureAge must be positive, and comes with a Policy")
	}
	if p := cfg.Policy; p != nil && len(p.Logs()) > 0 {
		if !slices.ContainsFunc(p.Logs(), func(l api.PolicyLog) bool {
			return l.Origin == cfg.Origin && l.Verifier.KeyHash() == cfg.LogVerifier.KeyHash()
		}) {
			return nil, fmt.Errorf("client: the policy does not list the log %q with this key", cfg.Origin)
		}
	}
	if cfg.State == nil {
		cfg.State = NewMemoryState()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{c: c, origin: cfg.Origin, logV: cfg.LogVerifier, policy: cfg.Policy,
		maxAge: cfg.MaxCosignatureAge, state: cfg.State, now: cfg.Now, tiles: newTileCache()}, nil
}

// Client returns the Client the Verifier reads the log with.
func (v *Verifier) Client() *Client { return v.c }

// Origin returns the log's origin.
func (v *Verifier) Origin() string { return v.origin }

// Checkpoint is a signed checkpoint that a Verifier verified.
type Checkpoint struct {
	api.Checkpoint
	// Signed is the signed note as the log served it, with its
	// cosignatures.
	Signed []byte
}

// VerifyCheckpoint verifies a signed checkpoint of the log, on its own:
// the log's signature, and with a Policy, the quorum of the witnesses'
// cosignatures and their age. It does not check it against the last
// verified checkpoint: Update does.
//
// A bad log signature gives an error wrapping *note.UnverifiedNoteError or
// *note.InvalidSignatureError; too few valid cosignatures, one wrapping
// api.ErrQuorumNotMet, and also ErrStaleCosignatures if enough were made
// but too long ago.
func (v *Verifier) VerifyCheckpoint(signed []byte) (Checkpoint, error) {
	c, n, err := api.OpenCheckpoint(signed, v.origin, v.logV)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Size > math.MaxInt64 {
		return Checkpoint{}, fmt.Errorf("couldn't verify checkpoint: %w: size %d is too large", api.ErrInvalidCheckpoint, c.Size)
	}
	if v.policy != nil {
		if err := v.policy.CheckCosignatures(n); err != nil {
			return Checkpoint{}, err
		}
		if v.maxAge > 0 {
			if err := v.policy.CheckCosignatures(v.fresh(n)); err != nil {
				return Checkpoint{}, fmt.Errorf("%w: counting only those at most %s old: %w", ErrStaleCosignatures, v.maxAge, err)
			}
		}
	}
	return Checkpoint{Checkpoint: c, Signed: signed}, nil
}

// VerifyBundle verifies a c2sp.org/tlog-proof bundle offline: its
// checkpoint as VerifyCheckpoint does (the log's signature, and with a
// Policy the witness quorum and the cosignatures' age), and that leafHash
// is at the bundle's index in that checkpoint's tree. It neither reads the
// log nor compares the checkpoint with the last verified one.
//
// An inclusion proof that does not verify gives an error wrapping
// api.ErrInvalidProofBundle.
func (v *Verifier) VerifyBundle(b api.ProofBundle, leafHash []byte) (Checkpoint, error) {
	cp, err := v.VerifyCheckpoint(b.Checkpoint)
	if err != nil {
		return Checkpoint{}, err
	}
	if len(leafHash) != api.HashSize {
		return Checkpoint{}, fmt.Errorf("couldn't verify the proof bundle: leaf hash is %d bytes, want %d", len(leafHash), api.HashSize)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, b.Index, cp.Size, leafHash, b.Hashes, cp.Hash[:]); err != nil {
		return Checkpoint{}, fmt.Errorf("couldn't verify the inclusion of leaf %x at index %d in the tree of size %d: %w: %w", leafHash, b.Index, cp.Size, api.ErrInvalidProofBundle, err)
	}
	return cp, nil
}

// fresh returns n without the cosignatures of the policy's witnesses that
// are older than maxAge or too far in the future. The log's signature is
// in n.Sigs and stays; other signatures are in n.UnverifiedSigs.
func (v *Verifier) fresh(n *note.Note) *note.Note {
	now := v.now()
	witnesses := v.policy.Witnesses()
	out := &note.Note{Text: n.Text, Sigs: n.Sigs}
	for _, s := range n.UnverifiedSigs {
		isWitness := slices.ContainsFunc(witnesses, func(w api.PolicyWitness) bool {
			return w.Verifier.Name() == s.Name && w.Verifier.KeyHash() == s.Hash
		})
		if isWitness {
			t, err := api.CosignatureTime(s)
			if err == nil && (now.Sub(t) > v.maxAge || t.Sub(now) > maxClockSkew) {
				continue
			}
		}
		out.UnverifiedSigs = append(out.UnverifiedSigs, s)
	}
	return out
}

// Latest returns the last checkpoint that Update verified and stored, or
// false if there is none. It checks the log's signature of what the State
// holds again, but not the cosignatures, which may have aged since.
func (v *Verifier) Latest(ctx context.Context) (Checkpoint, bool, error) {
	signed, err := v.state.Load(ctx, v.origin)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("couldn't load the last verified checkpoint: %w", err)
	}
	if signed == nil {
		return Checkpoint{}, false, nil
	}
	c, _, err := api.OpenCheckpoint(signed, v.origin, v.logV)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("the stored checkpoint of %q: %w", v.origin, err)
	}
	return Checkpoint{Checkpoint: c, Signed: signed}, true, nil
}

// Update fetches the log's checkpoint, verifies it (VerifyCheckpoint) and
// that it is consistent with the last verified checkpoint, then stores it
// as the last verified one and returns it.
//
// A checkpoint of a smaller tree, another root at the same size, or a
// larger tree that the log's tiles do not prove to extend the last
// verified one is refused with a *ForkError, and nothing is stored.
func (v *Verifier) Update(ctx context.Context) (Checkpoint, error) {
	v.updating.Lock()
	defer v.updating.Unlock()
	signed, err := v.c.Checkpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	return v.accept(ctx, signed)
}

// Accept is Update for a signed checkpoint obtained by other means, such
// as one a witness served, or one gossiped.
func (v *Verifier) Accept(ctx context.Context, signed []byte) (Checkpoint, error) {
	v.updating.Lock()
	defer v.updating.Unlock()
	return v.accept(ctx, signed)
}

func (v *Verifier) accept(ctx context.Context, signed []byte) (Checkpoint, error) {
	cp, err := v.VerifyCheckpoint(signed)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("couldn't verify the checkpoint of %q: %w", v.origin, err)
	}
	for range maxSwapAttempts {
		old, ok, err := v.Latest(ctx)
		if err != nil {
			return Checkpoint{}, err
		}
		var prev []byte
		if ok {
			if err := v.consistent(ctx, old, cp); err != nil {
				return Checkpoint{}, err
			}
			prev = old.Signed
		}
		err = v.state.Swap(ctx, v.origin, prev, signed)
		if errors.Is(err, ErrStateChanged) {
			continue
		}
		if err != nil {
			return Checkpoint{}, fmt.Errorf("couldn't store the verified checkpoint: %w", err)
		}
		return cp, nil
	}
	return Checkpoint{}, fmt.Errorf("couldn't store the verified checkpoint: %w %d times", ErrStateChanged, maxSwapAttempts)
}

// Compare checks a checkpoint signed by the log, obtained by other means
// (such as the one a witness cosigned), against the last verified one,
// without storing it and without the policy: only the log's signature
// counts, since any two checkpoints the log signed must be consistent.
// It returns nil if there is no last verified checkpoint, or if the two
// are consistent (the smaller one proven a prefix of the larger by the
// log's tiles), and otherwise a *ForkError as Update does: ErrRollback
// and ErrUnproven when the tiles the log serves prove nothing either way,
// ErrEquivocation and ErrInconsistent, with evidence, when they prove a
// fork.
func (v *Verifier) Compare(ctx context.Context, signed []byte) error {
	c, _, err := api.OpenCheckpoint(signed, v.origin, v.logV)
	if err != nil {
		return fmt.Errorf("couldn't verify the checkpoint of %q: %w", v.origin, err)
	}
	if c.Size > math.MaxInt64 {
		return fmt.Errorf("couldn't verify the checkpoint of %q: %w: size %d is too large", v.origin, api.ErrInvalidCheckpoint, c.Size)
	}
	old, ok, err := v.Latest(ctx)
	if err != nil || !ok {
		return err
	}
	err = v.consistent(ctx, old, Checkpoint{Checkpoint: c, Signed: signed})
	var fork *ForkError
	if errors.As(err, &fork) && errors.Is(fork.Reason, ErrRollback) && fork.Err == nil {
		return nil // the tiles prove it a prefix of the verified tree
	}
	return err
}

// consistent checks that cp does not go backwards or sideways from old.
func (v *Verifier) consistent(ctx context.Context, old, cp Checkpoint) error {
	fork := func(reason error, tiles []api.EvidenceTile, err error) error {
		return &ForkError{Origin: v.origin, Reason: reason, Old: old, New: cp, Tiles: tiles, Err: err, logV: v.logV}
	}
	switch {
	case cp.Size == old.Size && cp.Hash == old.Hash:
		return nil
	case cp.Size == old.Size:
		return fork(ErrEquivocation, nil, nil)
	case cp.Size < old.Size:
		// The log went back. If its tiles of the larger tree still prove
		// another root at the smaller size, it forked; if not, it may
		// only serve a stale checkpoint, which is still refused.
		root, tiles, err := v.treeHash(ctx, old.Checkpoint, cp.Size)
		if err == nil && root != cp.Hash {
			return fork(ErrInconsistent, tiles, nil)
		}
		return fork(ErrRollback, nil, err)
	case old.Size == 0:
		return nil
	}
	root, tiles, err := v.treeHash(ctx, cp.Checkpoint, old.Size)
	if err != nil {
		return fork(ErrUnproven, nil, err)
	}
	if root != old.Hash {
		return fork(ErrInconsistent, tiles, nil)
	}
	return nil
}

// treeHash returns the hash at size of the tree of big, computed from the
// log's tiles authenticated by big's root, with the hash tiles read.
func (v *Verifier) treeHash(ctx context.Context, big api.Checkpoint, size uint64) ([api.HashSize]byte, []api.EvidenceTile, error) {
	r := &recordingReader{tileReader: &TileReader{Client: v.c, Context: ctx}}
	h, err := api.InconsistencyRoot(size, big, r)
	if err != nil {
		return h, nil, err
	}
	return h, r.read, nil
}

// hashReader returns a tlog.HashReader of the tree of cp that reads the
// log's tiles and authenticates them against cp's root.
func (v *Verifier) hashReader(ctx context.Context, cp api.Checkpoint) tlog.HashReader {
	return tlog.TileHashReader(tlog.Tree{N: int64(cp.Size), Hash: cp.Hash}, v.tileReader(ctx))
}

func (v *Verifier) tileReader(ctx context.Context) *cachingReader {
	return &cachingReader{r: &TileReader{Client: v.c, Context: ctx}, cache: v.tiles}
}

// Errors that a ForkError wraps, one for each reason a checkpoint is
// refused against the last verified one.
var (
	// ErrRollback: a smaller tree than the last verified one.
	ErrRollback = errors.New("the log went back to a smaller tree")
	// ErrEquivocation: another root at the size of the last verified one.
	ErrEquivocation = errors.New("the log signed two different trees of the same size")
	// ErrInconsistent: the log's tiles prove that one tree is not a
	// prefix of the other.
	ErrInconsistent = errors.New("the log signed two inconsistent trees")
	// ErrUnproven: a larger tree that the log's tiles do not prove to
	// extend the last verified one: a tile could not be read or does
	// not hash to the new root. It proves nothing by itself, and may
	// pass: a later Update may succeed.
	ErrUnproven = errors.New("the log did not prove its new tree consistent with the last verified one")
)

// ForkError is the error for a checkpoint that does not extend the last
// verified one. It carries both signed checkpoints and the proof read
// from the log, and turns into evidence (Evidence) when they prove that
// the log misbehaved. errors.Is matches its Reason and Err.
type ForkError struct {
	Origin string
	// Reason is ErrRollback, ErrEquivocation, ErrInconsistent or
	// ErrUnproven.
	Reason error
	// Old is the last verified checkpoint, New the refused one.
	Old, New Checkpoint
	// Tiles are, with ErrInconsistent, the hash tiles of the larger tree
	// that prove its hash at the smaller size.
	Tiles []api.EvidenceTile
	// Err is why the consistency proof could not be read or checked, if
	// it could not.
	Err error

	logV note.Verifier
}

func (e *ForkError) Error() string {
	s := fmt.Sprintf("log %q: %v: last verified size %d root %x, now size %d root %x",
		e.Origin, e.Reason, e.Old.Size, e.Old.Hash, e.New.Size, e.New.Hash)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Reason and Err.
func (e *ForkError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// ErrNoEvidence is returned by ForkError.Evidence when the checkpoints do
// not prove that the log misbehaved.
var ErrNoEvidence = errors.New("no evidence of misbehaviour")

// Evidence returns the evidence that the log misbehaved, in the canonical
// form that witnesses serve and `candor verify-evidence` accepts, for an
// equivocation or an inconsistency. A rollback or an unproven tree proves
// nothing by itself (the log may be serving a stale checkpoint, or its
// tiles be unavailable): that gives an error wrapping ErrNoEvidence.
func (e *ForkError) Evidence() (api.Evidence, error) {
	var ev api.Evidence
	switch {
	case errors.Is(e.Reason, ErrEquivocation):
		ev = api.NewEquivocation(e.Origin, e.Old.Signed, e.New.Signed)
	case errors.Is(e.Reason, ErrInconsistent):
		small, big := e.Old, e.New
		if small.Size > big.Size {
			small, big = big, small
		}
		ev = api.NewInconsistency(e.Origin, small.Signed, big.Signed, e.Tiles)
	default:
		return api.Evidence{}, fmt.Errorf("%w: %w", ErrNoEvidence, e.Reason)
	}
	if e.logV == nil {
		return api.Evidence{}, fmt.Errorf("%w: the error carries no log key", ErrNoEvidence)
	}
	c, _, err := ev.Canonical(e.logV)
	if err != nil {
		return api.Evidence{}, fmt.Errorf("%w: %w", ErrNoEvidence, err)
	}
	return c, nil
}
