package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Sigstore bundles (https://github.com/sigstore/protobuf-specs), as cosign
// writes them with --bundle and pushes them beside an image, parsed with
// the Sigstore protobuf definitions. A bundle carries its content (a DSSE
// envelope or a message signature) and the verification material: a
// public key hint, a certificate or a certificate chain (its first
// certificate signs). Its transparency log entries and timestamps are not
// used: the log records the signature, not another log's receipt of it.

// The media types of the Sigstore bundles the log takes.
var sigstoreBundleMediaTypes = []string{
	"application/vnd.dev.sigstore.bundle.v0.3+json",
	"application/vnd.dev.sigstore.bundle+json;version=0.3",
	"application/vnd.dev.sigstore.bundle+json;version=0.2",
	"application/vnd.dev.sigstore.bundle+json;version=0.1",
}

// sigstoreBundle is what the log takes of a Sigstore bundle.
type sigstoreBundle struct {
	// envelope is the DSSE envelope of a bundle with one; nil for a
	// message signature.
	envelope *dsseEnvelope
	// message is the message signature of a bundle with one.
	message *messageSignature
	// certPEM is the signing certificate, re-encoded from its DER; empty
	// for a bundle whose key is only hinted at.
	certPEM string
}

// dsseEnvelope is a DSSE envelope with its bytes decoded.
type dsseEnvelope struct {
	payloadType string
	payload     []byte
	sigs        [][]byte
}

// messageSignature is a signature of an artifact by its digest, as cosign
// sign-blob makes it.
type messageSignature struct {
	// digest is "<alg>:<hex>", alg sha256, sha384 or sha512.
	digest string
	sum    []byte
	sig    []byte
}

// The hash algorithms of message signatures, by their names in Sigstore
// bundles.
var messageHashes = map[string]struct {
	name string
	hash crypto.Hash
}{
	"SHA2_256": {"sha256", crypto.SHA256},
	"SHA2_384": {"sha384", crypto.SHA384},
	"SHA2_512": {"sha512", crypto.SHA512},
}

// parseSigstoreBundle parses the JSON of a Sigstore bundle that holds a
// DSSE envelope or a message signature.
func parseSigstoreBundle(v jsonValue) (*sigstoreBundle, error) {
	var b protobundle.Bundle
	if err := (protojson.UnmarshalOptions{}).Unmarshal(v.raw, &b); err != nil {
		return nil, &EntryError{Reason: "bundle is not a Sigstore bundle", Err: err}
	}
	known := false
	for _, t := range sigstoreBundleMediaTypes {
		known = known || b.GetMediaType() == t
	}
	if !known {
		return nil, entryErrorf("bundle media type %.100q is not one of a Sigstore bundle (%s)", b.GetMediaType(), sigstoreBundleMediaTypes[0])
	}
	out := &sigstoreBundle{}
	vm := b.GetVerificationMaterial()
	switch {
	case vm.GetCertificate() != nil:
		out.certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vm.GetCertificate().GetRawBytes()}))
	case vm.GetX509CertificateChain() != nil:
		certs := vm.GetX509CertificateChain().GetCertificates()
		if len(certs) == 0 {
			return nil, entryErrorf("bundle has an empty certificate chain")
		}
		out.certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].GetRawBytes()}))
	case vm.GetPublicKey() != nil:
		// The hint names a key the submission must give.
	default:
		return nil, entryErrorf("bundle has no verification material (a public key hint, a certificate or a certificate chain)")
	}
	env := b.GetDsseEnvelope()
	if ms := b.GetMessageSignature(); ms != nil {
		h, ok := messageHashes[ms.GetMessageDigest().GetAlgorithm().String()]
		if !ok || len(ms.GetMessageDigest().GetDigest()) != h.hash.Size() {
			return nil, entryErrorf("bundle message digest is %s of %d bytes, want SHA2_256, SHA2_384 or SHA2_512", ms.GetMessageDigest().GetAlgorithm(), len(ms.GetMessageDigest().GetDigest()))
		}
		sum := ms.GetMessageDigest().GetDigest()
		out.message = &messageSignature{digest: h.name + ":" + hex.EncodeToString(sum), sum: sum, sig: ms.GetSignature()}
		return out, nil
	}
	if env == nil {
		return nil, entryErrorf("bundle has no content")
	}
	out.envelope = &dsseEnvelope{payloadType: env.GetPayloadType(), payload: env.GetPayload()}
	for _, s := range env.GetSignatures() {
		out.envelope.sigs = append(out.envelope.sigs, s.GetSig())
	}
	return out, nil
}

