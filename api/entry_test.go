package api

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/candorlog/candor/api/apitest"
)

func TestEntryError(t *testing.T) {
	inner := errors.New("boom")
	err := error(&EntryError{Reason: "bad thing", Err: inner})
	if got, want := err.Error(), "invalid entry: bad thing: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, inner) {
		t.Errorf("errors.Is(err, inner) = false, want true")
	}
	err = &EntryError{Reason: "bad thing"}
	if got, want := err.Error(), "invalid entry: bad thing"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestEntryDecoding checks the JSON rules shared by all kinds.
func TestEntryDecoding(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       error
		reason     string
	}{
		{"empty", ``, nil, "malformed JSON in body"},
		{"not JSON", `hello`, nil, "malformed JSON in body"},
		{"truncated", `{"kind":"build"`, nil, "malformed JSON in body"},
		{"truncated member", `{"kind":`, nil, "malformed JSON in body"},
		{"bad member name", `{1:2}`, nil, "malformed JSON in body"},
		{"array", `[]`, nil, "body is not a JSON object"},
		{"null", `null`, nil, "body is not a JSON object"},
		{"string", `"build"`, nil, "body is not a JSON object"},
		{"trailing garbage", `{"kind":"build"} x`, nil, "trailing data after JSON object in body"},
		{"trailing object", `{"kind":"build"}{}`, nil, "trailing data after JSON object in body"},
		{"trailing brace", `{"kind":"build"}}`, nil, "trailing data after JSON object in body"},
		{"missing kind", `{}`, nil, `missing field "kind"`},
		{"null kind", `{"kind":null}`, nil, `missing field "kind"`},
		{"kind in other case", `{"Kind":"build"}`, nil, `missing field "kind"`},
		{"kind not a string", `{"kind":1}`, nil, `bad field "kind"`},
		{"empty kind", `{"kind":""}`, nil, `empty field "kind"`},
		{"duplicate kind", `{"kind":"build","kind":"build"}`, nil, `duplicate field "kind"`},
		{"unknown kind", `{"kind":"sbom"}`, ErrUnknownKind, `unknown entry kind: "sbom"`},
		{"unknown kind with fields", `{"kind":"Build","envelope":{}}`, ErrUnknownKind, `"Build"`},
		{"version 2", `{"kind":"build","v":2}`, nil, "unsupported version 2, want 1"},
		{"version string", `{"kind":"build","v":"1"}`, nil, `unsupported version "1", want 1`},
		{"version float", `{"kind":"build","v":1.5}`, nil, "unsupported version 1.5, want 1"},
		{"unknown field", `{"kind":"build","envelope":{},"publicKeys":[],"x":1}`, nil, `unknown field "x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CanonicalEntry([]byte(tt.body))
			checkErr(t, err, tt.want, tt.reason)
			_, err = ParseEntry([]byte(tt.body))
			checkErr(t, err, tt.want, tt.reason)
		})
	}
}

func TestParseEntryTooLarge(t *testing.T) {
	_, err := ParseEntry(bytes.Repeat([]byte(" "), MaxEntrySize+1))
	checkErr(t, err, ErrEntryTooLarge, "65536 bytes")
}

// TestParseEntryNotCanonical checks that ParseEntry rejects entries that
// CanonicalEntry accepts but that aren't in canonical form, and that
// CanonicalEntry turns them into the canonical entry.
func TestParseEntryNotCanonical(t *testing.T) {
	ks := keys(t)
	stmt := statementV1("a.tar.gz", testDigest)
	for len(stmt)%3 == 0 { // so that the base64 has padding
		stmt = append(stmt, ' ')
	}
	signers := []testKey{ks.ed25519, ks.p256}
	sigs := [][]byte{signers[0].sign(t, stmt), signers[1].sign(t, stmt)}
	pems := []string{signers[0].pem(t), signers[1].pem(t)}
	entry, err := CanonicalEntry(testSubmission{payload: stmt, sigs: sigs, keys: pems}.encode(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseEntry(entry); err != nil {
		t.Fatalf("ParseEntry(canonical) = %v", err)
	}

	var e buildEntry
	if err := json.Unmarshal(entry, &e); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(e *buildEntry)) []byte {
		e := e
		e.Envelope.Signatures = slices.Clone(e.Envelope.Signatures)
		e.PublicKeys = slices.Clone(e.PublicKeys)
		f(&e)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := mutate(func(*buildEntry) {}); !bytes.Equal(b, entry) {
		t.Fatalf("re-encoding the entry gives\n%s\nwant\n%s", b, entry)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, entry, "", "  "); err != nil {
		t.Fatal(err)
	}
	ecdsaIndex := slices.IndexFunc(e.PublicKeys, func(p string) bool { return p == pems[1] })
	for _, tt := range []struct {
		name  string
		entry []byte
	}{
		{"trailing newline", append(slices.Clone(entry), '\n')},
		{"leading space", append([]byte(" "), entry...)},
		{"indented", indented.Bytes()},
		{"escaped kind", bytes.Replace(entry, []byte(`"build"`), []byte(`"\u0062uild"`), 1)},
		{"no version", bytes.Replace(entry, []byte(`"v":1,`), nil, 1)},
		{"fields reordered", bytes.Replace(entry, []byte(`{"kind":"build","v":1,`), []byte(`{"v":1,"kind":"build",`), 1)},
		{"keyid", mutate(func(e *buildEntry) { e.Envelope.Signatures[0].KeyID = "k" })},
		{"keys not sorted", mutate(func(e *buildEntry) {
			slices.Reverse(e.PublicKeys)
			slices.Reverse(e.Envelope.Signatures)
		})},
		{"payload unpadded", mutate(func(e *buildEntry) { e.Envelope.Payload = base64.RawStdEncoding.EncodeToString(stmt) })},
		{"signature URL base64", mutate(func(e *buildEntry) {
			for i, s := range e.Envelope.Signatures {
				b, _ := base64.StdEncoding.DecodeString(s.Sig)
				e.Envelope.Signatures[i].Sig = base64.RawURLEncoding.EncodeToString(b)
			}
		})},
		{"PEM without final newline", mutate(func(e *buildEntry) { e.PublicKeys[0] = strings.TrimSuffix(e.PublicKeys[0], "\n") })},
		{"high S", mutate(func(e *buildEntry) {
			b, _ := base64.StdEncoding.DecodeString(e.Envelope.Signatures[ecdsaIndex].Sig)
			e.Envelope.Signatures[ecdsaIndex].Sig = base64.StdEncoding.EncodeToString(highS(t, ks.p256.priv.(*ecdsa.PrivateKey).Curve, b))
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.entry, entry) {
				t.Fatalf("the mutation didn't change the entry")
			}
			_, err := ParseEntry(tt.entry)
			checkErr(t, err, nil, "not in canonical form")
			got, err := CanonicalEntry(tt.entry)
			if err != nil {
				t.Fatalf("CanonicalEntry: %v", err)
			}
			if !bytes.Equal(got, entry) {
				t.Errorf("CanonicalEntry gives\n%s\nwant\n%s", got, entry)
			}
		})
	}
}

// fuzzSeeds returns valid submissions and entries to seed the fuzzers.
func fuzzSeeds(f *testing.F) [][]byte {
	ks := keys(f)
	stmt := statementV1("a.tar.gz", testDigest)
	stmt01 := []byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"x","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p"}`)
	var seeds [][]byte
	for _, sub := range []testSubmission{
		{payload: stmt, signers: []testKey{ks.ed25519}},
		{payload: stmt, signers: []testKey{ks.p256}, keyIDs: []string{"k"}},
		{payload: stmt, signers: []testKey{ks.p384}},
		{payload: stmt, signers: []testKey{ks.rsa2048}},
		{payload: stmt, signers: []testKey{ks.rsa2048pss, ks.ed25519b}},
		{payload: stmt01, signers: []testKey{ks.ed25519, ks.p256}},
	} {
		body := sub.encode(f)
		seeds = append(seeds, body)
		entry, err := CanonicalEntry(body)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, entry)
	}
	seeds = append(seeds,
		apitest.NewBuildSignerFromSeed([]byte("fuzz")).Submission("x", testDigest),
		[]byte(`{"kind":"build","v":1,"envelope":{"payloadType":"","payload":"","signatures":[{"sig":""}]},"publicKeys":[""]}`),
		[]byte(`{"kind":"commit"}`),
		apitest.NewCommitSignerFromSeed([]byte("fuzz")).Submission("https://example.com/r.git", "fuzz"),
		[]byte(`{"kind":"commit","objectFormat":"sha1","commit":"","object":"","repository":"r","publicKey":""}`),
		[]byte(`{"kind":"build","kind":"x"}`),
		apitest.NewImageSigner().Submission("registry.example.com/app", "sha256:"+testDigest),
		[]byte(`{"kind":"image","v":1,"image":"r","digest":"sha256:","payload":"","signature":"","keyFingerprint":"","publicKey":""}`),
		[]byte(`{}`),
	)
	return append(seeds, commitEntrySeeds(f)...)
}

// checkAccepted checks what must hold of an entry that CanonicalEntry
// returned or ParseEntry accepted.
func checkAccepted(t *testing.T, entry []byte) {
	t.Helper()
	if len(entry) > MaxEntrySize {
		t.Fatalf("accepted an entry of %d bytes", len(entry))
	}
	st, err := ParseEntry(entry)
	if err != nil {
		t.Fatalf("ParseEntry of an accepted entry: %v\n%s", err, entry)
	}
	again, err := CanonicalEntry(entry)
	if err != nil || !bytes.Equal(again, entry) {
		t.Fatalf("CanonicalEntry(entry) = %s, %v; want the entry back", again, err)
	}
	switch st.Kind() {
	case KindBuild:
		checkAcceptedBuild(t, entry, st)
	case KindCommit:
		checkAcceptedCommit(t, entry, st)
	case KindImage:
		checkAcceptedImage(t, entry, st)
	default:
		t.Fatalf("Kind() = %q", st.Kind())
	}
}

// checkAcceptedBuild is checkAccepted for a build entry.
func checkAcceptedBuild(t *testing.T, entry []byte, st Statement) {
	t.Helper()
	if bytes.Contains(entry, []byte(`"message":`)) {
		var e buildMessageEntry
		if err := json.Unmarshal(entry, &e); err != nil {
			t.Fatalf("an accepted entry doesn't decode as a buildMessageEntry: %v", err)
		}
		if b, err := json.Marshal(e); err != nil || !bytes.Equal(b, entry) {
			t.Fatalf("json.Marshal of the decoded entry is\n%s, %v\nwant\n%s", b, err, entry)
		}
		if !slices.Equal(st.Subjects(), []string{e.Message.Digest}) || len(st.KeyFingerprints()) != 1 {
			t.Fatalf("statement of %s: subjects %v, keys %v", entry, st.Subjects(), st.KeyFingerprints())
		}
		return
	}
	// The canonical encoding is encoding/json's of buildEntry.
	var e buildEntry
	if err := json.Unmarshal(entry, &e); err != nil {
		t.Fatalf("an accepted entry doesn't decode as a buildEntry: %v", err)
	}
	if b, err := json.Marshal(e); err != nil || !bytes.Equal(b, entry) {
		t.Fatalf("json.Marshal of the decoded entry is\n%s, %v\nwant\n%s", b, err, entry)
	}
	if len(st.Subjects()) == 0 || len(st.KeyFingerprints()) == 0 {
		t.Fatalf("a statement with no subjects or no keys")
	}
	if !slices.IsSorted(st.Subjects()) || !slices.IsSorted(st.KeyFingerprints()) {
		t.Fatalf("subjects or fingerprints not sorted")
	}
}

// checkRejected checks that err is one of the documented errors.
func checkRejected(t *testing.T, err error) {
	t.Helper()
	var ee *EntryError
	if !errors.As(err, &ee) && !errors.Is(err, ErrUnknownKind) && !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("undocumented error %T: %v", err, err)
	}
	if errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("bare EOF: %v", err)
	}
}

