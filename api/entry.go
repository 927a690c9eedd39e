package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Entries.
//
// An entry is one signed statement in a canonical, versioned JSON form,
// {"kind":"<kind>","v":1,...}, that verifies on its own: same statement,
// same bytes, same leaf hash. The build kind (build.go) carries a DSSE
// envelope (github.com/secure-systems-lab/dsse, envelope.md and
// protocol.md) holding an in-toto Statement (github.com/in-toto/attestation,
// spec/v1/statement.md). The commit kind (commit.go) carries a signed git
// commit object with its signer's SSH (sshsig.go) or OpenPGP (openpgp.go)
// key. Entries are stored in c2sp.org/tlog-tiles entry bundles with a
// uint16 length prefix, hence MaxEntrySize. entry_test.go, build_test.go
// and commit_test.go check the rules (commit_git_test.go with the real git,
// ssh-keygen and gpg); FuzzCanonicalEntry and FuzzParseEntry check that
// whatever is accepted re-parses to the same bytes.
//
// A new kind is one file with a canonicalX function and one case in
// canonicalize.

// MaxEntrySize is the largest canonical entry the log stores (entry bundles
// use uint16 length prefixes).
const MaxEntrySize = 65535

// KindBuild is the kind of an entry holding a DSSE envelope with an in-toto
// Statement, such as SLSA build provenance.
const KindBuild = "build"

// KindCommit is the kind of an entry holding a signed git commit object.
const KindCommit = "commit"

// entryVersion is the version of the canonical entry encoding, the "v" field.
const entryVersion = 1

// maxSigners bounds the number of keys and signatures in one entry.
const maxSigners = 16

var (
	// ErrUnknownKind is returned for an entry whose kind the log doesn't
	// know. It maps to HTTP 400.
	ErrUnknownKind = errors.New("unknown entry kind")
	// ErrUnknownVersion is wrapped by the *EntryError of an entry whose
	// version ("v") this code doesn't know. It maps to HTTP 400.
	ErrUnknownVersion = errors.New("unknown entry version")
	// ErrEntryTooLarge is returned when the canonical entry would be larger
	// than MaxEntrySize. It maps to HTTP 413.
	ErrEntryTooLarge = errors.New("entry too large")
)

// EntryError means a submission or a stored entry is malformed or doesn't
// verify. It maps to HTTP 400; Reason is meant for the submitter.
type EntryError struct {
	// Reason says what is wrong, e.g. `missing field "envelope"`.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *EntryError) Error() string {
	if e.Err == nil {
		return "invalid entry: " + e.Reason
	}
	return "invalid entry: " + e.Reason + ": " + e.Err.Error()
}

func (e *EntryError) Unwrap() error { return e.Err }

// entryErrorf returns an *EntryError with a formatted reason and no
// underlying error.
func entryErrorf(format string, args ...any) error {
	return &EntryError{Reason: fmt.Sprintf(format, args...)}
}

// Statement is a parsed, verified entry.
type Statement interface {
	// Kind returns the entry's kind, e.g. KindBuild.
	Kind() string
	// Subjects returns the artifact digests the statement speaks of, as
	// "alg:hex" strings (e.g. "sha256:ab12…"), sorted and deduplicated.
	Subjects() []string
	// KeyFingerprints returns "sha256:<hex of SHA-256(PKIX DER)>" for every
	// key that signed the statement, sorted.
	KeyFingerprints() []string
}

// CanonicalEntry takes the JSON body of POST /v1/entries, {"kind":"...",
// ...kind fields}, verifies the statement's signatures, and returns the
// canonical entry bytes that the log stores: the same statement always
// gives the same bytes, hence the same leaf hash. A canonical entry is
// itself a valid submission that gives back the same bytes.
//
// The error is an *EntryError if the body is malformed or doesn't verify,
// wraps ErrUnknownKind for an unknown kind, and wraps ErrEntryTooLarge if
// the canonical entry would be larger than MaxEntrySize.
func CanonicalEntry(body []byte) ([]byte, error) {
	entry, _, err := canonicalize(body, time.Now())
	return entry, err
}

