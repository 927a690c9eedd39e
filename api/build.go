package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strings"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
)

// The build kind.
//
// A submission is
//
//	{"kind":"build",
//	 "envelope":{"payloadType":"application/vnd.in-toto+json",
//	             "payload":"<base64>",
//	             "signatures":[{"keyid":"<hint>","sig":"<base64>"}, ...]},
//	 "publicKeys":["<PKIX PEM>", ...]}
//
// with one key per signature. The log checks that the payload is an in-toto
// Statement (v1 or v0.1) whose subjects parse, and that every signature
// verifies over the DSSE PAE with a different one of the keys; keyid is an
// unauthenticated hint and is ignored. The canonical entry adds "v":1, pairs
// each key (re-encoded from its DER) with the signature it verified, sorts
// the pairs by key DER, drops keyid and encodes payload and signatures in
// standard base64. The payload bytes are kept verbatim: they are what was
// signed.

// inTotoPayloadType is the only DSSE payload type a build entry may carry.
const inTotoPayloadType = "application/vnd.in-toto+json"

// inTotoStatementV01 is the _type of legacy in-toto Statements.
const inTotoStatementV01 = "https://in-toto.io/Statement/v0.1"

// RSA key sizes accepted, in bits. The upper bound keeps the cost of
// verifying a submission bounded.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

// buildEntry is the canonical encoding of a build entry. Field order is the
// encoding's.
type buildEntry struct {
	Kind       string        `json:"kind"`
	V          int           `json:"v"`
	Envelope   buildEnvelope `json:"envelope"`
	PublicKeys []string      `json:"publicKeys"`
}

// buildEnvelope is a DSSE envelope as stored: like dsse.Envelope, but with
// keyid omitted.
type buildEnvelope struct {
	PayloadType string           `json:"payloadType"`
	Payload     string           `json:"payload"`
	Signatures  []buildSignature `json:"signatures"`
}

type buildSignature struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"`
}

// buildStatement is a verified build entry.
type buildStatement struct {
	subjects     []string
	fingerprints []string
}

func (s *buildStatement) Kind() string              { return KindBuild }
func (s *buildStatement) Subjects() []string        { return slices.Clone(s.subjects) }
func (s *buildStatement) KeyFingerprints() []string { return slices.Clone(s.fingerprints) }

// buildSigner is a public key of a build entry with the signature it
// verified, in canonical form.
type buildSigner struct {
	der []byte
	sig []byte
}

// canonicalBuild decodes the fields of a build submission or entry (kind
// and v already taken), verifies it and returns its canonical encoding.
func canonicalBuild(obj *jsonObject) ([]byte, Statement, error) {
	var envRaw json.RawMessage
	if err := obj.required("envelope", &envRaw); err != nil {
		return nil, nil, err
	}
	var pems []string
	if err := obj.required("publicKeys", &pems); err != nil {
		return nil, nil, err
	}
	if err := obj.done(); err != nil {
		return nil, nil, err
	}
	env, err := decodeEnvelope(envRaw)
	if err != nil {
		return nil, nil, err
	}

	if env.PayloadType != inTotoPayloadType {
		return nil, nil, entryErrorf("envelope payload type is %.100q, want %q", env.PayloadType, inTotoPayloadType)
	}
	switch {
	case len(env.Signatures) == 0:
		return nil, nil, entryErrorf("envelope has no signatures")
	case len(env.Signatures) > maxSigners:
		return nil, nil, entryErrorf("envelope has %d signatures, limit %d", len(env.Signatures), maxSigners)
	case len(pems) == 0:
		return nil, nil, entryErrorf("no public keys")
	case len(pems) > maxSigners:
		return nil, nil, entryErrorf("%d public keys, limit %d", len(pems), maxSigners)
	case len(pems) != len(env.Signatures):
		return nil, nil, entryErrorf("envelope has %d signatures but there are %d public keys: each key must sign exactly once", len(env.Signatures), len(pems))
	}
	payload, err := decodeBase64(env.Payload)
	if err != nil {
		return nil, nil, &EntryError{Reason: "envelope payload is not base64", Err: err}
	}
	if len(payload) > MaxEntrySize {
		return nil, nil, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrEntryTooLarge, len(payload), MaxEntrySize)
	}
	sigs := make([][]byte, len(env.Signatures))
	for i, s := range env.Signatures {
		if sigs[i], err = decodeBase64(s.Sig); err != nil {
			return nil, nil, &EntryError{Reason: fmt.Sprintf("envelope signature %d is not base64", i), Err: err}
		}
	}
	keys := make([]crypto.PublicKey, len(pems))
	ders := make([][]byte, len(pems))
	for i, p := range pems {
		if keys[i], ders[i], err = parsePublicKey(i, p); err != nil {
			return nil, nil, err
		}
		for j := range i {
			if bytes.Equal(ders[i], ders[j]) {
				return nil, nil, entryErrorf("public key %d is the same as public key %d", i, j)
			}
		}
	}
	subjects, err := parseInTotoSubjects(payload)
	if err != nil {
		return nil, nil, err
	}

	// Pair every signature with a key it verifies with, each key once. Try
	// the key in the same position first: submitters usually list them in
	// order, and then verification costs one check per signature.
	pae := dsse.PAE(env.PayloadType, payload)
	used := make([]bool, len(keys))
	signers := make([]buildSigner, 0, len(sigs))
	for i, sig := range sigs {
		matched := false
		for _, k := range tryOrder(i, len(keys)) {
			if used[k] {
				continue
			}
			if canonical, ok := verifySignature(keys[k], pae, sig); ok {
				used[k] = true
				signers = append(signers, buildSigner{der: ders[k], sig: canonical})
				matched = true
				break
			}
		}
		if !matched {
			return nil, nil, entryErrorf("envelope signature %d doesn't verify with any of the remaining public keys", i)
		}
	}
	slices.SortFunc(signers, func(a, b buildSigner) int { return bytes.Compare(a.der, b.der) })

	e := buildEntry{
		Kind: KindBuild,
		V:    entryVersion,
		Envelope: buildEnvelope{
			PayloadType: env.PayloadType,
			Payload:     base64.StdEncoding.EncodeToString(payload),
		},
	}
	st := &buildStatement{subjects: subjects}
	for _, s := range signers {
		e.Envelope.Signatures = append(e.Envelope.Signatures, buildSignature{Sig: base64.StdEncoding.EncodeToString(s.sig)})
		e.PublicKeys = append(e.PublicKeys, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: s.der})))
		st.fingerprints = append(st.fingerprints, keyFingerprint(s.der))
	}
	slices.Sort(st.fingerprints)
	entry, err := json.Marshal(e)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't encode build entry: %w", err)
	}
	return entry, st, nil
}

