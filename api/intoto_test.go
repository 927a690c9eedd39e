package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// refParseInTotoSubjects is parseInTotoSubjects as it was before
// unmarshalInTotoStatement: protojson decodes the whole Statement,
// predicate included. It is the reference the fast path must agree with.
func refParseInTotoSubjects(payload []byte) ([]string, error) {
	return inTotoSubjects(payload, func(p []byte, st *intoto.Statement) error {
		return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(p, st)
	})
}

// slsaPredicate is a SLSA v1 provenance predicate in the shape CI systems
// make, with escapes, non-ASCII text, numbers and nesting.
const slsaPredicate = `{
    "buildDefinition": {
      "buildType": "https://actions.github.io/buildtypes/workflow/v1",
      "externalParameters": {
        "workflow": {"ref": "refs/tags/v1.2.3", "repository": "https://github.com/example/pkg", "path": ".github/workflows/release.yml"},
        "inputs": {"dry-run": false, "retries": 3, "ratio": 0.25, "big": 1.5e300, "tiny": -2E-300, "note": "caf\u00e9 \ud83d\ude80 \"quoted\"\n\ttab \/ slash", "none": null}
      },
      "internalParameters": {
        "github": {"event_name": "push", "repository_id": "123456789", "repository_owner_id": "987654321", "runner_environment": "github-hosted"}
      },
      "resolvedDependencies": [
        {"uri": "git+https://github.com/example/pkg@refs/tags/v1.2.3", "digest": {"gitCommit": "0123456789abcdef0123456789abcdef01234567"}},
        {"uri": "pkg:npm/left-pad@1.3.0", "digest": {"sha512": "abc"}, "annotations": {"tags": ["a", "b", [], {}], "n": [0, -0, 12345678901234567890, 1e-400]}}
      ]
    },
    "runDetails": {
      "builder": {"id": "https://github.com/example/pkg/.github/workflows/release.yml@refs/tags/v1.2.3"},
      "metadata": {"invocationId": "https://github.com/example/pkg/actions/runs/1/attempts/1", "startedOn": "2024-01-02T03:04:05Z"},
      "byproducts": [{"name": "log", "content": "bG9n", "mediaType": "text/plain; charset=utf-8"}]
    }
  }`

// slsaStatement returns an in-toto Statement of type typ (v1 or v0.1)
// with two subjects and slsaPredicate.
func slsaStatement(typ string) []byte {
	return []byte(`{
  "_type": "` + typ + `",
  "subject": [
    {"name": "pkg-1.2.3.tar.gz", "digest": {"sha256": "` + strings.ToUpper(testDigest) + `"}},
    {"name": "pkg-1.2.3.whl", "digest": {"sha256": "` + testDigest + `", "custom": "Keep-Case"}}
  ],
  "predicateType": "https://slsa.dev/provenance/v1",
  "predicate": ` + slsaPredicate + `
}
`)
}

