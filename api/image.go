package api

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// The image kind.
//
// A submission is a container image signature as cosign makes it:
//
//	{"kind":"image",
//	 "image":"<reference: registry/repository, with a tag or a digest or neither>",
//	 "digest":"sha256:<hex of the manifest>",
//	 "payload":"<base64 of cosign's simple signing payload>",
//	 "signature":"<base64 of the signature over the payload>",
//	 "publicKey":"<PKIX PEM>"  or  "certificate":"<X.509 PEM>"}
//
// The payload is the JSON that cosign signs (its "simple signing" format,
// application/vnd.dev.cosign.simplesigning.v1+json):
//
//	{"critical":{"identity":{"docker-reference":"<repository>"},
//	             "image":{"docker-manifest-digest":"sha256:<hex>"},
//	             "type":"cosign container image signature"},
//	 "optional":{<annotations>} | null}
//
// or, in place of payload and signature, the signature as cosign makes it
// by default since v3, in a Sigstore bundle ("bundle": the bundle's JSON,
// bundle.go): a DSSE envelope of an in-toto Statement of predicate type
// https://sigstore.dev/cosign/sign/v1 whose subjects include the digest,
// with its certificate, or with a key hint and the key given as
// publicKey. A stored entry of that form holds the envelope itself
// ("envelope", as a build entry's, with its one signature).
//
// The log checks that the signature verifies over the payload bytes with
// the key (the certificate's key: Ed25519, ECDSA P-256 with SHA-256 or
// P-384 with SHA-384, or RSA of 2048 to 8192 bits with PKCS #1 v1.5 or PSS
// over SHA-256, as cosign signs), that the payload's type is cosign's,
// that it names exactly the given digest, and that its docker-reference
// is the given image's repository. The optional annotations are kept, at
// most maxImageAnnotations string values, within the payload's bound. A
// certificate is not checked against any root here: its subject
// alternative names and its Fulcio OIDC issuer extension are recorded.
//
// The canonical entry is
//
//	{"kind":"image","v":1,"image":"<repository>","digest":"sha256:<hex>",
//	 "payload":"<base64>","signature":"<base64>","keyFingerprint":"sha256:<hex>",
//	 "publicKey":"<PEM>"}
//
// or, with a certificate, "certificate":"<PEM>", "identities":[...] and
// "issuer":"..." in place of "publicKey"; and for a bundle,
// "envelope":{"payloadType","payload","signatures":[{"sig"}]} in place of
// "payload" and "signature"; in that order, as json.Marshal writes
// imageEntry. The repository is the image's, normalized as
// go-containerregistry names it (index.docker.io/library/ubuntu for
// ubuntu); the payload is kept verbatim (it is what was signed); an
// ECDSA signature is re-encoded in DER with low S; the key and the
// certificate are re-encoded from their DER. keyFingerprint, identities
// and issuer are derived: a submission may carry them, equal to what the
// log derives.

// KindImage is the kind of an entry holding a container image signature
// as cosign makes it.
const KindImage = "image"

// cosignSignatureType is the critical.type of cosign's payload.
const cosignSignatureType = "cosign container image signature"

// Bounds of an image entry.
const (
	// maxImagePayload bounds the payload: cosign's is some 250 bytes
	// without annotations.
	maxImagePayload = 16 << 10
	// maxImageAnnotations bounds the optional annotations of the payload.
	maxImageAnnotations = 64
	// maxImageCertificate bounds a certificate's PEM.
	maxImageCertificate = 16 << 10
	// maxImageIdentities bounds the subject alternative names recorded.
	maxImageIdentities = 16
	// maxImageReference bounds the image reference.
	maxImageReference = 1024
)

// The Fulcio certificate extensions of the OIDC issuer: the first as raw
// text (deprecated), the second as a DER UTF8String.
var (
	oidFulcioIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidFulcioIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
)

