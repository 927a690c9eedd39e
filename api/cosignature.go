package api

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// ErrInvalidCosignature is wrapped by the errors for cosigner keys and
// cosignatures that are malformed, as opposed to well formed but not
// verifying.
var ErrInvalidCosignature = errors.New("invalid cosignature")

// Signature type identifier bytes of c2sp.org/signed-note keys.
const (
	// sigTypeEd25519 is a plain Ed25519 note signature, used by logs.
	sigTypeEd25519 = 0x01
	// sigTypeCosignatureV1 is a timestamped Ed25519 checkpoint
	// cosignature (c2sp.org/tlog-cosignature), used by witnesses.
	sigTypeCosignatureV1 = 0x04
)

// CosignatureSize is the size of a cosignature/v1 signature as
// note.Signer.Sign returns it, without the 4-byte key ID that a note
// signature line puts in front: a big-endian uint64 timestamp then a
// 64-byte Ed25519 signature.
const CosignatureSize = 8 + ed25519.SignatureSize

// cosignatureHeader is the first line of every cosignature/v1 signed
// message, for domain separation.
const cosignatureHeader = "cosignature/v1\n"

// keyID returns the signed-note key ID of a key: the first four bytes,
// big-endian, of SHA-256(name ‖ 0x0A ‖ type ‖ public key).
func keyID(name string, typ byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', typ})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// isValidKeyName reports whether name can name a signed-note key: it is
// non-empty UTF-8 with no Unicode spaces, no plus signs, and (so that the
// note stays valid) no control characters.
func isValidKeyName(name string) bool {
	if name == "" || !utf8.ValidString(name) || strings.Contains(name, "+") {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r < 0x20 }) < 0
}

// decodeCanonicalBase64 decodes s, which must be the canonical, padded
// standard base64 encoding of a non-empty string: the decoder accepts
// non-zero padding bits and skips newlines, which would give one value
// several encodings.
func decodeCanonicalBase64(s string) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 || base64.StdEncoding.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// noteKey is a parsed signed-note key, verifier or private.
type noteKey struct {
	name string
	id   uint32
	typ  byte
	key  []byte // public key, or private key material, after the type byte
}

// parseNoteKey parses the name+hex(id)+base64(type‖key) form of a
// signed-note verifier key, or the same after "PRIVATE+KEY+" if private.
// It is strict: the name is a valid key name, the ID is eight lowercase
// hex digits, and the key is canonical standard base64. It does not check
// the ID against the key, which depends on the key type.
func parseNoteKey(s string, private bool) (noteKey, error) {
	what := "verifier key"
	if private {
		what = "private key"
		rest, ok := strings.CutPrefix(s, "PRIVATE+KEY+")
		if !ok {
			return noteKey{}, fmt.Errorf("%s does not start with PRIVATE+KEY+", what)
		}
		s = rest
	}
	// The name has no plus signs and the ID is hex, but the base64 of the
	// key may have some.
	parts := strings.SplitN(s, "+", 3)
	if len(parts) != 3 {
		return noteKey{}, fmt.Errorf("%s does not have the form name+id+key", what)
	}
	name, id16, key64 := parts[0], parts[1], parts[2]
	if !isValidKeyName(name) {
		return noteKey{}, fmt.Errorf("%s has an invalid name %q", what, name)
	}
	if len(id16) != 8 || strings.ToLower(id16) != id16 {
		return noteKey{}, fmt.Errorf("%s ID %q is not 8 lowercase hex digits", what, id16)
	}
	idBytes, err := hex.DecodeString(id16)
	if err != nil {
		return noteKey{}, fmt.Errorf("%s ID %q is not 8 lowercase hex digits", what, id16)
	}
	key, ok := decodeCanonicalBase64(key64)
	if !ok {
		return noteKey{}, fmt.Errorf("%s material is not canonical base64", what)
	}
	return noteKey{name: name, id: binary.BigEndian.Uint32(idBytes), typ: key[0], key: key[1:]}, nil
}

