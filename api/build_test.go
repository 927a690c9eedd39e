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
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/candorlog/candor/api/apitest"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// testKey is a key of a test signer.
type testKey struct {
	name string
	priv crypto.Signer
	pss  bool // for RSA keys: sign with PSS rather than PKCS #1 v1.5
}

func (k testKey) der(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatalf("couldn't marshal %s public key: %v", k.name, err)
	}
	return der
}

func (k testKey) pem(t testing.TB) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.der(t)}))
}

func (k testKey) fingerprint(t testing.TB) string {
	h := sha256.Sum256(k.der(t))
	return "sha256:" + hex.EncodeToString(h[:])
}

// sign signs the DSSE PAE of an in-toto payload.
func (k testKey) sign(t testing.TB, payload []byte) []byte {
	t.Helper()
	return k.signMsg(t, dsse.PAE(inTotoPayloadType, payload))
}

// signMsg signs msg as cosign and DSSE do: Ed25519 over msg, ECDSA over
// its SHA-256 (P-384: SHA-384), RSA over its SHA-256.
func (k testKey) signMsg(t testing.TB, msg []byte) []byte {
	t.Helper()
	var (
		sig []byte
		err error
	)
	switch priv := k.priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(priv, msg)
	case *ecdsa.PrivateKey:
		var digest []byte
		if priv.Curve == elliptic.P384() {
			h := sha512.Sum384(msg)
			digest = h[:]
		} else {
			h := sha256.Sum256(msg)
			digest = h[:]
		}
		sig, err = ecdsa.SignASN1(rand.Reader, priv, digest)
	case *rsa.PrivateKey:
		h := sha256.Sum256(msg)
		if k.pss {
			sig, err = rsa.SignPSS(rand.Reader, priv, crypto.SHA256, h[:], nil)
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, h[:])
		}
	default:
		t.Fatalf("unexpected key type %T", priv)
	}
	if err != nil {
		t.Fatalf("couldn't sign with %s: %v", k.name, err)
	}
	return sig
}

type testKeys struct {
	ed25519, ed25519b, p256, p384, p521, rsa2048, rsa2048pss, rsa1024 testKey
}

var getTestKeys = sync.OnceValues(func() (*testKeys, error) {
	var ks testKeys
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ks.ed25519 = testKey{name: "ed25519", priv: ed}
	_, ed, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ks.ed25519b = testKey{name: "ed25519b", priv: ed}
	for _, c := range []struct {
		k     *testKey
		name  string
		curve elliptic.Curve
	}{{&ks.p256, "p256", elliptic.P256()}, {&ks.p384, "p384", elliptic.P384()}, {&ks.p521, "p521", elliptic.P521()}} {
		priv, err := ecdsa.GenerateKey(c.curve, rand.Reader)
		if err != nil {
			return nil, err
		}
		*c.k = testKey{name: c.name, priv: priv}
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ks.rsa2048 = testKey{name: "rsa2048", priv: r}
	r, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ks.rsa2048pss = testKey{name: "rsa2048pss", priv: r, pss: true}
	r, err = rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		return nil, err
	}
	ks.rsa1024 = testKey{name: "rsa1024", priv: r}
	return &ks, nil
})

func keys(t testing.TB) *testKeys {
	t.Helper()
	ks, err := getTestKeys()
	if err != nil {
		t.Fatalf("couldn't generate test keys: %v", err)
	}
	return ks
}

const testDigest = "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"

// statementV1 returns an in-toto v1 Statement with subjects of the given
// names and SHA-256 digests.
func statementV1(subjects ...string) []byte {
	var b strings.Builder
	b.WriteString(`{"_type":"https://in-toto.io/Statement/v1","subject":[`)
	for i := 0; i+1 < len(subjects); i += 2 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name":%q,"digest":{"sha256":%q}}`, subjects[i], subjects[i+1])
	}
	b.WriteString(`],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"https://example.com/build"}}}`)
	return []byte(b.String())
}

// testSubmission describes a build submission to encode.
type testSubmission struct {
	kind        string
	payloadType string
	payload     []byte // what the envelope carries
	signed      []byte // what is signed, if not payload
	signers     []testKey
	keys        []string // PEM keys listed; the signers' keys if nil
	keyIDs      []string
	sigs        [][]byte // overrides signing when not nil
}