// imageEntry is the canonical encoding of an image entry, as json.Marshal
// writes it.
type imageEntry struct {
	Kind           string         `json:"kind"`
	V              int            `json:"v"`
	Image          string         `json:"image"`
	Digest         string         `json:"digest"`
	Payload        []byte         `json:"payload,omitempty"`
	Signature      []byte         `json:"signature,omitempty"`
	Envelope       *imageEnvelope `json:"envelope,omitempty"`
	KeyFingerprint string         `json:"keyFingerprint"`
	PublicKey      string         `json:"publicKey,omitempty"`
	Certificate    string         `json:"certificate,omitempty"`
	Identities     []string       `json:"identities,omitempty"`
	Issuer         string         `json:"issuer,omitempty"`
}

// imageEnvelope is the DSSE envelope of an image signature made in a
// Sigstore bundle.
type imageEnvelope struct {
	PayloadType string             `json:"payloadType"`
	Payload     []byte             `json:"payload"`
	Signatures  []imageEnvelopeSig `json:"signatures"`
}

type imageEnvelopeSig struct {
	Sig []byte `json:"sig"`
}

// imageStatement is a verified image entry.
type imageStatement struct {
	repository  string
	digest      string
	fingerprint string
	identities  []string
	issuer      string
	certificate []byte // DER, of an entry signed under a certificate
}

// SigningCertificate returns the DER of the certificate that signed, or
// nil.
func (s *imageStatement) SigningCertificate() []byte { return s.certificate }

func (s *imageStatement) Kind() string              { return KindImage }
func (s *imageStatement) Subjects() []string        { return []string{s.digest} }
func (s *imageStatement) KeyFingerprints() []string { return []string{s.fingerprint} }

// ImageDigest returns the manifest digest the signature names.
func (s *imageStatement) ImageDigest() string { return s.digest }

// ImageRepository returns the image's repository.
func (s *imageStatement) ImageRepository() string { return s.repository }

// Identities returns the certificate's subject alternative names, sorted;
// none for a plain key.
func (s *imageStatement) Identities() []string { return slices.Clone(s.identities) }

// Issuer returns the OIDC issuer the certificate names, or "".
func (s *imageStatement) Issuer() string { return s.issuer }

func (s *imageStatement) extraSearchTerms() []SearchTerm {
	terms := []SearchTerm{{SearchImage, s.digest}}
	for _, id := range s.identities {
		terms = append(terms, SearchTerm{SearchIdentity, id})
	}
	if s.issuer != "" {
		terms = append(terms, SearchTerm{SearchIssuer, s.issuer})
	}
	return terms
}

// imageDerivedFields are the fields of imageEntry the log derives: a
// submission may carry them, equal to what the log derives.
var imageDerivedFields = []string{"keyFingerprint", "identities", "issuer"}

