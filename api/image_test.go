package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

const (
	testImageRepository = "registry.example.com/team/app"
	testImageDigest     = "sha256:" + testDigest
)

// cosignPayloadOf returns cosign's payload for the image, with optional
// annotations.
func cosignPayloadOf(repository, digest string, optional map[string]string) []byte {
	p := map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": repository},
			"image":    map[string]string{"docker-manifest-digest": digest},
			"type":     cosignSignatureType,
		},
		"optional": optional,
	}
	if optional == nil {
		p["optional"] = nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return b
}

// imageSubmission is an image submission under construction.
type imageSubmission struct {
	image, digest string
	payload       []byte
	sig           []byte
	key           string // PEM
	cert          string // PEM
	extra         map[string]any
}

func (s imageSubmission) encode(t testing.TB) []byte {
	t.Helper()
	m := map[string]any{"kind": KindImage, "image": s.image, "digest": s.digest,
		"payload": base64.StdEncoding.EncodeToString(s.payload), "signature": base64.StdEncoding.EncodeToString(s.sig)}
	if s.key != "" {
		m["publicKey"] = s.key
	}
	if s.cert != "" {
		m["certificate"] = s.cert
	}
	for k, v := range s.extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedImage returns a submission of the test image signed by k.
func signedImage(t testing.TB, k testKey) imageSubmission {
	payload := cosignPayloadOf(testImageRepository, testImageDigest, nil)
	return imageSubmission{image: testImageRepository + "@" + testImageDigest, digest: testImageDigest,
		payload: payload, sig: k.signMsg(t, payload), key: k.pem(t)}
}

// testCertificate returns a self-signed certificate of k's key with the
// SANs and, if issuer is not empty, Fulcio's OIDC issuer extensions.
func testCertificate(t testing.TB, k testKey, emails []string, uris []string, issuer string, notAfter time.Time) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sigstore"},
		NotBefore: notAfter.Add(-10 * time.Minute), NotAfter: notAfter, EmailAddresses: emails}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if issuer != "" {
		v2, err := asn1.MarshalWithParams(issuer, "utf8")
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidFulcioIssuerV1, Value: []byte(issuer)}, {Id: oidFulcioIssuerV2, Value: v2}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.priv.Public(), k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// checkAcceptedImage is checkAccepted for an image entry.
func checkAcceptedImage(t *testing.T, entry []byte, st Statement) {
	t.Helper()
	var e imageEntry
	if err := json.Unmarshal(entry, &e); err != nil {
		t.Fatalf("an accepted entry doesn't decode as an imageEntry: %v", err)
	}
	if b, err := json.Marshal(&e); err != nil || !bytes.Equal(b, entry) {
		t.Fatalf("json.Marshal of the decoded entry is\n%s, %v\nwant\n%s", b, err, entry)
	}
	if e.Envelope != nil {
		if e.Payload != nil || e.Signature != nil || len(e.Envelope.Signatures) != 1 {
			t.Fatalf("an entry with an envelope and a payload, or not one signature: %s", entry)
		}
		if err := checkDSSEImage(&dsseEnvelope{payloadType: e.Envelope.PayloadType, payload: e.Envelope.Payload, sigs: [][]byte{e.Envelope.Signatures[0].Sig}}, e.Digest); err != nil {
			t.Fatalf("the entry's envelope: %v", err)
		}
	} else if err := checkCosignPayload(e.Payload, e.Image, e.Digest); err != nil {
		t.Fatalf("the entry's payload: %v", err)
	}
	is := st.(*imageStatement)
	if is.ImageDigest() != e.Digest || !slices.Equal(st.Subjects(), []string{e.Digest}) || !slices.Equal(st.KeyFingerprints(), []string{e.KeyFingerprint}) {
		t.Fatalf("statement %+v of entry %s", is, entry)
	}
	terms := SearchTerms(st)
	for _, want := range []SearchTerm{{SearchImage, e.Digest}, {SearchDigest, e.Digest}, {SearchKey, e.KeyFingerprint}} {
		if !slices.Contains(terms, want) {
			t.Fatalf("SearchTerms = %v, want %v among them", terms, want)
		}
	}
	for _, term := range terms {
		got, err := ParseSearchTerm(term.Param, term.Value)
		if err != nil || got != term {
			t.Fatalf("ParseSearchTerm(%q, %q) = %v, %v; want it unchanged", term.Param, term.Value, got, err)
		}
	}
}