func FuzzCanonicalEntry(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		entry, err := CanonicalEntry(body)
		if err != nil {
			checkRejected(t, err)
			return
		}
		checkAccepted(t, entry)
	})
}

func FuzzParseEntry(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry []byte) {
		if _, err := ParseEntry(entry); err != nil {
			checkRejected(t, err)
			return
		}
		checkAccepted(t, entry)
	})
}

// FuzzBuildPayload fuzzes the in-toto Statement parser behind the
// signature check, which the other fuzzers rarely get past: it signs
// whatever payload it is given.
func FuzzBuildPayload(f *testing.F) {
	f.Add(statementV1("a.tar.gz", testDigest))
	f.Add(statementV1("a", testDigest, "b", strings.ToUpper(testDigest)))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"x","digest":{"sha256":"` + testDigest + `","custom":"v"}}],"predicateType":"p"}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"}}],"predicateType":"p","predicate":{"a":[1,null,"x"]},"extra":true}`))
	key := testKey{name: "ed25519", priv: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}
	pems := []string{key.pem(f)}
	f.Fuzz(func(t *testing.T, payload []byte) {
		body := testSubmission{payload: payload, signers: []testKey{key}, keys: pems}.encode(t)
		entry, err := CanonicalEntry(body)
		if err != nil {
			checkRejected(t, err)
			return
		}
		checkAccepted(t, entry)
	})
}
