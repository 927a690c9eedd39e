package client

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/candorlog/candor/api"
)

// Watch is a monitor's watch list: the rules that make an entry an alert.
// Its text has one rule a line, a word and a value, and # comments:
//
//	key <fingerprint>          a signer's key, as GET /v1/search spells it
//	repository <name>          the repository of a signed commit
//	author <email>             the author or committer of a signed commit
//	digest <alg>:<hex>         an artifact an attestation is about
//	image sha256:<hex>         the manifest digest of a signed image
//	identity <name>            a certificate identity (subject alternative name)
//
// Statements of the kinds that carry no image or identity match no image
// or identity rule.
type Watch struct {
	rules []watchRule
}

type watchRule struct {
	text  string         // as the line has it, normalised: "key sha256:…"
	term  api.SearchTerm // for key, repository and digest
	what  string         // the rule's word
	value string
}

// ImageStatement is a Statement about a container image.
type ImageStatement interface {
	api.Statement
	// ImageDigest is the manifest digest the signature names,
	// "sha256:<hex>".
	ImageDigest() string
}

// IdentityStatement is a Statement signed under certificate identities.
type IdentityStatement interface {
	api.Statement
	// Identities are the signing certificates' subject alternative names.
	Identities() []string
}

var imageDigest = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// maxWatchLine bounds a line of a watch list.
const maxWatchLine = 4096

// ParseWatch parses a watch list. An unknown word, a rule without a
// value, or a malformed value is an error that names the line.
func ParseWatch(r io.Reader) (*Watch, error) {
	w := &Watch{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxWatchLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		what, value, _ := strings.Cut(line, " ")
		value = strings.TrimSpace(value)
		if value == "" {
			return nil, fmt.Errorf("watch list line %d: %q has no value", n, what)
		}
		rule := watchRule{what: what, value: value}
		switch what {
		case "key", "repository", "digest":
			t, err := api.ParseSearchTerm(what, value)
			if err != nil {
				return nil, fmt.Errorf("watch list line %d: %w", n, err)
			}
			rule.term, rule.value = t, t.Value
		case "author":
			if !strings.Contains(value, "@") {
				return nil, fmt.Errorf("watch list line %d: %q is not an email address", n, value)
			}
			rule.value = strings.ToLower(value)
		case "image":
			rule.value = strings.ToLower(value)
			if !imageDigest.MatchString(rule.value) {
				return nil, fmt.Errorf("watch list line %d: image %q is not sha256:<64 hex digits>", n, value)
			}
		case "identity":
		default:
			return nil, fmt.Errorf("watch list line %d: unknown rule %q (want key, repository, author, digest, image or identity)", n, what)
		}
		rule.text = what + " " + rule.value
		w.rules = append(w.rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read the watch list: %w", err)
	}
	return w, nil
}

// Len returns how many rules w has.
func (w *Watch) Len() int {
	if w == nil {
		return 0
	}
	return len(w.rules)
}

// Match returns the rules, as their text, that st matches.
func (w *Watch) Match(st api.Statement) []string {
	if w == nil || len(w.rules) == 0 {
		return nil
	}
	terms := api.SearchTerms(st)
	var matched []string
	for _, r := range w.rules {
		if r.matches(st, terms) {
			matched = append(matched, r.text)
		}
	}
	return matched
}

func (r watchRule) matches(st api.Statement, terms []api.SearchTerm) bool {
	switch r.what {
	case "key", "repository", "digest":
		return slices.Contains(terms, r.term)
	case "author":
		c, ok := st.(api.CommitStatement)
		return ok && (strings.EqualFold(c.AuthorEmail(), r.value) || strings.EqualFold(c.CommitterEmail(), r.value))
	case "image":
		i, ok := st.(ImageStatement)
		return ok && strings.EqualFold(i.ImageDigest(), r.value)
	case "identity":
		i, ok := st.(IdentityStatement)
		return ok && slices.Contains(i.Identities(), r.value)
	}
	return false
}
