package api

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// OpenPGP signatures of commits (the default gpg.format).
//
// git signs with gpg --detach-sign --armor and stores the armored
// signature in the commit. github.com/ProtonMail/go-crypto/openpgp parses
// the key (checking its self-signatures and subkey bindings) and verifies
// the signature, the signing key's flags, and the key's and the binding
// signatures' revocation and expiry as of a given time. The canonical key
// is the minimal one described in commit.go.

// openPGPKey is a parsed OpenPGP public key: one entity.
type openPGPKey struct {
	entity *openpgp.Entity
	fp     string
}

func (k *openPGPKey) format() string      { return signatureFormatOpenPGP }
func (k *openPGPKey) fingerprint() string { return k.fp }

// parseOpenPGPKey parses an armored OpenPGP public key holding one key.
func parseOpenPGPKey(s string) (*openPGPKey, error) {
	block, err := armor.Decode(strings.NewReader(s))
	if err != nil {
		return nil, &EntryError{Reason: "publicKey's OpenPGP armor is malformed or truncated", Err: err}
	}
	if block.Type != openpgp.PublicKeyType {
		return nil, entryErrorf("publicKey is an OpenPGP %.40q block, want %q", block.Type, openpgp.PublicKeyType)
	}
	el, err := openpgp.ReadKeyRing(block.Body)
	if err != nil {
		return nil, &EntryError{Reason: "publicKey is not a valid OpenPGP public key", Err: err}
	}
	if len(el) != 1 {
		return nil, entryErrorf("publicKey holds %d OpenPGP keys, want 1", len(el))
	}
	e := el[0]
	if e.PrivateKey != nil {
		return nil, entryErrorf("publicKey holds an OpenPGP private key")
	}
	return &openPGPKey{entity: e, fp: hex.EncodeToString(e.PrimaryKey.Fingerprint)}, nil
}

// verifyOpenPGPSig checks that armored is an OpenPGP detached signature
// over payload by k's primary key or a subkey flagged for signing, and
// returns k's canonical form. The signature is checked as of its creation
// time with the canonical key; if now is not zero (at admission), it is
// also checked as of now with the whole key, so that a key revoked or
// expired now is refused.
func verifyOpenPGPSig(k *openPGPKey, payload, armored []byte, now time.Time) (string, error) {
	sigBytes, sig, err := parseOpenPGPSig(armored)
	if err != nil {
		return "", err
	}
	id := *sig.IssuerKeyId
	el := openpgp.EntityList{k.entity}
	if len(el.KeysById(id)) == 0 {
		return "", entryErrorf("OpenPGP signature is by key %016X, which is not publicKey %s or one of its subkeys", id, k.fp)
	}
	keys := el.KeysByIdUsage(id, packet.KeyFlagSign)
	if len(keys) == 0 {
		return "", entryErrorf("OpenPGP key %016X is not for signing", id)
	}
	signer := keys[0]
	if bits, err := signer.PublicKey.BitLength(); err == nil && isRSA(signer.PublicKey.PubKeyAlgo) && (bits < minRSABits || bits > maxRSABits) {
		return "", entryErrorf("OpenPGP key %016X is RSA with %d bits, want %d to %d", id, bits, minRSABits, maxRSABits)
	}
	if !now.IsZero() {
		if err := checkOpenPGPSig(el, payload, sigBytes, now, id); err != nil {
			return "", err
		}
	}
	minimal, err := minimalOpenPGPKey(k.entity, signer.PublicKey)
	if err != nil {
		return "", err
	}
	mk, err := parseOpenPGPKey(minimal)
	if err != nil {
		return "", fmt.Errorf("couldn't re-read the minimal OpenPGP key: %w", err)
	}
	if err := checkOpenPGPSig(openpgp.EntityList{mk.entity}, payload, sigBytes, sig.CreationTime, id); err != nil {
		return "", err
	}
	return minimal, nil
}