// formatNoteKey is the inverse of parseNoteKey for a verifier key.
func formatNoteKey(name string, id uint32, typ byte, key []byte) string {
	return fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{typ}, key...)))
}

// GenerateCosignerKey generates a c2sp.org/tlog-cosignature Ed25519
// (cosignature/v1) key pair for a cosigner named name, reading randomness
// from rand.
//
// The verifier key vkey is the c2sp.org/signed-note vkey
// name+hex(id)+base64(0x04 ‖ public key), where the key ID is the first
// four bytes of SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key). The private key
// skey, which must be kept secret, is
// PRIVATE+KEY+name+hex(id)+base64(0x04 ‖ 32-byte Ed25519 seed), the layout
// note.GenerateKey uses for Ed25519 note keys but with type 0x04.
func GenerateCosignerKey(rand io.Reader, name string) (skey, vkey string, err error) {
	if !isValidKeyName(name) {
		return "", "", fmt.Errorf("couldn't generate cosigner key: %w: invalid key name %q", ErrInvalidCosignature, name)
	}
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return "", "", fmt.Errorf("couldn't generate cosigner key: %w", err)
	}
	id := keyID(name, sigTypeCosignatureV1, pub)
	vkey = formatNoteKey(name, id, sigTypeCosignatureV1, pub)
	skey = "PRIVATE+KEY+" + formatNoteKey(name, id, sigTypeCosignatureV1, priv.Seed())
	return skey, vkey, nil
}

// cosignedMessage returns the message that a cosignature/v1 signature with
// timestamp ts signs over the checkpoint note text body.
func cosignedMessage(ts uint64, body []byte) []byte {
	m := make([]byte, 0, len(cosignatureHeader)+26+len(body))
	m = append(m, cosignatureHeader...)
	m = append(m, "time "...)
	m = strconv.AppendUint(m, ts, 10)
	m = append(m, '\n')
	return append(m, body...)
}

// validCosignatureTime reports whether ts is a timestamp a cosignature may
// carry: not above 2^63-1, as c2sp.org/tlog-cosignature requires, and not
// zero, which c2sp.org/tlog-witness forbids and which would claim nothing
// about the time of signing.
func validCosignatureTime(ts uint64) bool {
	return ts != 0 && ts <= math.MaxInt64
}

// Cosigner is a c2sp.org/tlog-cosignature cosignature/v1 signer: a
// note.Signer that witnesses use to cosign checkpoints, with note.Sign or
// NoteSignature.
type Cosigner struct {
	name string
	id   uint32
	key  ed25519.PrivateKey
	now  func() time.Time
}

var _ note.Signer = (*Cosigner)(nil)