func TestImageAccepted(t *testing.T) {
	ks := keys(t)
	for _, k := range []testKey{ks.p256, ks.p384, ks.ed25519, ks.rsa2048, ks.rsa2048pss} {
		t.Run(k.name, func(t *testing.T) {
			sub := signedImage(t, k)
			entry, err := CanonicalEntry(sub.encode(t))
			if err != nil {
				t.Fatal(err)
			}
			checkAccepted(t, entry)
			var e imageEntry
			if err := json.Unmarshal(entry, &e); err != nil {
				t.Fatal(err)
			}
			if e.Image != testImageRepository || e.Digest != testImageDigest || e.KeyFingerprint != k.fingerprint(t) || e.PublicKey != k.pem(t) {
				t.Errorf("entry %s", entry)
			}
			// The same signature given through other references to the
			// image, with the derived fields, gives the same entry.
			for _, image := range []string{testImageRepository, testImageRepository + ":v1", testImageRepository + "@" + testImageDigest} {
				again := sub
				again.image = image
				again.extra = map[string]any{"keyFingerprint": e.KeyFingerprint}
				if got, err := CanonicalEntry(again.encode(t)); err != nil || !bytes.Equal(got, entry) {
					t.Errorf("image %q: %s, %v", image, got, err)
				}
			}
		})
	}
}

// TestImageECDSAMalleability: the high-S twin of an ECDSA signature gives
// the same entry.
func TestImageECDSAMalleability(t *testing.T) {
	k := keys(t).p256
	sub := signedImage(t, k)
	entry, err := CanonicalEntry(sub.encode(t))
	if err != nil {
		t.Fatal(err)
	}
	var s ecdsaSignature
	if _, err := asn1.Unmarshal(sub.sig, &s); err != nil {
		t.Fatal(err)
	}
	s.S.Sub(elliptic.P256().Params().N, s.S)
	twin, err := asn1.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	sub.sig = twin
	if got, err := CanonicalEntry(sub.encode(t)); err != nil || !bytes.Equal(got, entry) {
		t.Fatalf("the twin signature gives %s, %v", got, err)
	}
}

func TestImageCertificate(t *testing.T) {
	k := keys(t).p256
	sub := signedImage(t, k)
	sub.key = ""
	sub.cert = testCertificate(t, k, []string{"release@example.com"}, []string{"https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"},
		"https://token.actions.githubusercontent.com", time.Now().Add(-time.Hour))
	entry, err := CanonicalEntry(sub.encode(t))
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, entry)
	st, err := ParseEntry(entry)
	if err != nil {
		t.Fatal(err)
	}
	is := st.(*imageStatement)
	wantIDs := []string{"https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main", "release@example.com"}
	if !slices.Equal(is.Identities(), wantIDs) || is.Issuer() != "https://token.actions.githubusercontent.com" {
		t.Fatalf("identities %q, issuer %q", is.Identities(), is.Issuer())
	}
	terms := SearchTerms(st)
	for _, want := range []SearchTerm{{SearchIdentity, wantIDs[0]}, {SearchIdentity, wantIDs[1]}, {SearchIssuer, is.Issuer()}} {
		if !slices.Contains(terms, want) {
			t.Errorf("SearchTerms = %v, want %v among them", terms, want)
		}
	}
	if !strings.Contains(string(entry), `"certificate":"-----BEGIN CERTIFICATE-----`) || strings.Contains(string(entry), `"publicKey"`) {
		t.Errorf("entry %s", entry)
	}
	// Derived fields that lie are refused.
	lying := sub
	lying.extra = map[string]any{"identities": []string{"someone@example.com"}}
	if _, err := CanonicalEntry(lying.encode(t)); err == nil || !strings.Contains(err.Error(), `field "identities"`) {
		t.Errorf("lying identities: %v", err)
	}
}

