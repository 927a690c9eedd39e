package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// The tests of the strict JSON decoding under the entry kinds: the walker
// must see exactly what encoding/json sees.

// refMembers decodes the JSON object data with a json.Decoder, as the
// reference for what the walker finds: member names and value texts.
func refMembers(t *testing.T, data []byte) ([]string, [][]byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("the reference decoder doesn't see an object: %v, %v", tok, err)
	}
	var names []string
	var raws [][]byte
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("reference decoder: %v", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("reference decoder: %v", err)
		}
		names = append(names, tok.(string))
		raws = append(raws, raw)
	}
	return names, raws
}

// refElems is refMembers for arrays.
func refElems(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		t.Fatalf("reference decoder: %v", err)
	}
	out := make([][]byte, len(raws))
	for i, r := range raws {
		out[i] = r
	}
	return out
}

// checkWalked checks v and what's under it against encoding/json.
func checkWalked(t *testing.T, v jsonValue, depth int) {
	t.Helper()
	if !json.Valid(v.raw) {
		t.Fatalf("value text %q isn't valid JSON", v.raw)
	}
	if v.isString() {
		var s string
		if err := json.Unmarshal(v.raw, &s); err != nil || s != v.str {
			t.Fatalf("string %q decodes to %q, %v; the walker has %q", v.raw, s, err, v.str)
		}
	}
	if (v.isObject() || v.isArray()) && v.walked != (depth <= maxWalkDepth) {
		t.Fatalf("value %q at depth %d: walked = %v", v.raw, depth, v.walked)
	}
	if !v.walked {
		return
	}
	if v.isObject() {
		names, raws := refMembers(t, v.raw)
		if len(names) != len(v.members) {
			t.Fatalf("object %q: %d members, want %d", v.raw, len(v.members), len(names))
		}
		for i, m := range v.members {
			if m.name != names[i] || !bytes.Equal(m.value.raw, raws[i]) {
				t.Fatalf("object %q: member %d is %q: %q, want %q: %q", v.raw, i, m.name, m.value.raw, names[i], raws[i])
			}
			checkWalked(t, m.value, depth+1)
		}
		return
	}
	raws := refElems(t, v.raw)
	if len(raws) != len(v.elems) {
		t.Fatalf("array %q: %d elements, want %d", v.raw, len(v.elems), len(raws))
	}
	for i, e := range v.elems {
		if !bytes.Equal(e.raw, raws[i]) {
			t.Fatalf("array %q: element %d is %q, want %q", v.raw, i, e.raw, raws[i])
		}
		checkWalked(t, e, depth+1)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	for _, s := range []string{
		``, ` `, `{}`, ` { } `, `[]`, `{"a":1}x`, `{"a":1}}`, `{"a":1}{}`, `{"a"}`, `{"a":}`, `{,}`, `{"a":1,}`,
		`{"a":[1,2,{"b":[{"c":{"d":[[[{"e":"\u00e9\"\\"}]]]}}]}],"f":-1.5e+10,"g":true,"h":false,"i":null}`,
		"{\"\xff\":\"\xed\xa0\x80\",\"\\ud800\":\"\\u2028<&>\"}",
		"{\t\"a\"\r\n:\n[ ]\t, \"b\" : { } }",
		`{"a":"\"","b":"\\","c":"\\\"","d":"x\\"}`,
		`{"a":1e400,"b":-0,"c":0.0e-0}`,
		`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		`{"a":"` + "\x01" + `"}`,
		"\xef\xbb\xbf{}",
		`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":.5}`, `{"a":1e}`, `{"a":1E+}`, `{"a":+1}`, `{"a":tru}`, `{"a":nulll}`, `{"a":True}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":"\`, `{"a":"\u00e9\/\b\f\r\t"}`,
		`{"a":[{"b":[{"c":[{"d":"\q"}]}]}]}`, `{"a":[{"b":[{"c":[1,]}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeJSON("body", data, '{')
		if err != nil {
			checkRejected(t, err)
			tok, tokErr := json.NewDecoder(bytes.NewReader(data)).Token()
			if tokErr == nil && tok == json.Delim('{') && json.Valid(data) && !strings.Contains(err.Error(), "JSON values in its first") {
				t.Fatalf("decodeJSON rejects a valid JSON object: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("decodeJSON accepts invalid JSON")
		}
		if !v.isObject() || !v.walked {
			t.Fatalf("decodeJSON gives %q, walked %v: not an object", v.raw, v.walked)
		}
		if !bytes.Equal(v.raw, bytes.TrimSpace(data)) {
			t.Fatalf("top-level text is %q, want %q", v.raw, bytes.TrimSpace(data))
		}
		checkWalked(t, v, 1)
	})
}

// TestDecodeJSONErrors checks the reasons for bodies that aren't one JSON
// object.
func TestDecodeJSONErrors(t *testing.T) {
	for _, tt := range []struct{ body, reason string }{
		{``, "malformed JSON in body: unexpected EOF"},
		{`{"a":`, "malformed JSON in body: unexpected EOF"},
		{`{"a":1`, "malformed JSON in body: unexpected EOF"},
		{`{"a":1,}`, "malformed JSON in body: invalid character '}' looking for beginning of object key string"},
		{`{"a" 1}`, "malformed JSON in body: invalid character '1' after object key"},
		{`{"a":1}x`, "trailing data after JSON object in body"},
		{`{"a":1} {`, "trailing data after JSON object in body"},
		{`[{"a":1}]`, "body is not a JSON object"},
		{`nul`, "malformed JSON in body"},
	} {
		_, err := decodeJSON("body", []byte(tt.body), '{')
		if err == nil || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("decodeJSON(%q) = %v, want an error containing %q", tt.body, err, tt.reason)
		}
		checkRejected(t, err)
		if errors.Is(err, io.EOF) {
			t.Errorf("decodeJSON(%q) = %v, a bare EOF", tt.body, err)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "build", "application/vnd.in-toto+json", "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n",
		"a\"b\\c", "<&>", "\u2028\u2029", "\x00\x1f\x7f", "\xff", "é", "\r\n\t",
		"example.com/log\n5\nAAAA\n\n— example.com/log Zm9v\n", "\xe2\x80", "🚀\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString([]byte("x"), s); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Fatalf("appendJSONString(%q) = %s, want x%s", s, got, want)
		}
	})
}

// TestDecodeJSONDeep checks that objects and arrays deeper than the walker
// goes are decoded from their text when asked for.
func TestDecodeJSONDeep(t *testing.T) {
	obj, err := decodeObject([]byte(`{"a":{"b":{"c":{"d":[{"e":1,"e":2}],"f":{"g":"x"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		v, err := obj.required(name)
		if err != nil {
			t.Fatal(err)
		}
		if obj, err = openObject(obj.field(name), v); err != nil {
			t.Fatal(err)
		}
	}
	d, err := obj.requiredArray("d")
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 {
		t.Fatalf("d = %+v, want one element", d)
	}
	_, err = openObject("a.b.c.d[0]", d[0])
	checkErr(t, err, nil, `duplicate field "a.b.c.d[0].e"`)
	v, err := obj.required("f")
	if err != nil {
		t.Fatal(err)
	}
	if v.walked {
		t.Fatalf("f is walked at depth 5")
	}
	f, err := openObject("a.b.c.f", v)
	if err != nil {
		t.Fatal(err)
	}
	var g string
	if err := f.requiredString("g", &g); err != nil || g != "x" {
		t.Fatalf("g = %q, %v", g, err)
	}
	if err := obj.done(); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeJSONTooManyValues checks the bound on the size of the tree.
func TestDecodeJSONTooManyValues(t *testing.T) {
	many := func(n int) []byte {
		return []byte(`{"kind":"build","publicKeys":[` + strings.Repeat(`"",`, n) + `""]}`)
	}
	// The object, 2 names, "build", the array and n+1 elements.
	if _, err := decodeJSON("body", many(maxJSONValues-6), '{'); err != nil {
		t.Errorf("%d values: %v", maxJSONValues, err)
	}
	_, err := decodeJSON("body", many(maxJSONValues-5), '{')
	checkErr(t, err, nil, "body has more than 1024 JSON values in its first 5 levels")
	// Values below the walked levels don't count.
	deep := []byte(`{"a":{"b":{"c":{"d":[` + strings.Repeat(`[1,2,3],`, 2*maxJSONValues) + `1]}}}}`)
	if _, err := decodeJSON("body", deep, '{'); err != nil {
		t.Errorf("deep values: %v", err)
	}
}