// canonicalImage decodes the fields of an image submission or entry (kind
// and v already taken), verifies it and returns its canonical encoding.
func canonicalImage(obj *jsonObject, now bool) ([]byte, Statement, error) {
	var image, digest, payload64, sig64, keyPEM, certPEM string
	if err := obj.requiredString("image", &image); err != nil {
		return nil, nil, err
	}
	if err := obj.requiredString("digest", &digest); err != nil {
		return nil, nil, err
	}
	if err := obj.optionalString("payload", &payload64); err != nil {
		return nil, nil, err
	}
	if err := obj.optionalString("signature", &sig64); err != nil {
		return nil, nil, err
	}
	envValue, hasEnvelope := obj.take("envelope")
	bundleValue, hasBundle := obj.take("bundle")
	if err := obj.optionalString("publicKey", &keyPEM); err != nil {
		return nil, nil, err
	}
	if err := obj.optionalString("certificate", &certPEM); err != nil {
		return nil, nil, err
	}
	derived := make(map[string]jsonValue, len(imageDerivedFields))
	for _, name := range imageDerivedFields {
		if v, ok := obj.take(name); ok {
			derived[name] = v
		}
	}
	if err := obj.done(); err != nil {
		return nil, nil, err
	}
	forms := 0
	for _, has := range []bool{payload64 != "" || sig64 != "", hasEnvelope, hasBundle} {
		if has {
			forms++
		}
	}
	if forms != 1 {
		return nil, nil, entryErrorf("want the signature as payload and signature, as envelope, or as bundle: exactly one of them")
	}
	if !isImageDigest(digest) {
		return nil, nil, entryErrorf("digest %.100q is not sha256: and 64 lowercase hex digits", digest)
	}
	repository, err := imageRepository(image, digest)
	if err != nil {
		return nil, nil, err
	}
	e := imageEntry{Kind: KindImage, V: entryVersion, Image: repository, Digest: digest}
	// msg and sig are what the key must verify.
	var msg, sig []byte
	var env *dsseEnvelope
	switch {
	case hasBundle:
		b, err := parseSigstoreBundle(bundleValue)
		if err != nil {
			return nil, nil, err
		}
		if b.message != nil {
			return nil, nil, entryErrorf("bundle holds a message signature, which signs a blob, not an image: want a DSSE envelope")
		}
		if b.certPEM != "" {
			if keyPEM != "" || certPEM != "" {
				return nil, nil, entryErrorf("the bundle carries its certificate: give no publicKey or certificate")
			}
			certPEM = b.certPEM
		}
		env = b.envelope
	case hasEnvelope:
		d, err := decodeEnvelope(envValue)
		if err != nil {
			return nil, nil, err
		}
		env = &dsseEnvelope{payloadType: d.PayloadType}
		if env.payload, err = decodeBase64(d.Payload); err != nil {
			return nil, nil, &EntryError{Reason: "envelope payload is not base64", Err: err}
		}
		for i, s := range d.Signatures {
			b, err := decodeBase64(s.Sig)
			if err != nil {
				return nil, nil, &EntryError{Reason: fmt.Sprintf("envelope signature %d is not base64", i), Err: err}
			}
			env.sigs = append(env.sigs, b)
		}
	default:
		if len(payload64) > base64.StdEncoding.EncodedLen(maxImagePayload) {
			return nil, nil, fmt.Errorf("%w: payload is over %d bytes, limit %d", ErrEntryTooLarge, base64.StdEncoding.DecodedLen(len(payload64))-2, maxImagePayload)
		}
		payload, err := decodeBase64(payload64)
		if err != nil {
			return nil, nil, &EntryError{Reason: "payload is not base64", Err: err}
		}
		if len(payload) > maxImagePayload {
			return nil, nil, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrEntryTooLarge, len(payload), maxImagePayload)
		}
		if err := checkCosignPayload(payload, repository, digest); err != nil {
			return nil, nil, err
		}
		if sig, err = decodeBase64(sig64); err != nil {
			return nil, nil, &EntryError{Reason: "signature is not base64", Err: err}
		}
		msg, e.Payload = payload, payload
	}
	if env != nil {
		if err := checkDSSEImage(env, digest); err != nil {
			return nil, nil, err
		}
		msg, sig = dsse.PAE(env.payloadType, env.payload), env.sigs[0]
	}
	if (keyPEM == "") == (certPEM == "") {
		return nil, nil, entryErrorf("want exactly one of publicKey and certificate")
	}
	st := &imageStatement{repository: repository, digest: digest}
	var key *publicKey
	if keyPEM != "" {
		if key, err = parsePublicKey(0, keyPEM); err != nil {
			return nil, nil, err
		}
		e.PublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: key.der}))
	} else {
		cert, err := parseSigningCertificate(certPEM)
		if err != nil {
			return nil, nil, err
		}
		key = cert.key
		e.Certificate, e.Identities, e.Issuer = cert.pem, cert.identities, cert.issuer
		st.identities, st.issuer, st.certificate = e.Identities, e.Issuer, cert.der
	}
	canonicalSig, ok := verifySignature(key, msg, sig)
	if !ok {
		what := "publicKey"
		if certPEM != "" {
			what = "the certificate's key"
		}
		return nil, nil, entryErrorf("signature doesn't verify over the payload with %s", what)
	}
	if env != nil {
		e.Envelope = &imageEnvelope{PayloadType: env.payloadType, Payload: env.payload, Signatures: []imageEnvelopeSig{{Sig: canonicalSig}}}
	} else {
		e.Signature = canonicalSig
	}
	e.KeyFingerprint = key.fingerprint
	st.fingerprint = key.fingerprint
	entry, err := json.Marshal(&e)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't encode an image entry: %w", err)
	}
	if len(derived) > 0 && now {
		if err := checkImageDerived(&e, derived); err != nil {
			return nil, nil, err
		}
	}
	return entry, st, nil
}