// ParseEntry parses stored canonical entry bytes, re-verifies every
// signature and checks that the bytes are exactly canonical. It returns the
// same kinds of error as CanonicalEntry.
func ParseEntry(entry []byte) (Statement, error) {
	if len(entry) > MaxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(entry), MaxEntrySize)
	}
	canonical, st, err := canonicalize(entry, time.Time{})
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canonical, entry) {
		return nil, entryErrorf("entry is not in canonical form")
	}
	return st, nil
}

// UnknownEntry reports whether err, from ParseEntry, says that the entry
// is of a kind or a version this code does not know, rather than wrong: a
// newer log may hold such entries rightly.
func UnknownEntry(err error) bool {
	return errors.Is(err, ErrUnknownKind) || errors.Is(err, ErrUnknownVersion)
}

// canonicalize decodes a submission or an entry, verifies it and returns
// its canonical bytes and the statement. It dispatches on kind. now is
// the time of admission, zero when re-verifying a stored entry: an entry
// must verify from its bytes alone, whenever.
func canonicalize(body []byte, now time.Time) ([]byte, Statement, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, nil, err
	}
	var kind string
	if err := obj.requiredString("kind", &kind); err != nil {
		return nil, nil, err
	}
	if val, ok := obj.take("v"); ok {
		var v int
		if err := json.Unmarshal(val.raw, &v); err != nil || v != entryVersion {
			return nil, nil, &EntryError{Reason: fmt.Sprintf("unsupported version %.20s, want %d", val.raw, entryVersion), Err: ErrUnknownVersion}
		}
	}
	var (
		entry []byte
		st    Statement
	)
	switch kind {
	case KindBuild:
		entry, st, err = canonicalBuild(obj, !now.IsZero())
	case KindCommit:
		entry, st, err = canonicalCommit(obj, now)
	case KindImage:
		entry, st, err = canonicalImage(obj, !now.IsZero())
	default:
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	if err != nil {
		return nil, nil, err
	}
	if len(entry) > MaxEntrySize {
		return nil, nil, fmt.Errorf("%w: canonical entry is %d bytes, limit %d", ErrEntryTooLarge, len(entry), MaxEntrySize)
	}
	return entry, st, nil
}

// Strict JSON decoding.
//
// A body is walked once into a tree of jsonValues that keeps each value's
// text and the decoded strings, so that no part of the body is scanned or
// unquoted more than needed; the walker checks the text as json.Valid
// would on the way, and on a fault a Decoder finds the reason.
// Objects are checked (duplicate names) and decoded into Go values only when
// a kind's code asks for them, in the same order as it asks, so a body with
// several faults is rejected for the first one the code looks at. Where a
// value isn't what the code wants, decoding falls back to json.Unmarshal of
// the value's text, for the same result and the same error as decoding that
// text on its own.

// maxWalkDepth is how deep decodeJSON builds the tree: values nested deeper
// are kept as text only (and decoded from it if ever asked for). It bounds
// the recursion whatever the body.
const maxWalkDepth = 4

// maxJSONValues bounds the values (member names included) in the tree of a
// body, so that its memory is bounded too: a body with more is rejected.
// A build entry has at most 111 (the top level; 4 members, each a name and
// a value; 3 in the envelope; 16 signatures of 2 members; 16 keys).
const maxJSONValues = 1024

// jsonValue is a JSON value in a decoded body.
type jsonValue struct {
	// raw is the value's JSON text, a subslice of the body.
	raw []byte
	// str is the decoded value of a string.
	str string
	// walked is set for an object or an array whose members or elems are
	// filled in.
	walked  bool
	members []jsonMember // of a walked object, in order
	elems   []jsonValue  // of a walked array
}

// jsonMember is a member of a JSON object.
type jsonMember struct {
	name  string
	value jsonValue
}

func (v *jsonValue) isNull() bool   { return string(v.raw) == "null" }
func (v *jsonValue) isString() bool { return len(v.raw) > 0 && v.raw[0] == '"' }
func (v *jsonValue) isObject() bool { return len(v.raw) > 0 && v.raw[0] == '{' }
func (v *jsonValue) isArray() bool  { return len(v.raw) > 0 && v.raw[0] == '[' }

