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
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
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

// buildStatement is a verified build entry.
type buildStatement struct {
	subjects     []string
	fingerprints []string
	identities   []string // of a certificate
	issuer       string
	certificate  []byte // DER, of a build signed under a certificate
}

// SigningCertificate returns the DER of the certificate that signed, or
// nil.
func (s *buildStatement) SigningCertificate() []byte { return s.certificate }

// Identities returns the signing certificate's subject alternative names,
// sorted; none for a build signed with plain keys.
func (s *buildStatement) Identities() []string { return slices.Clone(s.identities) }

func (s *buildStatement) extraSearchTerms() []SearchTerm {
	var terms []SearchTerm
	for _, id := range s.identities {
		terms = append(terms, SearchTerm{SearchIdentity, id})
	}
	if s.issuer != "" {
		terms = append(terms, SearchTerm{SearchIssuer, s.issuer})
	}
	return terms
}

func (s *buildStatement) Kind() string              { return KindBuild }
func (s *buildStatement) Subjects() []string        { return slices.Clone(s.subjects) }
func (s *buildStatement) KeyFingerprints() []string { return slices.Clone(s.fingerprints) }

// buildSigner is a public key of a build entry with the signature it
// verified, in canonical form.
type buildSigner struct {
	key *publicKey
	sig []byte
}

// canonicalBuild decodes the fields of a build submission or entry (kind
// and v already taken), verifies it and returns its canonical encoding.
func canonicalBuild(obj *jsonObject, now bool) ([]byte, Statement, error) {
	envValue, hasEnvelope := obj.take("envelope")
	hasEnvelope = hasEnvelope && !envValue.isNull()
	bundleValue, hasBundle := obj.take("bundle")
	hasBundle = hasBundle && !bundleValue.isNull()
	msgValue, hasMessage := obj.take("message")
	hasMessage = hasMessage && !msgValue.isNull()
	if !hasEnvelope && !hasBundle && !hasMessage {
		return nil, nil, entryErrorf("missing field %q (or a Sigstore %q)", obj.field("envelope"), obj.field("bundle"))
	}
	pems, err := obj.optionalStrings("publicKeys")
	if err != nil {
		return nil, nil, err
	}
	var certPEM string
	if err := obj.optionalString("certificate", &certPEM); err != nil {
		return nil, nil, err
	}
	if hasEnvelope && pems == nil && certPEM == "" {
		return nil, nil, entryErrorf("missing field %q", obj.field("publicKeys"))
	}
	derived := make(map[string]jsonValue, 2)
	for _, name := range []string{"identities", "issuer"} {
		if v, ok := obj.take(name); ok {
			derived[name] = v
		}
	}
	if err := obj.done(); err != nil {
		return nil, nil, err
	}
	var env *dsse.Envelope
	var msg *messageSignature
	switch {
	case hasEnvelope && hasBundle || hasMessage && (hasEnvelope || hasBundle):
		return nil, nil, entryErrorf("want the signed statement as envelope, as bundle or as message: one of them")
	case hasMessage:
		if msg, err = decodeMessage(obj, msgValue); err != nil {
			return nil, nil, err
		}
		return canonicalBuildMessage(msg, pems, certPEM, derived, now)
	case hasBundle:
		b, err := parseSigstoreBundle(bundleValue)
		if err != nil {
			return nil, nil, err
		}
		if b.certPEM != "" {
			if certPEM != "" || len(pems) > 0 {
				return nil, nil, entryErrorf("the bundle carries its certificate: give no publicKeys or certificate")
			}
			certPEM = b.certPEM
		}
		if b.message != nil {
			return canonicalBuildMessage(b.message, pems, certPEM, derived, now)
		}
		env = &dsse.Envelope{PayloadType: b.envelope.payloadType, Payload: base64.StdEncoding.EncodeToString(b.envelope.payload)}
		for _, sig := range b.envelope.sigs {
			env.Signatures = append(env.Signatures, dsse.Signature{Sig: base64.StdEncoding.EncodeToString(sig)})
		}
	default:
		if env, err = decodeEnvelope(envValue); err != nil {
			return nil, nil, err
		}
	}
	if certPEM != "" && len(env.Signatures) != 1 {
		return nil, nil, entryErrorf("envelope has %d signatures, and a certificate signs one", len(env.Signatures))
	}
	cert, pems, err := signerOf(certPEM, pems, derived)
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
	keys := make([]*publicKey, len(pems))
	for i, p := range pems {
		if keys[i], err = parsePublicKey(i, p); err != nil {
			return nil, nil, err
		}
		for j := range i {
			if bytes.Equal(keys[i].der, keys[j].der) {
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
	var used [maxSigners]bool
	signers := make([]buildSigner, 0, len(sigs))
	for i, sig := range sigs {
		matched := false
		for j := -1; j < len(keys) && !matched; j++ {
			k := j
			if j == -1 {
				k = i // key i first (there are as many keys as signatures)...
			} else if j == i {
				continue // ...then the others in order
			}
			if used[k] {
				continue
			}
			if canonical, ok := verifySignature(keys[k], pae, sig); ok {
				used[k] = true
				signers = append(signers, buildSigner{key: keys[k], sig: canonical})
				matched = true
			}
		}
		if !matched {
			return nil, nil, entryErrorf("envelope signature %d doesn't verify with any of the remaining public keys", i)
		}
	}
	slices.SortFunc(signers, func(a, b buildSigner) int { return bytes.Compare(a.key.der, b.key.der) })

	st := &buildStatement{subjects: subjects, fingerprints: make([]string, len(signers))}
	for i, s := range signers {
		st.fingerprints[i] = s.key.fingerprint
	}
	slices.Sort(st.fingerprints)
	entry := appendBuildEntry(nil, env.PayloadType, payload, signers)
	if cert != nil {
		st.identities, st.issuer, st.certificate = cert.identities, cert.issuer, cert.der
		if len(derived) > 0 && now {
			if err := checkCertificateDerived(cert, derived); err != nil {
				return nil, nil, err
			}
		}
		entry = appendCertificateFields(entry[:len(entry)-1], cert)
		entry = append(entry, '}')
	}
	return entry, st, nil
}

// signerOf resolves the signers of a build: the certificate, if certPEM
// is not empty, and then pems, if not empty, must be its key alone (as a
// stored entry lists it), or the public keys. It returns the certificate
// and the PEM keys.
func signerOf(certPEM string, pems []string, derived map[string]jsonValue) (*signingCertificate, []string, error) {
	if certPEM == "" {
		if len(derived) > 0 {
			return nil, nil, entryErrorf("identities and issuer come with a certificate")
		}
		if pems == nil {
			return nil, nil, entryErrorf("missing field %q", "publicKeys")
		}
		return nil, pems, nil
	}
	cert, err := parseSigningCertificate(certPEM)
	if err != nil {
		return nil, nil, err
	}
	if len(pems) > 0 {
		k, err := parsePublicKey(0, pems[0])
		if err != nil {
			return nil, nil, err
		}
		if len(pems) != 1 || !bytes.Equal(k.der, cert.key.der) {
			return nil, nil, entryErrorf("publicKeys must be the certificate's key alone, or absent")
		}
	}
	return cert, []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: cert.key.der}))}, nil
}