// NewCosigner returns the Cosigner for a private key made by
// GenerateCosignerKey. It timestamps cosignatures with now, or with
// time.Now if now is nil.
//
// Errors for malformed keys wrap ErrInvalidCosignature.
func NewCosigner(skey string, now func() time.Time) (*Cosigner, error) {
	k, err := parseNoteKey(skey, true)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse cosigner key: %w: %w", ErrInvalidCosignature, err)
	}
	if k.typ != sigTypeCosignatureV1 {
		return nil, fmt.Errorf("couldn't parse cosigner key: %w: key type 0x%02x, want 0x%02x (cosignature/v1)", ErrInvalidCosignature, k.typ, sigTypeCosignatureV1)
	}
	if len(k.key) != ed25519.SeedSize {
		return nil, fmt.Errorf("couldn't parse cosigner key: %w: seed is %d bytes, want %d", ErrInvalidCosignature, len(k.key), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(k.key)
	if id := keyID(k.name, sigTypeCosignatureV1, priv.Public().(ed25519.PublicKey)); id != k.id {
		return nil, fmt.Errorf("couldn't parse cosigner key: %w: key ID %08x does not match the key (%08x)", ErrInvalidCosignature, k.id, id)
	}
	if now == nil {
		now = time.Now
	}
	return &Cosigner{name: k.name, id: k.id, key: priv, now: now}, nil
}

// Name returns the cosigner's key name.
func (s *Cosigner) Name() string { return s.name }

// KeyHash returns the cosigner's key ID.
func (s *Cosigner) KeyHash() uint32 { return s.id }

// VerifierKey returns the cosigner's verifier key, as GenerateCosignerKey
// returned it.
func (s *Cosigner) VerifierKey() string {
	return formatNoteKey(s.name, s.id, sigTypeCosignatureV1, s.key.Public().(ed25519.PublicKey))
}

// Verifier returns the verifier of the cosigner's signatures.
func (s *Cosigner) Verifier() *CosignatureVerifier {
	return &CosignatureVerifier{name: s.name, id: s.id, key: s.key.Public().(ed25519.PublicKey)}
}

// Sign cosigns msg, the note text of a checkpoint (c2sp.org/tlog-checkpoint),
// at the current time. It returns the CosignatureSize-byte cosignature: the
// timestamp in Unix seconds as a big-endian uint64, then the Ed25519
// signature of "cosignature/v1\ntime <timestamp>\n" followed by msg.
//
// Sign refuses a msg that ParseCheckpoint rejects, so that a cosigner key
// signs nothing but checkpoints, and a clock before 1970-01-01T00:00:01Z,
// since a cosignature's timestamp must not be zero.
func (s *Cosigner) Sign(msg []byte) ([]byte, error) {
	if _, err := ParseCheckpoint(msg); err != nil {
		return nil, fmt.Errorf("couldn't cosign: %w", err)
	}
	secs := s.now().Unix()
	if secs <= 0 {
		return nil, fmt.Errorf("couldn't cosign: clock reads %d seconds since the epoch, want a positive time", secs)
	}
	ts := uint64(secs)
	sig := make([]byte, 8, CosignatureSize)
	binary.BigEndian.PutUint64(sig, ts)
	return append(sig, ed25519.Sign(s.key, cosignedMessage(ts, msg))...), nil
}

// CosignatureVerifier verifies c2sp.org/tlog-cosignature cosignature/v1
// signatures: it is the note.Verifier of a witness, for note.Open.
type CosignatureVerifier struct {
	name string
	id   uint32
	key  ed25519.PublicKey
}

var _ note.Verifier = (*CosignatureVerifier)(nil)

// NewCosignatureVerifier returns the verifier for a cosignature/v1 verifier
// key, name+hex(id)+base64(0x04 ‖ 32-byte Ed25519 public key), as
// GenerateCosignerKey returns it. The key ID must be the one
// c2sp.org/tlog-cosignature specifies for the name and key.
//
// Errors for malformed keys wrap ErrInvalidCosignature.
func NewCosignatureVerifier(vkey string) (*CosignatureVerifier, error) {
	k, err := parseNoteKey(vkey, false)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse cosignature verifier key: %w: %w", ErrInvalidCosignature, err)
	}
	return newCosignatureVerifier(k)
}

func newCosignatureVerifier(k noteKey) (*CosignatureVerifier, error) {
	if k.typ != sigTypeCosignatureV1 {
		return nil, fmt.Errorf("couldn't parse cosignature verifier key: %w: key type 0x%02x, want 0x%02x (cosignature/v1)", ErrInvalidCosignature, k.typ, sigTypeCosignatureV1)
	}
	if len(k.key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("couldn't parse cosignature verifier key: %w: public key is %d bytes, want %d", ErrInvalidCosignature, len(k.key), ed25519.PublicKeySize)
	}
	if id := keyID(k.name, sigTypeCosignatureV1, k.key); id != k.id {
		return nil, fmt.Errorf("couldn't parse cosignature verifier key: %w: key ID %08x does not match the key (%08x)", ErrInvalidCosignature, k.id, id)
	}
	return &CosignatureVerifier{name: k.name, id: k.id, key: ed25519.PublicKey(k.key)}, nil
}

