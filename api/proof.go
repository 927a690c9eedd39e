package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// ErrInvalidProofBundle is wrapped by the errors for proof bundles that are
// malformed or whose inclusion proof does not verify.
var ErrInvalidProofBundle = errors.New("invalid proof bundle")

const (
	proofBundleHeader = "c2sp.org/tlog-proof@v1"
	// maxProofHashes bounds the inclusion proof: a tree of at most 2^64-1
	// entries has proofs of at most 63 hashes.
	maxProofHashes = 63
)

// ProofBundle is a c2sp.org/tlog-proof@v1 bundle: an offline proof that an
// entry is in the log, to be kept next to the artifact it is about.
type ProofBundle struct {
	// Extra is optional opaque data, not authenticated. Empty means none.
	Extra []byte
	// Index is the entry's index in the log.
	Index uint64
	// Hashes is the RFC 6962 inclusion proof of the entry in the tree of
	// the checkpoint, from the leaf's sibling up; each is HashSize bytes.
	Hashes [][]byte
	// Checkpoint is the signed checkpoint note, verbatim, with the log's
	// signature and any witness cosignatures.
	Checkpoint []byte
}

// Marshal encodes the bundle. Marshal does not check p; ParseProofBundle
// rejects the result if a hash is not HashSize bytes, there are more than
// 63 hashes, or the checkpoint is empty.
func (p ProofBundle) Marshal() []byte {
	size := len(proofBundleHeader) + 30 + len(p.Hashes)*45 + len(p.Checkpoint)
	if len(p.Extra) > 0 {
		size += 7 + base64.StdEncoding.EncodedLen(len(p.Extra))
	}
	b := make([]byte, 0, size)
	b = append(b, proofBundleHeader...)
	b = append(b, '\n')
	if len(p.Extra) > 0 {
		b = append(b, "extra "...)
		b = base64.StdEncoding.AppendEncode(b, p.Extra)
		b = append(b, '\n')
	}
	b = append(b, "index "...)
	b = strconv.AppendUint(b, p.Index, 10)
	b = append(b, '\n')
	for _, h := range p.Hashes {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, p.Checkpoint...)
}

// ParseProofBundle parses a proof bundle as produced by Marshal. It is
// strict: the header line; an optional "extra" line with non-empty,
// canonical standard base64; an "index" line, decimal with no leading
// zeroes; at most 63 hash lines, each the canonical standard base64 of 32
// bytes; an empty line; then the signed checkpoint, taken verbatim and
// required to be non-empty. The checkpoint is not parsed here:
// VerifyProofBundle does that.
//
// Every error wraps ErrInvalidProofBundle.
func ParseProofBundle(b []byte) (ProofBundle, error) {
	var p ProofBundle
	rest := b
	line, ok := nextLine(&rest)
	if !ok || line != proofBundleHeader {
		return ProofBundle{}, fmt.Errorf("%w: missing %q header line", ErrInvalidProofBundle, proofBundleHeader)
	}
	line, ok = nextLine(&rest)
	if !ok {
		return ProofBundle{}, fmt.Errorf("%w: missing index line", ErrInvalidProofBundle)
	}
	if enc, isExtra := strings.CutPrefix(line, "extra "); isExtra {
		extra, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(extra) == 0 || base64.StdEncoding.EncodeToString(extra) != enc {
			return ProofBundle{}, fmt.Errorf("%w: malformed extra line", ErrInvalidProofBundle)
		}
		p.Extra = extra
		if line, ok = nextLine(&rest); !ok {
			return ProofBundle{}, fmt.Errorf("%w: missing index line", ErrInvalidProofBundle)
		}
	}
	idx, isIndex := strings.CutPrefix(line, "index ")
	if !isIndex {
		return ProofBundle{}, fmt.Errorf("%w: missing index line", ErrInvalidProofBundle)
	}
	if p.Index, ok = parseDecimal(idx); !ok {
		return ProofBundle{}, fmt.Errorf("%w: malformed index %q", ErrInvalidProofBundle, idx)
	}
	for {
		line, ok = nextLine(&rest)
		if !ok {
			return ProofBundle{}, fmt.Errorf("%w: missing empty line before the checkpoint", ErrInvalidProofBundle)
		}
		if line == "" {
			break
		}
		if len(p.Hashes) == maxProofHashes {
			return ProofBundle{}, fmt.Errorf("%w: more than %d proof hashes", ErrInvalidProofBundle, maxProofHashes)
		}
		h, ok := parseHash(line)
		if !ok {
			return ProofBundle{}, fmt.Errorf("%w: malformed proof hash %d", ErrInvalidProofBundle, len(p.Hashes))
		}
		p.Hashes = append(p.Hashes, h[:])
	}
	if len(rest) == 0 {
		return ProofBundle{}, fmt.Errorf("%w: missing checkpoint", ErrInvalidProofBundle)
	}
	p.Checkpoint = bytes.Clone(rest)
	return p, nil
}

// nextLine removes the first newline-terminated line from *b and returns it
// without its newline; ok is false, and *b unchanged, if *b has no newline.
func nextLine(b *[]byte) (line string, ok bool) {
	before, after, ok := bytes.Cut(*b, []byte("\n"))
	if !ok {
		return "", false
	}
	*b = after
	return string(before), true
}

// VerifyProofBundle checks that the bundle's checkpoint is signed by the
// log, named origin, with verifier v, and that leafHash (the RFC 6962 leaf
// hash of the entry) is at p.Index in the checkpoint's tree. It returns the
// checkpoint.
//
// Witness cosignatures are not checked here: open the checkpoint against
// the witness policy for that.
func VerifyProofBundle(p ProofBundle, leafHash []byte, origin string, v note.Verifier) (Checkpoint, error) {
	c, _, err := OpenCheckpoint(p.Checkpoint, origin, v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("couldn't verify proof bundle: %w", err)
	}
	if len(leafHash) != HashSize {
		return Checkpoint{}, fmt.Errorf("couldn't verify proof bundle: leaf hash is %d bytes, want %d", len(leafHash), HashSize)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, c.Size, leafHash, p.Hashes, c.Hash[:]); err != nil {
		return Checkpoint{}, fmt.Errorf("couldn't verify inclusion proof of index %d in tree of size %d: %w: %w", p.Index, c.Size, ErrInvalidProofBundle, err)
	}
	return c, nil
}