func TestImageRefused(t *testing.T) {
	ks := keys(t)
	good := signedImage(t, ks.p256)
	with := func(f func(s *imageSubmission)) imageSubmission {
		s := good
		f(&s)
		return s
	}
	resign := func(s *imageSubmission) { s.sig = ks.p256.signMsg(t, s.payload) }
	otherDigest := "sha256:" + strings.Repeat("ab", 32)
	manyAnnotations := map[string]string{}
	for i := range maxImageAnnotations + 1 {
		manyAnnotations[fmt.Sprint("k", i)] = "v"
	}
	cert := testCertificate(t, ks.p384, []string{"a@example.com"}, nil, "", time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name string
		sub  imageSubmission
		want string
	}{
		{"payload of another digest", with(func(s *imageSubmission) {
			s.payload = cosignPayloadOf(testImageRepository, otherDigest, nil)
			resign(s)
		}), "payload signs digest"},
		{"digest of another image", with(func(s *imageSubmission) { s.digest, s.image = otherDigest, testImageRepository }), "payload signs digest"},
		{"payload of another type", with(func(s *imageSubmission) {
			s.payload = bytes.Replace(s.payload, []byte(cosignSignatureType), []byte("atomic container signature"), 1)
			resign(s)
		}), "payload type"},
		{"payload of another repository", with(func(s *imageSubmission) {
			s.payload = cosignPayloadOf("registry.example.com/team/other", testImageDigest, nil)
			resign(s)
		}), "payload signs an image of"},
		{"signature by another key", with(func(s *imageSubmission) { s.sig = ks.p384.signMsg(t, s.payload) }), "doesn't verify"},
		{"certificate whose key did not sign", with(func(s *imageSubmission) { s.key, s.cert = "", cert }), "the certificate's key"},
		{"both key and certificate", with(func(s *imageSubmission) { s.cert = cert }), "exactly one of"},
		{"neither key nor certificate", with(func(s *imageSubmission) { s.key = "" }), "exactly one of"},
		{"RSA key under 2048 bits", with(func(s *imageSubmission) {
			s.key = ks.rsa1024.pem(t)
			s.sig = ks.rsa1024.signMsg(t, s.payload)
		}), "RSA with 1024 bits"},
		{"P-521 key", with(func(s *imageSubmission) {
			s.key = ks.p521.pem(t)
			s.sig = ks.p521.signMsg(t, s.payload)
		}), "want P-256 or P-384"},
		{"too many annotations", with(func(s *imageSubmission) {
			s.payload = cosignPayloadOf(testImageRepository, testImageDigest, manyAnnotations)
			resign(s)
		}), "optional annotations"},
		{"oversize payload", with(func(s *imageSubmission) {
			s.payload = cosignPayloadOf(testImageRepository, testImageDigest, map[string]string{"x": strings.Repeat("a", maxImagePayload)})
			resign(s)
		}), "payload is"},
		{"payload not JSON", with(func(s *imageSubmission) { s.payload = []byte("sign me"); resign(s) }), "not cosign's simple signing JSON"},
		{"malformed reference", with(func(s *imageSubmission) { s.image = "Registry.example.com/UPPER@@x" }), "not an image reference"},
		{"truncated reference", with(func(s *imageSubmission) { s.image = testImageRepository + "@sha256:ab" }), "not an image reference"},
		{"reference of another digest", with(func(s *imageSubmission) { s.image = testImageRepository + "@" + otherDigest }), "names digest"},
		{"digest in uppercase", with(func(s *imageSubmission) { s.digest = strings.ToUpper(s.digest) }), "lowercase hex"},
		{"unknown field", with(func(s *imageSubmission) { s.extra = map[string]any{"colour": "blue"} }), "colour"},
		{"signature not base64", with(func(s *imageSubmission) { s.extra = map[string]any{"signature": "!!"} }), "not base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CanonicalEntry(tc.sub.encode(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CanonicalEntry = %v, want an error saying %q", err, tc.want)
			}
			checkRejected(t, err)
		})
	}
}