// buildMessageEntry is the canonical encoding of a build entry of a
// message signature, as json.Marshal writes it.
type buildMessageEntry struct {
	Kind        string       `json:"kind"`
	V           int          `json:"v"`
	Message     buildMessage `json:"message"`
	PublicKeys  []string     `json:"publicKeys"`
	Certificate string       `json:"certificate,omitempty"`
	Identities  []string     `json:"identities,omitempty"`
	Issuer      string       `json:"issuer,omitempty"`
}

// buildMessage is a message signature: an artifact's digest,
// "<alg>:<hex>", and a signature of it.
type buildMessage struct {
	Digest    string `json:"digest"`
	Signature []byte `json:"signature"`
}

// decodeMessage decodes the message field of a stored build entry.
func decodeMessage(obj *jsonObject, v jsonValue) (*messageSignature, error) {
	var m buildMessage
	if err := obj.unmarshal("message", v, &m); err != nil {
		return nil, err
	}
	_, sum, err := parseMessageDigest(m.Digest)
	if err != nil {
		return nil, err
	}
	return &messageSignature{digest: m.Digest, sum: sum, sig: m.Signature}, nil
}

// canonicalBuildMessage verifies a build of a message signature, as cosign
// sign-blob makes it: one signer's signature of an artifact's digest. Its
// statement's subject is the digest.
func canonicalBuildMessage(m *messageSignature, pems []string, certPEM string, derived map[string]jsonValue, now bool) ([]byte, Statement, error) {
	cert, pems, err := signerOf(certPEM, pems, derived)
	if err != nil {
		return nil, nil, err
	}
	if len(pems) != 1 {
		return nil, nil, entryErrorf("a message signature has one signer, and there are %d public keys", len(pems))
	}
	key, err := parsePublicKey(0, pems[0])
	if err != nil {
		return nil, nil, err
	}
	h, sum, err := parseMessageDigest(m.digest)
	if err != nil {
		return nil, nil, err
	}
	sig, err := verifyDigest(key, h, sum, m.sig)
	if err != nil {
		return nil, nil, err
	}
	e := buildMessageEntry{Kind: KindBuild, V: entryVersion, Message: buildMessage{Digest: m.digest, Signature: sig},
		PublicKeys: []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: key.der}))}}
	st := &buildStatement{subjects: []string{m.digest}, fingerprints: []string{key.fingerprint}}
	if cert != nil {
		e.Certificate, e.Identities, e.Issuer = cert.pem, cert.identities, cert.issuer
		st.identities, st.issuer, st.certificate = cert.identities, cert.issuer, cert.der
		if len(derived) > 0 && now {
			if err := checkCertificateDerived(cert, derived); err != nil {
				return nil, nil, err
			}
		}
	}
	entry, err := json.Marshal(&e)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't encode a build entry: %w", err)
	}
	return entry, st, nil
}

