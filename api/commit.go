package api

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The commit kind.
//
// A submission is
//
//	{"kind":"commit",
//	 "objectFormat":"sha1" | "sha256",
//	 "commit":"<commit id, hex>",
//	 "object":"<base64 of the raw commit object, as git cat-file commit prints it>",
//	 "repository":"<URL or name, as given>",
//	 "publicKey":"<authorized_keys line> | <armored OpenPGP public key>"}
//
// The log checks that "commit <len>\0" + object hashes to the id under the
// object format (SHA-1 or SHA-256), that the object's headers parse as git
// fsck has them (tree, parents, author, committer), and that its signature
// header (gpgsig in a sha1 repository, gpgsig-sha256 in a sha256 one, as
// git writes and reads them) holds a signature over the object without that
// header, as git verify-commit computes it:
//
//   - an armored SSHSIG (gpg.format=ssh; openssh PROTOCOL.sshsig) in the
//     namespace "git", hash sha256 or sha512, by exactly the given key:
//     ssh-ed25519, ecdsa-sha2-nistp256 or -nistp384, or ssh-rsa of 2048 to
//     8192 bits signing with rsa-sha2-256 or rsa-sha2-512 (sshsig.go);
//   - an armored OpenPGP detached signature (RFC 4880/9580) by the given
//     key's primary key or one of its subkeys, which must be flagged for
//     signing, not revoked and not expired (openpgp.go).
//
// The canonical entry is
//
//	{"kind":"commit","v":1,"objectFormat":"sha1","commit":"<hex>",
//	 "tree":"<hex>","parents":["<hex>",...],
//	 "author":{"name":"...","email":"...","time":<unix>,"tz":"+0100"},
//	 "committer":{...},
//	 "repository":"...","signatureFormat":"ssh" | "openpgp",
//	 "keyFingerprint":"...","publicKey":"...","object":"<base64>"}
//
// in that order, as json.Marshal writes commitEntry. The object is kept
// verbatim (it is what the id names); tree, parents, author and committer
// are read from it. The key is kept in a canonical form: an SSH key as
// "<type> <base64>" without options or comment, fingerprinted
// "SHA256:<unpadded base64>" as ssh-keygen -l prints it; an OpenPGP key
// reduced to what verifies the signature, in this order: the primary key,
// its primary user ID with that user ID's self-signature, and, if a
// subkey signed, that subkey with its binding signature (which embeds the
// subkey's back-signature), armored without headers; it is fingerprinted by
// the primary key's fingerprint in lowercase hex. Revocations, other user
// IDs and subkeys, and third-party certifications are dropped: a revoked
// key is refused at admission, before they are.
//
// The fields read from the object and the key (tree through keyFingerprint)
// are optional in a submission, so that a canonical entry is one; if
// present, each must equal what the log reads.
//
// Time: an entry re-verifies from its bytes alone, whenever. A stored
// OpenPGP signature is checked as of its own creation time (the key and
// its binding signatures must have been valid then); at admission the key
// must in addition be valid now, as git verify-commit has it.

// Limits of a commit submission.
const (
	// maxCommitObjectSize bounds the raw commit object, so that its base64
	// with the rest of the entry fits in MaxEntrySize.
	maxCommitObjectSize = 32 << 10
	// maxRepositoryLength bounds the repository, so that search can find it.
	maxRepositoryLength = maxSearchValue
	// maxCommitKeySize bounds the publicKey text, so that the cost of
	// parsing an OpenPGP key (which checks every binding signature) is
	// bounded. gpg --export-options export-minimal gives keys far smaller.
	maxCommitKeySize = 16 << 10
)

// Object formats of git repositories.
const (
	objectFormatSHA1   = "sha1"
	objectFormatSHA256 = "sha256"
)

// Signature formats of commit entries.
const (
	signatureFormatSSH     = "ssh"
	signatureFormatOpenPGP = "openpgp"
)

// commitEntry is the canonical encoding of a commit entry, as json.Marshal
// writes it.
type commitEntry struct {
	Kind            string      `json:"kind"`
	V               int         `json:"v"`
	ObjectFormat    string      `json:"objectFormat"`
	Commit          string      `json:"commit"`
	Tree            string      `json:"tree"`
	Parents         []string    `json:"parents"`
	Author          gitIdentity `json:"author"`
	Committer       gitIdentity `json:"committer"`
	Repository      string      `json:"repository"`
	SignatureFormat string      `json:"signatureFormat"`
	KeyFingerprint  string      `json:"keyFingerprint"`
	PublicKey       string      `json:"publicKey"`
	Object          []byte      `json:"object"`
}

