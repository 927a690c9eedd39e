package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	intoto "github.com/in-toto/attestation/go/v1"
)

// Search.
//
// GET /v1/search finds entries by the terms they carry: each parameter of
// the query is one term, several are ANDed. The terms of an entry are
// derived from its canonical bytes alone (SearchTerms), so an index of
// them can always be rebuilt from the log.

// The parameters of GET /v1/search.
const (
	// SearchCommit is a git commit id, lowercase hex (40 digits for a
	// sha1 repository, 64 for sha256).
	SearchCommit = "commit"
	// SearchRepository is the repository of a commit, exactly as it was
	// submitted.
	SearchRepository = "repository"
	// SearchDigest is an artifact digest an entry speaks of, "alg:hex",
	// e.g. an in-toto subject "sha256:ab12…".
	SearchDigest = "digest"
	// SearchKey is the fingerprint of a key that signed an entry:
	// "sha256:<hex>" of a PKIX key, "SHA256:<base64>" of an SSH key (as
	// ssh-keygen -l prints it), the lowercase hex fingerprint of an
	// OpenPGP key.
	SearchKey = "key"
	// SearchImage is the manifest digest of a container image whose
	// signature an entry holds, "sha256:<hex>".
	SearchImage = "image"
	// SearchIdentity is a subject alternative name of the certificate
	// that signed an entry (an email, a URI), exactly as it is.
	SearchIdentity = "identity"
	// SearchIssuer is the OIDC issuer that the certificate that signed an
	// entry names (Fulcio's extension), exactly as it is.
	SearchIssuer = "issuer"
)

// SearchParams are the search parameters, in the order they are encoded.
var SearchParams = []string{SearchCommit, SearchRepository, SearchDigest, SearchKey, SearchImage, SearchIdentity, SearchIssuer}

// maxSearchValue bounds the length of one search term's value.
const maxSearchValue = 1024

// ErrInvalidSearch is wrapped by the errors of ParseSearchTerm.
var ErrInvalidSearch = errors.New("invalid search")

// SearchTerm is one (parameter, value) pair under which search finds an
// entry.
type SearchTerm struct {
	Param string
	Value string
}

func (t SearchTerm) String() string { return t.Param + "=" + t.Value }

