package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// replaceBase64Field replaces the value of the first JSON string field
// "name" in b, which holds base64, with edit(decoded value), re-encoded.
func replaceBase64Field(t *testing.T, b []byte, name string, edit func([]byte) []byte) []byte {
	t.Helper()
	prefix := []byte(`"` + name + `":"`)
	i := bytes.Index(b, prefix)
	if i < 0 {
		t.Fatalf("no field %q in %s", name, b)
	}
	start := i + len(prefix)
	end := start + bytes.IndexByte(b[start:], '"')
	v, err := base64.StdEncoding.DecodeString(string(b[start:end]))
	if err != nil {
		t.Fatalf("field %q: %v", name, err)
	}
	out := bytes.Clone(b[:start])
	out = base64.StdEncoding.AppendEncode(out, edit(v))
	return append(out, b[end:]...)
}

// spliceFrom replaces everything from the first occurrence of marker in a
// with the same in b.
func spliceFrom(t *testing.T, a, b []byte, marker string) []byte {
	t.Helper()
	i, j := bytes.Index(a, []byte(marker)), bytes.Index(b, []byte(marker))
	if i < 0 || j < 0 {
		t.Fatalf("no %q in the submissions", marker)
	}
	return append(bytes.Clone(a[:i]), b[j:]...)
}