// commitDerivedFields are the fields of commitEntry read from the object
// and the key: optional in a submission, equal to what the log reads if
// present.
var commitDerivedFields = []string{"tree", "parents", "author", "committer", "signatureFormat", "keyFingerprint"}

// gitIdentity is the author or committer of a commit.
type gitIdentity struct {
	Name  string `json:"name"`
	Email string `json:"email"`
	// Time is in seconds since the Unix epoch.
	Time int64 `json:"time"`
	// TZ is the time zone offset as git writes it, e.g. "+0100".
	TZ string `json:"tz"`
}

// CommitStatement is the Statement of a commit entry.
type CommitStatement interface {
	Statement
	// Commit is the commit id, Repository the repository as submitted.
	Commit() string
	Repository() string
	// AuthorEmail and CommitterEmail are the emails of the commit's
	// author and committer, as the object has them.
	AuthorEmail() string
	CommitterEmail() string
}

// commitStatement is a verified commit entry.
type commitStatement struct {
	commit      string
	repository  string
	fingerprint string
	author      string
	committer   string
}

func (s *commitStatement) Kind() string              { return KindCommit }
func (s *commitStatement) Subjects() []string        { return nil }
func (s *commitStatement) KeyFingerprints() []string { return []string{s.fingerprint} }
func (s *commitStatement) Commit() string            { return s.commit }
func (s *commitStatement) Repository() string        { return s.repository }
func (s *commitStatement) AuthorEmail() string       { return s.author }
func (s *commitStatement) CommitterEmail() string    { return s.committer }

func (s *commitStatement) extraSearchTerms() []SearchTerm {
	return []SearchTerm{{SearchCommit, s.commit}, {SearchRepository, s.repository}}
}

// commitKey is a parsed, checked public key of a commit entry.
type commitKey interface {
	// format is signatureFormatSSH or signatureFormatOpenPGP.
	format() string
	// fingerprint is what KeyFingerprints reports.
	fingerprint() string
}

