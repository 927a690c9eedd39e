package api

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// ErrInvalidCheckpoint is wrapped by the errors for checkpoints that are
// malformed, as opposed to well formed but not signed by the log.
var ErrInvalidCheckpoint = errors.New("invalid checkpoint")

// Checkpoint is the body of a c2sp.org/tlog-checkpoint: the note text that
// the log and its witnesses sign, without the signatures.
type Checkpoint struct {
	// Origin names the log. It is non-empty and is also the name of the
	// log's signing key.
	Origin string
	// Size is the number of entries in the tree.
	Size uint64
	// Hash is the RFC 6962 Merkle tree hash of the tree's first Size
	// entries.
	Hash [HashSize]byte
	// Extensions are optional, opaque, non-empty lines after the hash.
	Extensions []string
}

// Marshal returns the checkpoint's note text: origin, size and base64 root
// hash, then the extension lines, each line ending in a newline.
//
// Marshal does not check c; ParseCheckpoint rejects the result if a field
// is empty where it must not be, or contains a newline.
func (c Checkpoint) Marshal() []byte {
	b := make([]byte, 0, len(c.Origin)+80)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Hash[:])
	b = append(b, '\n')
	for _, e := range c.Extensions {
		b = append(b, e...)
		b = append(b, '\n')
	}
	return b
}

// check reports whether c can be marshaled into a checkpoint that parses
// back to c.
func (c Checkpoint) check() error {
	if c.Origin == "" {
		return fmt.Errorf("%w: empty origin", ErrInvalidCheckpoint)
	}
	if strings.Contains(c.Origin, "\n") {
		return fmt.Errorf("%w: origin contains a newline", ErrInvalidCheckpoint)
	}
	for i, e := range c.Extensions {
		if e == "" || strings.Contains(e, "\n") {
			return fmt.Errorf("%w: extension line %d is empty or contains a newline", ErrInvalidCheckpoint, i)
		}
	}
	return nil
}

// ParseCheckpoint parses checkpoint note text, as returned by
// Checkpoint.Marshal or found in note.Note.Text. It is strict: the text ends
// in a newline; the origin is non-empty; the size is decimal with no leading
// zeroes (unless it is "0"); the root hash is the canonical standard base64
// of 32 bytes; extension lines are non-empty.
//
// Every error wraps ErrInvalidCheckpoint.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	body, ok := bytes.CutSuffix(text, []byte("\n"))
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: text does not end in a newline", ErrInvalidCheckpoint)
	}
	lines := strings.Split(string(body), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines, want at least 3", ErrInvalidCheckpoint, len(lines))
	}
	c := Checkpoint{Origin: lines[0]}
	if c.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrInvalidCheckpoint)
	}
	size, ok := parseDecimal(lines[1])
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: malformed size %q", ErrInvalidCheckpoint, lines[1])
	}
	c.Size = size
	hash, ok := parseHash(lines[2])
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: malformed root hash %q", ErrInvalidCheckpoint, lines[2])
	}
	c.Hash = hash
	if len(lines) > 3 {
		c.Extensions = lines[3:]
		for i, e := range c.Extensions {
			if e == "" {
				return Checkpoint{}, fmt.Errorf("%w: extension line %d is empty", ErrInvalidCheckpoint, i)
			}
		}
	}
	return c, nil
}

// parseDecimal parses an unsigned decimal with no sign and no leading
// zeroes, as strconv.FormatUint formats it.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// ParseHash parses a SHA-256 hash as clients give one: 64 hex digits, or
// standard or URL base64.
func ParseHash(s string) ([]byte, error) {
	var b []byte
	var err error
	switch len(s) {
	case 2 * HashSize:
		b, err = hex.DecodeString(s)
	case base64.StdEncoding.EncodedLen(HashSize):
		if b, err = base64.StdEncoding.DecodeString(s); err != nil {
			b, err = base64.URLEncoding.DecodeString(s)
		}
	default:
		err = errors.New("wrong length")
	}
	if err != nil || len(b) != HashSize {
		return nil, fmt.Errorf("%q is not a SHA-256 hash in hex or base64", s)
	}
	return b, nil
}

// parseHash parses the canonical standard base64 encoding of a hash.
func parseHash(s string) ([HashSize]byte, bool) {
	// The decoder skips newlines and does not insist on zero padding bits,
	// so check the encoding is canonical by its length and by re-encoding.
	if len(s) != base64.StdEncoding.EncodedLen(HashSize) {
		return [HashSize]byte{}, false
	}
	// Decode needs room for the longest decoding of s (unpadded, 33 bytes),
	// not just for the 32 bytes of a valid hash.
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(buf, []byte(s))
	if err != nil || n != HashSize || base64.StdEncoding.EncodeToString(buf[:n]) != s {
		return [HashSize]byte{}, false
	}
	return [HashSize]byte(buf[:n]), true
}

// SignCheckpoint signs the checkpoint with the log's key and returns the
// signed note. The signer's name must be the checkpoint's origin.
func SignCheckpoint(c Checkpoint, signer note.Signer) ([]byte, error) {
	if signer.Name() != c.Origin {
		return nil, fmt.Errorf("couldn't sign checkpoint: signer name %q is not the origin %q", signer.Name(), c.Origin)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w", err)
	}
	signed, err := note.Sign(&note.Note{Text: string(c.Marshal())}, signer)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w", err)
	}
	return signed, nil
}