// decodeJSON decodes data, which must be exactly one JSON object or array
// as want ('{' or '[') says. what names the value in reasons.
func decodeJSON(what string, data []byte, want byte) (jsonValue, error) {
	w := jsonWalker{data: data}
	w.skipSpace()
	if w.peek() != want {
		return jsonValue{}, jsonSyntaxError(what, data, want)
	}
	v := w.value(1)
	if w.values > maxJSONValues {
		return jsonValue{}, entryErrorf("%s has more than %d JSON values in its first %d levels", what, maxJSONValues, maxWalkDepth+1)
	}
	if w.i != len(data) || w.failed {
		return jsonValue{}, jsonSyntaxError(what, data, want)
	}
	return v, nil
}

// jsonSyntaxError returns the error for data that isn't one valid JSON
// value of the kind want, as a Decoder reading it finds it.
func jsonSyntaxError(what string, data []byte, want byte) error {
	kind := "object"
	if want == '[' {
		kind = "array"
	}
	malformed := func(err error) error {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &EntryError{Reason: "malformed JSON in " + what, Err: err}
	}
	tok, err := json.NewDecoder(bytes.NewReader(data)).Token()
	if err != nil {
		return malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != json.Delim(want) {
		return entryErrorf("%s is not a JSON %s", what, kind)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&skipJSON{}); err != nil {
		return malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return entryErrorf("trailing data after JSON %s in %s", kind, what)
	}
	// The walker and a Decoder don't disagree (FuzzDecodeJSON), but to be
	// sure:
	return malformed(errors.New("invalid JSON"))
}

// skipJSON decodes any JSON value into nothing.
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }

// jsonWalker walks JSON text and checks it as json.Valid does: the text of
// what it skips too, strings without control characters or bad escapes,
// numbers and literals by JSON's grammar. Like json.Valid, it doesn't ask
// for valid UTF-8 (json.Unmarshal replaces what isn't). At the first fault
// it sets failed and stops.
type jsonWalker struct {
	data   []byte
	i      int // the offset of the next byte to read
	values int // the number of values read
	failed bool
}

// peek returns the next byte, or 0 at the end.
func (w *jsonWalker) peek() byte {
	if w.i < len(w.data) {
		return w.data[w.i]
	}
	return 0
}

// expect consumes the next byte, which must be c.
func (w *jsonWalker) expect(c byte) {
	if w.peek() != c {
		w.fail()
		return
	}
	w.i++
}

func (w *jsonWalker) fail() {
	w.failed = true
	w.i = len(w.data) // stops every loop
}

func (w *jsonWalker) skipSpace() {
	for w.i < len(w.data) {
		switch w.data[w.i] {
		case ' ', '\t', '\r', '\n':
			w.i++
		default:
			return
		}
	}
}

// value reads the value at depth (1 for the top level) that starts at the
// next byte, and the whitespace after it.
func (w *jsonWalker) value(depth int) jsonValue {
	start := w.i
	var v jsonValue
	if w.values++; w.values > maxJSONValues {
		w.i = len(w.data) // stops every loop
		return v
	}
	switch c := w.peek(); {
	case c == '{' && depth <= maxWalkDepth:
		v.walked = true
		v.members = make([]jsonMember, 0, 4) // as many as the build kind's objects have
		w.i++
		w.skipSpace()
		for w.peek() != '}' && !w.failed {
			if len(v.members) > 0 {
				w.expect(',')
				w.skipSpace()
			}
			if w.peek() != '"' {
				w.fail()
				break
			}
			name := w.value(depth + 1)
			w.expect(':')
			w.skipSpace()
			v.members = append(v.members, jsonMember{name: name.str, value: w.value(depth + 1)})
		}
		w.expect('}')
	case c == '[' && depth <= maxWalkDepth:
		v.walked = true
		w.i++
		w.skipSpace()
		for w.peek() != ']' && !w.failed {
			if len(v.elems) > 0 {
				w.expect(',')
				w.skipSpace()
			}
			v.elems = append(v.elems, w.value(depth+1))
		}
		w.expect(']')
	case c == '{' || c == '[':
		w.skipNested()
		// Rare: checked with the library, as a whole.
		if !json.Valid(w.data[start:w.i]) {
			w.fail()
		}
	case c == '"':
		w.skipString()
		v.str = w.unquote(w.data[start:w.i])
	default: // a number, true, false or null: letters, digits, + - .
		for w.i < len(w.data) && isLiteralByte(w.data[w.i]) {
			w.i++
		}
		if !validLiteral(w.data[start:w.i]) {
			w.fail()
		}
	}
	v.raw = w.data[start:w.i]
	w.skipSpace()
	return v
}