// canonicalCommit decodes the fields of a commit submission or entry (kind
// and v already taken), verifies it and returns its canonical encoding.
// now is the time of admission; zero when re-verifying a stored entry.
func canonicalCommit(obj *jsonObject, now time.Time) ([]byte, Statement, error) {
	var format, id, object64, repository, keyText string
	if err := obj.requiredString("objectFormat", &format); err != nil {
		return nil, nil, err
	}
	if err := obj.requiredString("commit", &id); err != nil {
		return nil, nil, err
	}
	if err := obj.requiredString("object", &object64); err != nil {
		return nil, nil, err
	}
	if err := obj.requiredString("repository", &repository); err != nil {
		return nil, nil, err
	}
	if err := obj.requiredString("publicKey", &keyText); err != nil {
		return nil, nil, err
	}
	derived := make(map[string]jsonValue, len(commitDerivedFields))
	for _, name := range commitDerivedFields {
		if v, ok := obj.take(name); ok {
			derived[name] = v
		}
	}
	if err := obj.done(); err != nil {
		return nil, nil, err
	}

	var idLen int
	switch format {
	case objectFormatSHA1:
		idLen = 2 * sha1.Size
	case objectFormatSHA256:
		idLen = 2 * sha256.Size
	default:
		return nil, nil, entryErrorf("objectFormat is %.40q, want %q or %q", format, objectFormatSHA1, objectFormatSHA256)
	}
	id = strings.ToLower(id)
	if len(id) != idLen || !isHex(id) {
		return nil, nil, entryErrorf("commit %.80q is not %d hex digits, a %s object id", id, idLen, format)
	}
	if len(repository) > maxRepositoryLength {
		return nil, nil, entryErrorf("repository is %d bytes, limit %d", len(repository), maxRepositoryLength)
	}
	if !utf8.ValidString(repository) || strings.ContainsFunc(repository, isControl) {
		return nil, nil, entryErrorf("repository is not printable UTF-8")
	}
	if len(object64) > base64.StdEncoding.EncodedLen(maxCommitObjectSize) {
		return nil, nil, fmt.Errorf("%w: commit object is over %d bytes, limit %d", ErrEntryTooLarge, base64.StdEncoding.DecodedLen(len(object64))-2, maxCommitObjectSize)
	}
	object, err := base64.StdEncoding.DecodeString(object64)
	if err != nil {
		return nil, nil, &EntryError{Reason: "object is not standard base64", Err: err}
	}
	if len(object) > maxCommitObjectSize {
		return nil, nil, fmt.Errorf("%w: commit object is %d bytes, limit %d", ErrEntryTooLarge, len(object), maxCommitObjectSize)
	}
	if got := gitObjectID(format, object); got != id {
		return nil, nil, entryErrorf("object hashes to %s, not to commit %s", got, id)
	}
	co, err := parseCommitObject(object, format)
	if err != nil {
		return nil, nil, err
	}
	if len(keyText) > maxCommitKeySize {
		return nil, nil, entryErrorf("publicKey is %d bytes, limit %d", len(keyText), maxCommitKeySize)
	}

	var (
		key          commitKey
		canonicalKey string
	)
	switch sigFormat := signatureFormatOf(co.signature); {
	case sigFormat == "":
		return nil, nil, entryErrorf("the %s header holds neither an SSH signature nor an OpenPGP signature", co.sigHeader)
	case isOpenPGPKey(keyText) != (sigFormat == signatureFormatOpenPGP):
		return nil, nil, entryErrorf("the commit has an %s signature but publicKey is not an %[1]s key", sigFormatName(sigFormat))
	case sigFormat == signatureFormatSSH:
		k, err := parseSSHKey(keyText)
		if err != nil {
			return nil, nil, err
		}
		if err := verifySSHSig(k, co.payload, co.signature); err != nil {
			return nil, nil, err
		}
		key, canonicalKey = k, k.canonical
	default:
		k, err := parseOpenPGPKey(keyText)
		if err != nil {
			return nil, nil, err
		}
		minimal, err := verifyOpenPGPSig(k, co.payload, co.signature, now)
		if err != nil {
			return nil, nil, err
		}
		key, canonicalKey = k, minimal
	}

	e := commitEntry{
		Kind:            KindCommit,
		V:               entryVersion,
		ObjectFormat:    format,
		Commit:          id,
		Tree:            co.tree,
		Parents:         co.parents,
		Author:          co.author,
		Committer:       co.committer,
		Repository:      repository,
		SignatureFormat: key.format(),
		KeyFingerprint:  key.fingerprint(),
		PublicKey:       canonicalKey,
		Object:          object,
	}
	if e.Parents == nil {
		e.Parents = []string{}
	}
	entry := appendCommitEntry(nil, &e)
	// A stored entry is compared with the canonical one as a whole.
	if len(derived) > 0 && !now.IsZero() {
		if err := checkDerivedFields(entry, derived); err != nil {
			return nil, nil, err
		}
	}
	return entry, &commitStatement{commit: id, repository: repository, fingerprint: key.fingerprint(),
		author: co.author.Email, committer: co.committer.Email}, nil
}

// appendCommitEntry appends the canonical encoding of e to b: exactly what
// json.Marshal writes of it (checkAccepted checks every entry the tests and
// fuzzers get against json.Marshal), in one buffer.
func appendCommitEntry(b []byte, e *commitEntry) []byte {
	n := 512 + len(e.Repository) + len(e.PublicKey) + base64.StdEncoding.EncodedLen(len(e.Object)) +
		len(e.Author.Name) + len(e.Author.Email) + len(e.Committer.Name) + len(e.Committer.Email) + 68*len(e.Parents)
	b = slices.Grow(b, n)
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, e.Kind)
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"objectFormat":`...)
	b = appendJSONString(b, e.ObjectFormat)
	b = append(b, `,"commit":`...)
	b = appendJSONString(b, e.Commit)
	b = append(b, `,"tree":`...)
	b = appendJSONString(b, e.Tree)
	b = append(b, `,"parents":[`...)
	for i, p := range e.Parents {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p)
	}
	b = append(b, `],"author":`...)
	b = appendGitIdentity(b, &e.Author)
	b = append(b, `,"committer":`...)
	b = appendGitIdentity(b, &e.Committer)
	b = append(b, `,"repository":`...)
	b = appendJSONString(b, e.Repository)
	b = append(b, `,"signatureFormat":`...)
	b = appendJSONString(b, e.SignatureFormat)
	b = append(b, `,"keyFingerprint":`...)
	b = appendJSONString(b, e.KeyFingerprint)
	b = append(b, `,"publicKey":`...)
	b = appendJSONString(b, e.PublicKey)
	b = append(b, `,"object":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.Object)
	return append(b, `"}`...)
}