func (s testSubmission) encode(t testing.TB) []byte {
	t.Helper()
	kind := s.kind
	if kind == "" {
		kind = KindBuild
	}
	pt := s.payloadType
	if pt == "" {
		pt = inTotoPayloadType
	}
	signed := s.signed
	if signed == nil {
		signed = s.payload
	}
	env := dsse.Envelope{PayloadType: pt, Payload: base64.StdEncoding.EncodeToString(s.payload), Signatures: []dsse.Signature{}}
	sigs := s.sigs
	if sigs == nil {
		for _, k := range s.signers {
			sigs = append(sigs, k.sign(t, signed))
		}
	}
	for i, sig := range sigs {
		ds := dsse.Signature{Sig: base64.StdEncoding.EncodeToString(sig)}
		if i < len(s.keyIDs) {
			ds.KeyID = s.keyIDs[i]
		}
		env.Signatures = append(env.Signatures, ds)
	}
	keys := s.keys
	if keys == nil {
		for _, k := range s.signers {
			keys = append(keys, k.pem(t))
		}
	}
	body, err := json.Marshal(map[string]any{"kind": kind, "envelope": env, "publicKeys": keys})
	if err != nil {
		t.Fatalf("couldn't encode submission: %v", err)
	}
	return body
}

// checkErr checks that err is the kind of error wanted: an *EntryError
// whose message contains reason if want is nil, an error wrapping want
// otherwise.
func checkErr(t *testing.T, err error, want error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", reason)
	}
	t.Log(err)
	if want != nil {
		if !errors.Is(err, want) {
			t.Errorf("got error %v, want one wrapping %v", err, want)
		}
	} else if ee := (*EntryError)(nil); !errors.As(err, &ee) {
		t.Errorf("got error %v (%T), want an *EntryError", err, err)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Errorf("got error %q, want one containing %q", err, reason)
	}
}

