package api

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Evidence of a log's misbehaviour, as witnesses gossip it, store it,
// serve it at GET /v1/evidence and as `candor verify-evidence` checks it.
// It is JSON:
//
//	{
//	  "kind": "equivocation" | "inconsistency",
//	  "origin": "<the log's origin>",
//	  "checkpoints": ["<signed note>", "<signed note>"],
//	  "tiles": [{"level": L, "index": N, "width": W, "hashes": "<base64>"}, …]
//	}
//
// or, for an entry the log should have refused:
//
//	{
//	  "kind": "bad-entry",
//	  "origin": "<the log's origin>",
//	  "checkpoint": "<signed note>",
//	  "entry": {"index": N, "data": "<base64>", "proof": ["<base64>", …]}
//	}
//
// The checkpoints are signed notes of the log. Anyone holding only the
// log's verifier key can check evidence offline with Verify:
//
//   - equivocation: two checkpoints of the log at the same size with
//     different roots. No tiles.
//   - inconsistency: two checkpoints of different sizes, and the
//     c2sp.org/tlog-tiles hash tiles that the log served for the larger
//     one. The tiles must hash to the larger checkpoint's root (the tiles
//     are authenticated by it, with golang.org/x/mod/sumdb/tlog), and the
//     tree hash at the smaller size that they give must differ from the
//     smaller checkpoint's root: the log signed two trees of which one is
//     not a prefix of the other.
//   - bad-entry: a checkpoint of the log, an entry, its index and its
//     inclusion proof in the checkpoint's tree, and the entry does not
//     pass admission from its bytes (ParseEntry): its signature does not
//     verify, it is not canonical, it is malformed. An entry of a kind or
//     version this code does not know proves nothing (it may be newer).
//
// All are irrefutable: no honest log ever signs such a pair, or a tree
// holding such an entry.
//
// A piece of evidence is its log's origin and the texts of its two
// checkpoints, or for a bad entry its log's origin, index and entry (ID):
// what else it carries can vary without proving anything more. Witnesses store, serve and announce it only in its canonical form
// (Canonical), which is a function of the misbehaviour alone: each
// checkpoint is its text and the log's one signature line, the smaller
// size first, and an inconsistency carries only the tiles that prove it.
// So the variants of one piece of evidence (other signature lines,
// swapped checkpoints, a signature re-encoded, more tiles) are one piece,
// with one ID and the same bytes.
type Evidence struct {
	// Kind is EvidenceEquivocation or EvidenceInconsistency.
	Kind string `json:"kind"`
	// Origin is the log's origin.
	Origin string `json:"origin"`
	// Checkpoints are the two signed checkpoints of an equivocation or an
	// inconsistency. In canonical evidence, each is the checkpoint text, a
	// blank line and the log's signature line, in canonical base64; the
	// smaller size comes first, and at the same size the text that is
	// first in byte order.
	Checkpoints [2]string `json:"checkpoints,omitzero"`
	// Tiles are, for an inconsistency, the hash tiles the log served that
	// prove the larger tree's hash at the smaller size. In canonical
	// evidence, they are the tiles tlog reads to compute it, no others,
	// by level, index and width.
	Tiles []EvidenceTile `json:"tiles,omitempty"`
	// Checkpoint is, for a bad entry, the signed checkpoint whose tree
	// holds it; in canonical evidence, its text and the log's signature
	// line, as in Checkpoints.
	Checkpoint string `json:"checkpoint,omitempty"`
	// Entry is, for a bad entry, the entry and its inclusion proof.
	Entry *EvidenceEntry `json:"entry,omitempty"`
}

// EvidenceEntry is an entry of a log with its inclusion proof.
type EvidenceEntry struct {
	// Index is the entry's index in the log.
	Index uint64 `json:"index"`
	// Data is the entry's bytes, as the log's entry bundle holds them.
	Data []byte `json:"data"`
	// Proof is the RFC 6962 inclusion proof of the entry's leaf hash at
	// Index in the tree of the evidence's checkpoint.
	Proof [][]byte `json:"proof"`
}

// EvidenceTile is a c2sp.org/tlog-tiles hash tile.
type EvidenceTile struct {
	Level  int    `json:"level"`
	Index  uint64 `json:"index"`
	Width  int    `json:"width"`
	Hashes []byte `json:"hashes"` // Width hashes of HashSize bytes
}