// checkImageDerived checks the derived fields a submission carries
// against those the log derived.
func checkImageDerived(e *imageEntry, derived map[string]jsonValue) error {
	want := map[string]any{"keyFingerprint": e.KeyFingerprint, "identities": e.Identities, "issuer": e.Issuer}
	for name, v := range derived {
		got := reflect.New(reflect.TypeOf(want[name]))
		if err := json.Unmarshal(v.raw, got.Interface()); err != nil {
			return &EntryError{Reason: fmt.Sprintf("bad field %q", name), Err: err}
		}
		if !reflect.DeepEqual(got.Elem().Interface(), want[name]) {
			return entryErrorf("field %q is %.200s, but the signature and key give %v", name, v.raw, want[name])
		}
	}
	return nil
}

// isImageDigest reports whether s is "sha256:" and 64 lowercase hex digits.
func isImageDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && len(hex) == 64 && isHex(hex)
}

// imageRepository parses an image reference and returns its repository as
// go-containerregistry names it. A reference with a digest must have
// digest's.
func imageRepository(image, digest string) (string, error) {
	if len(image) > maxImageReference {
		return "", entryErrorf("image reference is %d bytes, limit %d", len(image), maxImageReference)
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return "", &EntryError{Reason: fmt.Sprintf("image %.100q is not an image reference", image), Err: err}
	}
	if d, ok := ref.(name.Digest); ok && d.DigestStr() != digest {
		return "", entryErrorf("image reference names digest %s, not %s", d.DigestStr(), digest)
	}
	return ref.Context().Name(), nil
}

// cosignPayload is cosign's simple signing payload.
type cosignPayload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// checkCosignPayload checks that payload is a cosign simple signing
// payload of an image of repository with digest, with bounded optional
// annotations.
func checkCosignPayload(payload []byte, repository, digest string) error {
	var p cosignPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return &EntryError{Reason: "payload is not cosign's simple signing JSON", Err: err}
	}
	switch {
	case p.Critical.Type != cosignSignatureType:
		return entryErrorf("payload type is %.100q, want %q", p.Critical.Type, cosignSignatureType)
	case p.Critical.Image.DockerManifestDigest != digest:
		return entryErrorf("payload signs digest %.100q, not %s", p.Critical.Image.DockerManifestDigest, digest)
	case len(p.Optional) > maxImageAnnotations:
		return entryErrorf("payload has %d optional annotations, limit %d", len(p.Optional), maxImageAnnotations)
	}
	ref, err := name.ParseReference(p.Critical.Identity.DockerReference)
	if err != nil {
		return &EntryError{Reason: fmt.Sprintf("payload docker-reference %.100q is not an image reference", p.Critical.Identity.DockerReference), Err: err}
	}
	if got := ref.Context().Name(); got != repository {
		return entryErrorf("payload signs an image of %.100q, not of %s", got, repository)
	}
	return nil
}

// signingCertificate is the certificate that signed an entry, as entries
// record it.
type signingCertificate struct {
	pem        string // re-encoded from its DER
	der        []byte
	key        *publicKey
	identities []string
	issuer     string
}

