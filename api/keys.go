package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"golang.org/x/mod/sumdb/note"
)

// VerifierKey returns the signed-note verifier key
// (name+hex(id)+base64(type‖key)) of an Ed25519 signed-note private key
// (PRIVATE+KEY+name+hex(id)+base64(type‖seed)), as note.GenerateKey writes
// them.
func VerifierKey(skey string) (string, error) {
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a signed-note private key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errors.New("not an Ed25519 signed-note private key")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("couldn't make the verifier key: %w", err)
	}
	return vkey, nil
}

// publicKey is a public key of an entry, parsed and checked, with the
// encodings entries use. It is shared through publicKeyCache: nothing may
// modify it or what it points to.
type publicKey struct {
	pub crypto.PublicKey
	// der is the canonical PKIX DER encoding.
	der []byte
	// pemJSON is the canonical PEM encoding of der as a JSON string, as it
	// appears in canonical entries.
	pemJSON []byte
	// fingerprint is keyFingerprint(der).
	fingerprint string
	// ed25519 is an Ed25519 key decompressed, with its precomputed table,
	// for verifyEd25519; nil for other keys and for Ed25519 keys that are
	// not points of the curve (no signature verifies with those).
	ed25519 *voi.ExpandedPublicKey
}

// Parsed public keys are cached by their exact PEM text: parsing is a pure
// function of it, so a hit gives what parsing would, and the same keys
// (a build system's) come back all the time. Only keys that parse and pass
// the checks are cached, and only short PEM texts (whitespace around the
// block is allowed, so PEM texts can be long), so the cache holds at most
// publicKeyCacheSize keys of at most maxCachedPEMSize bytes, a few MB.
const (
	publicKeyCacheSize = 1024
	maxCachedPEMSize   = 2048 // an RSA-8192 key takes about 1,500
)

var publicKeyCache = func() *lru.Cache[string, *publicKey] {
	c, err := lru.New[string, *publicKey](publicKeyCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return c
}()

// parsePublicKey parses the i-th public key of an entry, a PKIX "PUBLIC
// KEY" PEM block, and checks that its type and size are accepted.
func parsePublicKey(i int, s string) (*publicKey, error) {
	if k, ok := publicKeyCache.Get(s); ok {
		return k, nil
	}
	k, err := parsePublicKeyUncached(i, s)
	if err != nil {
		return nil, err
	}
	if len(s) <= maxCachedPEMSize {
		publicKeyCache.Add(s, k)
	}
	return k, nil
}

func parsePublicKeyUncached(i int, s string) (*publicKey, error) {
	if !strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "-----BEGIN ") {
		return nil, entryErrorf("public key %d is not a PEM block", i)
	}
	block, rest := pem.Decode([]byte(s))
	switch {
	case block == nil:
		return nil, entryErrorf("public key %d is not a PEM block", i)
	case block.Type != "PUBLIC KEY":
		return nil, entryErrorf("public key %d is a PEM %.40q block, want \"PUBLIC KEY\"", i, block.Type)
	case len(block.Headers) != 0:
		return nil, entryErrorf("public key %d has PEM headers", i)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, entryErrorf("public key %d has data after its PEM block", i)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, &EntryError{Reason: fmt.Sprintf("public key %d is not a PKIX public key", i), Err: err}
	}
	switch pub := pub.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
			return nil, entryErrorf("public key %d is ECDSA on curve %s, want P-256 or P-384", i, pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, entryErrorf("public key %d is RSA with %d bits, want %d to %d", i, bits, minRSABits, maxRSABits)
		}
	default:
		return nil, entryErrorf("public key %d is a %T, want Ed25519, ECDSA P-256 or P-384, or RSA", i, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, &EntryError{Reason: fmt.Sprintf("couldn't re-encode public key %d", i), Err: err}
	}
	k := &publicKey{
		pub:         pub,
		der:         der,
		pemJSON:     appendJSONString(nil, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))),
		fingerprint: keyFingerprint(der),
	}
	if pub, ok := pub.(ed25519.PublicKey); ok {
		// An error means pub is not a point: k.ed25519 stays nil and every
		// signature fails, as with ed25519.Verify.
		k.ed25519, _ = voi.NewExpandedPublicKey(voi.PublicKey(pub))
	}
	return k, nil
}

// ed25519StdLib verifies Ed25519 signatures by exactly the rules of
// crypto/ed25519: cofactorless, S canonical, R compared by its canonical
// encoding, small-order and non-canonically encoded keys allowed.
// TestEd25519SameAsStdLib and FuzzEd25519SameAsStdLib hold it to that.
var ed25519StdLib = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// verifyEd25519 reports whether sig is k's Ed25519 signature of msg. It
// gives what ed25519.Verify gives, in about half the time: k's point is
// decompressed once, with a table for the multiplication, and kept in
// publicKeyCache with k, and the curve arithmetic is vectorised where the
// CPU can.
func verifyEd25519(k *publicKey, msg, sig []byte) bool {
	return k.ed25519 != nil && voi.VerifyExpandedWithOptions(k.ed25519, msg, sig, ed25519StdLib)
}

// keyFingerprint returns "sha256:<hex>" of a key's PKIX DER encoding.
func keyFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(h[:])
}
