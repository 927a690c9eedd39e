package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"hash"

	lru "github.com/hashicorp/golang-lru/v2"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

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

// sshKey is a parsed, checked SSH public key. It is shared through
// sshKeyCache: nothing may modify it or what it points to.
type sshKey struct {
	pub ssh.PublicKey
	// canonical is "<type> <base64>", as in an authorized_keys line without
	// options or comment.
	canonical string
	fp        string
	// ed25519 is an ssh-ed25519 key decompressed, for verifyEd25519
	// (keys.go); nil for other keys and for Ed25519 keys that are not
	// points of the curve.
	ed25519 *voi.ExpandedPublicKey
}

// Parsed SSH keys are cached by their exact text, as parsed PKIX keys are
// (keys.go): parsing is a pure function of it, and a committer's key comes
// back with each commit. Only short texts of keys that pass are cached.
const maxCachedSSHKeySize = 2048 // an ssh-rsa 8192 key takes about 1,400

var sshKeyCache = func() *lru.Cache[string, *sshKey] {
	c, err := lru.New[string, *sshKey](publicKeyCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return c
}()

func (k *sshKey) format() string      { return signatureFormatSSH }
func (k *sshKey) fingerprint() string { return k.fp }

// parseSSHKey parses an authorized_keys line, without options, and checks
// its type and size.
func parseSSHKey(s string) (*sshKey, error) {
	if k, ok := sshKeyCache.Get(s); ok {
		return k, nil
	}
	k, err := parseSSHKeyUncached(s)
	if err != nil {
		return nil, err
	}
	if len(s) <= maxCachedSSHKeySize {
		sshKeyCache.Add(s, k)
	}
	return k, nil
}

func parseSSHKeyUncached(s string) (*sshKey, error) {
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
	k := &sshKey{
		pub:       pub,
		canonical: pub.Type() + " " + base64.StdEncoding.EncodeToString(pub.Marshal()),
		fp:        ssh.FingerprintSHA256(pub),
	}
	if pub.Type() == ssh.KeyAlgoED25519 {
		if edKey, ok := pub.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey); ok {
			// An error means the key is not a point: k.ed25519 stays nil
			// and every signature fails, as with ed25519.Verify.
			k.ed25519, _ = voi.NewExpandedPublicKey(voi.PublicKey(edKey))
		}
	}
	return k, nil
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
	if key.pub.Type() == ssh.KeyAlgoED25519 {
		if !verifySSHEd25519(key, payload, sig) {
			return entryErrorf("SSH signature doesn't verify with publicKey")
		}
		return nil
	}
	if err := sshsig.Verify(bytes.NewReader(payload), sig, key.pub, sig.HashAlgorithm, sshNamespace); err != nil {
		return &EntryError{Reason: "SSH signature doesn't verify with publicKey", Err: err}
	}
	return nil
}

// verifySSHEd25519 is sshsig.Verify for an ssh-ed25519 key (whose
// signature sig carries, in the namespace git), with verifyEd25519 in
// place of x/crypto/ssh's ed25519.Verify: the same checks, the
// verification about twice as fast. FuzzSSHSig holds it to the library.
func verifySSHEd25519(key *sshKey, payload []byte, sig *sshsig.Signature) bool {
	var h hash.Hash
	switch sig.HashAlgorithm {
	case sshsig.HashSHA256:
		h = sha256.New()
	case sshsig.HashSHA512:
		h = sha512.New()
	default:
		return false
	}
	h.Write(payload)
	// The signed data of PROTOCOL.sshsig: the magic preamble, then the
	// namespace, a reserved empty string, the hash algorithm and the hash,
	// each as an SSH string.
	signed := ssh.Marshal(struct {
		Namespace, Reserved, HashAlgorithm, Hash string
	}{sshNamespace, "", string(sig.HashAlgorithm), string(h.Sum(nil))})
	signed = append([]byte("SSHSIG"), signed...)
	// What x/crypto/ssh checks of an ssh-ed25519 signature.
	if sig.Signature.Format != ssh.KeyAlgoED25519 || len(sig.Signature.Blob) != ed25519.SignatureSize {
		return false
	}
	return key.ed25519 != nil && voi.VerifyExpandedWithOptions(key.ed25519, signed, sig.Signature.Blob, ed25519StdLib)
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