// parseSigningCertificate parses a PEM certificate, its key, its subject
// alternative names and its Fulcio OIDC issuer.
func parseSigningCertificate(s string) (*signingCertificate, error) {
	cert, key, err := parseCertificate(s)
	if err != nil {
		return nil, err
	}
	c := &signingCertificate{pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})), der: cert.Raw, key: key}
	if c.identities, err = certificateIdentities(cert); err != nil {
		return nil, err
	}
	if c.issuer, err = certificateIssuer(cert); err != nil {
		return nil, err
	}
	return c, nil
}

// checkCertificateDerived checks the identities and issuer a submission
// carries against the certificate's.
func checkCertificateDerived(c *signingCertificate, derived map[string]jsonValue) error {
	e := imageEntry{Identities: c.identities, Issuer: c.issuer}
	delete(derived, "keyFingerprint")
	return checkImageDerived(&e, derived)
}

// parseCertificate parses a PEM certificate and its public key, which
// must be of a type and size a public key may be.
func parseCertificate(s string) (*x509.Certificate, *publicKey, error) {
	if len(s) > maxImageCertificate {
		return nil, nil, entryErrorf("certificate is %d bytes, limit %d", len(s), maxImageCertificate)
	}
	block, rest := pem.Decode([]byte(s))
	switch {
	case block == nil:
		return nil, nil, entryErrorf("certificate is not a PEM block")
	case block.Type != "CERTIFICATE":
		return nil, nil, entryErrorf("certificate is a PEM %.40q block, want \"CERTIFICATE\"", block.Type)
	case len(block.Headers) != 0:
		return nil, nil, entryErrorf("certificate has PEM headers")
	case len(bytes.TrimSpace(rest)) != 0:
		return nil, nil, entryErrorf("certificate has data after its PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, &EntryError{Reason: "certificate is not an X.509 certificate", Err: err}
	}
	der, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
	if err != nil {
		return nil, nil, &EntryError{Reason: "the certificate's key is not one a signature can be checked with", Err: err}
	}
	key, err := parsePublicKey(0, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// certificateIdentities returns the subject alternative names of cert
// (emails, URIs, DNS names), sorted and unique.
func certificateIdentities(cert *x509.Certificate) ([]string, error) {
	var ids []string
	ids = append(ids, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		ids = append(ids, u.String())
	}
	ids = append(ids, cert.DNSNames...)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > maxImageIdentities {
		return nil, entryErrorf("certificate has %d subject alternative names, limit %d", len(ids), maxImageIdentities)
	}
	for _, id := range ids {
		if len(id) > maxSearchValue || !utf8.ValidString(id) || strings.ContainsFunc(id, isControl) {
			return nil, entryErrorf("certificate has a subject alternative name %.100q that is not printable UTF-8 of at most %d bytes", id, maxSearchValue)
		}
	}
	return ids, nil
}

// certificateIssuer returns the OIDC issuer that a Fulcio certificate
// names in its extension, or "" if it has none.
func certificateIssuer(cert *x509.Certificate) (string, error) {
	var v1, v2 string
	for _, ext := range cert.Extensions {
		switch {
		case ext.Id.Equal(oidFulcioIssuerV2):
			var s string
			if rest, err := asn1.UnmarshalWithParams(ext.Value, &s, "utf8"); err != nil || len(rest) != 0 {
				return "", entryErrorf("the certificate's OIDC issuer extension is not a UTF8String")
			}
			v2 = s
		case ext.Id.Equal(oidFulcioIssuerV1):
			v1 = string(ext.Value)
		}
	}
	issuer := v2
	if issuer == "" {
		issuer = v1
	}
	if len(issuer) > maxSearchValue || !utf8.ValidString(issuer) || strings.ContainsFunc(issuer, isControl) {
		return "", entryErrorf("the certificate's OIDC issuer is not printable UTF-8 of at most %d bytes", maxSearchValue)
	}
	return issuer, nil
}