// TestBadInputChangesNothing sends candor-log bad submissions and bad
// reads. Each gets a 4xx with a JSON error body, and the checkpoint stays
// byte for byte the same; a good submission afterwards still works.
func TestBadInputChangesNothing(t *testing.T) {
	requireBinaries(t)
	const origin = "example.com/log"
	srv := mustStartServer(t, "candor-log", t.TempDir(), "--origin", origin)
	ctx := context.Background()

	signer, other := apitest.NewBuildSigner(), apitest.NewBuildSigner()
	sub := func(s *apitest.BuildSigner, name string) []byte {
		digest := sha256.Sum256([]byte(name))
		return s.Submission(name, hex.EncodeToString(digest[:]))
	}
	for i := range 3 {
		if code, _, body, err := srv.submit(ctx, sub(signer, fmt.Sprintf("good/%d", i))); err != nil || code != http.StatusCreated {
			t.Fatalf("good submission %d: %d %s %v", i, code, body, err)
		}
	}
	before, c := srv.mustCheckpoint(t, origin)
	if c.Size != 3 {
		t.Fatalf("checkpoint size %d, want 3", c.Size)
	}

	fresh := sub(signer, "bad/base")
	imager := apitest.NewImageSigner()
	imageDigest := "sha256:" + strings.Repeat("ab", 32)
	image := imager.Submission("registry.example.com/app", imageDigest)
	withField := func(b []byte, field string, value any) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m[field] = value
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	otherDigest := "sha256:" + strings.Repeat("cd", 32)
	tooBigEntry := signer.Submission(strings.Repeat("n", api.MaxEntrySize), strings.Repeat("ab", 32))
	for _, tc := range []struct {
		name string
		body []byte
		hdr  http.Header
		code int // 0: any 4xx
	}{
		{name: "bad signature", body: replaceBase64Field(t, fresh, "sig", func(v []byte) []byte { v[10] ^= 1; return v }), code: 400},
		{name: "key not the signer's", body: spliceFrom(t, fresh, sub(other, "bad/base"), `"publicKeys":`), code: 400},
		{name: "payload not the signed one", body: spliceFrom(t, sub(signer, "bad/other"), fresh, `"signatures":`), code: 400},
		{name: "tampered payload", body: replaceBase64Field(t, fresh, "payload", func(v []byte) []byte {
			return bytes.Replace(v, []byte("bad/base"), []byte("bad/evil"), 1)
		}), code: 400},
		{name: "digest not hex", body: signer.Submission("bad/digest", strings.Repeat("zz", 32)), code: 400},
		{name: "empty signature", body: replaceBase64Field(t, fresh, "sig", func([]byte) []byte { return nil }), code: 400},
		{name: "oversize body", body: append(append([]byte(`{"kind":"build","v":1,"pad":"`), bytes.Repeat([]byte("A"), 2*api.MaxEntrySize+10)...), `"}`...), code: 413},
		{name: "oversize entry", body: tooBigEntry, code: 413},
		{name: "unknown kind", body: []byte(`{"kind":"image-signature","v":1}`), code: 400},
		{name: "made-up kind", body: []byte(`{"kind":"nope","v":1,"envelope":{}}`), code: 400},
		{name: "no kind", body: []byte(`{"v":1}`), code: 400},
		{name: "wrong version", body: bytes.Replace(fresh, []byte(`"v":1`), []byte(`"v":2`), 1), code: 400},
		{name: "missing envelope", body: []byte(`{"kind":"build","v":1}`), code: 400},
		{name: "truncated JSON", body: fresh[:len(fresh)/2], code: 400},
		{name: "not JSON", body: []byte("hello, log"), code: 400},
		{name: "empty body", body: []byte{}, code: 400},
		{name: "JSON null", body: []byte("null"), code: 400},
		{name: "JSON array", body: []byte("[]"), code: 400},
		{name: "trailing data", body: append(bytes.Clone(fresh), ` {}`...), code: 400},
		{name: "two submissions", body: append(bytes.Clone(fresh), sub(signer, "bad/second")...), code: 400},
		{name: "duplicate field", body: bytes.Replace(fresh, []byte(`{"kind":"build",`), []byte(`{"kind":"build","kind":"build",`), 1), code: 400},
		{name: "invalid UTF-8", body: append(bytes.Clone(fresh[:len(fresh)-2]), []byte(",\"x\":\"\xff\"]}")...), code: 400},
		{name: "image: payload of another digest", body: withField(withField(image, "digest", otherDigest), "image", "registry.example.com/app"), code: 400},
		{name: "image: signature by another key", body: withField(image, "publicKey", apitest.NewImageSigner().PublicKey()), code: 400},
		{name: "image: malformed reference", body: withField(image, "image", "registry.example.com/App@@"), code: 400},
		{name: "image: truncated reference", body: withField(image, "image", "registry.example.com/app@sha256:abab"), code: 400},
		{name: "image: key and certificate", body: withField(image, "certificate", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), code: 400},
		{name: "gzip encoding", body: fresh, hdr: http.Header{"Content-Encoding": {"gzip"}}, code: 415},
	} {
		code, hdr, body, err := srv.do(ctx, http.MethodPost, "/v1/entries", tc.body, tc.hdr)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		checkErrorReply(t, "POST /v1/entries ("+tc.name+")", code, hdr, body, tc.code)
	}

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/v1/entries/abc", 400},
		{"/v1/entries/-1", 400},
		{"/v1/entries/01", 400},
		{"/v1/entries/3", 404},
		{"/v1/entries/18446744073709551615", 404},
		{"/v1/entries/18446744073709551616", 400},
		{"/v1/proof/consistency?old=3&new=2", 400},
		{"/v1/proof/consistency?old=1&new=4", 400},
		{"/v1/proof/consistency", 400},
		{"/v1/proof/inclusion?index=3", 400},
		{"/v1/proof/inclusion?index=0&size=4", 400},
		{"/v1/proof/inclusion?leafHash=zz", 400},
		{"/v1/proof/inclusion?leafHash=" + strings.Repeat("00", 32), 404},
		{"/v1/proof/inclusion?index=0&leafHash=" + strings.Repeat("00", 32), 400},
		{"/tile/0/x001", 400},
		{"/tile/entries/1", 400},
		{"/tile/entries/001", 404},
		{"/tile/0/001", 404},
	} {
		code, hdr, body, err := srv.do(ctx, http.MethodGet, tc.path, nil, nil)
		if err != nil {
			t.Errorf("GET %s: %v", tc.path, err)
			continue
		}
		checkErrorReply(t, "GET "+tc.path, code, hdr, body, tc.code)
	}

	if after, _ := srv.mustCheckpoint(t, origin); !bytes.Equal(after, before) {
		t.Errorf("the checkpoint changed after bad input:\n%s\nbefore:\n%s", after, before)
	}
	// The log still takes good entries, and the first bad one was not
	// half-written: its valid original is new.
	code, resp, body, err := srv.submit(ctx, fresh)
	if err != nil || code != http.StatusCreated || resp.Index != 3 {
		t.Errorf("good submission after bad input: %d %s %v, want 201 with index 3", code, body, err)
	}
	srv.stop(t)
}

// checkErrorReply checks a reply is a 4xx (want, if not 0) with a JSON
// api.ErrorResponse body that says something.
func checkErrorReply(t *testing.T, what string, code int, hdr http.Header, body []byte, want int) {
	t.Helper()
	if code < 400 || code > 499 || (want != 0 && code != want) {
		t.Errorf("%s: %d %s, want %d", what, code, bytes.TrimSpace(body), want)
		return
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: %d with Content-Type %q, want application/json", what, code, ct)
	}
	var e api.ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Errorf("%s: %d with body %q, want a JSON error", what, code, body)
		return
	}
	t.Logf("%s: %d %s", what, code, e.Error)
}