// The kinds of Evidence.
const (
	EvidenceEquivocation  = "equivocation"
	EvidenceInconsistency = "inconsistency"
	EvidenceBadEntry      = "bad-entry"
)

// EvidenceKinds are the kinds of Evidence.
var EvidenceKinds = []string{EvidenceEquivocation, EvidenceInconsistency, EvidenceBadEntry}

// Bounds of an evidence document.
const (
	// MaxEvidenceSize bounds encoded evidence; ParseEvidence refuses more.
	MaxEvidenceSize = 1 << 20
	// MaxEvidenceTiles bounds the tiles of an inconsistency, far more than
	// a tree hash of a tree of 2^63 leaves needs.
	MaxEvidenceTiles = 64
	// maxEvidenceCheckpoint bounds each signed checkpoint.
	maxEvidenceCheckpoint = 64 << 10
)

// ErrInvalidEvidence is wrapped by the errors of ParseEvidence for
// malformed evidence, and by those of Verify for evidence that proves
// nothing.
var ErrInvalidEvidence = errors.New("invalid evidence")

// ErrNotCanonical is wrapped by the errors of VerifyCanonical for evidence
// that proves that the log misbehaved but is not in canonical form. It is
// not ErrInvalidEvidence: Canonical turns such evidence into canonical
// evidence.
var ErrNotCanonical = errors.New("evidence not in canonical form")

// NewEquivocation returns the evidence that a and b, signed checkpoints of
// origin, have the same size and different roots, in the order of their
// texts. It does not verify them, nor make them canonical: see Canonical.
func NewEquivocation(origin string, a, b []byte) Evidence {
	cps := [2]string{string(a), string(b)}
	if noteText(cps[1]) < noteText(cps[0]) {
		cps[0], cps[1] = cps[1], cps[0]
	}
	return Evidence{Kind: EvidenceEquivocation, Origin: origin, Checkpoints: cps}
}

// NewInconsistency returns the evidence that small and big, signed
// checkpoints of origin, are not consistent, with the tiles proving it.
// small's size must be the smaller. It does not verify them, nor make
// them canonical: see Canonical.
func NewInconsistency(origin string, small, big []byte, tiles []EvidenceTile) Evidence {
	return Evidence{Kind: EvidenceInconsistency, Origin: origin, Checkpoints: [2]string{string(small), string(big)}, Tiles: tiles}
}

// NewBadEntry returns the evidence that the tree of checkpoint, a signed
// checkpoint of origin, holds data at index, an entry that does not pass
// admission, with proof its inclusion proof. It does not verify them, nor
// make them canonical: see Canonical.
func NewBadEntry(origin string, checkpoint []byte, index uint64, data []byte, proof [][]byte) Evidence {
	return Evidence{Kind: EvidenceBadEntry, Origin: origin, Checkpoint: string(checkpoint),
		Entry: &EvidenceEntry{Index: index, Data: data, Proof: proof}}
}

// Marshal encodes the evidence as JSON.
func (e Evidence) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("couldn't encode evidence: %w", err)
	}
	return append(b, '\n'), nil
}

