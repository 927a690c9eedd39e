package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

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
// The checkpoints are signed notes as the log signed them: the checkpoint
// text and the log's signature lines, byte for byte (other signatures,
// such as witness cosignatures, may be left out). Anyone holding only the
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
type Evidence struct {
	// Kind is EvidenceEquivocation or EvidenceInconsistency.
	Kind string `json:"kind"`
	// Origin is the log's origin.
	Origin string `json:"origin"`
	// Checkpoints are the two signed checkpoints, smaller size first, and
	// at the same size in byte order.
	Checkpoints [2]string `json:"checkpoints"`
	// Tiles are, for an inconsistency, the hash tiles the log served that
	// prove the larger tree's hash at the smaller size.
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

// NewEquivocation returns the evidence that a and b, signed checkpoints of
// origin, have the same size and different roots. It does not verify
// them: see Verify.
func NewEquivocation(origin string, a, b []byte) Evidence {
	cps := [2]string{string(a), string(b)}
	if cps[1] < cps[0] {
		cps[0], cps[1] = cps[1], cps[0]
	}
	return Evidence{Kind: EvidenceEquivocation, Origin: origin, Checkpoints: cps}
}

// NewInconsistency returns the evidence that small and big, signed
// checkpoints of origin, are not consistent, with the tiles proving it.
// small's size must be the smaller. It does not verify them: see Verify.
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
// its kind, origin and checkpoints. Two witnesses that catch the same
// pair of checkpoints give the same ID, even with different tiles.
func (e Evidence) ID() string {
	h := sha256.New()
	for _, s := range []string{e.Kind, e.Origin, e.Checkpoints[0], e.Checkpoints[1]} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
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
// the two checkpoints. Errors for evidence that proves nothing wrap
// ErrInvalidEvidence.
func (e Evidence) Verify(v note.Verifier) ([2]Checkpoint, error) {
	var cps [2]Checkpoint
	if v.Name() != e.Origin {
		return cps, fmt.Errorf("%w: the key is for %q, the evidence is about %q", ErrInvalidEvidence, v.Name(), e.Origin)
	}
	for i, s := range e.Checkpoints {
		c, _, err := OpenCheckpoint([]byte(s), e.Origin, v)
		if err != nil {
			return cps, fmt.Errorf("%w: checkpoint %d: %w", ErrInvalidEvidence, i, err)
		}
		cps[i] = c
	}
	a, b := cps[0], cps[1]
	switch e.Kind {
	case EvidenceEquivocation:
		if len(e.Tiles) > 0 {
			return cps, fmt.Errorf("%w: equivocation evidence carries no tiles", ErrInvalidEvidence)
		}
		if a.Size != b.Size {
			return cps, fmt.Errorf("%w: equivocation: sizes %d and %d differ", ErrInvalidEvidence, a.Size, b.Size)
		}
		if a.Hash == b.Hash {
			return cps, fmt.Errorf("%w: equivocation: both checkpoints have root %x", ErrInvalidEvidence, a.Hash)
		}
		return cps, nil
	case EvidenceInconsistency:
		return cps, e.verifyInconsistency(a, b)
	default:
		return cps, fmt.Errorf("%w: unknown kind %q", ErrInvalidEvidence, e.Kind)
	}
}

func (e Evidence) verifyInconsistency(small, big Checkpoint) error {
	if small.Size > big.Size {
		small, big = big, small
	}
	switch {
	case small.Size == big.Size:
		return fmt.Errorf("%w: inconsistency: both checkpoints have size %d", ErrInvalidEvidence, small.Size)
	case small.Size == 0:
		return fmt.Errorf("%w: inconsistency: the empty tree is a prefix of every tree", ErrInvalidEvidence)
	case big.Size > math.MaxInt64:
		return fmt.Errorf("%w: inconsistency: size %d is too large", ErrInvalidEvidence, big.Size)
	}
	got, err := InconsistencyRoot(small.Size, big, EvidenceTileReader(e.Tiles))
	if err != nil {
		return fmt.Errorf("%w: inconsistency: %w", ErrInvalidEvidence, err)
	}
	if got == small.Hash {
		return fmt.Errorf("%w: inconsistency: the tiles prove that the checkpoints are consistent", ErrInvalidEvidence)
	}
	return nil
}

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
