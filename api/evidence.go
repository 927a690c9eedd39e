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
	"strings"

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
//
// Both are irrefutable: no honest log ever signs such a pair.
//
// A piece of evidence is its log's origin and the texts of its two
// checkpoints (ID): what else it carries can vary without proving anything
// more. Witnesses store, serve and announce it only in its canonical form
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
	// Checkpoints are the two signed checkpoints. In canonical evidence,
	// each is the checkpoint text, a blank line and the log's signature
	// line, in canonical base64; the smaller size comes first, and at the
	// same size the text that is first in byte order.
	Checkpoints [2]string `json:"checkpoints"`
	// Tiles are, for an inconsistency, the hash tiles the log served that
	// prove the larger tree's hash at the smaller size. In canonical
	// evidence, they are the tiles tlog reads to compute it, no others,
	// by level, index and width.
	Tiles []EvidenceTile `json:"tiles,omitempty"`
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
)

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
// ID does not verify the evidence: it is meaningful for evidence that
// Verify accepts.
func (e Evidence) ID() string {
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
	var signed, texts [2]string
	for i, s := range e.Checkpoints {
		c, n, err := OpenCheckpoint([]byte(s), e.Origin, v)
		if err != nil {
			return Evidence{}, cps, fmt.Errorf("%w: checkpoint %d: %w", ErrInvalidEvidence, i, err)
		}
		j := slices.IndexFunc(n.Sigs, func(s note.Signature) bool { return s.Name == v.Name() && s.Hash == v.KeyHash() })
		sig, ok := canonicalSignature(n.Sigs[j]) // OpenCheckpoint checked there is one
		if !ok {
			return Evidence{}, cps, fmt.Errorf("%w: checkpoint %d: malformed signature", ErrInvalidEvidence, i)
		}
		cps[i], texts[i] = c, n.Text
		signed[i] = string(appendSignatureLine([]byte(n.Text+"\n"), sig))
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
