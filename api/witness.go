package api

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// ErrInvalidAddCheckpoint is wrapped by the errors for c2sp.org/tlog-witness
// add-checkpoint request bodies that are malformed: a witness answers them
// with 400 Bad Request.
var ErrInvalidAddCheckpoint = errors.New("invalid add-checkpoint request")

// ErrInvalidWitnessResponse is wrapped by the errors for c2sp.org/tlog-witness
// response bodies that are malformed: the size in a 409 Conflict, the
// cosignature lines of a 200.
var ErrInvalidWitnessResponse = errors.New("invalid witness response")

// TlogSizeContentType is the Content-Type of a witness's 409 Conflict
// response to add-checkpoint, whose body is MarshalTlogSize of the size of
// the latest checkpoint the witness cosigned.
const TlogSizeContentType = "text/x.tlog.size"

// maxNoteSignatures is the most signatures golang.org/x/mod/sumdb/note
// opens in one note; c2sp.org/signed-note requires at least 16.
const maxNoteSignatures = 100

// signatureLinePrefix starts every signature line of a signed note: an em
// dash (U+2014) and a space.
const signatureLinePrefix = "— "

// AddCheckpointRequest is the body of a c2sp.org/tlog-witness
// add-checkpoint request.
type AddCheckpointRequest struct {
	// OldSize is the size of the checkpoint the client believes the witness
	// last cosigned for the log, or zero.
	OldSize uint64
	// Proof is the RFC 6962 consistency proof from OldSize to the
	// checkpoint's size: at most 63 hashes of HashSize bytes, none if
	// OldSize is zero.
	Proof [][]byte
	// Checkpoint is the signed checkpoint note, verbatim.
	Checkpoint []byte
}

// Marshal encodes the request: "old <OldSize>", one base64 line per proof
// hash, an empty line, then the checkpoint.
//
// Marshal does not check r; ParseAddCheckpointRequest rejects the result if
// a proof hash is not HashSize bytes, there are more than 63, or the
// checkpoint is empty.
func (r AddCheckpointRequest) Marshal() []byte {
	b := make([]byte, 0, 26+len(r.Proof)*45+len(r.Checkpoint))
	b = append(b, "old "...)
	b = strconv.AppendUint(b, r.OldSize, 10)
	b = append(b, '\n')
	for _, h := range r.Proof {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, r.Checkpoint...)
}

// ParseAddCheckpointRequest parses an add-checkpoint request body, as
// produced by Marshal. It is strict: an "old" line, decimal with no leading
// zeroes; at most 63 proof lines, each the canonical standard base64 of
// HashSize bytes; an empty line; then the signed checkpoint, taken verbatim
// and required to be non-empty.
//
// The checkpoint is not opened here, and the rules that are not about the
// encoding are left to the witness, which answers them with other status
// codes than 400: that the old size is at most the checkpoint's (400 too),
// that the proof is empty when the old size is zero (422), and so on.
// Bound the body's size before calling.
//
// Every error wraps ErrInvalidAddCheckpoint.
func ParseAddCheckpointRequest(body []byte) (AddCheckpointRequest, error) {
	var r AddCheckpointRequest
	rest := body
	line, ok := nextLine(&rest)
	if !ok {
		return AddCheckpointRequest{}, fmt.Errorf("%w: missing old size line", ErrInvalidAddCheckpoint)
	}
	old, ok := strings.CutPrefix(line, "old ")
	if !ok {
		return AddCheckpointRequest{}, fmt.Errorf("%w: first line is not an old size line", ErrInvalidAddCheckpoint)
	}
	if r.OldSize, ok = parseDecimal(old); !ok {
		return AddCheckpointRequest{}, fmt.Errorf("%w: malformed old size %q", ErrInvalidAddCheckpoint, old)
	}
	for {
		line, ok = nextLine(&rest)
		if !ok {
			return AddCheckpointRequest{}, fmt.Errorf("%w: missing empty line before the checkpoint", ErrInvalidAddCheckpoint)
		}
		if line == "" {
			break
		}
		if len(r.Proof) == maxProofHashes {
			return AddCheckpointRequest{}, fmt.Errorf("%w: more than %d proof hashes", ErrInvalidAddCheckpoint, maxProofHashes)
		}
		h, ok := parseHash(line)
		if !ok {
			return AddCheckpointRequest{}, fmt.Errorf("%w: malformed proof hash %d", ErrInvalidAddCheckpoint, len(r.Proof))
		}
		r.Proof = append(r.Proof, h[:])
	}
	if len(rest) == 0 {
		return AddCheckpointRequest{}, fmt.Errorf("%w: missing checkpoint", ErrInvalidAddCheckpoint)
	}
	r.Checkpoint = bytes.Clone(rest)
	return r, nil
}