// apitestPayload returns the Statement in an apitest submission, the
// typical one.
func apitestPayload(tb testing.TB) []byte {
	tb.Helper()
	var sub struct {
		Envelope struct{ Payload string }
	}
	if err := json.Unmarshal(benchSubmission(), &sub); err != nil {
		tb.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(sub.Envelope.Payload)
	if err != nil {
		tb.Fatal(err)
	}
	return payload
}

// withPredicate returns a v1 Statement with one subject and predicate, the
// JSON text of the predicate member's value (or of more members, if it
// is empty or ends a member and starts another).
func withPredicate(predicate string) []byte {
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p","predicate":` + predicate + `}`)
}

// inTotoCase is a Statement whose fate the tests know.
type inTotoCase struct {
	name    string
	payload []byte
	ok      bool // parseInTotoSubjects accepts it
	fast    bool // findStructPredicate finds its predicate
}

// inTotoCases are realistic Statements and ones that try the rules for
// predicates at their edges.
func inTotoCases(tb testing.TB) []inTotoCase {
	v01 := `{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p"`
	// The predicate is at depth 2: deep is as deep as the fast path goes.
	deep := strings.Repeat(`{"a":`, maxStatementDepth-1) + "1" + strings.Repeat("}", maxStatementDepth-1)
	// Deeper than protojson goes.
	deepest := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	var many strings.Builder
	many.WriteString("{")
	for i := range 40 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"k` + strings.Repeat("x", i) + `":` + "1")
	}
	manyUnique := many.String() + "}"
	manyRepeat := many.String() + `,"kxxxxx":2}`
	// The first repeat when the names no longer fit the pairwise check.
	var names []string
	for i := range maxLinearNames {
		names = append(names, `"k`+strings.Repeat("x", i)+`":1`)
	}
	switchRepeat := "{" + strings.Join(names, ",") + `,"kx":2}`
	return []inTotoCase{
		{"apitest", apitestPayload(tb), true, true},
		{"statementV1", statementV1("a.tar.gz", testDigest, "b", testDigest), true, true},
		{"slsa-v1", slsaStatement(intoto.StatementTypeUri), true, true},
		{"slsa-v01", slsaStatement(inTotoStatementV01), true, true},
		{"v01-no-predicate", []byte(v01 + `}`), true, false},
		{"v01-null-predicate", []byte(v01 + `,"predicate":null}`), true, false},
		{"v01-empty-predicate", []byte(v01 + `,"predicate":{}}`), true, true},
		{"v1-null-predicate", withPredicate(`null`), false, false},
		{"array-predicate", withPredicate(`[]`), false, false},
		{"string-predicate", withPredicate(`"{}"`), false, false},
		{"number-predicate", withPredicate(`1`), false, false},
		{"true-predicate", withPredicate(`true`), false, false},
		{"predicate-twice", withPredicate(`{},"predicate":{}`), false, false},
		{"predicate-twice-null", withPredicate(`null,"predicate":{}`), false, false},
		{"predicate-escaped-name", withPredicate(`{},"pr\u0065dicate":{}`), false, false},
		{"predicate-escaped-alone", []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p","pr\u0065dicate":{"x":1}}`), true, false},
		{"predicate-escaped-invalid", []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p","pr\u0065dicate":{"x":1e400}}`), false, false},
		{"huge-exponent", withPredicate(`{"x":1e400}`), false, false},
		{"huge-negative", withPredicate(`{"x":[-1E+309]}`), false, false},
		{"tiny-exponent", withPredicate(`{"x":1e-400}`), true, true},
		{"huge-exponent-elsewhere", []byte(`{"_type":"https://in-toto.io/Statement/v1","x":1e400,"subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p","predicate":{}}`), true, true},
		{"long-integer", withPredicate(`{"x":` + strings.Repeat("9", 400) + `}`), false, false},
		{"invalid-utf8", withPredicate("{\"x\":\"\xff\"}"), false, false},
		{"invalid-utf8-name", withPredicate("{\"\xc3\":1}"), false, false},
		{"surrogate-utf8", withPredicate("{\"x\":\"\xed\xa0\x80\"}"), false, false},
		{"replacement-char", withPredicate("{\"x\":\"\xef\xbf\xbd\\ufffd\"}"), true, true},
		{"lone-surrogate", withPredicate(`{"x":"\ud800"}`), false, false},
		{"lone-low-surrogate", withPredicate(`{"x":"\udc00\udc00"}`), false, false},
		{"surrogate-then-letter", withPredicate(`{"x":"\ud800\u0041"}`), false, false},
		{"surrogate-pair", withPredicate(`{"x":"\uD83D\uDE80"}`), true, true},
		{"nul-escape", withPredicate(`{"x":"\u0000"}`), true, true},
		{"control-char", withPredicate("{\"x\":\"\t\"}"), false, false},
		{"bad-escape", withPredicate(`{"x":"\a"}`), false, false},
		{"duplicate-key", withPredicate(`{"a":1,"a":2}`), false, false},
		{"duplicate-key-deep", withPredicate(`{"a":{"b":[{"c":1,"d":{},"c":null}]}}`), false, false},
		{"duplicate-key-escaped", withPredicate(`{"a":1,"\u0061":2}`), false, false},
		{"escaped-key", withPredicate(`{"\u0061":1,"b":2}`), true, false},
		{"same-key-other-objects", withPredicate(`{"a":{"a":1},"b":{"a":2},"c":[{"a":3},{"a":4}]}`), true, true},
		{"many-keys", withPredicate(manyUnique), true, true},
		{"many-keys-repeat", withPredicate(manyRepeat), false, false},
		{"many-keys-repeat-at-switch", withPredicate(switchRepeat), false, false},
		{"deep", withPredicate(deep), true, true},
		{"deeper", withPredicate(`{"b":` + deep + `}`), true, false},
		{"deepest", withPredicate(`{"x":` + deepest + `}`), false, false},
		{"unknown-fields", []byte(`{"extra":{"x":[1,2]},"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p","predicate":{"a":1},"more":null}`), true, true},
		{"proto-names", []byte(`{"type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicate_type":"p","predicate":{"a":1}}`), true, true},
		{"duplicate-subject", []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[],"subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p","predicate":{"a":1}}`), false, true},
		{"whitespace", []byte(" \t\r\n{ \"_type\" : \"https://in-toto.io/Statement/v1\" ,\n\"subject\":[ { \"name\":\"a\" , \"digest\" : { \"sha256\" : \"" + testDigest + "\" } } ] , \"predicateType\" : \"p\" , \"predicate\" :\n{ \"a\" : [ 1 , { } , [ ] ] }\n} \n"), true, true},
		{"trailing-data", []byte(string(withPredicate(`{}`)) + `{}`), false, false},
		{"truncated", withPredicate(`{"a":`)[:len(withPredicate(`{"a":`))-1], false, false},
		{"empty-exponent", withPredicate(`{"x":1e}`), false, false},
		{"leading-zero", withPredicate(`{"x":01}`), false, false},
		{"bare-dot", withPredicate(`{"x":1.}`), false, false},
		{"unknown-number-quirk", []byte(`{"x":1e,"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` + testDigest + `"}}],"predicateType":"p","predicate":{}}`), true, false},
		{"not-an-object", []byte(`[]`), false, false},
		{"empty", nil, false, false},
	}
}

func TestParseInTotoSubjectsCases(t *testing.T) {
	for _, c := range inTotoCases(t) {
		t.Run(c.name, func(t *testing.T) {
			checkSameAsReference(t, c.payload)
			_, err := parseInTotoSubjects(c.payload)
			if ok := err == nil; ok != c.ok {
				t.Errorf("accepted = %v, want %v (err: %v)", ok, c.ok, err)
			}
			if _, _, fast := findStructPredicate(c.payload); fast != c.fast {
				t.Errorf("findStructPredicate found the predicate = %v, want %v", fast, c.fast)
			}
		})
	}
}

// TestCommonStatement checks which Statements decodeCommonStatement
// takes: those of the usual shape, and nothing it would have to decode
// escapes or unknown members for, or that protojson refuses.
func TestCommonStatement(t *testing.T) {
	subject := `{"name":"a","digest":{"sha256":"` + testDigest + `"}}`
	statement := func(members string) []byte {
		return []byte(`{"_type":"https://in-toto.io/Statement/v1",` + members + `}`)
	}
	for _, c := range []struct {
		name    string
		payload []byte
		common  bool
	}{
		{"apitest", apitestPayload(t), true},
		{"slsa-v1", slsaStatement(intoto.StatementTypeUri), true},
		{"slsa-v01", slsaStatement(inTotoStatementV01), true},
		{"no-predicate", statement(`"subject":[` + subject + `],"predicateType":"p"`), true},
		{"no-subject", statement(`"predicateType":"p","predicate":{}`), true},
		{"empty-subject", statement(`"subject":[{}],"predicateType":"p","predicate":{}`), true},
		{"empty-digest", statement(`"subject":[{"name":"a","digest":{}}],"predicate":{}`), true},
		{"digests", statement(`"subject":[{"digest":{"sha256":"` + testDigest + `","":"x","y":""}}],"predicate":{}`), true},
		{"non-ascii", statement(`"subject":[{"name":"café 🚀","digest":{"sha256":"` + testDigest + `"}}],"predicate":{}`), true},
		{"escaped-name", statement(`"subject":[{"name":"a\u0062","digest":{"sha256":"` + testDigest + `"}}],"predicate":{}`), false},
		{"escaped-type", []byte(`{"_type":"https:\/\/in-toto.io/Statement/v1","predicate":{}}`), false},
		{"escaped-algorithm", statement(`"subject":[{"digest":{"sha\u0032256":"` + testDigest + `"}}]`), false},
		{"escaped-member", statement(`"subj\u0065ct":[` + subject + `]`), false},
		{"proto-name", statement(`"subject":[` + subject + `],"predicate_type":"p"`), false},
		{"type-proto-name", []byte(`{"type":"https://in-toto.io/Statement/v1"}`), false},
		{"unknown-member", statement(`"subject":[` + subject + `],"extra":1`), false},
		{"unknown-subject-member", statement(`"subject":[{"uri":"x","digest":{"sha256":"` + testDigest + `"}}]`), false},
		{"duplicate-type", statement(`"_type":"x"`), false},
		{"duplicate-subject", statement(`"subject":[],"subject":[]`), false},
		{"duplicate-name", statement(`"subject":[{"name":"a","name":"b"}]`), false},
		{"duplicate-digest", statement(`"subject":[{"digest":{},"digest":{}}]`), false},
		{"duplicate-algorithm", statement(`"subject":[{"digest":{"sha256":"a","sha256":"b"}}]`), false},
		{"null-subject", statement(`"subject":null`), false},
		{"null-name", statement(`"subject":[{"name":null}]`), false},
		{"null-predicate", statement(`"predicate":null`), false},
		{"number-type", []byte(`{"_type":1}`), false},
		{"number-digest", statement(`"subject":[{"digest":{"sha256":1}}]`), false},
		{"array-predicate", statement(`"predicate":[]`), false},
		{"invalid-predicate", statement(`"predicate":{"a":1,"a":2}`), false},
		{"invalid-utf8", statement("\"subject\":[{\"name\":\"\xff\"}]"), false},
		{"trailing-data", []byte(string(statement(`"predicate":{}`)) + "{}"), false},
		{"not-an-object", []byte(`[]`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkSameAsReference(t, c.payload)
			var st intoto.Statement
			if got := decodeCommonStatement(c.payload, &st); got != c.common {
				t.Errorf("decodeCommonStatement = %v, want %v", got, c.common)
			}
			if !c.common && !proto.Equal(&st, &intoto.Statement{}) {
				t.Errorf("decodeCommonStatement left %v behind when it declined", &st)
			}
		})
	}
}

// TestParseInTotoSubjectsSLSA checks what a realistic Statement parses to.
func TestParseInTotoSubjectsSLSA(t *testing.T) {
	got, err := parseInTotoSubjects(slsaStatement(intoto.StatementTypeUri))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"custom:Keep-Case", "sha256:" + testDigest}
	if !slices.Equal(got, want) {
		t.Errorf("subjects = %q, want %q", got, want)
	}
}

// checkSameAsReference checks that parseInTotoSubjects and
// refParseInTotoSubjects agree on payload: both reject it, for the same
// reason, or both accept it, with the same subjects. It also checks that
// what decodeCommonStatement decodes, protojson decodes the same, and
// that whatever findStructPredicate finds is a JSON object in valid JSON.
func checkSameAsReference(t *testing.T, payload []byte) {
	t.Helper()
	want, wantErr := refParseInTotoSubjects(payload)
	got, err := parseInTotoSubjects(payload)
	switch {
	case (err == nil) != (wantErr == nil):
		t.Fatalf("parseInTotoSubjects(%q) error = %v, the reference's %v", payload, err, wantErr)
	case err != nil:
		var ee, wantEE *EntryError
		if !errors.As(err, &ee) || !errors.As(wantErr, &wantEE) {
			t.Fatalf("parseInTotoSubjects(%q) error %T %v, the reference's %T %v, want *EntryError", payload, err, err, wantErr, wantErr)
		}
		if ee.Reason != wantEE.Reason {
			t.Fatalf("parseInTotoSubjects(%q) reason %q, the reference's %q", payload, ee.Reason, wantEE.Reason)
		}
	case !slices.Equal(got, want):
		t.Fatalf("parseInTotoSubjects(%q) = %q, the reference's %q", payload, got, want)
	}
	var common intoto.Statement
	if decodeCommonStatement(payload, &common) {
		var ref intoto.Statement
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(payload, &ref); err != nil {
			t.Fatalf("decodeCommonStatement(%q) took what protojson refuses: %v", payload, err)
		}
		if ref.Predicate != nil {
			ref.Predicate = &structpb.Struct{}
		}
		if !proto.Equal(&common, &ref) {
			t.Fatalf("decodeCommonStatement(%q) = %v, protojson's %v", payload, &common, &ref)
		}
	}
	if start, end, ok := findStructPredicate(payload); ok {
		if !json.Valid(payload) {
			t.Fatalf("findStructPredicate(%q) found a predicate in invalid JSON", payload)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(payload[start:end], &obj); err != nil {
			t.Fatalf("findStructPredicate(%q) found %q, not an object: %v", payload, payload[start:end], err)
		}
	}
}

// FuzzParseInTotoSubjects checks parseInTotoSubjects against the
// reference on the input as a Statement, and as the predicate of an
// otherwise valid Statement (where mutations try the predicate rules
// rather than break the Statement).
func FuzzParseInTotoSubjects(f *testing.F) {
	for _, c := range inTotoCases(f) {
		if len(c.payload) > 4096 {
			continue // deepest: every execution takes milliseconds
		}
		f.Add(c.payload)
	}
	f.Add([]byte(slsaPredicate))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkSameAsReference(t, payload)
		checkSameAsReference(t, withPredicate(string(payload)))
	})
}

// BenchmarkParseInTotoSubjects compares parseInTotoSubjects with the
// reference, which decodes the predicate, on the typical Statement and on
// a larger SLSA one.
func BenchmarkParseInTotoSubjects(b *testing.B) {
	payloads := []struct {
		name    string
		payload []byte
	}{
		{"apitest", apitestPayload(b)},
		{"slsa", slsaStatement(intoto.StatementTypeUri)},
	}
	parsers := []struct {
		name  string
		parse func([]byte) ([]string, error)
	}{
		{"old", refParseInTotoSubjects},
		{"new", parseInTotoSubjects},
	}
	for _, p := range payloads {
		for _, parser := range parsers {
			b.Run(p.name+"/"+parser.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(p.payload)))
				defer reportCPU(b)()
				for b.Loop() {
					if _, err := parser.parse(p.payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