func TestBuildAccepted(t *testing.T) {
	ks := keys(t)
	stmt := statementV1("a.tar.gz", testDigest)
	stmt01 := []byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"x","digest":{"sha256":"` + strings.ToUpper(testDigest) + `","gitCommit":"0123456789abcdef0123456789abcdef01234567"}}],"predicateType":"https://slsa.dev/provenance/v0.2"}`)
	for _, tt := range []struct {
		name         string
		sub          testSubmission
		wantSubjects []string
	}{
		{"ed25519", testSubmission{payload: stmt, signers: []testKey{ks.ed25519}}, nil},
		{"p256", testSubmission{payload: stmt, signers: []testKey{ks.p256}}, nil},
		{"p384", testSubmission{payload: stmt, signers: []testKey{ks.p384}}, nil},
		{"rsa2048", testSubmission{payload: stmt, signers: []testKey{ks.rsa2048}}, nil},
		{"rsa2048 PSS", testSubmission{payload: stmt, signers: []testKey{ks.rsa2048pss}}, nil},
		{"all", testSubmission{payload: stmt, signers: []testKey{ks.rsa2048, ks.p384, ks.ed25519, ks.p256, ks.rsa2048pss, ks.ed25519b}}, nil},
		{"keyids", testSubmission{payload: stmt, signers: []testKey{ks.ed25519, ks.p256}, keyIDs: []string{"whatever", "SHA256:nope"}}, nil},
		{"v0.1", testSubmission{payload: stmt01, signers: []testKey{ks.ed25519}},
			[]string{"gitCommit:0123456789abcdef0123456789abcdef01234567", "sha256:" + testDigest}},
		{"several subjects", testSubmission{payload: statementV1("b", testDigest, "a", testDigest, "c", strings.Repeat("0", 64)), signers: []testKey{ks.ed25519}},
			[]string{"sha256:" + strings.Repeat("0", 64), "sha256:" + testDigest}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entry, err := CanonicalEntry(tt.sub.encode(t))
			if err != nil {
				t.Fatalf("CanonicalEntry: %v", err)
			}
			st, err := ParseEntry(entry)
			if err != nil {
				t.Fatalf("ParseEntry: %v\n%s", err, entry)
			}
			again, err := CanonicalEntry(entry)
			if err != nil || !bytes.Equal(again, entry) {
				t.Errorf("CanonicalEntry(entry) = %s, %v; want the entry back", again, err)
			}
			if st.Kind() != KindBuild {
				t.Errorf("Kind() = %q, want %q", st.Kind(), KindBuild)
			}
			want := tt.wantSubjects
			if want == nil {
				want = []string{"sha256:" + testDigest}
			}
			if got := st.Subjects(); !slices.Equal(got, want) {
				t.Errorf("Subjects() = %q, want %q", got, want)
			}
			var fps []string
			for _, k := range tt.sub.signers {
				fps = append(fps, k.fingerprint(t))
			}
			slices.Sort(fps)
			if got := st.KeyFingerprints(); !slices.Equal(got, fps) {
				t.Errorf("KeyFingerprints() = %q, want %q", got, fps)
			}
			if bytes.Contains(entry, []byte("keyid")) {
				t.Errorf("entry has a keyid: %s", entry)
			}
			if !bytes.HasPrefix(entry, []byte(`{"kind":"build","v":1,`)) {
				t.Errorf("entry doesn't start with kind and version: %.40s", entry)
			}
		})
	}
}

// TestBuildSameStatementSameEntry checks that the order of keys and
// signatures, keyids, the payload's base64 alphabet and ECDSA signature
// malleability don't change the entry.
func TestBuildSameStatementSameEntry(t *testing.T) {
	ks := keys(t)
	stmt := statementV1("a.tar.gz", testDigest)
	signers := []testKey{ks.ed25519, ks.p256, ks.rsa2048, ks.p384}
	sigs := make([][]byte, len(signers))
	pems := make([]string, len(signers))
	for i, k := range signers {
		sigs[i] = k.sign(t, stmt)
		pems[i] = k.pem(t)
	}
	first, err := CanonicalEntry(testSubmission{payload: stmt, sigs: sigs, keys: pems}.encode(t))
	if err != nil {
		t.Fatal(err)
	}

	// Keys and signatures in other orders, not matching each other.
	for _, perm := range [][2][]int{
		{{3, 2, 1, 0}, {3, 2, 1, 0}},
		{{1, 0, 3, 2}, {2, 3, 0, 1}},
		{{0, 1, 2, 3}, {3, 1, 0, 2}},
	} {
		var ps []string
		var ss [][]byte
		for i := range signers {
			ps = append(ps, pems[perm[0][i]])
			ss = append(ss, sigs[perm[1][i]])
		}
		sub := testSubmission{payload: stmt, sigs: ss, keys: ps, keyIDs: []string{"a", "b", "", "d"}}
		got, err := CanonicalEntry(sub.encode(t))
		if err != nil {
			t.Fatalf("permutation %v: %v", perm, err)
		}
		if !bytes.Equal(got, first) {
			t.Errorf("permutation %v gives\n%s\nwant\n%s", perm, got, first)
		}
	}

	// URL-safe, unpadded base64 and PEM with surrounding whitespace.
	var m map[string]any
	if err := json.Unmarshal(testSubmission{payload: stmt, sigs: sigs, keys: pems}.encode(t), &m); err != nil {
		t.Fatal(err)
	}
	env := m["envelope"].(map[string]any)
	env["payload"] = base64.RawURLEncoding.EncodeToString(stmt)
	for i, s := range env["signatures"].([]any) {
		s.(map[string]any)["sig"] = base64.URLEncoding.EncodeToString(sigs[i])
	}
	for i, p := range m["publicKeys"].([]any) {
		m["publicKeys"].([]any)[i] = "\n\n" + p.(string) + "\n\n"
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got, err := CanonicalEntry(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, first) {
		t.Errorf("other encodings give\n%s\nwant\n%s", got, first)
	}

	// The malleated twin of an ECDSA signature, (r, n-s).
	var twin [][]byte
	for i, sig := range sigs {
		if k, ok := signers[i].priv.(*ecdsa.PrivateKey); ok {
			var s ecdsaSignature
			if _, err := asn1.Unmarshal(sig, &s); err != nil {
				t.Fatal(err)
			}
			s.S.Sub(k.Curve.Params().N, s.S)
			if sig, err = asn1.Marshal(s); err != nil {
				t.Fatal(err)
			}
		}
		twin = append(twin, sig)
	}
	got, err = CanonicalEntry(testSubmission{payload: stmt, sigs: twin, keys: pems}.encode(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, first) {
		t.Errorf("malleated ECDSA signatures give\n%s\nwant\n%s", got, first)
	}
}

func TestBuildRejected(t *testing.T) {
	ks := keys(t)
	stmt := statementV1("a.tar.gz", testDigest)
	ed := []testKey{ks.ed25519}
	privPEM := func() string {
		der, err := x509.MarshalPKCS8PrivateKey(ks.ed25519.priv)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}()
	// An X25519 SubjectPublicKeyInfo: OID 1.3.101.110 and 32 bytes.
	x25519PEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: append(
		[]byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00}, bytes.Repeat([]byte{9}, 32)...)}))
	for _, tt := range []struct {
		name   string
		sub    testSubmission
		want   error
		reason string
	}{
		{"tampered payload", testSubmission{payload: statementV1("evil", testDigest), signed: stmt, signers: ed}, nil, "doesn't verify"},
		{"tampered payload p256", testSubmission{payload: statementV1("evil", testDigest), signed: stmt, signers: []testKey{ks.p256}}, nil, "doesn't verify"},
		{"tampered payload rsa", testSubmission{payload: statementV1("evil", testDigest), signed: stmt, signers: []testKey{ks.rsa2048pss}}, nil, "doesn't verify"},
		{"wrong key", testSubmission{payload: stmt, signers: ed, keys: []string{ks.ed25519b.pem(t)}}, nil, "doesn't verify"},
		{"wrong key type", testSubmission{payload: stmt, signers: ed, keys: []string{ks.p256.pem(t)}}, nil, "doesn't verify"},
		{"extra key", testSubmission{payload: stmt, signers: ed, keys: []string{ks.ed25519.pem(t), ks.p256.pem(t)}}, nil, "1 signatures but there are 2 public keys"},
		{"extra signature", testSubmission{payload: stmt, signers: []testKey{ks.ed25519, ks.p256}, keys: []string{ks.ed25519.pem(t)}}, nil, "2 signatures but there are 1 public keys"},
		{"missing signature", testSubmission{payload: stmt, sigs: [][]byte{}, keys: []string{ks.ed25519.pem(t)}}, nil, "no signatures"},
		{"no keys", testSubmission{payload: stmt, signers: ed, keys: []string{}}, nil, "no public keys"},
		{"duplicate key", testSubmission{payload: stmt, signers: []testKey{ks.ed25519, ks.ed25519}}, nil, "public key 1 is the same as public key 0"},
		{"one key signs twice", testSubmission{payload: stmt, signers: []testKey{ks.p256, ks.p256}, keys: []string{ks.p256.pem(t), ks.ed25519.pem(t)}}, nil, "signature 1 doesn't verify"},
		{"17 signers", testSubmission{payload: stmt, signers: slices.Repeat(ed, 17)}, nil, "17 signatures, limit 16"},
		{"bad PEM", testSubmission{payload: stmt, signers: ed, keys: []string{"not a key"}}, nil, "public key 0 is not a PEM block"},
		{"junk before PEM", testSubmission{payload: stmt, signers: ed, keys: []string{"junk\n" + ks.ed25519.pem(t)}}, nil, "public key 0 is not a PEM block"},
		{"truncated PEM", testSubmission{payload: stmt, signers: ed, keys: []string{ks.ed25519.pem(t)[:40]}}, nil, "public key 0 is not a PEM block"},
		{"two PEM blocks", testSubmission{payload: stmt, signers: ed, keys: []string{ks.ed25519.pem(t) + ks.p256.pem(t)}}, nil, "data after its PEM block"},
		{"private key PEM", testSubmission{payload: stmt, signers: ed, keys: []string{privPEM}}, nil, `PEM "PRIVATE KEY" block`},
		{"bad DER", testSubmission{payload: stmt, signers: ed, keys: []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")}))}}, nil, "not a PKIX public key"},
		{"rsa1024", testSubmission{payload: stmt, signers: []testKey{ks.rsa1024}}, nil, "RSA with 1024 bits"},
		{"p521", testSubmission{payload: stmt, signers: []testKey{ks.p521}}, nil, "curve P-521"},
		{"x25519", testSubmission{payload: stmt, signers: ed, keys: []string{x25519PEM}}, nil, "want Ed25519, ECDSA"},
		{"wrong payload type", testSubmission{payloadType: "application/json", payload: stmt, signers: ed}, nil, "payload type"},
		{"payload not JSON", testSubmission{payload: []byte("hello"), signers: ed}, nil, "not an in-toto Statement"},
		{"no subjects", testSubmission{payload: statementV1(), signers: ed}, nil, "subject required"},
		{"no digest", testSubmission{payload: []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a"}],"predicateType":"p","predicate":{}}`), signers: ed}, nil, "digest required"},
		{"bad digest", testSubmission{payload: statementV1("a", "xyz"), signers: ed}, nil, "not valid hex"},
		{"short digest", testSubmission{payload: statementV1("a", "abcd"), signers: ed}, nil, "incorrect length"},
		{"empty digest", testSubmission{payload: []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"custom":""}}],"predicateType":"p","predicate":{}}`), signers: ed}, nil, "empty digest"},
		{"no predicate type", testSubmission{payload: []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicate":{}}`), signers: ed}, nil, "predicate type required"},
		{"v0.1 no subjects", testSubmission{payload: []byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[],"predicateType":"p"}`), signers: ed}, nil, "subject required"},
		{"v0.1 no digest", testSubmission{payload: []byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"a"}],"predicateType":"p"}`), signers: ed}, nil, "digest required"},
		{"v0.1 no predicate type", testSubmission{payload: []byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}]}`), signers: ed}, nil, "predicate type required"},
		{"wrong statement type", testSubmission{payload: bytes.Replace(stmt, []byte("Statement/v1"), []byte("Statement/v2"), 1), signers: ed}, nil, "in-toto Statement of type"},
		{"unknown kind", testSubmission{kind: "sbom", payload: stmt, signers: ed}, ErrUnknownKind, `unknown entry kind: "sbom"`},
		{"oversize entry", testSubmission{payload: statementV1(slices.Repeat([]string{strings.Repeat("n", 100), testDigest}, 280)...), signers: ed}, ErrEntryTooLarge, "canonical entry is"},
		{"oversize payload", testSubmission{payload: statementV1(slices.Repeat([]string{strings.Repeat("n", 100), testDigest}, 600)...), signers: ed}, ErrEntryTooLarge, "payload is"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CanonicalEntry(tt.sub.encode(t))
			checkErr(t, err, tt.want, tt.reason)
		})
	}
}

// TestBuildStrictDecoding checks the JSON rules on the build fields.
func TestBuildStrictDecoding(t *testing.T) {
	ks := keys(t)
	stmt := statementV1("a.tar.gz", testDigest)
	payload := base64.StdEncoding.EncodeToString(stmt)
	sig := base64.StdEncoding.EncodeToString(ks.ed25519.sign(t, stmt))
	key, err := json.Marshal(ks.ed25519.pem(t))
	if err != nil {
		t.Fatal(err)
	}
	good := func(env, rest string) string {
		return `{"kind":"build","envelope":` + env + `,"publicKeys":[` + string(key) + `]` + rest + `}`
	}
	env := func(sigs string) string {
		return `{"payloadType":"application/vnd.in-toto+json","payload":"` + payload + `","signatures":[` + sigs + `]}`
	}
	okSig := `{"keyid":"k","sig":"` + sig + `"}`
	if _, err := CanonicalEntry([]byte(good(env(okSig), ""))); err != nil {
		t.Fatalf("the good submission is rejected: %v", err)
	}
	for _, tt := range []struct {
		name, body, reason string
	}{
		{"unknown field", good(env(okSig), `,"extra":1`), `unknown field "extra"`},
		{"unknown envelope field", good(`{"payloadType":"application/vnd.in-toto+json","payload":"`+payload+`","signatures":[`+okSig+`],"cert":""}`, ""), `unknown field "envelope.cert"`},
		{"unknown signature field", good(env(`{"sig":"`+sig+`","cert":"x"}`), ""), `unknown field "envelope.signatures[0].cert"`},
		{"field in other case", strings.Replace(good(env(okSig), ""), `"publicKeys"`, `"PublicKeys"`, 1), `missing field "publicKeys"`},
		{"duplicate field", good(env(okSig), `,"publicKeys":[]`), `duplicate field "publicKeys"`},
		{"duplicate envelope field", good(`{"payloadType":"application/vnd.in-toto+json","payload":"`+payload+`","payload":"`+payload+`","signatures":[`+okSig+`]}`, ""), `duplicate field "envelope.payload"`},
		{"duplicate sig", good(env(`{"sig":"`+sig+`","sig":"`+sig+`"}`), ""), `duplicate field "envelope.signatures[0].sig"`},
		{"missing envelope", `{"kind":"build","publicKeys":[` + string(key) + `]}`, `missing field "envelope"`},
		{"null envelope", `{"kind":"build","envelope":null,"publicKeys":[` + string(key) + `]}`, `missing field "envelope"`},
		{"missing publicKeys", `{"kind":"build","envelope":` + env(okSig) + `}`, `missing field "publicKeys"`},
		{"missing payload", good(`{"payloadType":"application/vnd.in-toto+json","signatures":[`+okSig+`]}`, ""), `missing field "envelope.payload"`},
		{"missing payloadType", good(`{"payload":"`+payload+`","signatures":[`+okSig+`]}`, ""), `missing field "envelope.payloadType"`},
		{"missing signatures", good(`{"payloadType":"application/vnd.in-toto+json","payload":"`+payload+`"}`, ""), `missing field "envelope.signatures"`},
		{"missing sig", good(env(`{"keyid":"k"}`), ""), `missing field "envelope.signatures[0].sig"`},
		{"empty sig", good(env(`{"sig":""}`), ""), `empty field "envelope.signatures[0].sig"`},
		{"sig not base64", good(env(`{"sig":"!!!"}`), ""), "signature 0 is not base64"},
		{"payload not base64", good(`{"payloadType":"application/vnd.in-toto+json","payload":"@@","signatures":[`+okSig+`]}`, ""), "payload is not base64"},
		{"keyid not a string", good(env(`{"keyid":1,"sig":"`+sig+`"}`), ""), `bad field "envelope.signatures[0].keyid"`},
		{"envelope not an object", good(`[]`, ""), `"envelope" is not a JSON object`},
		{"signature not an object", good(env(`"x"`), ""), `"envelope.signatures[0]" is not a JSON object`},
		{"publicKeys not strings", `{"kind":"build","envelope":` + env(okSig) + `,"publicKeys":[1]}`, `bad field "publicKeys"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CanonicalEntry([]byte(tt.body))
			checkErr(t, err, nil, tt.reason)
		})
	}
}