// MarshalTlogSize returns the body of a witness's 409 Conflict response to
// add-checkpoint: size in decimal and a newline.
func MarshalTlogSize(size uint64) []byte {
	return append(strconv.AppendUint(make([]byte, 0, 21), size, 10), '\n')
}

// ParseTlogSize parses the body of a 409 Conflict response, as
// MarshalTlogSize returns it: a decimal with no leading zeroes and a newline.
//
// Every error wraps ErrInvalidWitnessResponse.
func ParseTlogSize(body []byte) (uint64, error) {
	s, ok := bytes.CutSuffix(body, []byte("\n"))
	if !ok {
		return 0, fmt.Errorf("%w: size does not end in a newline", ErrInvalidWitnessResponse)
	}
	size, ok := parseDecimal(string(s))
	if !ok {
		return 0, fmt.Errorf("%w: malformed size %q", ErrInvalidWitnessResponse, s)
	}
	return size, nil
}

// checkNoteChars checks that b is valid UTF-8 with no control characters
// but newlines, as note.Open requires of a whole signed note.
func checkNoteChars(b []byte) error {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("invalid UTF-8 at byte %d", i)
		}
		if r < 0x20 && r != '\n' {
			return fmt.Errorf("control character %#02x at byte %d", r, i)
		}
		i += size
	}
	return nil
}

// parseSignatureLine parses a note signature line without its newline:
// "— <key name> <base64(key ID ‖ signature)>". The name must be a valid
// key name and the base64 canonical, of at least five bytes.
func parseSignatureLine(line string) (note.Signature, error) {
	rest, ok := strings.CutPrefix(line, signatureLinePrefix)
	if !ok {
		return note.Signature{}, errors.New("signature line does not start with an em dash and a space")
	}
	name, b64, ok := strings.Cut(rest, " ")
	if !ok || !isValidKeyName(name) {
		return note.Signature{}, fmt.Errorf("signature line has an invalid key name %q", name)
	}
	raw, ok := decodeCanonicalBase64(b64)
	if !ok || len(raw) < 5 {
		return note.Signature{}, fmt.Errorf("signature by %q is not the canonical base64 of a key ID and a signature", name)
	}
	return note.Signature{Name: name, Hash: binary.BigEndian.Uint32(raw), Base64: b64}, nil
}

// parseSignatureLines parses newline-terminated signature lines, at least
// one and at most maxNoteSignatures.
func parseSignatureLines(b []byte) ([]note.Signature, error) {
	if len(b) == 0 {
		return nil, errors.New("no signature lines")
	}
	if b[len(b)-1] != '\n' {
		return nil, errors.New("signature lines do not end in a newline")
	}
	if n := bytes.Count(b, []byte("\n")); n > maxNoteSignatures {
		return nil, fmt.Errorf("%d signature lines, want at most %d", n, maxNoteSignatures)
	}
	if err := checkNoteChars(b); err != nil {
		return nil, err
	}
	var sigs []note.Signature
	for len(b) > 0 {
		line, _ := nextLine(&b)
		s, err := parseSignatureLine(line)
		if err != nil {
			return nil, fmt.Errorf("signature line %d: %w", len(sigs), err)
		}
		sigs = append(sigs, s)
	}
	return sigs, nil
}

// ParseCosignatureLines parses the body of a witness's 200 response to
// add-checkpoint: one or more note signature lines, each "— ", a key name,
// a space, the base64 of the key ID and signature, and a newline. It is
// strict, so that a line parses back to the same bytes with
// MarshalCosignatureLines: the key name is valid for a signed-note key, the
// base64 is canonical standard base64 of at least five bytes, there are no
// control characters, and there are at most 100 lines (the most note.Open
// accepts in a note).
//
// The lines are not verified, and may be by any key: c2sp.org/tlog-witness
// has clients ignore the ones from unknown keys. Verify the ones from known
// keys, for example by appending them to the checkpoint with
// AppendSignatures and opening the result with note.Open.
//
// Every error wraps ErrInvalidWitnessResponse.
func ParseCosignatureLines(body []byte) ([]note.Signature, error) {
	sigs, err := parseSignatureLines(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWitnessResponse, err)
	}
	return sigs, nil
}