func appendGitIdentity(b []byte, id *gitIdentity) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, id.Name)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, id.Email)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, id.Time, 10)
	b = append(b, `,"tz":`...)
	b = appendJSONString(b, id.TZ)
	return append(b, '}')
}

func sigFormatName(f string) string {
	if f == signatureFormatSSH {
		return "SSH"
	}
	return "OpenPGP"
}

// checkDerivedFields checks that each of the fields read from the object
// and the key that a submission gives equals the one in entry.
func checkDerivedFields(entry []byte, derived map[string]jsonValue) error {
	var canonical map[string]json.RawMessage
	if err := json.Unmarshal(entry, &canonical); err != nil {
		return fmt.Errorf("couldn't decode a commit entry: %w", err)
	}
	decode := func(b []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		err := d.Decode(&v)
		return v, err
	}
	for _, name := range commitDerivedFields {
		v, ok := derived[name]
		if !ok {
			continue
		}
		got, err := decode(v.raw)
		if err != nil {
			return &EntryError{Reason: fmt.Sprintf("bad field %q", name), Err: err}
		}
		want, err := decode(canonical[name])
		if err != nil {
			return fmt.Errorf("couldn't decode a commit entry: %w", err)
		}
		if !reflect.DeepEqual(got, want) {
			return entryErrorf("field %q is %.200s, but the commit and key give %.200s", name, v.raw, canonical[name])
		}
	}
	return nil
}

// gitObjectID returns the id of a commit object, in lowercase hex.
func gitObjectID(format string, object []byte) string {
	header := "commit " + strconv.Itoa(len(object)) + "\x00"
	if format == objectFormatSHA1 {
		h := sha1.New()
		h.Write([]byte(header))
		h.Write(object)
		return hex.EncodeToString(h.Sum(nil))
	}
	h := sha256.New()
	h.Write([]byte(header))
	h.Write(object)
	return hex.EncodeToString(h.Sum(nil))
}

// commitObject is a parsed commit object.
type commitObject struct {
	tree      string
	parents   []string
	author    gitIdentity
	committer gitIdentity
	// sigHeader is the name of the signature header of the object format.
	sigHeader string
	// signature is the value of the signature header, its lines without
	// the leading space of continuation lines, each ending in a newline.
	signature []byte
	// payload is the object without the signature header: what was signed.
	payload []byte
}

// signatureHeader returns the name of the header git reads a commit's
// signature from in a repository of the object format.
func signatureHeader(format string) string {
	if format == objectFormatSHA256 {
		return "gpgsig-sha256"
	}
	return "gpgsig"
}