func TestBuildSigner(t *testing.T) {
	s := apitest.NewBuildSignerFromSeed([]byte("candor"))
	sub := s.Submission("pkg/a.tar.gz", testDigest)
	if again := apitest.NewBuildSignerFromSeed([]byte("candor")).Submission("pkg/a.tar.gz", testDigest); !bytes.Equal(sub, again) {
		t.Errorf("Submission isn't deterministic:\n%s\n%s", sub, again)
	}
	if other := apitest.NewBuildSigner().Submission("pkg/a.tar.gz", testDigest); bytes.Equal(sub, other) {
		t.Errorf("two signers give the same submission")
	}
	entry, err := CanonicalEntry(sub)
	if err != nil {
		t.Fatalf("CanonicalEntry: %v", err)
	}
	if !bytes.Equal(entry, sub) {
		t.Errorf("Submission isn't canonical:\n%s\nwant\n%s", sub, entry)
	}
	st, err := ParseEntry(entry)
	if err != nil {
		t.Fatalf("ParseEntry: %v", err)
	}
	if got, want := st.Subjects(), []string{"sha256:" + testDigest}; !slices.Equal(got, want) {
		t.Errorf("Subjects() = %q, want %q", got, want)
	}
	if got, want := st.KeyFingerprints(), []string{s.KeyFingerprint()}; !slices.Equal(got, want) {
		t.Errorf("KeyFingerprints() = %q, want %q", got, want)
	}
	// Names that need escaping.
	if _, err := ParseEntry(s.Submission("a \"<&>\" \u2028 \xff", testDigest)); err != nil {
		t.Errorf("a name that needs escaping: %v", err)
	}
}