// ID identifies the misbehaviour the evidence proves: the hex SHA-256 of
// its origin and of the texts of its two checkpoints (their bodies, as
// note.Open finds them: without the signature lines), the texts in byte
// order. Nothing else counts: not the signature lines, the order of the
// checkpoints nor the tiles. So every variant of a piece of evidence, and
// its canonical form, have one ID, and two witnesses that catch the same
// pair of checkpoints give the same ID.
//
// A bad entry's ID is the hex SHA-256 of its origin, the entry's index
// and its leaf hash: the same entry proven in the trees of two
// checkpoints is one piece of evidence (whose canonical forms differ by
// their checkpoint).
//
// ID does not verify the evidence: it is meaningful for evidence that
// Verify accepts.
func (e Evidence) ID() string {
	if e.Kind == EvidenceBadEntry {
		var data []byte
		var index uint64
		if e.Entry != nil {
			data, index = e.Entry.Data, e.Entry.Index
		}
		h := sha256.New()
		for _, s := range []string{"candor bad-entry evidence", e.Origin, strconv.FormatUint(index, 10), string(rfc6962.DefaultHasher.HashLeaf(data))} {
			fmt.Fprintf(h, "%d:%s", len(s), s)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	a, b := noteText(e.Checkpoints[0]), noteText(e.Checkpoints[1])
	if b < a {
		a, b = b, a
	}
	h := sha256.New()
	for _, s := range []string{"candor evidence", e.Origin, a, b} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// noteText returns the text of a signed note as note.Open finds it: up
// to the blank line before the signatures, with its newline. Without a
// blank line, it is the whole note.
func noteText(signed string) string {
	i := strings.LastIndex(signed, "\n\n")
	if i < 0 {
		return signed
	}
	return signed[:i+1]
}

// ParseEvidence decodes evidence encoded by Marshal, checking its form but
// not its signatures (see Verify). Unknown fields are refused. Errors wrap
// ErrInvalidEvidence.
func ParseEvidence(b []byte) (Evidence, error) {
	if len(b) > MaxEvidenceSize {
		return Evidence{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidEvidence, len(b), MaxEvidenceSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var e Evidence
	if err := dec.Decode(&e); err != nil {
		return Evidence{}, fmt.Errorf("%w: %w", ErrInvalidEvidence, err)
	}
	if dec.More() {
		return Evidence{}, fmt.Errorf("%w: data after the evidence", ErrInvalidEvidence)
	}
	if e.Kind == EvidenceBadEntry {
		return e, parseBadEntry(e)
	}
	if e.Checkpoint != "" || e.Entry != nil {
		return Evidence{}, fmt.Errorf("%w: %s evidence carries no entry", ErrInvalidEvidence, e.Kind)
	}
	switch e.Kind {
	case EvidenceEquivocation:
		if len(e.Tiles) > 0 {
			return Evidence{}, fmt.Errorf("%w: equivocation evidence carries no tiles", ErrInvalidEvidence)
		}
	case EvidenceInconsistency:
		if len(e.Tiles) == 0 || len(e.Tiles) > MaxEvidenceTiles {
			return Evidence{}, fmt.Errorf("%w: inconsistency evidence needs 1 to %d tiles, has %d", ErrInvalidEvidence, MaxEvidenceTiles, len(e.Tiles))
		}
		for i, t := range e.Tiles {
			if t.Level < 0 || t.Level > maxTileLevel || t.Width < 1 || t.Width > TileWidth || len(t.Hashes) != t.Width*HashSize || t.Index > math.MaxInt64 {
				return Evidence{}, fmt.Errorf("%w: tile %d is not a hash tile of c2sp.org/tlog-tiles", ErrInvalidEvidence, i)
			}
		}
	default:
		return Evidence{}, fmt.Errorf("%w: unknown kind %q", ErrInvalidEvidence, e.Kind)
	}
	for i, c := range e.Checkpoints {
		if c == "" || len(c) > maxEvidenceCheckpoint {
			return Evidence{}, fmt.Errorf("%w: checkpoint %d is empty or longer than %d bytes", ErrInvalidEvidence, i, maxEvidenceCheckpoint)
		}
	}
	return e, nil
}

// maxInclusionProof bounds the hashes of an inclusion proof: one per level
// of a tree of 2^63 leaves.
const maxInclusionProof = 63

// parseBadEntry checks the form of bad-entry evidence.
func parseBadEntry(e Evidence) error {
	switch {
	case e.Checkpoints != [2]string{} || len(e.Tiles) > 0:
		return fmt.Errorf("%w: bad-entry evidence carries one checkpoint and no tiles", ErrInvalidEvidence)
	case e.Checkpoint == "" || len(e.Checkpoint) > maxEvidenceCheckpoint:
		return fmt.Errorf("%w: the checkpoint is empty or longer than %d bytes", ErrInvalidEvidence, maxEvidenceCheckpoint)
	case e.Entry == nil:
		return fmt.Errorf("%w: bad-entry evidence without its entry", ErrInvalidEvidence)
	case len(e.Entry.Proof) > maxInclusionProof:
		return fmt.Errorf("%w: an inclusion proof of %d hashes, more than %d", ErrInvalidEvidence, len(e.Entry.Proof), maxInclusionProof)
	}
	for i, h := range e.Entry.Proof {
		if len(h) != HashSize {
			return fmt.Errorf("%w: hash %d of the inclusion proof is %d bytes, want %d", ErrInvalidEvidence, i, len(h), HashSize)
		}
	}
	return nil
}

// Verify checks that the evidence proves that the log whose verifier is v
// misbehaved: that both checkpoints are checkpoints of e.Origin signed by
// v, v being named e.Origin, and that they are an equivocation (same
// size, different roots) or, with the tiles, an inconsistency. It returns
// the two checkpoints, the smaller size first. Errors for evidence that
// proves nothing wrap ErrInvalidEvidence.
//
// Verify accepts evidence that is not in canonical form: see Canonical
// and VerifyCanonical.
func (e Evidence) Verify(v note.Verifier) ([2]Checkpoint, error) {
	_, cps, err := e.Canonical(v)
	return cps, err
}

// Canonical verifies the evidence like Verify, and returns it in canonical
// form with its two checkpoints, the smaller size first:
//
//   - each checkpoint is its text, a blank line and the one signature
//     line of the log's key v, its base64 re-encoded canonically. Every
//     other signature line (a witness's cosignature, a repeat of the
//     log's, lines of unknown keys) is dropped;
//   - the checkpoints are in order: the smaller size first, and at the
//     same size, the text that is first in byte order;
//   - an inconsistency carries only the tiles that tlog reads to compute
//     the smaller tree's hash from the larger one's root, by level,
//     index and width. (Of two tiles with the same coordinates, the first
//     is the one read.)
//
// Kind and Origin are kept. The result depends only on the two checkpoint
// texts, the log's signatures of them and, for an inconsistency, the
// log's tree, so every variant of a piece of evidence gives the same
// canonical evidence, with the same ID and the same Marshal bytes; and
// Canonical of canonical evidence is itself. (A log that signs one text
// twice with different signatures could make two canonical forms of its
// own misbehaviour; they share an ID.)
//
// Errors for evidence that proves nothing wrap ErrInvalidEvidence.
func (e Evidence) Canonical(v note.Verifier) (Evidence, [2]Checkpoint, error) {
	var cps [2]Checkpoint
	if v.Name() != e.Origin {
		return Evidence{}, cps, fmt.Errorf("%w: the key is for %q, the evidence is about %q", ErrInvalidEvidence, v.Name(), e.Origin)
	}
	if e.Kind == EvidenceBadEntry {
		return e.canonicalBadEntry(v)
	}
	var signed, texts [2]string
	for i, s := range e.Checkpoints {
		sc, c, err := canonicalCheckpoint(s, e.Origin, v)
		if err != nil {
			return Evidence{}, cps, fmt.Errorf("%w: checkpoint %d: %w", ErrInvalidEvidence, i, err)
		}
		cps[i], texts[i], signed[i] = c, noteText(sc), sc
	}
	if cps[0].Size > cps[1].Size || cps[0].Size == cps[1].Size && texts[0] > texts[1] {
		cps[0], cps[1] = cps[1], cps[0]
		signed[0], signed[1] = signed[1], signed[0]
	}
	out := Evidence{Kind: e.Kind, Origin: e.Origin, Checkpoints: signed}
	small, big := cps[0], cps[1]
	switch e.Kind {
	case EvidenceEquivocation:
		if len(e.Tiles) > 0 {
			return Evidence{}, cps, fmt.Errorf("%w: equivocation evidence carries no tiles", ErrInvalidEvidence)
		}
		if small.Size != big.Size {
			return Evidence{}, cps, fmt.Errorf("%w: equivocation: sizes %d and %d differ", ErrInvalidEvidence, small.Size, big.Size)
		}
		if small.Hash == big.Hash {
			return Evidence{}, cps, fmt.Errorf("%w: equivocation: both checkpoints have root %x", ErrInvalidEvidence, small.Hash)
		}
	case EvidenceInconsistency:
		tiles, err := verifyInconsistency(small, big, e.Tiles)
		if err != nil {
			return Evidence{}, cps, err
		}
		out.Tiles = tiles
	default:
		return Evidence{}, cps, fmt.Errorf("%w: unknown kind %q", ErrInvalidEvidence, e.Kind)
	}
	return out, cps, nil
}

// canonicalBadEntry is Canonical for a bad entry: it checks that the
// checkpoint is signed by v, that the entry is at its index in the
// checkpoint's tree, and that it does not pass admission for a reason this
// code knows. Both returned checkpoints are the evidence's.
func (e Evidence) canonicalBadEntry(v note.Verifier) (Evidence, [2]Checkpoint, error) {
	var cps [2]Checkpoint
	if err := parseBadEntry(e); err != nil {
		return Evidence{}, cps, err
	}
	signed, c, err := canonicalCheckpoint(e.Checkpoint, e.Origin, v)
	if err != nil {
		return Evidence{}, cps, fmt.Errorf("%w: the checkpoint: %w", ErrInvalidEvidence, err)
	}
	cps = [2]Checkpoint{c, c}
	ent := e.Entry
	if ent.Index >= c.Size {
		return Evidence{}, cps, fmt.Errorf("%w: bad entry: index %d is not in the tree of size %d", ErrInvalidEvidence, ent.Index, c.Size)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(ent.Data)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ent.Index, c.Size, leaf, ent.Proof, c.Hash[:]); err != nil {
		return Evidence{}, cps, fmt.Errorf("%w: bad entry: the entry is not at index %d of the tree of size %d: %w", ErrInvalidEvidence, ent.Index, c.Size, err)
	}
	_, perr := ParseEntry(ent.Data)
	switch {
	case perr == nil:
		return Evidence{}, cps, fmt.Errorf("%w: bad entry: entry %d passes admission", ErrInvalidEvidence, ent.Index)
	case UnknownEntry(perr):
		return Evidence{}, cps, fmt.Errorf("%w: bad entry: entry %d may be valid for a newer version: %w", ErrInvalidEvidence, ent.Index, perr)
	}
	out := Evidence{Kind: e.Kind, Origin: e.Origin, Checkpoint: signed,
		Entry: &EvidenceEntry{Index: ent.Index, Data: bytes.Clone(ent.Data), Proof: slices.Clone(ent.Proof)}}
	return out, cps, nil
}

// BadEntryReason returns why the entry of bad-entry evidence does not
// pass admission, or nil if it does (or e is of another kind).
func (e Evidence) BadEntryReason() error {
	if e.Kind != EvidenceBadEntry || e.Entry == nil {
		return nil
	}
	_, err := ParseEntry(e.Entry.Data)
	return err
}

// canonicalCheckpoint opens a signed checkpoint of origin with v and
// returns it as its text, a blank line and the one signature line of v,
// its base64 canonical.
func canonicalCheckpoint(s, origin string, v note.Verifier) (string, Checkpoint, error) {
	c, n, err := OpenCheckpoint([]byte(s), origin, v)
	if err != nil {
		return "", Checkpoint{}, err
	}
	j := slices.IndexFunc(n.Sigs, func(s note.Signature) bool { return s.Name == v.Name() && s.Hash == v.KeyHash() })
	sig, ok := canonicalSignature(n.Sigs[j]) // OpenCheckpoint checked there is one
	if !ok {
		return "", Checkpoint{}, errors.New("malformed signature")
	}
	return string(appendSignatureLine([]byte(n.Text+"\n"), sig)), c, nil
}

// canonicalSignature returns s with the canonical base64 encoding of its
// bytes: note.Open accepts encodings with non-zero padding bits.
func canonicalSignature(s note.Signature) (note.Signature, bool) {
	raw, err := base64.StdEncoding.DecodeString(s.Base64)
	if err != nil {
		return s, false
	}
	s.Base64 = base64.StdEncoding.EncodeToString(raw)
	return s, true
}

// VerifyCanonical is Verify for evidence that must be in canonical form
// (see Canonical), such as what witnesses serve: evidence that proves
// misbehaviour but is not canonical gives an error wrapping
// ErrNotCanonical, that says how it differs.
func (e Evidence) VerifyCanonical(v note.Verifier) ([2]Checkpoint, error) {
	c, cps, err := e.Canonical(v)
	if err != nil {
		return cps, err
	}
	if err := e.sameAs(c); err != nil {
		return cps, fmt.Errorf("%w: %w", ErrNotCanonical, err)
	}
	return cps, nil
}

// sameAs returns nil if e is c, the canonical form of e, or says how it
// differs.
func (e Evidence) sameAs(c Evidence) error {
	if e.Kind == EvidenceBadEntry {
		if e.Checkpoint != c.Checkpoint {
			return errors.New("the checkpoint must carry only the log's signature line, in canonical base64")
		}
		return nil // the entry and its proof are what verified
	}
	for i, s := range e.Checkpoints {
		if s == c.Checkpoints[0] || s == c.Checkpoints[1] {
			continue
		}
		sigs := strings.Count(strings.TrimPrefix(s, noteText(s)), "\n") - 1
		if sigs != 1 {
			return fmt.Errorf("checkpoint %d carries %d signature lines, want only the log's", i, sigs)
		}
		return fmt.Errorf("checkpoint %d: the log's signature is not in canonical base64", i)
	}
	if e.Checkpoints != c.Checkpoints {
		return errors.New("the checkpoints are out of order: the smaller size first, at the same size the first text in byte order")
	}
	if len(e.Tiles) > len(c.Tiles) {
		return fmt.Errorf("%d tiles, of which %d prove the inconsistency: carry only those", len(e.Tiles), len(c.Tiles))
	}
	// c's tiles are a subset of e's: as many means the same ones.
	if !slices.EqualFunc(e.Tiles, c.Tiles, EvidenceTile.equal) {
		return errors.New("the tiles are out of order: by level, index and width")
	}
	return nil
}

func (t EvidenceTile) equal(u EvidenceTile) bool {
	return t.Level == u.Level && t.Index == u.Index && t.Width == u.Width && bytes.Equal(t.Hashes, u.Hashes)
}

// verifyInconsistency checks that tiles prove that small and big, of
// which small has the smaller size, are inconsistent, and returns the
// tiles that prove it, in canonical order.
func verifyInconsistency(small, big Checkpoint, tiles []EvidenceTile) ([]EvidenceTile, error) {
	switch {
	case small.Size == big.Size:
		return nil, fmt.Errorf("%w: inconsistency: both checkpoints have size %d", ErrInvalidEvidence, small.Size)
	case small.Size == 0:
		return nil, fmt.Errorf("%w: inconsistency: the empty tree is a prefix of every tree", ErrInvalidEvidence)
	case big.Size > math.MaxInt64:
		return nil, fmt.Errorf("%w: inconsistency: size %d is too large", ErrInvalidEvidence, big.Size)
	}
	r := &recordingTileReader{tiles: tiles}
	got, err := InconsistencyRoot(small.Size, big, r)
	if err != nil {
		return nil, fmt.Errorf("%w: inconsistency: %w", ErrInvalidEvidence, err)
	}
	if got == small.Hash {
		return nil, fmt.Errorf("%w: inconsistency: the tiles prove that the checkpoints are consistent", ErrInvalidEvidence)
	}
	// tlog reads each tile once.
	slices.SortFunc(r.read, func(a, b EvidenceTile) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.Index, b.Index), cmp.Compare(a.Width, b.Width))
	})
	return r.read, nil
}

// recordingTileReader reads tiles from evidence and records the ones read.
type recordingTileReader struct {
	tiles EvidenceTileReader
	read  []EvidenceTile
}

func (r *recordingTileReader) Height() int { return TileHeight }

func (r *recordingTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data, err := r.tiles.ReadTiles(tiles)
	if err != nil {
		return nil, err
	}
	for i, t := range tiles {
		r.read = append(r.read, EvidenceTile{Level: t.L, Index: uint64(t.N), Width: t.W, Hashes: bytes.Clone(data[i])})
	}
	return data, nil
}

func (r *recordingTileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// InconsistencyRoot returns the root at size small of the tree of big,
// read from tiles that are authenticated by big's root. An error means
// that the tiles could not be read or do not hash to big's root.
func InconsistencyRoot(small uint64, big Checkpoint, tiles tlog.TileReader) ([HashSize]byte, error) {
	if small > big.Size || big.Size > math.MaxInt64 {
		return [HashSize]byte{}, fmt.Errorf("size %d is not within the tree of size %d", small, big.Size)
	}
	hr := tlog.TileHashReader(tlog.Tree{N: int64(big.Size), Hash: big.Hash}, tiles)
	h, err := tlog.TreeHash(int64(small), hr)
	if err != nil {
		return [HashSize]byte{}, fmt.Errorf("the tiles do not prove the tree of size %d: %w", big.Size, err)
	}
	return h, nil
}

// EvidenceTileReader is a tlog.TileReader of the tiles of evidence.
type EvidenceTileReader []EvidenceTile

var _ tlog.TileReader = EvidenceTileReader(nil)

// Height returns TileHeight.
func (r EvidenceTileReader) Height() int { return TileHeight }

// ReadTiles returns the tiles, or an error if one is missing.
func (r EvidenceTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		j := slices.IndexFunc(r, func(et EvidenceTile) bool {
			return et.Level == t.L && et.Index == uint64(t.N) && et.Width == t.W
		})
		if j < 0 || t.H != TileHeight {
			return nil, fmt.Errorf("tile level %d index %d width %d is missing", t.L, t.N, t.W)
		}
		out[i] = r[j].Hashes
	}
	return out, nil
}

// SaveTiles does nothing.
func (r EvidenceTileReader) SaveTiles([]tlog.Tile, [][]byte) {}
