package api

import (
	"encoding/json"
	"encoding/pem"
	"fmt"

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

// parseSigstoreBundle parses the JSON of a Sigstore bundle that holds a
// DSSE envelope.
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
	if env == nil {
		if b.GetMessageSignature() != nil {
			return nil, entryErrorf("bundle holds a message signature, which the log does not take: want a DSSE envelope")
		}
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