// isLiteralByte reports whether c can be part of a JSON number, true, false
// or null.
func isLiteralByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

// validLiteral reports whether b is true, false, null or a JSON number.
func validLiteral(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	}
	i := 0
	digits := func() bool {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(b)
}

// skipString skips the string that starts at the next byte: no control
// characters, and only JSON's escapes.
func (w *jsonWalker) skipString() {
	w.expect('"')
	for w.i < len(w.data) {
		switch c := w.data[w.i]; {
		case c == '"':
			w.i++
			return
		case c == '\\':
			if !w.skipEscape() {
				w.fail()
				return
			}
		case c < 0x20:
			w.fail()
			return
		default:
			w.i++
		}
	}
	w.fail()
}

// skipEscape skips the escape that starts at the next byte, a backslash,
// and reports whether it is one of JSON's.
func (w *jsonWalker) skipEscape() bool {
	if w.i+1 >= len(w.data) {
		return false
	}
	switch w.data[w.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		w.i += 2
		return true
	case 'u':
		if w.i+6 > len(w.data) {
			return false
		}
		if _, ok := parseHex4(w.data[w.i+2 : w.i+6]); !ok {
			return false
		}
		w.i += 6
		return true
	}
	return false
}

// skipNested skips the object or array that starts at the next byte.
func (w *jsonWalker) skipNested() {
	depth := 0
	for w.i < len(w.data) {
		switch w.data[w.i] {
		case '"':
			w.skipString()
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		w.i++
		if depth == 0 {
			return
		}
	}
	w.fail()
}

// unquote decodes a JSON string, quotes included, as json.Unmarshal does:
// directly if it is valid UTF-8 with no escapes but \n (as base64 and PEM
// are), with json.Unmarshal otherwise.
func (w *jsonWalker) unquote(raw []byte) string {
	if s, ok := unquoteSimple(raw); ok {
		return s
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		w.fail()
	}
	return s
}

// unquoteSimple decodes a valid JSON string, quotes included, that is
// valid UTF-8 with no escapes but \n. It returns false for any other.
func unquoteSimple(raw []byte) (string, bool) {
	if len(raw) < 2 || !utf8.Valid(raw) {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	i := bytes.IndexByte(inner, '\\')
	if i < 0 {
		return string(inner), true
	}
	var b strings.Builder
	b.Grow(len(inner))
	for ; i >= 0; i = bytes.IndexByte(inner, '\\') {
		if i+1 == len(inner) || inner[i+1] != 'n' {
			return "", false
		}
		b.Write(inner[:i])
		b.WriteByte('\n')
		inner = inner[i+2:]
	}
	b.Write(inner)
	return b.String(), true
}

// jsonObject holds the members of a JSON object being decoded. Decoding
// takes members out; done rejects any left over.
type jsonObject struct {
	// path names the object in reasons, e.g. "envelope.signatures[1]"; it is
	// empty for the top level.
	path    string
	members []jsonMember
}

// decodeObject decodes data, which must be exactly one JSON object, into its
// members. Member names are compared exactly (case-sensitively); a name
// that appears twice is an error, as is anything after the object.
func decodeObject(data []byte) (*jsonObject, error) {
	v, err := decodeJSON("body", data, '{')
	if err != nil {
		return nil, err
	}
	return openObject("", v)
}

// openObject returns the object v, named path in reasons, checking that it
// is an object without duplicate member names.
func openObject(path string, v jsonValue) (*jsonObject, error) {
	what := func() string {
		if path == "" {
			return "body"
		}
		return strconv.Quote(path)
	}
	if !v.isObject() {
		return nil, entryErrorf("%s is not a JSON object", what())
	}
	if !v.walked {
		var err error
		if v, err = decodeJSON(what(), v.raw, '{'); err != nil {
			return nil, err
		}
	}
	obj := &jsonObject{path: path, members: v.members}
	// Report the first repeat in order; a set only for many members.
	var seen map[string]bool
	if len(v.members) > 8 {
		seen = make(map[string]bool, len(v.members))
	}
	for i, m := range v.members {
		dup := false
		if seen != nil {
			dup = seen[m.name]
			seen[m.name] = true
		} else {
			for _, prev := range v.members[:i] {
				if prev.name == m.name {
					dup = true
					break
				}
			}
		}
		if dup {
			return nil, entryErrorf("duplicate field %q", obj.field(m.name))
		}
	}
	return obj, nil
}

// field returns the full path of the member name, for reasons.
func (o *jsonObject) field(name string) string {
	if o.path == "" {
		return name
	}
	return o.path + "." + name
}

// take removes the member name and returns its value.
func (o *jsonObject) take(name string) (jsonValue, bool) {
	for i, m := range o.members {
		if m.name == name {
			o.members = slices.Delete(o.members, i, i+1)
			return m.value, true
		}
	}
	return jsonValue{}, false
}

// required removes the member name, which must be present and not null, and
// returns its value.
func (o *jsonObject) required(name string) (jsonValue, error) {
	v, ok := o.take(name)
	if !ok || v.isNull() {
		return jsonValue{}, entryErrorf("missing field %q", o.field(name))
	}
	return v, nil
}

// unmarshal decodes the text of the member name's value v into x, for the
// values that aren't what the caller wants: json.Unmarshal says what is
// wrong, or decodes them as it always would.
func (o *jsonObject) unmarshal(name string, v jsonValue, x any) error {
	if err := json.Unmarshal(v.raw, x); err != nil {
		return &EntryError{Reason: fmt.Sprintf("bad field %q", o.field(name)), Err: err}
	}
	return nil
}

// requiredString is required for a string that must not be empty.
func (o *jsonObject) requiredString(name string, s *string) error {
	v, err := o.required(name)
	if err != nil {
		return err
	}
	if v.isString() {
		*s = v.str
	} else if err := o.unmarshal(name, v, s); err != nil {
		return err
	}
	if *s == "" {
		return entryErrorf("empty field %q", o.field(name))
	}
	return nil
}

// optionalString removes the member name, if present, and decodes it into s.
func (o *jsonObject) optionalString(name string, s *string) error {
	v, ok := o.take(name)
	if !ok || v.isNull() {
		return nil
	}
	if v.isString() {
		*s = v.str
		return nil
	}
	return o.unmarshal(name, v, s)
}

// requiredStrings is required for an array of strings (a null element
// decodes as "", as json.Unmarshal has it).
func (o *jsonObject) requiredStrings(name string) ([]string, error) {
	v, err := o.required(name)
	if err != nil {
		return nil, err
	}
	return o.stringsOf(name, v)
}

// optionalStrings removes the member name, if present, and decodes it as
// an array of strings; nil if it is absent or null.
func (o *jsonObject) optionalStrings(name string) ([]string, error) {
	v, ok := o.take(name)
	if !ok || v.isNull() {
		return nil, nil
	}
	return o.stringsOf(name, v)
}

// stringsOf decodes v, the value of the member name, as an array of
// strings.
func (o *jsonObject) stringsOf(name string, v jsonValue) ([]string, error) {
	if v.isArray() && v.walked {
		ss := make([]string, len(v.elems))
		i := 0
		for ; i < len(v.elems) && v.elems[i].isString(); i++ {
			ss[i] = v.elems[i].str
		}
		if i == len(v.elems) {
			return ss, nil
		}
	}
	var ss []string
	if err := o.unmarshal(name, v, &ss); err != nil {
		return nil, err
	}
	return ss, nil
}

// requiredArray is required for an array, and returns its elements.
func (o *jsonObject) requiredArray(name string) ([]jsonValue, error) {
	v, err := o.required(name)
	if err != nil {
		return nil, err
	}
	if !v.isArray() {
		return nil, o.unmarshal(name, v, &[]json.RawMessage{})
	}
	if !v.walked {
		if v, err = decodeJSON(strconv.Quote(o.field(name)), v.raw, '['); err != nil {
			return nil, err
		}
	}
	return v.elems, nil
}

// done returns an error naming a member that no one took, if any.
func (o *jsonObject) done() error {
	if len(o.members) == 0 {
		return nil
	}
	// Name the smallest, so that the reason doesn't depend on member order.
	name := o.members[0].name
	for _, m := range o.members[1:] {
		name = min(name, m.name)
	}
	return entryErrorf("unknown field %q", o.field(name))
}