func isRSA(a packet.PublicKeyAlgorithm) bool {
	return a == packet.PubKeyAlgoRSA || a == packet.PubKeyAlgoRSASignOnly
}

// parseOpenPGPSig parses an armored OpenPGP signature holding exactly one
// signature packet with an issuer key id, and returns the packet's bytes
// and the signature.
func parseOpenPGPSig(armored []byte) ([]byte, *packet.Signature, error) {
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		return nil, nil, &EntryError{Reason: "OpenPGP signature armor is malformed or truncated", Err: err}
	}
	if block.Type != openpgp.SignatureType {
		return nil, nil, entryErrorf("OpenPGP signature armor is a %.40q block, want %q", block.Type, openpgp.SignatureType)
	}
	body, err := io.ReadAll(block.Body)
	if err != nil {
		return nil, nil, &EntryError{Reason: "OpenPGP signature armor is malformed or truncated", Err: err}
	}
	r := packet.NewReader(bytes.NewReader(body))
	p, err := r.Next()
	if err != nil {
		return nil, nil, &EntryError{Reason: "OpenPGP signature is malformed", Err: err}
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, nil, entryErrorf("OpenPGP signature armor holds a %T, want a signature", p)
	}
	if _, err := r.Next(); err != io.EOF {
		return nil, nil, entryErrorf("OpenPGP signature armor holds more than one packet")
	}
	if sig.IssuerKeyId == nil {
		return nil, nil, entryErrorf("OpenPGP signature has no issuer key id")
	}
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return nil, nil, entryErrorf("OpenPGP signature is of type %#x, want a binary or text document signature", uint8(sig.SigType))
	}
	return body, sig, nil
}

// checkOpenPGPSig verifies the signature packet sig over payload with the
// keys of el as of t.
func checkOpenPGPSig(el openpgp.EntityList, payload, sig []byte, t time.Time, id uint64) error {
	config := &packet.Config{Time: func() time.Time { return t }}
	_, _, err := openpgp.VerifyDetachedSignature(el, bytes.NewReader(payload), bytes.NewReader(sig), config)
	when := "at " + t.UTC().Format(time.RFC3339)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return &EntryError{Reason: fmt.Sprintf("OpenPGP key %016X is expired %s", id, when), Err: err}
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return &EntryError{Reason: fmt.Sprintf("OpenPGP key %016X is revoked", id), Err: err}
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return &EntryError{Reason: fmt.Sprintf("OpenPGP signature or a self-signature of key %016X is expired or not yet valid %s", id, when), Err: err}
	}
	return &EntryError{Reason: "OpenPGP signature doesn't verify with publicKey", Err: err}
}

// minimalOpenPGPKey returns the canonical form of e for a signature by
// signer (e's primary key or one of its subkeys): the primary key, its
// primary user ID and that user ID's self-signature, and the signing
// subkey and its binding signature if a subkey signed, armored with no
// headers.
func minimalOpenPGPKey(e *openpgp.Entity, signer *packet.PublicKey) (string, error) {
	_, ident := e.PrimarySelfSignature()
	if ident == nil || ident.SelfSignature == nil {
		return "", entryErrorf("OpenPGP key has no self-signed user ID")
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return "", fmt.Errorf("couldn't armor an OpenPGP key: %w", err)
	}
	parts := []interface{ Serialize(io.Writer) error }{e.PrimaryKey, ident.UserId, ident.SelfSignature}
	if signer != e.PrimaryKey {
		found := false
		for _, sk := range e.Subkeys {
			if sk.PublicKey == signer {
				parts = append(parts, sk.PublicKey, sk.Sig)
				found = true
				break
			}
		}
		if !found {
			return "", fmt.Errorf("couldn't find the signing subkey")
		}
	}
	for _, p := range parts {
		if err := p.Serialize(w); err != nil {
			return "", &EntryError{Reason: "couldn't re-encode the OpenPGP key", Err: err}
		}
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("couldn't armor an OpenPGP key: %w", err)
	}
	buf.WriteByte('\n')
	return buf.String(), nil
}