// Name returns the cosigner's key name.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash returns the cosigner's key ID.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.id }

// VerifierKey returns the verifier key v was made from.
func (v *CosignatureVerifier) VerifierKey() string {
	return formatNoteKey(v.name, v.id, sigTypeCosignatureV1, v.key)
}

// Verify reports whether sig is a valid cosignature/v1 signature, as
// Cosigner.Sign returns it, of the note text msg: CosignatureSize bytes, a
// timestamp that is neither zero nor above 2^63-1, and an Ed25519 signature
// that verifies. It does not check the timestamp against the current time:
// see CosignatureTime.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != CosignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig)
	if !validCosignatureTime(ts) {
		return false
	}
	return ed25519.Verify(v.key, cosignedMessage(ts, msg), sig[8:])
}

// CosignatureTime returns the timestamp of a cosignature/v1 note signature,
// such as one of a note's Sigs verified by a CosignatureVerifier. It checks
// the signature's form (the key ID, then CosignatureSize bytes with a
// timestamp that is neither zero nor above 2^63-1) but not the signature
// itself.
//
// Errors wrap ErrInvalidCosignature.
func CosignatureTime(sig note.Signature) (time.Time, error) {
	raw, ok := decodeCanonicalBase64(sig.Base64)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: signature is not canonical base64", ErrInvalidCosignature)
	}
	if len(raw) != 4+CosignatureSize {
		return time.Time{}, fmt.Errorf("%w: signature is %d bytes with its key ID, want %d", ErrInvalidCosignature, len(raw), 4+CosignatureSize)
	}
	if id := binary.BigEndian.Uint32(raw); id != sig.Hash {
		return time.Time{}, fmt.Errorf("%w: signature key ID %08x does not match %08x", ErrInvalidCosignature, id, sig.Hash)
	}
	ts := binary.BigEndian.Uint64(raw[4:])
	if !validCosignatureTime(ts) {
		return time.Time{}, fmt.Errorf("%w: timestamp %d out of range", ErrInvalidCosignature, ts)
	}
	return time.Unix(int64(ts), 0), nil
}

// NewNoteVerifier returns a note.Verifier for a signed-note verifier key of
// either type Candor uses: Ed25519 (0x01, logs; see note.NewVerifier) or
// cosignature/v1 (0x04, witnesses; see NewCosignatureVerifier). It is
// stricter than note.NewVerifier: the key ID must be lowercase hex and the
// key canonical base64.
//
// Errors for malformed keys and other key types wrap ErrInvalidCosignature.
func NewNoteVerifier(vkey string) (note.Verifier, error) {
	k, err := parseNoteKey(vkey, false)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse verifier key: %w: %w", ErrInvalidCosignature, err)
	}
	switch k.typ {
	case sigTypeEd25519:
		return newEd25519Verifier(vkey, k)
	case sigTypeCosignatureV1:
		return newCosignatureVerifier(k)
	default:
		return nil, fmt.Errorf("couldn't parse verifier key: %w: unsupported key type 0x%02x", ErrInvalidCosignature, k.typ)
	}
}

// newEd25519Verifier returns the note.Verifier of vkey, a type 0x01 key
// that parses as k.
func newEd25519Verifier(vkey string, k noteKey) (note.Verifier, error) {
	if len(k.key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("couldn't parse verifier key: %w: Ed25519 public key is %d bytes, want %d", ErrInvalidCosignature, len(k.key), ed25519.PublicKeySize)
	}
	if id := keyID(k.name, sigTypeEd25519, k.key); id != k.id {
		return nil, fmt.Errorf("couldn't parse verifier key: %w: key ID %08x does not match the key (%08x)", ErrInvalidCosignature, k.id, id)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse verifier key: %w: %w", ErrInvalidCosignature, err)
	}
	return v, nil
}