// parseCommitObject parses a raw commit object of a repository of the
// given object format. The headers must come as git fsck wants them: tree,
// parents, author, committer, then any others, each header one line plus
// continuation lines that start with a space, and a blank line before the
// message. The signature header must appear once; it is taken out of the
// payload as git does (commit.c, parse_buffer_signed_by_header): its first
// line and the continuation lines after it.
func parseCommitObject(object []byte, format string) (*commitObject, error) {
	idLen := 2 * sha1.Size
	if format == objectFormatSHA256 {
		idLen = 2 * sha256.Size
	}
	co := &commitObject{sigHeader: signatureHeader(format)}
	end := bytes.Index(object, []byte("\n\n"))
	if end < 0 {
		return nil, entryErrorf("commit object has no blank line between its headers and its message")
	}
	headers := object[:end+1]
	if bytes.IndexByte(headers, 0) >= 0 {
		return nil, entryErrorf("commit object has a NUL byte in its headers")
	}
	co.payload = make([]byte, 0, len(object))
	co.signature = make([]byte, 0, min(len(headers), 4096))
	var (
		step        int // 0: tree, 1: parents, then author; 2: committer; 3: others
		inSignature bool
		signatures  int
	)
	for rest := headers; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		if line[0] == ' ' {
			if step < 3 {
				return nil, entryErrorf("commit object has a continuation line in its first headers")
			}
			if inSignature {
				co.signature = append(co.signature, line[1:]...)
			} else {
				co.payload = append(co.payload, line...)
			}
			continue
		}
		inSignature = false
		text := string(line[:len(line)-1])
		name, value, ok := strings.Cut(text, " ")
		if !ok {
			return nil, entryErrorf("commit object header %.40q has no value", text)
		}
		switch {
		case step == 0:
			if name != "tree" {
				return nil, entryErrorf("commit object starts with header %.40q, want \"tree\"", name)
			}
			if len(value) != idLen || !isHex(value) {
				return nil, entryErrorf("commit object's tree %.80q is not %d lowercase hex digits", value, idLen)
			}
			co.tree = value
			step = 1
		case step == 1 && name == "parent":
			if len(value) != idLen || !isHex(value) {
				return nil, entryErrorf("commit object's parent %.80q is not %d lowercase hex digits", value, idLen)
			}
			co.parents = append(co.parents, value)
		case step == 1:
			if name != "author" {
				return nil, entryErrorf("commit object has header %.40q where \"author\" should be", name)
			}
			id, err := parseGitIdentity(value)
			if err != nil {
				return nil, &EntryError{Reason: "commit object's author is malformed", Err: err}
			}
			co.author = id
			step = 2
		case step == 2:
			if name != "committer" {
				return nil, entryErrorf("commit object has header %.40q where \"committer\" should be", name)
			}
			id, err := parseGitIdentity(value)
			if err != nil {
				return nil, &EntryError{Reason: "commit object's committer is malformed", Err: err}
			}
			co.committer = id
			step = 3
		case name == co.sigHeader:
			if signatures++; signatures > 1 {
				return nil, entryErrorf("commit object has more than one %s header", co.sigHeader)
			}
			inSignature = true
			co.signature = append(co.signature, line[len(name)+1:]...)
			continue
		}
		co.payload = append(co.payload, line...)
	}
	if step < 3 {
		return nil, entryErrorf("commit object lacks a tree, author or committer header")
	}
	if signatures == 0 {
		return nil, entryErrorf("commit is not signed: it has no %s header", co.sigHeader)
	}
	co.payload = append(co.payload, object[end+1:]...)
	return co, nil
}

// parseGitIdentity parses "Name <email> <unix seconds> <+hhmm>".
func parseGitIdentity(s string) (gitIdentity, error) {
	var id gitIdentity
	lt := strings.IndexByte(s, '<')
	gt := strings.LastIndexByte(s, '>')
	if lt < 0 || gt < lt {
		return id, fmt.Errorf("no <email> in %.100q", s)
	}
	if strings.IndexByte(s[lt+1:gt], '<') >= 0 || strings.IndexByte(s[lt+1:gt], '>') >= 0 {
		return id, fmt.Errorf("more than one <email> in %.100q", s)
	}
	if lt > 0 && s[lt-1] != ' ' {
		return id, fmt.Errorf("no space before <email> in %.100q", s)
	}
	id.Name = strings.TrimSuffix(s[:lt], " ")
	id.Email = s[lt+1 : gt]
	secs, tz, ok := strings.Cut(strings.TrimPrefix(s[gt+1:], " "), " ")
	if !ok || s[gt+1:] == "" || s[gt+1] != ' ' {
		return id, fmt.Errorf("no time after <email> in %.100q", s)
	}
	if secs == "" || len(secs) > 1 && secs[0] == '0' || strings.TrimLeft(secs, "0123456789") != "" {
		return id, fmt.Errorf("time %.40q is not a decimal number", secs)
	}
	t, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return id, fmt.Errorf("time %.40q is out of range", secs)
	}
	if len(tz) != 5 || (tz[0] != '+' && tz[0] != '-') || strings.TrimLeft(tz[1:], "0123456789") != "" {
		return id, fmt.Errorf("time zone %.40q is not +hhmm or -hhmm", tz)
	}
	id.Time, id.TZ = t, tz
	return id, nil
}

// signatureFormatOf returns the format of an armored signature, or "" if
// it is neither.
func signatureFormatOf(sig []byte) string {
	switch {
	case bytes.HasPrefix(sig, []byte("-----BEGIN SSH SIGNATURE-----")):
		return signatureFormatSSH
	case bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")):
		return signatureFormatOpenPGP
	}
	return ""
}

// isOpenPGPKey reports whether a publicKey is an armored OpenPGP key rather
// than an SSH key.
func isOpenPGPKey(s string) bool {
	return strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "-----BEGIN PGP ")
}