// FuzzImagePayload fuzzes the payload parser behind the signature check,
// which the other fuzzers rarely get past: it signs whatever payload it
// is given.
func FuzzImagePayload(f *testing.F) {
	f.Add(cosignPayloadOf(testImageRepository, testImageDigest, nil))
	f.Add(cosignPayloadOf(testImageRepository, testImageDigest, map[string]string{"a": "b"}))
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"` + testImageDigest + `"},"type":"cosign container image signature"},"optional":{"n":[1,{"x":null}]}}`))
	k := testKey{name: "p256", priv: mustP256()}
	key := k.pem(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		sub := imageSubmission{image: testImageRepository, digest: testImageDigest, payload: payload, sig: k.signMsg(t, payload), key: key}
		entry, err := CanonicalEntry(sub.encode(t))
		if err != nil {
			checkRejected(t, err)
			return
		}
		checkAccepted(t, entry)
	})
}

func mustP256() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// cosignStatement returns the in-toto Statement cosign signs for an image
// in a Sigstore bundle.
func cosignStatement(digest, predicateType string) []byte {
	hex := strings.TrimPrefix(digest, "sha256:")
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + hex + `"},"annotations":{}}],"predicateType":"` + predicateType + `","predicate":{}}`)
}

// sigstoreBundleOf returns a Sigstore bundle v0.3 of a DSSE envelope of
// statement signed by k, with the verification material: a key hint, or
// the certificate (PEM) if not empty.
func sigstoreBundleOf(t testing.TB, k testKey, statement []byte, certPEM string) map[string]any {
	t.Helper()
	sig := k.signMsg(t, dsse.PAE(inTotoPayloadType, statement))
	vm := map[string]any{"publicKey": map[string]string{"hint": "aGludA=="}}
	if certPEM != "" {
		block, _ := pem.Decode([]byte(certPEM))
		vm = map[string]any{"certificate": map[string]string{"rawBytes": base64.StdEncoding.EncodeToString(block.Bytes)}}
	}
	return map[string]any{
		"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": vm,
		"dsseEnvelope": map[string]any{
			"payload":     base64.StdEncoding.EncodeToString(statement),
			"payloadType": inTotoPayloadType,
			"signatures":  []map[string]string{{"sig": base64.StdEncoding.EncodeToString(sig)}},
		},
	}
}

// bundleSubmission returns an image submission of a bundle.
func bundleSubmission(t testing.TB, bundle map[string]any, key string) []byte {
	t.Helper()
	m := map[string]any{"kind": KindImage, "image": testImageRepository + "@" + testImageDigest, "digest": testImageDigest, "bundle": bundle}
	if key != "" {
		m["publicKey"] = key
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestImageBundle takes cosign's image signatures in Sigstore bundles, as
// cosign v3 makes them by default: a DSSE envelope of an in-toto
// Statement about the image, with a key hint (the key given beside) or a
// certificate.
func TestImageBundle(t *testing.T) {
	ks := keys(t)
	statement := cosignStatement(testImageDigest, cosignSignPredicate)
	withKey, err := CanonicalEntry(bundleSubmission(t, sigstoreBundleOf(t, ks.p256, statement, ""), ks.p256.pem(t)))
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, withKey)
	var e imageEntry
	if err := json.Unmarshal(withKey, &e); err != nil || e.Envelope == nil || e.Payload != nil || !bytes.Equal(e.Envelope.Payload, statement) {
		t.Fatalf("entry %s, %v", withKey, err)
	}
	cert := testCertificate(t, ks.p256, []string{"ci@example.com"}, nil, "https://issuer.example.com", time.Now())
	withCert, err := CanonicalEntry(bundleSubmission(t, sigstoreBundleOf(t, ks.p256, statement, cert), ""))
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, withCert)
	st, err := ParseEntry(withCert)
	if err != nil || !slices.Equal(st.(*imageStatement).Identities(), []string{"ci@example.com"}) {
		t.Fatalf("ParseEntry = %v, %v", st, err)
	}

	otherDigest := "sha256:" + strings.Repeat("ab", 32)
	twoSigs := sigstoreBundleOf(t, ks.p256, statement, "")
	env := twoSigs["dsseEnvelope"].(map[string]any)
	env["signatures"] = append(env["signatures"].([]map[string]string), env["signatures"].([]map[string]string)[0])
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"unknown media type", bundleSubmission(t, func() map[string]any {
			b := sigstoreBundleOf(t, ks.p256, statement, "")
			b["mediaType"] = "application/vnd.dev.sigstore.bundle.v9+json"
			return b
		}(), ks.p256.pem(t)), "media type"},
		{"no verification material", bundleSubmission(t, func() map[string]any {
			b := sigstoreBundleOf(t, ks.p256, statement, "")
			delete(b, "verificationMaterial")
			return b
		}(), ks.p256.pem(t)), "no verification material"},
		{"a hint and no key", bundleSubmission(t, sigstoreBundleOf(t, ks.p256, statement, ""), ""), "exactly one of publicKey and certificate"},
		{"a certificate and a key", bundleSubmission(t, sigstoreBundleOf(t, ks.p256, statement, cert), ks.p256.pem(t)), "carries its certificate"},
		{"signed by another key", bundleSubmission(t, sigstoreBundleOf(t, ks.p384, statement, ""), ks.p256.pem(t)), "doesn't verify"},
		{"certificate of another key", bundleSubmission(t, sigstoreBundleOf(t, ks.p384, statement, cert), ""), "doesn't verify"},
		{"statement about another image", bundleSubmission(t, sigstoreBundleOf(t, ks.p256, cosignStatement(otherDigest, cosignSignPredicate), ""), ks.p256.pem(t)), "not about"},
		{"another predicate", bundleSubmission(t, sigstoreBundleOf(t, ks.p256, cosignStatement(testImageDigest, "https://slsa.dev/provenance/v1"), ""), ks.p256.pem(t)), "predicate type"},
		{"two signatures", bundleSubmission(t, twoSigs, ks.p256.pem(t)), "2 signatures"},
		{"a message signature", bundleSubmission(t, map[string]any{
			"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
			"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "aGludA=="}},
			"messageSignature":     map[string]any{"messageDigest": map[string]string{"algorithm": "SHA2_256", "digest": base64.StdEncoding.EncodeToString(make([]byte, 32))}, "signature": "aGludA=="},
		}, ks.p256.pem(t)), "message signature"},
		{"not a bundle", []byte(`{"kind":"image","image":"r","digest":"` + testImageDigest + `","bundle":{"mediaType":1},"publicKey":"x"}`), "not a Sigstore bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CanonicalEntry(tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CanonicalEntry = %v, want an error saying %q", err, tc.want)
			}
			checkRejected(t, err)
		})
	}
}