// checkDSSEImage checks that env is the DSSE envelope of cosign's image
// signature in a Sigstore bundle: an in-toto Statement of predicate type
// cosignSignPredicate whose subjects include digest, with one signature.
func checkDSSEImage(env *dsseEnvelope, digest string) error {
	switch {
	case env.payloadType != inTotoPayloadType:
		return entryErrorf("envelope payload type is %.100q, want %q", env.payloadType, inTotoPayloadType)
	case len(env.sigs) != 1:
		return entryErrorf("envelope has %d signatures, want 1", len(env.sigs))
	case len(env.payload) > maxImagePayload:
		return fmt.Errorf("%w: envelope payload is %d bytes, limit %d", ErrEntryTooLarge, len(env.payload), maxImagePayload)
	}
	subjects, err := parseInTotoSubjects(env.payload)
	if err != nil {
		return err
	}
	found := false
	for _, s := range subjects {
		found = found || s == digest
	}
	if !found {
		return entryErrorf("the envelope's statement is not about %s (its subjects: %v)", digest, subjects)
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if err := json.Unmarshal(env.payload, &st); err != nil || st.PredicateType != cosignSignPredicate {
		return entryErrorf("the envelope's statement has predicate type %.100q, want cosign's image signature %q", st.PredicateType, cosignSignPredicate)
	}
	return nil
}

// cosignSignPredicate is the predicate type of the in-toto Statement that
// cosign signs for an image in a Sigstore bundle.
const cosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"

// parseMessageDigest parses the "<alg>:<hex>" digest of a stored message
// signature.
func parseMessageDigest(digest string) (crypto.Hash, []byte, error) {
	alg, hexSum, _ := strings.Cut(digest, ":")
	for _, h := range messageHashes {
		if h.name == alg {
			sum, err := hex.DecodeString(hexSum)
			if err != nil || len(sum) != h.hash.Size() || hex.EncodeToString(sum) != hexSum {
				break
			}
			return h.hash, sum, nil
		}
	}
	return 0, nil, entryErrorf("message digest %.100q is not sha256, sha384 or sha512 and its lowercase hex", digest)
}

// verifyDigest checks sig, a signature of the artifact whose digest (under
// h) is sum, with k, and returns it in canonical form (ECDSA: DER, low S).
// Ed25519 signs the artifact itself, not its digest: such a signature
// cannot be checked from the digest, and is refused.
func verifyDigest(k *publicKey, h crypto.Hash, sum, sig []byte) ([]byte, error) {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve == elliptic.P256() && h != crypto.SHA256 || pub.Curve == elliptic.P384() && h != crypto.SHA384 {
			return nil, entryErrorf("message digest is %s, and an ECDSA %s key signs %s digests", h, pub.Curve.Params().Name, map[bool]string{true: "SHA-256", false: "SHA-384"}[pub.Curve == elliptic.P256()])
		}
		if !ecdsa.VerifyASN1(pub, sum, sig) {
			return nil, entryErrorf("message signature doesn't verify with the key")
		}
		canonical, err := lowSSignature(pub.Curve, sig)
		if err != nil {
			return nil, &EntryError{Reason: "message signature is malformed", Err: err}
		}
		return canonical, nil
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(pub, h, sum, sig) == nil || rsa.VerifyPSS(pub, h, sum, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: h}) == nil {
			return sig, nil
		}
		return nil, entryErrorf("message signature doesn't verify with the key")
	case ed25519.PublicKey:
		return nil, entryErrorf("an Ed25519 message signature signs the artifact itself, not its digest: the log cannot check it (sign an in-toto statement in a DSSE envelope instead)")
	}
	return nil, entryErrorf("message signature by a key of an unknown type")
}