// MarshalCosignatureLines encodes signatures as note signature lines, the
// body of a witness's 200 response to add-checkpoint.
//
// MarshalCosignatureLines does not check sigs; ParseCosignatureLines
// rejects the result if a name is not a valid key name or a Base64 is not
// canonical.
func MarshalCosignatureLines(sigs []note.Signature) []byte {
	var b []byte
	for _, s := range sigs {
		b = appendSignatureLine(b, s)
	}
	return b
}

func appendSignatureLine(b []byte, s note.Signature) []byte {
	b = append(b, signatureLinePrefix...)
	b = append(b, s.Name...)
	b = append(b, ' ')
	b = append(b, s.Base64...)
	return append(b, '\n')
}

// NoteSignature signs text, a note's text, with s and returns the signature
// as a note line holds it, for MarshalCosignatureLines. It is what note.Sign
// would add to the note, without the note: a witness signs a checkpoint
// with its Cosigner and replies with the result.
func NoteSignature(s note.Signer, text []byte) (note.Signature, error) {
	if !isValidKeyName(s.Name()) {
		return note.Signature{}, fmt.Errorf("couldn't sign note: invalid key name %q", s.Name())
	}
	if !bytes.HasSuffix(text, []byte("\n")) {
		return note.Signature{}, errors.New("couldn't sign note: text does not end in a newline")
	}
	sig, err := s.Sign(text)
	if err != nil {
		return note.Signature{}, fmt.Errorf("couldn't sign note: %w", err)
	}
	raw := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(sig)), s.KeyHash())
	raw = append(raw, sig...)
	return note.Signature{Name: s.Name(), Hash: s.KeyHash(), Base64: base64.StdEncoding.EncodeToString(raw)}, nil
}

// splitSignedNote splits a signed note into its text, which ends in a
// newline, and its signatures, by the rules of note.Open: the text and the
// signatures are separated by the last empty line. Signature lines must be
// strictly well formed, as for ParseCosignatureLines.
func splitSignedNote(signed []byte) (text []byte, sigs []note.Signature, err error) {
	if err := checkNoteChars(signed); err != nil {
		return nil, nil, err
	}
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return nil, nil, errors.New("no empty line before the signatures")
	}
	sigs, err = parseSignatureLines(signed[i+2:])
	if err != nil {
		return nil, nil, err
	}
	return signed[:i+1], sigs, nil
}

// CheckpointBody returns the text of a signed note, such as a signed
// checkpoint: everything before the empty line that precedes the signature
// lines, including the text's final newline. It checks the note's form (as
// note.Open does, but with the stricter signature lines of
// ParseCosignatureLines) but not its signatures.
//
// Errors wrap ErrInvalidCheckpoint.
func CheckpointBody(signed []byte) ([]byte, error) {
	text, _, err := splitSignedNote(signed)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed signed note: %w", ErrInvalidCheckpoint, err)
	}
	return bytes.Clone(text), nil
}

// AppendSignatures returns the signed note with the signature lines of
// lines (as ParseCosignatureLines parses them) added after its own, so that
// a log can add witness cosignatures to its checkpoint. The note's text is
// kept as it is.
//
// A note holds at most one signature per key, its name and key ID: the
// note's signatures come first, then the new ones, and any line by a key
// that signed an earlier line is left out, identical or not. (note.Open
// only verifies a key's first signature in a note.) The result may hold at
// most 100 signatures.
//
// AppendSignatures does not verify the signatures. Verify new ones before
// adding them (for example with the witness's CosignatureVerifier on the
// note's text): note.Open rejects a whole note in which a known key's
// signature fails to verify.
//
// Errors about the signed note wrap ErrInvalidCheckpoint; those about lines
// or the number of signatures wrap ErrInvalidWitnessResponse.
func AppendSignatures(signed, lines []byte) ([]byte, error) {
	text, sigs, err := splitSignedNote(signed)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed signed note: %w", ErrInvalidCheckpoint, err)
	}
	added, err := ParseCosignatureLines(lines)
	if err != nil {
		return nil, err
	}
	type key struct {
		name string
		id   uint32
	}
	seen := make(map[key]bool, len(sigs)+len(added))
	out := make([]byte, 0, len(signed)+len(lines))
	out = append(out, text...)
	out = append(out, '\n')
	n := 0
	for _, s := range append(sigs, added...) {
		k := key{s.Name, s.Hash}
		if seen[k] {
			continue
		}
		seen[k] = true
		if n++; n > maxNoteSignatures {
			return nil, fmt.Errorf("%w: more than %d signatures", ErrInvalidWitnessResponse, maxNoteSignatures)
		}
		out = appendSignatureLine(out, s)
	}
	return out, nil
}
