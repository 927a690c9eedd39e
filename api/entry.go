package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// Entries.
//
// An entry is one signed statement in a canonical, versioned JSON form,
// {"kind":"<kind>","v":1,...}, that verifies on its own: same statement,
// same bytes, same leaf hash. The build kind (build.go) carries a DSSE
// envelope (github.com/secure-systems-lab/dsse, envelope.md and
// protocol.md) holding an in-toto Statement (github.com/in-toto/attestation,
// spec/v1/statement.md). Entries are stored in c2sp.org/tlog-tiles entry
// bundles with a uint16 length prefix, hence MaxEntrySize. entry_test.go
// and build_test.go check the rules; FuzzCanonicalEntry and FuzzParseEntry
// check that whatever is accepted re-parses to the same bytes.
//
// A new kind is one file with a canonicalX function and one case in
// canonicalize.

// MaxEntrySize is the largest canonical entry the log stores (entry bundles
// use uint16 length prefixes).
const MaxEntrySize = 65535

// KindBuild is the kind of an entry holding a DSSE envelope with an in-toto
// Statement, such as SLSA build provenance.
const KindBuild = "build"

// entryVersion is the version of the canonical entry encoding, the "v" field.
const entryVersion = 1

// maxSigners bounds the number of keys and signatures in one entry.
const maxSigners = 16

var (
	// ErrUnknownKind is returned for an entry whose kind the log doesn't
	// know. It maps to HTTP 400.
	ErrUnknownKind = errors.New("unknown entry kind")
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
	entry, _, err := canonicalize(body)
	return entry, err
}

// ParseEntry parses stored canonical entry bytes, re-verifies every
// signature and checks that the bytes are exactly canonical. It returns the
// same kinds of error as CanonicalEntry.
func ParseEntry(entry []byte) (Statement, error) {
	if len(entry) > MaxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(entry), MaxEntrySize)
	}
	canonical, st, err := canonicalize(entry)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canonical, entry) {
		return nil, entryErrorf("entry is not in canonical form")
	}
	return st, nil
}

// canonicalize decodes a submission or an entry, verifies it and returns
// its canonical bytes and the statement. It dispatches on kind.
func canonicalize(body []byte) ([]byte, Statement, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, nil, err
	}
	var kind string
	if err := obj.requiredString("kind", &kind); err != nil {
		return nil, nil, err
	}
	if raw, ok := obj.take("v"); ok {
		var v int
		if err := json.Unmarshal(raw, &v); err != nil || v != entryVersion {
			return nil, nil, entryErrorf("unsupported version %.20s, want %d", raw, entryVersion)
		}
	}
	var (
		entry []byte
		st    Statement
	)
	switch kind {
	case KindBuild:
		entry, st, err = canonicalBuild(obj)
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

// jsonObject holds the members of a JSON object being decoded. Decoding
// takes members out; done rejects any left over.
type jsonObject struct {
	// path names the object in reasons, e.g. "envelope.signatures[1]"; it is
	// empty for the top level.
	path    string
	members map[string]json.RawMessage
}

// decodeObject decodes data, which must be exactly one JSON object, into its
// members. Member names are compared exactly (case-sensitively); a name
// that appears twice is an error, as is anything after the object.
func decodeObject(data []byte) (*jsonObject, error) {
	return decodeObjectAt("", data)
}

func decodeObjectAt(path string, data []byte) (*jsonObject, error) {
	what := "body"
	if path != "" {
		what = fmt.Sprintf("%q", path)
	}
	malformed := func(err error) error {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return &EntryError{Reason: "malformed JSON in " + what, Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, entryErrorf("%s is not a JSON object", what)
	}
	obj := &jsonObject{path: path, members: make(map[string]json.RawMessage)}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, entryErrorf("malformed JSON in %s", what)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed(err)
		}
		if _, dup := obj.members[name]; dup {
			return nil, entryErrorf("duplicate field %q", obj.field(name))
		}
		obj.members[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, entryErrorf("trailing data after JSON object in %s", what)
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

// take removes the member name and returns its raw value.
func (o *jsonObject) take(name string) (json.RawMessage, bool) {
	raw, ok := o.members[name]
	delete(o.members, name)
	return raw, ok
}

// required removes the member name, which must be present and not null, and
// decodes it into v.
func (o *jsonObject) required(name string, v any) error {
	raw, ok := o.take(name)
	if !ok || string(raw) == "null" {
		return entryErrorf("missing field %q", o.field(name))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &EntryError{Reason: fmt.Sprintf("bad field %q", o.field(name)), Err: err}
	}
	return nil
}

// requiredString is required for a string that must not be empty.
func (o *jsonObject) requiredString(name string, s *string) error {
	if err := o.required(name, s); err != nil {
		return err
	}
	if *s == "" {
		return entryErrorf("empty field %q", o.field(name))
	}
	return nil
}

// optionalString removes the member name, if present, and decodes it into s.
func (o *jsonObject) optionalString(name string, s *string) error {
	raw, ok := o.take(name)
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, s); err != nil {
		return &EntryError{Reason: fmt.Sprintf("bad field %q", o.field(name)), Err: err}
	}
	return nil
}

// done returns an error naming a member that no one took, if any.
func (o *jsonObject) done() error {
	if len(o.members) == 0 {
		return nil
	}
	// Name the smallest, so that the reason doesn't depend on map order.
	return entryErrorf("unknown field %q", o.field(slices.Sorted(maps.Keys(o.members))[0]))
}