func BenchmarkBuildSignerSubmission(b *testing.B) {
	s := apitest.NewBuildSigner()
	for i := 0; b.Loop(); i++ {
		s.Submission(fmt.Sprintf("artifact-%d", i), testDigest)
	}
}

// highS returns sig, a DER ECDSA signature, with S replaced by n-S.
func highS(t testing.TB, curve elliptic.Curve, sig []byte) []byte {
	t.Helper()
	var s ecdsaSignature
	if _, err := asn1.Unmarshal(sig, &s); err != nil {
		t.Fatal(err)
	}
	if s.S.Cmp(new(big.Int).Rsh(curve.Params().N, 1)) <= 0 {
		s.S.Sub(curve.Params().N, s.S)
	}
	out, err := asn1.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// buildEntry is the canonical encoding of a build entry as encoding/json
// writes it, field order the encoding's: the reference appendBuildEntry is
// checked against, and what tests decode entries with.
type buildEntry struct {
	Kind        string        `json:"kind"`
	V           int           `json:"v"`
	Envelope    buildEnvelope `json:"envelope"`
	PublicKeys  []string      `json:"publicKeys"`
	Certificate string        `json:"certificate,omitempty"`
	Identities  []string      `json:"identities,omitempty"`
	Issuer      string        `json:"issuer,omitempty"`
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