// openNote opens a signed checkpoint note with verifiers. A note without a
// valid signature by one of them, or with a signature line by one of them
// that fails to verify, gives an error wrapping note.Open's
// *note.UnverifiedNoteError or *note.InvalidSignatureError; any other
// failure, an error wrapping ErrInvalidCheckpoint.
//
// It is stricter than note.Open, which verifies only the first line of
// each known key (name and key ID) and drops the key's later lines
// unchecked: openNote verifies those too, so that a bad line under a
// known key fails the note whether it comes before or after a good one.
func openNote(signed []byte, verifiers note.Verifiers) (*note.Note, error) {
	n, err := note.Open(signed, verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fmt.Errorf("couldn't verify checkpoint signature: %w", err)
		}
		return nil, fmt.Errorf("couldn't open checkpoint: %w: %w", ErrInvalidCheckpoint, err)
	}
	if err := verifyRepeatedSignatures(signed, n, verifiers); err != nil {
		return nil, fmt.Errorf("couldn't verify checkpoint signature: %w", err)
	}
	return n, nil
}

// verifyRepeatedSignatures verifies the signature lines of signed, which
// note.Open opened as n, that note.Open skipped: a known key's lines after
// its first. Every such key is in n.Sigs, since note.Open verified its
// first line; the lines of other keys are left alone.
//
// A line whose signature bytes are those of a line already verified under
// the same key is not verified again: the same bytes verify the same way.
// That includes the same signature in another base64 encoding (with
// non-zero padding bits, which the decoder accepts), so such a line counts
// as valid.
//
// A line that fails gives a *note.InvalidSignatureError.
func verifyRepeatedSignatures(signed []byte, n *note.Note, verifiers note.Verifiers) error {
	// note.Open splits text and signatures at the last empty line, and
	// keeps every line it does not drop in Sigs or UnverifiedSigs.
	text, block := signed[:len(n.Text)], signed[len(n.Text)+1:]
	if bytes.Count(block, []byte("\n")) == len(n.Sigs)+len(n.UnverifiedSigs) {
		return nil
	}
	type signature struct {
		name string
		hash uint32
		sig  string
	}
	verified := make(map[signature]bool, len(n.Sigs))
	for _, s := range n.Sigs {
		raw, err := base64.StdEncoding.DecodeString(s.Base64)
		if err != nil || len(raw) < 5 {
			return fmt.Errorf("%w: signature by %q is not base64", ErrInvalidCheckpoint, s.Name)
		}
		verified[signature{s.Name, s.Hash, string(raw[4:])}] = true
	}
	for i := 0; len(block) > 0; i++ {
		line, rest, _ := bytes.Cut(block, []byte("\n"))
		block = rest
		// note.Open checked the form of every line.
		name, b64, _ := strings.Cut(strings.TrimPrefix(string(line), signatureLinePrefix), " ")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) < 5 {
			return fmt.Errorf("%w: signature line %d is not base64", ErrInvalidCheckpoint, i)
		}
		s := signature{name, binary.BigEndian.Uint32(raw), string(raw[4:])}
		if verified[s] || !slices.ContainsFunc(n.Sigs, func(v note.Signature) bool { return v.Name == s.name && v.Hash == s.hash }) {
			// Already verified, or by a key unknown to verifiers.
			continue
		}
		v, err := verifiers.Verifier(s.name, s.hash)
		if err != nil {
			return fmt.Errorf("signature line %d: %w", i, err)
		}
		if !v.Verify(text, raw[4:]) {
			return fmt.Errorf("signature line %d: %w", i, &note.InvalidSignatureError{Name: s.name, Hash: s.hash})
		}
		verified[s] = true
	}
	return nil
}

// OpenCheckpoint verifies that a signed checkpoint carries a valid signature
// by the log, whose verifier v must be named origin, and parses it. The
// checkpoint's origin must match too.
//
// Signatures by other keys, such as witness cosignatures, are allowed and
// left unverified: they are in the returned note's UnverifiedSigs, for the
// caller to check against its own policy.
//
// A note that is malformed, or whose text is not a valid checkpoint for
// origin, gives an error wrapping ErrInvalidCheckpoint. A well-formed note
// without a valid log signature, or with any signature line under the
// log's key (its name and key ID) that fails to verify, before or after a
// valid one, gives an error wrapping *note.UnverifiedNoteError or
// *note.InvalidSignatureError, and not ErrInvalidCheckpoint. A line that
// repeats the log's valid signature, in the same or another base64
// encoding of the same bytes, is valid.
func OpenCheckpoint(signed []byte, origin string, v note.Verifier) (Checkpoint, *note.Note, error) {
	if v.Name() != origin {
		return Checkpoint{}, nil, fmt.Errorf("couldn't open checkpoint: verifier name %q is not the origin %q", v.Name(), origin)
	}
	n, err := openNote(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	// Only v is known to note.Open, so any verified signature is the log's;
	// check anyway rather than rely on it.
	logSigned := false
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			logSigned = true
		}
	}
	if !logSigned {
		return Checkpoint{}, nil, fmt.Errorf("couldn't verify checkpoint signature: %w", &note.UnverifiedNoteError{Note: n})
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("couldn't parse checkpoint: %w", err)
	}
	if c.Origin != origin {
		return Checkpoint{}, nil, fmt.Errorf("couldn't open checkpoint: %w: origin %q, want %q", ErrInvalidCheckpoint, c.Origin, origin)
	}
	return c, n, nil
}