// compareSearchTerms orders terms by parameter, then value.
func compareSearchTerms(a, b SearchTerm) int {
	if c := strings.Compare(a.Param, b.Param); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

// searchTermer is implemented by the statements of kinds that carry
// terms besides subjects and key fingerprints (a commit's id and
// repository).
type searchTermer interface {
	extraSearchTerms() []SearchTerm
}

// SearchTerms returns the terms under which search finds st: every subject
// as a digest, every key fingerprint as a key, and the kind's own terms,
// sorted by parameter then value, without duplicates.
func SearchTerms(st Statement) []SearchTerm {
	var terms []SearchTerm
	for _, s := range st.Subjects() {
		terms = append(terms, SearchTerm{SearchDigest, s})
	}
	for _, k := range st.KeyFingerprints() {
		terms = append(terms, SearchTerm{SearchKey, k})
	}
	if e, ok := st.(searchTermer); ok {
		terms = append(terms, e.extraSearchTerms()...)
	}
	slices.SortFunc(terms, compareSearchTerms)
	return slices.Compact(terms)
}

// ParseSearchTerm checks one search parameter and its value as a client
// gives them and returns the term in the form SearchTerms uses (hex
// lowercased). The error wraps ErrInvalidSearch and says what is wrong.
func ParseSearchTerm(param, value string) (SearchTerm, error) {
	bad := func(format string, args ...any) (SearchTerm, error) {
		return SearchTerm{}, fmt.Errorf("%w: %s %q: %s", ErrInvalidSearch, param, truncate(value, 80), fmt.Sprintf(format, args...))
	}
	if !slices.Contains(SearchParams, param) {
		return SearchTerm{}, fmt.Errorf("%w: unknown parameter %q (want one of %s)", ErrInvalidSearch, truncate(param, 40), strings.Join(SearchParams, ", "))
	}
	if value == "" {
		return bad("empty")
	}
	if len(value) > maxSearchValue {
		return bad("longer than %d bytes", maxSearchValue)
	}
	switch param {
	case SearchCommit:
		v := strings.ToLower(value)
		if (len(v) != 40 && len(v) != 64) || !isHex(v) {
			return bad("want 40 or 64 hex digits")
		}
		return SearchTerm{param, v}, nil
	case SearchRepository, SearchIdentity, SearchIssuer:
		if !utf8.ValidString(value) || strings.ContainsFunc(value, isControl) {
			return bad("want printable UTF-8")
		}
		return SearchTerm{param, value}, nil
	case SearchImage:
		v := strings.ToLower(value)
		if !isImageDigest(v) {
			return bad("want sha256: and 64 hex digits, the image manifest's digest")
		}
		return SearchTerm{param, v}, nil
	case SearchDigest:
		// As the build kind reads in-toto subjects: a known hash's hex
		// digest in lowercase, any other algorithm's value as it is.
		alg, digest, ok := strings.Cut(value, ":")
		if !ok || alg == "" || digest == "" || !utf8.ValidString(value) || strings.ContainsFunc(value, isControl) {
			return bad(`want "alg:digest", e.g. "sha256:ab12…"`)
		}
		// HexLength is in fact the length in bytes.
		if n := intoto.HashAlgorithm(alg).HexLength(); n > 0 {
			digest = strings.ToLower(digest)
			if len(digest) != 2*n || !isHex(digest) {
				return bad("want %d hex digits after %s:", 2*n, alg)
			}
		}
		return SearchTerm{param, alg + ":" + digest}, nil
	default: // SearchKey
		if rest, ok := strings.CutPrefix(value, "SHA256:"); ok {
			if b, err := base64.RawStdEncoding.DecodeString(rest); err != nil || len(b) != 32 {
				return bad("want SHA256: and the unpadded base64 of 32 bytes, as ssh-keygen -l prints it")
			}
			return SearchTerm{param, value}, nil
		}
		v := strings.ToLower(value)
		if rest, ok := strings.CutPrefix(v, "sha256:"); ok {
			if len(rest) != 64 || !isHex(rest) {
				return bad("want sha256: and 64 hex digits")
			}
			return SearchTerm{param, v}, nil
		}
		if (len(v) != 40 && len(v) != 64) || !isHex(v) {
			return bad(`want "sha256:<hex>" (PKIX key), "SHA256:<base64>" (SSH key) or an OpenPGP fingerprint in hex`)
		}
		return SearchTerm{param, v}, nil
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// The limit parameter of GET /v1/search: how many hits one reply holds at
// most.
const (
	// DefaultSearchLimit is the limit when the query gives none.
	DefaultSearchLimit = 100
	// MaxSearchLimit is the largest limit a query may give.
	MaxSearchLimit = 1000
)

// The parameters of GET /v1/search besides the terms.
const (
	SearchLimitParam  = "limit"
	SearchCursorParam = "cursor"
)

// SearchHit is one entry that a search found: its index, and its leaf hash
// to fetch and prove it with.
type SearchHit struct {
	Index    uint64 `json:"index"`
	LeafHash []byte `json:"leafHash"`
}

// SearchResponse answers GET /v1/search: the entries that carry every term
// of the query, in log order, among those of the published checkpoint.
type SearchResponse struct {
	Hits []SearchHit `json:"hits"`
	// Cursor, when not empty, continues the search after the last hit:
	// the same query with cursor=Cursor returns the next hits. It is
	// absent once the published tree holds no more.
	Cursor string `json:"cursor,omitempty"`
}

// AppendJSON appends r to b as JSON, exactly as json.Marshal writes it.
func (r *SearchResponse) AppendJSON(b []byte) []byte {
	b = slices.Grow(b, 32+len(r.Cursor)+len(r.Hits)*(40+base64.StdEncoding.EncodedLen(HashSize)))
	b = append(b, `{"hits":`...)
	if r.Hits == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, h := range r.Hits {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"index":`...)
			b = strconv.AppendUint(b, h.Index, 10)
			b = append(b, `,"leafHash":`...)
			if h.LeafHash == nil {
				b = append(b, "null"...)
			} else {
				b = append(b, '"')
				b = base64.StdEncoding.AppendEncode(b, h.LeafHash)
				b = append(b, '"')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.Cursor != "" {
		b = append(b, `,"cursor":`...)
		b = appendJSONString(b, r.Cursor)
	}
	return append(b, '}')
}

// StoredEntryTerms returns the search terms of an entry that a log
// stored, as SearchTerms(ParseEntry(entry)) does, without checking the
// signatures again for the kinds it knows (build, commit): those were checked
// when the entry was admitted, and fsck checks them again. It is how an
// index is rebuilt from a log quickly; for bytes of unknown origin, use
// ParseEntry. The error is one of ParseEntry's.
func StoredEntryTerms(entry []byte) ([]SearchTerm, error) {
	if len(entry) > MaxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrEntryTooLarge, len(entry), MaxEntrySize)
	}
	obj, err := decodeObject(entry)
	if err != nil {
		return nil, err
	}
	var kind string
	if err := obj.requiredString("kind", &kind); err != nil {
		return nil, err
	}
	if kind != KindBuild && kind != KindCommit {
		st, err := ParseEntry(entry)
		if err != nil {
			return nil, err
		}
		return SearchTerms(st), nil
	}
	if val, ok := obj.take("v"); !ok || string(val.raw) != strconv.Itoa(entryVersion) {
		return nil, entryErrorf("unsupported or missing version, want %d", entryVersion)
	}
	if kind == KindCommit {
		// A stored commit entry carries its derived fields.
		var st commitStatement
		if err := obj.requiredString("commit", &st.commit); err != nil {
			return nil, err
		}
		if err := obj.requiredString("repository", &st.repository); err != nil {
			return nil, err
		}
		if err := obj.requiredString("keyFingerprint", &st.fingerprint); err != nil {
			return nil, err
		}
		return SearchTerms(&st), nil
	}
	if _, ok := obj.take("message"); ok {
		// A message signature: one signature to check, as fast as
		// reading it.
		st, err := ParseEntry(entry)
		if err != nil {
			return nil, err
		}
		return SearchTerms(st), nil
	}
	envValue, err := obj.required("envelope")
	if err != nil {
		return nil, err
	}
	pems, err := obj.requiredStrings("publicKeys")
	if err != nil {
		return nil, err
	}
	// A build signed under a certificate carries it with its derived
	// identities and issuer.
	var certPEM, issuer string
	if err := obj.optionalString("certificate", &certPEM); err != nil {
		return nil, err
	}
	identities, err := obj.optionalStrings("identities")
	if err != nil {
		return nil, err
	}
	if err := obj.optionalString("issuer", &issuer); err != nil {
		return nil, err
	}
	if err := obj.done(); err != nil {
		return nil, err
	}
	env, err := decodeEnvelope(envValue)
	if err != nil {
		return nil, err
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, &EntryError{Reason: "envelope payload is not base64", Err: err}
	}
	subjects, err := parseInTotoSubjects(payload)
	if err != nil {
		return nil, err
	}
	st := &buildStatement{subjects: subjects, fingerprints: make([]string, len(pems)), identities: identities, issuer: issuer}
	for i, p := range pems {
		k, err := parsePublicKey(i, p)
		if err != nil {
			return nil, err
		}
		st.fingerprints[i] = k.fingerprint
	}
	slices.Sort(st.fingerprints)
	return SearchTerms(st), nil
}