// buildBundleSubmission returns a build submission of a bundle, with
// publicKeys if keys are given.
func buildBundleSubmission(t testing.TB, bundle map[string]any, keys ...string) []byte {
	t.Helper()
	m := map[string]any{"kind": KindBuild, "bundle": bundle}
	if len(keys) > 0 {
		m["publicKeys"] = keys
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBuildBundle takes build attestations in Sigstore bundles, as cosign
// attest --bundle and hosted forges' artifact attestations publish them:
// with a key hint (the key given as publicKeys) or a certificate, whose
// identities and issuer are recorded and searchable.
func TestBuildBundle(t *testing.T) {
	ks := keys(t)
	stmt := statementV1("app.tar.gz", testDigest)
	hinted, err := CanonicalEntry(buildBundleSubmission(t, sigstoreBundleOf(t, ks.p256, stmt, ""), ks.p256.pem(t)))
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, hinted)
	// The same envelope and key as a plain build submission: one entry.
	plain := testSubmission{payload: stmt, signers: []testKey{ks.p256}}
	if _, err := CanonicalEntry(plain.encode(t)); err != nil {
		t.Fatal(err)
	}

	cert := testCertificate(t, ks.p256, nil, []string{"https://github.com/org/repo/.github/workflows/build.yml@refs/tags/v1"}, "https://token.actions.githubusercontent.com", time.Now())
	withCert, err := CanonicalEntry(buildBundleSubmission(t, sigstoreBundleOf(t, ks.p256, stmt, cert)))
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, withCert)
	var e buildEntry
	if err := json.Unmarshal(withCert, &e); err != nil || e.Certificate == "" || len(e.PublicKeys) != 1 || e.PublicKeys[0] != ks.p256.pem(t) {
		t.Fatalf("entry %s, %v", withCert, err)
	}
	st, err := ParseEntry(withCert)
	if err != nil {
		t.Fatal(err)
	}
	terms := SearchTerms(st)
	for _, want := range []SearchTerm{{SearchIdentity, "https://github.com/org/repo/.github/workflows/build.yml@refs/tags/v1"}, {SearchIssuer, "https://token.actions.githubusercontent.com"}, {SearchDigest, "sha256:" + testDigest}} {
		if !slices.Contains(terms, want) {
			t.Errorf("SearchTerms = %v, want %v among them", terms, want)
		}
	}
	stored, err := StoredEntryTerms(withCert)
	if err != nil || !slices.Equal(stored, terms) {
		t.Errorf("StoredEntryTerms = %v, %v; want %v", stored, err, terms)
	}

	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"a hint and no key", buildBundleSubmission(t, sigstoreBundleOf(t, ks.p256, stmt, "")), "publicKeys"},
		{"a certificate and keys", buildBundleSubmission(t, sigstoreBundleOf(t, ks.p256, stmt, cert), ks.p256.pem(t)), "carries its certificate"},
		{"certificate of another key", buildBundleSubmission(t, sigstoreBundleOf(t, ks.p384, stmt, cert)), "doesn't verify"},
		{"envelope and bundle", func() []byte {
			m := map[string]any{}
			if err := json.Unmarshal(plain.encode(t), &m); err != nil {
				t.Fatal(err)
			}
			m["bundle"] = sigstoreBundleOf(t, ks.p256, stmt, "")
			b, _ := json.Marshal(m)
			return b
		}(), "one of them"},
		{"stored with another key beside its certificate", bytes.Replace(withCert, []byte(strings.ReplaceAll(ks.p256.pem(t), "\n", `\n`)), []byte(strings.ReplaceAll(ks.p384.pem(t), "\n", `\n`)), 1), "certificate's key alone"},
		{"lying identities", bytes.Replace(withCert, []byte(`"identities":["https://github.com/org`), []byte(`"identities":["https://gitlab.com/org`), 1), `field "identities"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CanonicalEntry(tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CanonicalEntry = %v, want an error saying %q", err, tc.want)
			}
			checkRejected(t, err)
		})
	}
}

// messageBundleOf returns a Sigstore bundle v0.3 of k's signature of the
// artifact's digest, as cosign sign-blob --bundle writes it.
func messageBundleOf(t testing.TB, k testKey, artifact []byte, certPEM string) map[string]any {
	t.Helper()
	sum := sha256.Sum256(artifact)
	var sig []byte
	var err error
	switch priv := k.priv.(type) {
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, priv, sum[:])
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, sum[:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, artifact)
	}
	if err != nil {
		t.Fatal(err)
	}
	vm := map[string]any{"publicKey": map[string]string{"hint": "aGludA=="}}
	if certPEM != "" {
		block, _ := pem.Decode([]byte(certPEM))
		vm = map[string]any{"certificate": map[string]string{"rawBytes": base64.StdEncoding.EncodeToString(block.Bytes)}}
	}
	return map[string]any{
		"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": vm,
		"messageSignature": map[string]any{
			"messageDigest": map[string]string{"algorithm": "SHA2_256", "digest": base64.StdEncoding.EncodeToString(sum[:])},
			"signature":     base64.StdEncoding.EncodeToString(sig),
		},
	}
}

// TestBuildMessageSignature takes an artifact's signature by its digest,
// as cosign sign-blob --bundle makes it: a build entry whose subject is
// the digest; Ed25519, which signs the artifact and not its digest, is
// refused.
func TestBuildMessageSignature(t *testing.T) {
	ks := keys(t)
	artifact := []byte("app.tar.gz contents")
	sum := sha256.Sum256(artifact)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	for _, k := range []testKey{ks.p256, ks.rsa2048} {
		entry, err := CanonicalEntry(buildBundleSubmission(t, messageBundleOf(t, k, artifact, ""), k.pem(t)))
		if err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		checkAccepted(t, entry)
		st, err := ParseEntry(entry)
		if err != nil || !slices.Equal(st.Subjects(), []string{digest}) {
			t.Fatalf("%s: %v, %v", k.name, st, err)
		}
		if terms, err := StoredEntryTerms(entry); err != nil || !slices.Contains(terms, SearchTerm{SearchDigest, digest}) {
			t.Errorf("%s: StoredEntryTerms = %v, %v", k.name, terms, err)
		}
	}
	cert := testCertificate(t, ks.p256, []string{"ci@example.com"}, nil, "https://issuer.example.com", time.Now())
	withCert, err := CanonicalEntry(buildBundleSubmission(t, messageBundleOf(t, ks.p256, artifact, cert)))
	if err != nil {
		t.Fatal(err)
	}
	checkAccepted(t, withCert)

	otherDigest := messageBundleOf(t, ks.p256, artifact, "")
	otherDigest["messageSignature"].(map[string]any)["messageDigest"] = map[string]string{"algorithm": "SHA2_256", "digest": base64.StdEncoding.EncodeToString(make([]byte, 32))}
	sha384 := messageBundleOf(t, ks.p256, artifact, "")
	sha384["messageSignature"].(map[string]any)["messageDigest"] = map[string]string{"algorithm": "SHA2_384", "digest": base64.StdEncoding.EncodeToString(make([]byte, 48))}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"Ed25519", buildBundleSubmission(t, messageBundleOf(t, ks.ed25519, artifact, ""), ks.ed25519.pem(t)), "cannot check it"},
		{"another digest", buildBundleSubmission(t, otherDigest, ks.p256.pem(t)), "doesn't verify"},
		{"another key", buildBundleSubmission(t, messageBundleOf(t, ks.p256, artifact, ""), ks.p384.pem(t)), "SHA-384"},
		{"P-256 over SHA-384", buildBundleSubmission(t, sha384, ks.p256.pem(t)), "SHA-256"},
		{"two keys", buildBundleSubmission(t, messageBundleOf(t, ks.p256, artifact, ""), ks.p256.pem(t), ks.p384.pem(t)), "one signer"},
		{"an image", bundleSubmission(t, messageBundleOf(t, ks.p256, artifact, ""), ks.p256.pem(t)), "signs a blob, not an image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CanonicalEntry(tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CanonicalEntry = %v, want an error saying %q", err, tc.want)
			}
			checkRejected(t, err)
		})
	}
}

// FuzzSigstoreBundle fuzzes the Sigstore bundle parser behind build and
// image submissions: whatever bundle it is given goes in a build
// submission with a key, and in an image submission.
func FuzzSigstoreBundle(f *testing.F) {
	k := testKey{name: "p256", priv: mustP256()}
	stmt := statementV1("app.tar.gz", testDigest)
	for _, b := range []map[string]any{
		sigstoreBundleOf(f, k, stmt, ""),
		sigstoreBundleOf(f, k, cosignStatement(testImageDigest, cosignSignPredicate), ""),
		messageBundleOf(f, k, []byte("artifact"), ""),
		sigstoreBundleOf(f, k, stmt, testCertificate(f, k, []string{"a@example.com"}, nil, "https://issuer.example.com", time.Now())),
	} {
		raw, err := json.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	key := k.pem(f)
	f.Fuzz(func(t *testing.T, bundle []byte) {
		if !json.Valid(bundle) {
			return
		}
		for _, body := range [][]byte{
			fmt.Appendf(nil, `{"kind":"build","bundle":%s,"publicKeys":[%q]}`, bundle, key),
			fmt.Appendf(nil, `{"kind":"build","bundle":%s}`, bundle),
			fmt.Appendf(nil, `{"kind":"image","image":%q,"digest":%q,"bundle":%s,"publicKey":%q}`, testImageRepository, testImageDigest, bundle, key),
		} {
			entry, err := CanonicalEntry(body)
			if err != nil {
				checkRejected(t, err)
				continue
			}
			checkAccepted(t, entry)
		}
	})
}

// FuzzParseTrustedRoot fuzzes the trusted root parser.
func FuzzParseTrustedRoot(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","certificateAuthorities":[{"uri":"u","certChain":{"certificates":[{"rawBytes":"AA=="}]},"validFor":{"start":"2024-01-01T00:00:00Z"}}]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot.v0.2+json"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTrustedRoot(b)
		if err != nil {
			return
		}
		if len(tr.CertificateAuthorities()) == 0 {
			t.Fatal("a trusted root without certificate authorities parsed")
		}
		if err := tr.VerifyCertificate([]byte("not a certificate"), time.Now()); err == nil {
			t.Fatal("garbage verified")
		}
	})
}