// decodeEnvelope strictly decodes a DSSE envelope.
func decodeEnvelope(raw json.RawMessage) (*dsse.Envelope, error) {
	obj, err := decodeObjectAt("envelope", raw)
	if err != nil {
		return nil, err
	}
	env := &dsse.Envelope{}
	if err := obj.requiredString("payloadType", &env.PayloadType); err != nil {
		return nil, err
	}
	if err := obj.requiredString("payload", &env.Payload); err != nil {
		return nil, err
	}
	var sigs []json.RawMessage
	if err := obj.required("signatures", &sigs); err != nil {
		return nil, err
	}
	if err := obj.done(); err != nil {
		return nil, err
	}
	if len(sigs) > maxSigners {
		return nil, entryErrorf("envelope has %d signatures, limit %d", len(sigs), maxSigners)
	}
	for i, raw := range sigs {
		sobj, err := decodeObjectAt(fmt.Sprintf("envelope.signatures[%d]", i), raw)
		if err != nil {
			return nil, err
		}
		var s dsse.Signature
		if err := sobj.requiredString("sig", &s.Sig); err != nil {
			return nil, err
		}
		if err := sobj.optionalString("keyid", &s.KeyID); err != nil {
			return nil, err
		}
		if err := sobj.done(); err != nil {
			return nil, err
		}
		env.Signatures = append(env.Signatures, s)
	}
	return env, nil
}

// decodeBase64 decodes standard or URL-safe base64, padded or not, as DSSE
// allows.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.URLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("couldn't decode base64: %w", err)
	}
	return b, nil
}

// parsePublicKey parses the i-th public key, a PKIX "PUBLIC KEY" PEM block,
// checks that its type and size are accepted, and returns it with its
// canonical DER encoding.
func parsePublicKey(i int, s string) (crypto.PublicKey, []byte, error) {
	if !strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "-----BEGIN ") {
		return nil, nil, entryErrorf("public key %d is not a PEM block", i)
	}
	block, rest := pem.Decode([]byte(s))
	switch {
	case block == nil:
		return nil, nil, entryErrorf("public key %d is not a PEM block", i)
	case block.Type != "PUBLIC KEY":
		return nil, nil, entryErrorf("public key %d is a PEM %.40q block, want \"PUBLIC KEY\"", i, block.Type)
	case len(block.Headers) != 0:
		return nil, nil, entryErrorf("public key %d has PEM headers", i)
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, nil, entryErrorf("public key %d has data after its PEM block", i)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, nil, &EntryError{Reason: fmt.Sprintf("public key %d is not a PKIX public key", i), Err: err}
	}
	switch pub := pub.(type) {
	case ed25519.PublicKey:
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() && pub.Curve != elliptic.P384() {
			return nil, nil, entryErrorf("public key %d is ECDSA on curve %s, want P-256 or P-384", i, pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, nil, entryErrorf("public key %d is RSA with %d bits, want %d to %d", i, bits, minRSABits, maxRSABits)
		}
	default:
		return nil, nil, entryErrorf("public key %d is a %T, want Ed25519, ECDSA P-256 or P-384, or RSA", i, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, &EntryError{Reason: fmt.Sprintf("couldn't re-encode public key %d", i), Err: err}
	}
	return pub, der, nil
}

// keyFingerprint returns "sha256:<hex>" of a key's PKIX DER encoding.
func keyFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(h[:])
}

