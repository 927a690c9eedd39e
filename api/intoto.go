package api

import (
	"bytes"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Decoding in-toto Statements.
//
// protojson decodes the predicate of a Statement into a
// google.protobuf.Struct, maps of Values, which is most of what decoding a
// Statement costs; the log never reads the predicate. So when the predicate
// is an object that protojson would decode without error, which
// findStructPredicate checks with protojson's rules for a Struct, protojson
// is given the Statement with the predicate replaced by {}: every other
// byte is the same, so protojson still applies all its rules to the rest
// (_type, subject, predicateType, unknown and duplicate members), and it
// accepts the Statement if and only if it would accept the original, with
// the same subjects. For anything unusual (a predicate that isn't an object
// or breaks a rule, member names with escapes, the predicate twice, deep
// nesting, text that isn't JSON) protojson decodes the original: the fast
// path only ever skips work, it never decides.
//
// Even without the predicate, protojson is a sizeable part of what
// admitting a submission costs. Most Statements have the one shape that
// decodeCommonStatement decodes itself: the members a Statement needs,
// spelled as the spec does, strings without escapes and a predicate that
// passes the Struct rules. Whatever falls outside it goes the way above.
//
// The rules for a Struct, as protojson applies them: the JSON text is
// valid (RFC 8259) and its strings are valid UTF-8 whose \u escapes of
// UTF-16 surrogates come in valid pairs; an object has no member name
// twice; a number parses as a float64 (1e400 doesn't). protojson also
// bounds nesting, far deeper than maxStatementDepth.

// maxStatementDepth bounds the nesting of the objects and arrays in a
// Statement that findStructPredicate checks; deeper ones go to protojson
// whole.
const maxStatementDepth = 64

// maxLinearNames is the number of member names of an object that
// findStructPredicate compares pairwise to find a repeat, before it uses a
// set.
const maxLinearNames = 16

// predicateName is the predicate's member name as it appears in JSON text,
// quotes included. protojson takes a field under its JSON name or its
// proto name: both are "predicate".
const predicateName = `"predicate"`

// unmarshalInTotoStatement decodes payload into st as protojson does,
// unknown fields discarded, but without building the predicate unless it
// is unusual (see above): st's predicate is then an empty Struct.
func unmarshalInTotoStatement(payload []byte, st *intoto.Statement) error {
	if decodeCommonStatement(payload, st) {
		return nil
	}
	if start, end, ok := findStructPredicate(payload); ok {
		payload = replacePredicate(payload, start, end)
	}
	// The in-toto spec asks consumers to ignore unknown fields.
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(payload, st)
}

// replacePredicate returns a copy of payload with the predicate, the bytes
// payload[start:end], replaced by an empty object.
func replacePredicate(payload []byte, start, end int) []byte {
	out := make([]byte, 0, len(payload)-(end-start)+2)
	out = append(out, payload[:start]...)
	out = append(out, "{}"...)
	return append(out, payload[end:]...)
}

// findStructPredicate returns the offsets of the predicate in payload if
// payload is exactly one JSON object (whitespace around it aside) whose
// member names have no escapes, with a member "predicate" exactly once,
// whose value is an object that protojson decodes into a Struct without
// error, and nothing nested deeper than maxStatementDepth. It returns false
// otherwise, and for any text it can't be sure of.
func findStructPredicate(payload []byte) (start, end int, ok bool) {
	s := protoJSONScanner{data: payload}
	start = -1
	s.skipSpace()
	if s.peek() != '{' {
		return 0, 0, false
	}
	ok = s.object(func(name []byte) bool {
		if bytes.IndexByte(name, '\\') >= 0 {
			return false // another spelling of "predicate", maybe
		}
		if string(name) != predicateName {
			return s.value(2, false)
		}
		if start >= 0 || s.peek() != '{' {
			return false // twice, or null, or not an object
		}
		start = s.i
		if !s.value(2, true) {
			return false
		}
		end = s.i
		return true
	})
	s.skipSpace()
	if !ok || s.i != len(payload) || start < 0 {
		return 0, 0, false
	}
	return start, end, true
}

// decodeCommonStatement decodes payload into st, as protojson would, if it
// has the shape nearly every Statement has: exactly one object (whitespace
// around it aside) with no member but _type, subject, predicateType and
// predicate, each at most once and spelled so; a subject that is an array
// of objects with no member but name and digest, each at most once; a
// digest that is an object with no name twice; strings as values without
// escapes; and a predicate that is an object protojson decodes into a
// Struct without error. st's predicate is then an empty Struct. For
// anything else it reports false and leaves st alone, for protojson to
// decide: like findStructPredicate, it only ever skips work.
func decodeCommonStatement(payload []byte, st *intoto.Statement) bool {
	s := protoJSONScanner{data: payload}
	var typ, predicateType string
	var subjects []*intoto.ResourceDescriptor
	var predicate *structpb.Struct
	var seenType, seenSubject, seenPredicateType bool
	s.skipSpace()
	if s.peek() != '{' {
		return false
	}
	ok := s.object(func(name []byte) bool {
		switch string(name) {
		case `"_type"`:
			return firstTime(&seenType) && s.plainString(&typ)
		case `"predicateType"`:
			return firstTime(&seenPredicateType) && s.plainString(&predicateType)
		case `"subject"`:
			return firstTime(&seenSubject) && s.array(func() bool {
				rd, ok := s.subject()
				subjects = append(subjects, rd)
				return ok
			})
		case `"predicate"`:
			if predicate != nil || s.peek() != '{' {
				return false
			}
			predicate = &structpb.Struct{}
			return s.value(2, true)
		default:
			return false
		}
	})
	s.skipSpace()
	if !ok || s.i != len(payload) {
		return false
	}
	st.Type, st.Subject, st.PredicateType, st.Predicate = typ, subjects, predicateType, predicate
	return true
}

// firstTime sets *seen and reports whether it was not set before.
func firstTime(seen *bool) bool {
	if *seen {
		return false
	}
	*seen = true
	return true
}

// subject scans a subject of the shape decodeCommonStatement takes, and
// returns it.
func (s *protoJSONScanner) subject() (*intoto.ResourceDescriptor, bool) {
	if s.peek() != '{' {
		return nil, false
	}
	rd := &intoto.ResourceDescriptor{}
	var seenName bool
	ok := s.object(func(name []byte) bool {
		switch string(name) {
		case `"name"`:
			return firstTime(&seenName) && s.plainString(&rd.Name)
		case `"digest"`:
			if rd.Digest != nil || s.peek() != '{' {
				return false
			}
			rd.Digest = make(map[string]string, 1)
			return s.object(func(alg []byte) bool {
				if bytes.IndexByte(alg, '\\') >= 0 {
					return false
				}
				key := string(alg[1 : len(alg)-1])
				if _, dup := rd.Digest[key]; dup {
					return false
				}
				var digest string
				if !s.plainString(&digest) {
					return false
				}
				rd.Digest[key] = digest
				return true
			})
		default:
			return false
		}
	})
	return rd, ok
}

// plainString scans the string that starts at the next byte into v, if it
// has no escapes.
func (s *protoJSONScanner) plainString(v *string) bool {
	raw, ok := s.str()
	if !ok || bytes.IndexByte(raw, '\\') >= 0 {
		return false
	}
	*v = string(raw[1 : len(raw)-1])
	return true
}

// protoJSONScanner checks JSON text at least as strictly as protojson
// reads it, without decoding it. Its methods return false for text that
// breaks a rule, or that they don't handle (and then the scanner's offset
// is meaningless).
type protoJSONScanner struct {
	data []byte
	i    int // the offset of the next byte to read
}

// peek returns the next byte, or 0 at the end.
func (s *protoJSONScanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

// consume skips the next byte if it is c, and reports whether it was.
func (s *protoJSONScanner) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

// skipSpace skips JSON whitespace.
func (s *protoJSONScanner) skipSpace() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// value scans the value that starts at the next byte, not the whitespace
// after it, at depth (1 for the top level). With structRules, it applies
// the rules for a google.protobuf.Value: no repeated member names, numbers
// that parse as float64.
func (s *protoJSONScanner) value(depth int, structRules bool) bool {
	switch c := s.peek(); c {
	case '{', '[':
		if depth > maxStatementDepth {
			return false
		}
		if c == '[' {
			return s.array(func() bool { return s.value(depth+1, structRules) })
		}
		if structRules {
			return s.structObject(depth)
		}
		return s.object(func([]byte) bool { return s.value(depth+1, false) })
	case '"':
		_, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number(structRules)
	}
}

// object scans the object that starts at the next byte. For each member,
// it calls member with the member's name as JSON text, quotes included,
// once the next byte is the start of the member's value; member must scan
// the value.
func (s *protoJSONScanner) object(member func(name []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	s.skipSpace()
	if s.consume('}') {
		return true
	}
	for {
		name, ok := s.str()
		if !ok {
			return false
		}
		s.skipSpace()
		if !s.consume(':') {
			return false
		}
		s.skipSpace()
		if !member(name) {
			return false
		}
		s.skipSpace()
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.skipSpace()
	}
}

// array scans the array that starts at the next byte, calling elem to scan
// each element.
func (s *protoJSONScanner) array(elem func() bool) bool {
	if !s.consume('[') {
		return false
	}
	s.skipSpace()
	if s.consume(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		s.skipSpace()
		if s.consume(']') {
			return true
		}
		if !s.consume(',') {
			return false
		}
		s.skipSpace()
	}
}

// structObject scans the object that starts at the next byte, at depth,
// with the rules for a google.protobuf.Struct: its member names must not
// repeat, and its values follow the rules too. Names with escapes aren't
// handled (comparing them would take decoding them).
func (s *protoJSONScanner) structObject(depth int) bool {
	var small [maxLinearNames][]byte
	names := small[:0]
	var seen map[string]bool // once there are more names than small holds
	return s.object(func(name []byte) bool {
		if bytes.IndexByte(name, '\\') >= 0 {
			return false
		}
		switch {
		case seen != nil:
			if seen[string(name)] {
				return false
			}
			seen[string(name)] = true
		case len(names) < len(small):
			for _, prev := range names {
				if bytes.Equal(prev, name) {
					return false
				}
			}
			names = append(names, name)
		default:
			seen = make(map[string]bool, 2*len(names))
			for _, prev := range names {
				seen[string(prev)] = true
			}
			if seen[string(name)] {
				return false
			}
			seen[string(name)] = true
		}
		return s.value(depth+1, true)
	})
}

// literal scans the literal word (true, false or null) that must be next.
// What may follow it is for the caller to check.
func (s *protoJSONScanner) literal(word string) bool {
	if len(s.data)-s.i < len(word) || string(s.data[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// str scans the string that starts at the next byte and returns its JSON
// text, quotes included. The string must be valid UTF-8 with no control
// characters, and its escapes must be JSON's, with UTF-16 surrogates only
// in valid pairs of \u escapes.
func (s *protoJSONScanner) str() ([]byte, bool) {
	start := s.i
	if !s.consume('"') {
		return nil, false
	}
	for s.i < len(s.data) {
		switch c := s.data[s.i]; {
		case c == '"':
			s.i++
			return s.data[start:s.i], true
		case c == '\\':
			if !s.escape() {
				return nil, false
			}
		case c < ' ':
			return nil, false
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.data[s.i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false
			}
			s.i += n
		}
	}
	return nil, false
}

// escape scans the escape sequence that starts at the next byte, a
// backslash.
func (s *protoJSONScanner) escape() bool {
	if s.i+1 >= len(s.data) {
		return false
	}
	switch s.data[s.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i += 2
		return true
	case 'u':
		return s.unicodeEscapes()
	default:
		return false
	}
}

// unicodeEscapes scans the \u escape that must be next, and the one after
// it if the first is a UTF-16 surrogate: a surrogate must be the first of a
// valid pair.
func (s *protoJSONScanner) unicodeEscapes() bool {
	r, ok := s.unicodeEscape()
	if !ok {
		return false
	}
	if !utf16.IsSurrogate(r) {
		return true
	}
	low, ok := s.unicodeEscape()
	return ok && utf16.DecodeRune(r, low) != unicode.ReplacementChar
}

// unicodeEscape scans the \u escape, with four hex digits, that must be
// next and returns the code unit it stands for.
func (s *protoJSONScanner) unicodeEscape() (rune, bool) {
	if s.i+6 > len(s.data) || s.data[s.i] != '\\' || s.data[s.i+1] != 'u' {
		return 0, false
	}
	r, ok := parseHex4(s.data[s.i+2 : s.i+6])
	if ok {
		s.i += 6
	}
	return r, ok
}

// parseHex4 returns the code unit that the four hex digits of a \u escape
// in b stand for.
func parseHex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// number scans the number that starts at the next byte, in JSON's
// grammar. With structRules, it must also parse as a float64, as a
// google.protobuf.Value's number does.
func (s *protoJSONScanner) number(structRules bool) bool {
	start := s.i
	s.consume('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.consume('.') && !s.digits() {
		return false
	}
	if s.consume('e') || s.consume('E') {
		if !s.consume('+') {
			s.consume('-')
		}
		if !s.digits() {
			return false
		}
	}
	if !structRules {
		return true
	}
	_, err := strconv.ParseFloat(string(s.data[start:s.i]), 64)
	return err == nil
}

// digits scans decimal digits and reports whether there was at least one.
func (s *protoJSONScanner) digits() bool {
	start := s.i
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