// appendCertificateFields appends the fields of a signing certificate to
// an entry's JSON object: ,"certificate":"<PEM>" and, if not empty,
// ,"identities":[...] and ,"issuer":"...", as json.Marshal writes them.
func appendCertificateFields(b []byte, c *signingCertificate) []byte {
	b = append(b, `,"certificate":`...)
	b = appendJSONString(b, c.pem)
	if len(c.identities) > 0 {
		b = append(b, `,"identities":[`...)
		for i, id := range c.identities {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, id)
		}
		b = append(b, ']')
	}
	if c.issuer != "" {
		b = append(b, `,"issuer":`...)
		b = appendJSONString(b, c.issuer)
	}
	return b
}

// appendBuildEntry appends the canonical encoding of a build entry with
// signers in order to b. It is the JSON encoding of
//
//	{"kind":"build","v":1,
//	 "envelope":{"payloadType":"...","payload":"<base64>",
//	             "signatures":[{"sig":"<base64>"},...]},
//	 "publicKeys":["<PEM>",...]}
//
// exactly as json.Marshal writes it, in one buffer. The tests and fuzzers
// check every entry they get against json.Marshal (checkAccepted).
func appendBuildEntry(b []byte, payloadType string, payload []byte, signers []buildSigner) []byte {
	n := 128 + len(payloadType) + base64.StdEncoding.EncodedLen(len(payload))
	for _, s := range signers {
		n += 16 + base64.StdEncoding.EncodedLen(len(s.sig)) + len(s.key.pemJSON)
	}
	b = slices.Grow(b, n)
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, KindBuild)
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, entryVersion, 10)
	b = append(b, `,"envelope":{"payloadType":`...)
	b = appendJSONString(b, payloadType)
	b = append(b, `,"payload":"`...)
	b = base64.StdEncoding.AppendEncode(b, payload)
	b = append(b, `","signatures":[`...)
	for i, s := range signers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sig":"`...)
		b = base64.StdEncoding.AppendEncode(b, s.sig)
		b = append(b, `"}`...)
	}
	b = append(b, `]},"publicKeys":[`...)
	for i, s := range signers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s.key.pemJSON...)
	}
	return append(b, "]}"...)
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// encodes it (with HTML escaping): directly when it needs no escaping but
// for newlines, as PEM, base64 and signed notes, with json.Marshal
// otherwise.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\n' && (c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c == 0x7f) {
				return appendMarshaledString(b, s)
			}
			i++
			continue
		}
		// encoding/json writes valid UTF-8 as it is, but for U+2028 and
		// U+2029, which it escapes.
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' {
			return appendMarshaledString(b, s)
		}
		i += n
	}
	b = append(b, '"')
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		b = append(b, s[:i]...)
		b = append(b, `\n`...)
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, '"')
}

// appendMarshaledString appends s as json.Marshal encodes it.
func appendMarshaledString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil { // json.Marshal doesn't fail on a string
		panic("api: couldn't encode a string as JSON: " + err.Error())
	}
	return append(b, q...)
}

// decodeEnvelope strictly decodes a DSSE envelope.
func decodeEnvelope(v jsonValue) (*dsse.Envelope, error) {
	obj, err := openObject("envelope", v)
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
	sigs, err := obj.requiredArray("signatures")
	if err != nil {
		return nil, err
	}
	if err := obj.done(); err != nil {
		return nil, err
	}
	if len(sigs) > maxSigners {
		return nil, entryErrorf("envelope has %d signatures, limit %d", len(sigs), maxSigners)
	}
	env.Signatures = make([]dsse.Signature, len(sigs))
	for i, sv := range sigs {
		sobj, err := openObject("envelope.signatures["+strconv.Itoa(i)+"]", sv)
		if err != nil {
			return nil, err
		}
		s := &env.Signatures[i]
		if err := sobj.requiredString("sig", &s.Sig); err != nil {
			return nil, err
		}
		if err := sobj.optionalString("keyid", &s.KeyID); err != nil {
			return nil, err
		}
		if err := sobj.done(); err != nil {
			return nil, err
		}
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

// verifySignature checks sig over msg with k and returns the signature in canonical form: ECDSA signatures
// are re-encoded in DER with low S, so that the malleated twin of a
// signature gives the same entry. Ed25519 and RSA signatures are returned
// as is.
func verifySignature(k *publicKey, msg, sig []byte) ([]byte, bool) {
	switch pub := k.pub.(type) {
	case ed25519.PublicKey:
		return sig, verifyEd25519(k, msg, sig)
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
	return inTotoSubjects(payload, unmarshalInTotoStatement)
}

// inTotoSubjects is parseInTotoSubjects with the Statement decoded by
// decode.
func inTotoSubjects(payload []byte, decode func([]byte, *intoto.Statement) error) ([]string, error) {
	var st intoto.Statement
	if err := decode(payload, &st); err != nil {
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