// tryOrder returns 0..n-1 starting with first.
func tryOrder(first, n int) []int {
	order := make([]int, 0, n)
	if first < n {
		order = append(order, first)
	}
	for k := range n {
		if k != first {
			order = append(order, k)
		}
	}
	return order
}

// verifySignature checks sig over msg with pub, a key parsePublicKey
// accepted, and returns the signature in canonical form: ECDSA signatures
// are re-encoded in DER with low S, so that the malleated twin of a
// signature gives the same entry. Ed25519 and RSA signatures are returned
// as is.
func verifySignature(pub crypto.PublicKey, msg, sig []byte) ([]byte, bool) {
	switch pub := pub.(type) {
	case ed25519.PublicKey:
		return sig, len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, msg, sig)
	case *ecdsa.PublicKey:
		var digest []byte
		switch pub.Curve {
		case elliptic.P256():
			h := sha256.Sum256(msg)
			digest = h[:]
		case elliptic.P384():
			h := sha512.Sum384(msg)
			digest = h[:]
		default:
			return nil, false
		}
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return nil, false
		}
		canonical, err := lowSSignature(pub.Curve, sig)
		if err != nil {
			return nil, false
		}
		return canonical, true
	case *rsa.PublicKey:
		h := sha256.Sum256(msg)
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig) == nil {
			return sig, true
		}
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}
		if rsa.VerifyPSS(pub, crypto.SHA256, h[:], sig, opts) == nil {
			return sig, true
		}
	}
	return nil, false
}

// ecdsaSignature is the ASN.1 structure of an ECDSA signature.
type ecdsaSignature struct {
	R, S *big.Int
}

// lowSSignature re-encodes a valid DER ECDSA signature with S in the lower
// half of the group order.
func lowSSignature(curve elliptic.Curve, sig []byte) ([]byte, error) {
	var s ecdsaSignature
	rest, err := asn1.Unmarshal(sig, &s)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse ECDSA signature: %w", err)
	}
	if len(rest) != 0 || s.R == nil || s.S == nil {
		return nil, fmt.Errorf("couldn't parse ECDSA signature")
	}
	n := curve.Params().N
	if s.S.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		s.S = new(big.Int).Sub(n, s.S)
	}
	out, err := asn1.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("couldn't encode ECDSA signature: %w", err)
	}
	return out, nil
}

// parseInTotoSubjects parses an in-toto Statement, v1 or v0.1, checks it and
// returns its subjects as sorted, unique "alg:digest" strings. Digests in
// the algorithms in-toto knows are lowercased hex; others are kept as is.
func parseInTotoSubjects(payload []byte) ([]string, error) {
	var st intoto.Statement
	// The in-toto spec asks consumers to ignore unknown fields.
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(payload, &st); err != nil {
		return nil, &EntryError{Reason: "payload is not an in-toto Statement", Err: err}
	}
	switch st.GetType() {
	case intoto.StatementTypeUri:
		if err := st.Validate(); err != nil {
			return nil, &EntryError{Reason: "bad in-toto Statement", Err: err}
		}
	case inTotoStatementV01:
		// Same shape as v1, but the predicate is optional.
		if len(st.GetSubject()) == 0 {
			return nil, &EntryError{Reason: "bad in-toto Statement", Err: intoto.ErrSubjectRequired}
		}
		for _, rd := range st.GetSubject() {
			if len(rd.GetDigest()) == 0 {
				return nil, &EntryError{Reason: "bad in-toto Statement", Err: intoto.ErrDigestRequired}
			}
			if err := rd.Validate(); err != nil {
				return nil, &EntryError{Reason: "bad in-toto Statement", Err: err}
			}
		}
		if st.GetPredicateType() == "" {
			return nil, &EntryError{Reason: "bad in-toto Statement", Err: intoto.ErrPredicateTypeRequired}
		}
	default:
		return nil, entryErrorf("payload is an in-toto Statement of type %.100q, want %q or %q", st.GetType(), intoto.StatementTypeUri, inTotoStatementV01)
	}
	var subjects []string
	for i, rd := range st.GetSubject() {
		for alg, digest := range rd.GetDigest() {
			if alg == "" || digest == "" {
				return nil, entryErrorf("in-toto Statement subject %d has an empty digest algorithm or value", i)
			}
			if intoto.HashAlgorithm(alg).HexLength() > 0 {
				digest = strings.ToLower(digest)
			}
			subjects = append(subjects, alg+":"+digest)
		}
	}
	slices.Sort(subjects)
	return slices.Compact(subjects), nil
}
