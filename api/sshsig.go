package api

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"encoding/pem"
	"errors"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// SSH signatures of commits (gpg.format=ssh).
//
// git signs with ssh-keygen -Y sign -n git and stores the armored SSHSIG
// (openssh PROTOCOL.sshsig) in the commit; github.com/hiddeco/sshsig
// parses and verifies it over golang.org/x/crypto/ssh. The log adds what
// ssh-keygen -Y verify checks against an allowed signers file: the key in
// the signature is the given key, and the key types and sizes it accepts.

// sshNamespace is the SSHSIG namespace git signs commits in.
const sshNamespace = "git"

// sshKey is a parsed, checked SSH public key.
type sshKey struct {
	pub ssh.PublicKey
	// canonical is "<type> <base64>", as in an authorized_keys line without
	// options or comment.
	canonical string
	fp        string
}

func (k *sshKey) format() string      { return signatureFormatSSH }
func (k *sshKey) fingerprint() string { return k.fp }

// parseSSHKey parses an authorized_keys line, without options, and checks
// its type and size.
func parseSSHKey(s string) (*sshKey, error) {
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, &EntryError{Reason: "publicKey is not an SSH authorized_keys line or an armored OpenPGP public key", Err: err}
	}
	if len(options) > 0 {
		return nil, entryErrorf("publicKey has authorized_keys options")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, entryErrorf("publicKey has more than one line")
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384:
	case ssh.KeyAlgoRSA:
		rsaKey, ok := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return nil, entryErrorf("publicKey is ssh-rsa but not an RSA key")
		}
		if bits := rsaKey.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, entryErrorf("publicKey is RSA with %d bits, want %d to %d", bits, minRSABits, maxRSABits)
		}
	default:
		return nil, entryErrorf("publicKey is of type %.60q, want ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384 or ssh-rsa", pub.Type())
	}
	return &sshKey{
		pub:       pub,
		canonical: pub.Type() + " " + base64.StdEncoding.EncodeToString(pub.Marshal()),
		fp:        ssh.FingerprintSHA256(pub),
	}, nil
}

// verifySSHSig checks that armored is an SSHSIG by key over payload in the
// namespace git.
func verifySSHSig(key *sshKey, payload, armored []byte) error {
	sig, err := parseSSHSig(armored)
	if err != nil {
		return err
	}
	if sig.Namespace != sshNamespace {
		return entryErrorf("SSH signature is in namespace %.60q, want %q", sig.Namespace, sshNamespace)
	}
	if !bytes.Equal(sig.PublicKey.Marshal(), key.pub.Marshal()) {
		return entryErrorf("SSH signature is by key %s, not by publicKey %s", ssh.FingerprintSHA256(sig.PublicKey), key.fp)
	}
	if len(sig.Signature.Rest) > 0 {
		return entryErrorf("SSH signature has trailing data")
	}
	if err := sshsig.Verify(bytes.NewReader(payload), sig, key.pub, sig.HashAlgorithm, sshNamespace); err != nil {
		return &EntryError{Reason: "SSH signature doesn't verify with publicKey", Err: err}
	}
	return nil
}

// parseSSHSig parses an armored SSHSIG: one "SSH SIGNATURE" PEM block and
// nothing else, with a hash that git may use.
func parseSSHSig(armored []byte) (*sshsig.Signature, error) {
	block, rest := pem.Decode(armored)
	switch {
	case block == nil:
		return nil, entryErrorf("SSH signature armor is malformed or truncated")
	case block.Type != sshsig.PEMType:
		return nil, entryErrorf("SSH signature armor is a %.40q block, want %q", block.Type, sshsig.PEMType)
	case len(block.Headers) != 0:
		return nil, entryErrorf("SSH signature armor has headers")
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, entryErrorf("SSH signature armor has data after its end")
	}
	sig, err := sshsig.ParseSignature(block.Bytes)
	if err != nil {
		if errors.Is(err, sshsig.ErrUnsupportedHashAlgorithm) {
			return nil, &EntryError{Reason: "SSH signature's hash is not sha256 or sha512", Err: err}
		}
		return nil, &EntryError{Reason: "SSH signature is malformed", Err: err}
	}
	return sig, nil
}
