package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"github.com/candorlog/candor/api/apitest"
)

const testRepository = "https://git.example.com/candor.git"

// testCommit builds a commit object of a repository of format, with
// message, whose signature header holds what sign returns for the payload
// (nothing if sign is nil), and returns its id and the object.
func testCommit(format, message string, sign func(payload []byte) []byte) (string, []byte) {
	tree := strings.Repeat("a", 40)
	if format == objectFormatSHA256 {
		tree = strings.Repeat("a", 64)
	}
	head := "tree " + tree + "\nauthor A U Thor <author@example.com> 1700000000 +0100\ncommitter C O Mitter <committer@example.com> 1700000001 -0230\n"
	body := "\n" + message + "\n"
	object := []byte(head)
	if sign != nil {
		sig := strings.TrimSuffix(string(sign([]byte(head+body))), "\n")
		object = append(object, signatureHeader(format)+" "+strings.ReplaceAll(sig, "\n", "\n ")+"\n"...)
	}
	object = append(object, body...)
	return gitObjectID(format, object), object
}

// commitBody returns a commit submission.
func commitBody(t testing.TB, format, id string, object []byte, repository, key string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{
		"kind": KindCommit, "objectFormat": format, "commit": id,
		"object": base64.StdEncoding.EncodeToString(object), "repository": repository, "publicKey": key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sshTestSigner signs commits as git does with gpg.format=ssh.
type sshTestSigner struct {
	signer ssh.Signer
	line   string
}

func newSSHTestSigner(t testing.TB, key any) sshTestSigner {
	t.Helper()
	s, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return sshTestSigner{signer: s, line: string(ssh.MarshalAuthorizedKey(s.PublicKey()))}
}

func (s sshTestSigner) sign(namespace string, h sshsig.HashAlgorithm) func([]byte) []byte {
	return func(payload []byte) []byte {
		sig, err := sshsig.Sign(bytes.NewReader(payload), s.signer, h, namespace)
		if err != nil {
			panic(err)
		}
		return sshsig.Armor(sig)
	}
}

// pgpTestSigner signs commits as git does with gpg.
type pgpTestSigner struct {
	entity *openpgp.Entity
	armor  string
}

func newPGPTestSigner(t testing.TB, created time.Time, lifetime uint32) pgpTestSigner {
	t.Helper()
	config := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return created }, KeyLifetimeSecs: lifetime}
	e, err := openpgp.NewEntity("Candor Test", "", "test@candor.invalid", config)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armorEncode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return pgpTestSigner{entity: e, armor: b.String()}
}

func (s pgpTestSigner) sign(at time.Time) func([]byte) []byte {
	return func(payload []byte) []byte {
		var b bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&b, s.entity, bytes.NewReader(payload), &packet.Config{Time: func() time.Time { return at }}); err != nil {
			panic(err)
		}
		return b.Bytes()
	}
}

// checkAcceptedCommit is checkAccepted for a commit entry.
func checkAcceptedCommit(t *testing.T, entry []byte, st Statement) {
	t.Helper()
	var e commitEntry
	if err := json.Unmarshal(entry, &e); err != nil {
		t.Fatalf("an accepted entry doesn't decode as a commitEntry: %v", err)
	}
	if b, err := json.Marshal(&e); err != nil || !bytes.Equal(b, entry) {
		t.Fatalf("json.Marshal of the decoded entry is\n%s, %v\nwant\n%s", b, err, entry)
	}
	if got := gitObjectID(e.ObjectFormat, e.Object); got != e.Commit {
		t.Fatalf("the object hashes to %s, the entry says %s", got, e.Commit)
	}
	if st.Subjects() != nil {
		t.Fatalf("Subjects() = %q, want nil", st.Subjects())
	}
	if fps := st.KeyFingerprints(); len(fps) != 1 || fps[0] != e.KeyFingerprint {
		t.Fatalf("KeyFingerprints() = %q, want [%q]", fps, e.KeyFingerprint)
	}
	terms := SearchTerms(st)
	want := []SearchTerm{{SearchCommit, e.Commit}, {SearchKey, e.KeyFingerprint}, {SearchRepository, e.Repository}}
	slices.SortFunc(want, compareSearchTerms)
	if !slices.Equal(terms, want) {
		t.Fatalf("SearchTerms = %v, want %v", terms, want)
	}
	for _, term := range terms {
		got, err := ParseSearchTerm(term.Param, term.Value)
		if err != nil || got != term {
			t.Fatalf("ParseSearchTerm(%q, %q) = %v, %v; want it unchanged", term.Param, term.Value, got, err)
		}
	}
}

func TestCommitEntry(t *testing.T) {
	signer := apitest.NewCommitSignerFromSeed([]byte("test"))
	other := apitest.NewCommitSignerFromSeed([]byte("other"))
	parent1, _ := signer.Commit("sha1", nil, "one")
	parent2, _ := other.Commit("sha1", nil, "two")
	parent256, _ := signer.Commit("sha256", nil, "one")
	for _, tt := range []struct {
		name    string
		format  string
		parents []string
	}{
		{"sha1 root", "sha1", nil},
		{"sha1 merge", "sha1", []string{parent1, parent2}},
		{"sha256", "sha256", []string{parent256}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := signer.SubmissionOf(tt.format, testRepository, tt.parents, "a commit\n\nwith a body")
			entry, err := CanonicalEntry(body)
			if err != nil {
				t.Fatal(err)
			}
			checkAccepted(t, entry)
			var e commitEntry
			if err := json.Unmarshal(entry, &e); err != nil {
				t.Fatal(err)
			}
			id, object := signer.Commit(tt.format, tt.parents, "a commit\n\nwith a body")
			wantParents := tt.parents
			if wantParents == nil {
				wantParents = []string{}
			}
			switch {
			case e.Commit != id || !bytes.Equal(e.Object, object) || e.ObjectFormat != tt.format:
				t.Errorf("entry has commit %s format %s, want %s %s", e.Commit, e.ObjectFormat, id, tt.format)
			case !slices.Equal(e.Parents, wantParents):
				t.Errorf("parents = %q, want %q", e.Parents, wantParents)
			case e.Author != gitIdentity{Name: "Candor Test", Email: "test@candor.invalid", Time: 1700000000, TZ: "+0000"} || e.Committer != e.Author:
				t.Errorf("author %+v, committer %+v", e.Author, e.Committer)
			case e.Repository != testRepository || e.SignatureFormat != "ssh":
				t.Errorf("repository %q, signature format %q", e.Repository, e.SignatureFormat)
			case e.KeyFingerprint != signer.KeyFingerprint() || e.PublicKey != signer.PublicKey():
				t.Errorf("key %s %s, want %s %s", e.KeyFingerprint, e.PublicKey, signer.KeyFingerprint(), signer.PublicKey())
			}
			// The same commit and key give the same entry, however they are
			// spelled.
			var sub map[string]string
			if err := json.Unmarshal(body, &sub); err != nil {
				t.Fatal(err)
			}
			sub["commit"] = strings.ToUpper(sub["commit"])
			sub["publicKey"] = "  " + sub["publicKey"] + " a comment\n"
			again, err := json.Marshal(sub)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := CanonicalEntry(again); err != nil || !bytes.Equal(got, entry) {
				t.Errorf("CanonicalEntry of the same commit spelled differently = %s, %v; want\n%s", got, err, entry)
			}
		})
	}
}

// TestCommitKeyTypes checks SSH keys of every accepted type and OpenPGP
// keys (primary key signing), and that the fingerprints are those
// ssh.FingerprintSHA256 and the OpenPGP fingerprint give.
func TestCommitKeyTypes(t *testing.T) {
	ks := keys(t)
	for _, k := range []testKey{ks.ed25519, ks.p256, ks.p384, ks.rsa2048} {
		t.Run(k.name, func(t *testing.T) {
			s := newSSHTestSigner(t, k.priv)
			for _, h := range []sshsig.HashAlgorithm{sshsig.HashSHA256, sshsig.HashSHA512} {
				id, object := testCommit("sha1", "m", s.sign("git", h))
				entry, err := CanonicalEntry(commitBody(t, "sha1", id, object, testRepository, s.line))
				if err != nil {
					t.Fatalf("%s: %v", h, err)
				}
				checkAccepted(t, entry)
				st, _ := ParseEntry(entry)
				if got, want := st.KeyFingerprints()[0], ssh.FingerprintSHA256(s.signer.PublicKey()); got != want {
					t.Errorf("fingerprint %s, want %s", got, want)
				}
			}
		})
	}
	t.Run("openpgp", func(t *testing.T) {
		created := time.Now().Add(-time.Hour)
		s := newPGPTestSigner(t, created, 0)
		for _, format := range []string{"sha1", "sha256"} {
			id, object := testCommit(format, "m", s.sign(created.Add(time.Minute)))
			entry, err := CanonicalEntry(commitBody(t, format, id, object, testRepository, s.armor))
			if err != nil {
				t.Fatal(err)
			}
			checkAccepted(t, entry)
			st, _ := ParseEntry(entry)
			if got, want := st.KeyFingerprints()[0], strings.ToLower(s.entity.PrimaryKey.KeyIdString()); !strings.HasSuffix(got, want) || len(got) != 40 {
				t.Errorf("fingerprint %s, want the v4 fingerprint ending in %s", got, want)
			}
		}
	})
}

// TestCommitOpenPGPTime checks that an OpenPGP key that expires is refused
// once expired, and that a stored entry re-verifies after.
func TestCommitOpenPGPTime(t *testing.T) {
	created := time.Now().Add(-2 * time.Hour)
	s := newPGPTestSigner(t, created, 3600)
	id, object := testCommit("sha1", "m", s.sign(created.Add(time.Minute)))
	body := commitBody(t, "sha1", id, object, testRepository, s.armor)
	_, err := CanonicalEntry(body)
	checkErr(t, err, nil, "is expired at")

	// The same entry, stored while the key was valid, still verifies.
	entry, _, err := canonicalize(body, created.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseEntry(entry); err != nil {
		t.Fatalf("ParseEntry of an entry whose key has expired since: %v", err)
	}
}

// TestCommitRefused checks every refusal of the commit kind.
func TestCommitRefused(t *testing.T) {
	ks := keys(t)
	ed := newSSHTestSigner(t, ks.ed25519.priv)
	edB := newSSHTestSigner(t, ks.ed25519b.priv)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	small := newSSHTestSigner(t, rsa1024)
	created := time.Now().Add(-time.Hour)
	pgp := newPGPTestSigner(t, created, 0)
	pgpOther := newPGPTestSigner(t, created, 0)
	revoked := newPGPTestSigner(t, created, 0)
	if err := revoked.entity.RevokeKey(packet.KeyRetired, "retired", nil); err != nil {
		t.Fatal(err)
	}
	revoked = pgpTestSigner{entity: revoked.entity, armor: serializeArmored(t, revoked.entity)}

	id, object := testCommit("sha1", "m", ed.sign("git", sshsig.HashSHA512))
	good := func(f func(m map[string]string)) []byte {
		m := map[string]string{
			"kind": KindCommit, "objectFormat": "sha1", "commit": id,
			"object": base64.StdEncoding.EncodeToString(object), "repository": testRepository, "publicKey": ed.line,
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	withObject := func(format string, obj []byte, key string) []byte {
		return commitBody(t, format, gitObjectID(format, obj), obj, testRepository, key)
	}
	signed := func(format string, sign func([]byte) []byte, key string) []byte {
		id, obj := testCommit(format, "m", sign)
		return commitBody(t, format, id, obj, testRepository, key)
	}
	tampered := bytes.Replace(object, []byte("\nm\n"), []byte("\nM\n"), 1)
	// An object that hashes to its id but has a signature header without
	// its closing line.
	truncatedSSH := func(p []byte) []byte {
		a := ed.sign("git", sshsig.HashSHA512)(p)
		return a[:bytes.LastIndex(a[:len(a)-1], []byte("\n"))+1]
	}
	truncatedPGP := func(p []byte) []byte {
		a := pgp.sign(created)(p)
		return a[:len(a)/2]
	}
	// An SSHSIG with a hash other than sha256 or sha512.
	sha1SSHSig := func(p []byte) []byte {
		sig, err := sshsig.Sign(bytes.NewReader(p), ed.signer, sshsig.HashSHA512, "git")
		if err != nil {
			panic(err)
		}
		sig.HashAlgorithm = "sha1"
		return sshsig.Armor(sig)
	}
	bigObject := append(bytes.Clone(object), bytes.Repeat([]byte("x"), maxCommitObjectSize)...)

	for _, tt := range []struct {
		name   string
		body   []byte
		want   error
		reason string
	}{
		{"missing objectFormat", good(func(m map[string]string) { delete(m, "objectFormat") }), nil, `missing field "objectFormat"`},
		{"missing publicKey", good(func(m map[string]string) { delete(m, "publicKey") }), nil, `missing field "publicKey"`},
		{"unknown field", good(func(m map[string]string) { m["signature"] = "x" }), nil, `unknown field "signature"`},
		{"bad objectFormat", good(func(m map[string]string) { m["objectFormat"] = "md5" }), nil, `objectFormat is "md5"`},
		{"short id", good(func(m map[string]string) { m["commit"] = id[:39] }), nil, "not 40 hex digits"},
		{"sha256 id for sha1", good(func(m map[string]string) { m["objectFormat"] = "sha256" }), nil, "not 64 hex digits"},
		{"wrong id", good(func(m map[string]string) { m["commit"] = strings.Repeat("0", 40) }), nil, "not to commit 0000"},
		{"tampered object", good(func(m map[string]string) { m["object"] = base64.StdEncoding.EncodeToString(tampered) }), nil, "object hashes to"},
		{"tampered object, id fixed", withObject("sha1", tampered, ed.line), nil, "SSH signature doesn't verify"},
		{"object not base64", good(func(m map[string]string) { m["object"] = "!!" }), nil, "object is not standard base64"},
		{"object over the size limit", withObject("sha1", bigObject, ed.line), ErrEntryTooLarge, "commit object is"},
		{"empty repository", good(func(m map[string]string) { m["repository"] = "" }), nil, `empty field "repository"`},
		{"repository with a newline", good(func(m map[string]string) { m["repository"] = "a\nb" }), nil, "repository is not printable"},
		{"repository too long", good(func(m map[string]string) { m["repository"] = strings.Repeat("r", maxRepositoryLength+1) }), nil, "repository is 1025 bytes"},
		{"no signature", signed("sha1", nil, ed.line), nil, "commit is not signed: it has no gpgsig header"},
		{"sha1 header in sha256 repository", withObject("sha256", bytes.Replace(mustCommit(testCommit("sha256", "m", ed.sign("git", sshsig.HashSHA512))), []byte("gpgsig-sha256 "), []byte("gpgsig "), 1), ed.line), nil, "no gpgsig-sha256 header"},
		{"another key", good(func(m map[string]string) { m["publicKey"] = edB.line }), nil, "SSH signature is by key"},
		{"another namespace", signed("sha1", ed.sign("other", sshsig.HashSHA512), ed.line), nil, `namespace "other", want "git"`},
		{"unsupported hash", signed("sha1", sha1SSHSig, ed.line), nil, "hash is not sha256 or sha512"},
		{"truncated SSH armor", signed("sha1", truncatedSSH, ed.line), nil, "SSH signature armor is malformed or truncated"},
		{"RSA 1024", signed("sha1", small.sign("git", sshsig.HashSHA512), small.line), nil, "RSA with 1024 bits"},
		{"DSA-like unknown type", good(func(m map[string]string) { m["publicKey"] = "ssh-foo AAAAB3NzaC1mb28=" }), nil, "not an SSH authorized_keys line"},
		{"key with options", good(func(m map[string]string) { m["publicKey"] = "no-pty " + ed.line }), nil, "authorized_keys options"},
		{"two keys", good(func(m map[string]string) { m["publicKey"] = ed.line + edB.line }), nil, "more than one line"},
		{"OpenPGP key for an SSH signature", good(func(m map[string]string) { m["publicKey"] = pgp.armor }), nil, "not an SSH key"},
		{"SSH key for an OpenPGP signature", signed("sha1", pgp.sign(created), ed.line), nil, "not an OpenPGP key"},
		{"OpenPGP by another key", signed("sha1", pgp.sign(created), pgpOther.armor), nil, "not publicKey"},
		{"OpenPGP tampered", withObject("sha1", bytes.Replace(mustCommit(testCommit("sha1", "m", pgp.sign(created))), []byte("\nm\n"), []byte("\nM\n"), 1), pgp.armor), nil, "OpenPGP signature doesn't verify"},
		{"OpenPGP truncated armor", signed("sha1", truncatedPGP, pgp.armor), nil, "OpenPGP signature armor is malformed or truncated"},
		{"OpenPGP revoked", signed("sha1", revoked.sign(created), revoked.armor), nil, "is revoked"},
		{"OpenPGP private key", signed("sha1", pgp.sign(created), serializePrivateArmored(t, pgp.entity)), nil, `"PGP PRIVATE KEY BLOCK" block`},
		{"neither signature", signed("sha1", func([]byte) []byte {
			return []byte("-----BEGIN SIGNED MESSAGE-----\nx\n-----END SIGNED MESSAGE-----\n")
		}, ed.line), nil, "neither an SSH signature nor an OpenPGP"},
		{"derived field differs", good(func(m map[string]string) { m["tree"] = strings.Repeat("b", 40) }), nil, `field "tree" is`},
		{"derived fingerprint differs", good(func(m map[string]string) { m["keyFingerprint"] = "SHA256:x" }), nil, `field "keyFingerprint" is`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			entry, err := CanonicalEntry(tt.body)
			if err == nil {
				t.Fatalf("CanonicalEntry accepted it:\n%s", entry)
			}
			checkErr(t, err, tt.want, tt.reason)
			checkRejected(t, err)
		})
	}
}

func armorEncode(w io.Writer) (io.WriteCloser, error) {
	return armorEncodeType(w, openpgp.PublicKeyType)
}

func armorEncodeType(w io.Writer, blockType string) (io.WriteCloser, error) {
	return armor.Encode(w, blockType, nil)
}

func mustCommit(_ string, object []byte) []byte { return object }

func serializeArmored(t testing.TB, e *openpgp.Entity) string {
	t.Helper()
	var b bytes.Buffer
	w, err := armorEncode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.String()
}

func serializePrivateArmored(t testing.TB, e *openpgp.Entity) string {
	t.Helper()
	var b bytes.Buffer
	w, err := armorEncodeType(&b, openpgp.PrivateKeyType)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.String()
}

// TestCommitHeaders checks the parsing of commit objects' headers.
func TestCommitHeaders(t *testing.T) {
	ks := keys(t)
	ed := newSSHTestSigner(t, ks.ed25519.priv)
	sign := ed.sign("git", sshsig.HashSHA512)
	tree := "tree " + strings.Repeat("a", 40) + "\n"
	author := "author A <a@x> 1 +0000\n"
	committer := "committer C <c@x> 2 -0100\n"
	for _, tt := range []struct {
		name, head, reason string
	}{
		{"ok with extra headers", tree + author + committer + "encoding ISO-8859-1\nmergetag object x\n type commit\n", ""},
		{"no tree", author + committer, `starts with header "author"`},
		{"uppercase tree", "tree " + strings.Repeat("A", 40) + "\n" + author + committer, "not 40 lowercase hex"},
		{"bad parent", tree + "parent 12\n" + author + committer, "parent \"12\""},
		{"no author", tree + committer, `header "committer" where "author"`},
		{"no committer", tree + author, `"gpgsig" where "committer"`},
		{"author without email", tree + "author A 1 +0000\n" + committer, "author is malformed"},
		{"author without time", tree + "author A <a@x>\n" + committer, "author is malformed"},
		{"bad time zone", tree + author + "committer C <c@x> 2 0100\n", "committer is malformed"},
		{"time with a sign", tree + author + "committer C <c@x> -2 +0100\n", "committer is malformed"},
		{"continuation in first headers", tree + " x\n" + author + committer, "continuation line"},
		{"header without value", tree + author + committer + "encoding\n", `"encoding" has no value`},
		{"NUL", tree + author + committer + "x \x00\n", "NUL byte"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := "\nmessage\n"
			sig := strings.TrimSuffix(string(sign([]byte(tt.head+body))), "\n")
			object := []byte(tt.head + "gpgsig " + strings.ReplaceAll(sig, "\n", "\n ") + "\n" + body)
			entry, err := CanonicalEntry(commitBody(t, "sha1", gitObjectID("sha1", object), object, testRepository, ed.line))
			if tt.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkAccepted(t, entry)
				return
			}
			checkErr(t, err, nil, tt.reason)
		})
	}
	t.Run("two signatures", func(t *testing.T) {
		head := tree + author + committer
		sig := strings.TrimSuffix(string(sign([]byte(head+"\nm\n"))), "\n")
		h := "gpgsig " + strings.ReplaceAll(sig, "\n", "\n ") + "\n"
		object := []byte(head + h + h + "\nm\n")
		_, err := CanonicalEntry(commitBody(t, "sha1", gitObjectID("sha1", object), object, testRepository, ed.line))
		checkErr(t, err, nil, "more than one gpgsig header")
	})
	t.Run("no blank line", func(t *testing.T) {
		object := []byte(tree + author + committer)
		_, err := CanonicalEntry(commitBody(t, "sha1", gitObjectID("sha1", object), object, testRepository, ed.line))
		checkErr(t, err, nil, "no blank line")
	})
}

// TestCommitNotCanonical checks that ParseEntry refuses commit entries
// that CanonicalEntry accepts but that are not canonical.
func TestCommitNotCanonical(t *testing.T) {
	signer := apitest.NewCommitSignerFromSeed([]byte("test"))
	entry, err := CanonicalEntry(signer.Submission(testRepository, "m"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		entry []byte
	}{
		{"no derived fields", signer.Submission(testRepository, "m")},
		{"trailing newline", append(slices.Clone(entry), '\n')},
		{"key with comment", bytes.Replace(entry, []byte(`"publicKey":"`+signer.PublicKey()), []byte(`"publicKey":"`+signer.PublicKey()+" me"), 1)},
		{"time as float", bytes.Replace(entry, []byte(`"time":1700000000,`), []byte(`"time":1700000000.0,`), 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.entry, entry) {
				t.Fatal("the mutation didn't change the entry")
			}
			_, err := ParseEntry(tt.entry)
			checkErr(t, err, nil, "")
			if got, err := CanonicalEntry(tt.entry); err == nil && !bytes.Equal(got, entry) {
				t.Errorf("CanonicalEntry gives\n%s\nwant\n%s", got, entry)
			}
		})
	}
}

// commitEntrySeeds returns commit submissions and entries, SSH and
// OpenPGP, to seed FuzzCanonicalEntry and FuzzParseEntry.
func commitEntrySeeds(f *testing.F) [][]byte {
	signer := apitest.NewCommitSignerFromSeed([]byte("fuzz"))
	created := time.Now().Add(-time.Hour)
	pgp := newPGPTestSigner(f, created, 0)
	pid, pobject := testCommit("sha256", "m", pgp.sign(created))
	var seeds [][]byte
	for _, body := range [][]byte{
		signer.SubmissionOf("sha256", testRepository, []string{strings.Repeat("c", 64)}, "fuzz"),
		commitBody(f, "sha256", pid, pobject, testRepository, pgp.armor),
	} {
		entry, err := CanonicalEntry(body)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, body, entry)
	}
	return seeds
}

// commitFuzzSeeds returns commit objects to seed FuzzParseCommitObject.
func commitFuzzSeeds() [][]byte {
	s := apitest.NewCommitSignerFromSeed([]byte("fuzz"))
	_, a := s.Commit("sha1", nil, "m")
	_, b := s.Commit("sha256", []string{strings.Repeat("b", 64)}, "m\n\nbody")
	return [][]byte{a, b, []byte("tree x\n\n")}
}

// FuzzParseCommitObject checks that the commit object parser doesn't
// panic, and that what it takes out of an object it accepts is exactly
// the signature header: payload and header put back give the object.
func FuzzParseCommitObject(f *testing.F) {
	for _, s := range commitFuzzSeeds() {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, object []byte, sha256 bool) {
		format := objectFormatSHA1
		if sha256 {
			format = objectFormatSHA256
		}
		co, err := parseCommitObject(object, format)
		if err != nil {
			checkRejected(t, err)
			return
		}
		// The header is its name, a space and the signature's lines, all but
		// the first after a space.
		if len(co.payload)+len(co.sigHeader)+1+len(co.signature)+bytes.Count(co.signature, []byte("\n"))-1 != len(object) {
			t.Fatalf("payload %d bytes and signature %d bytes don't add up to the object's %d", len(co.payload), len(co.signature), len(object))
		}
		if !bytes.HasPrefix(co.payload, []byte("tree ")) || bytes.Contains(co.payload[:bytes.Index(co.payload, []byte("\n\n"))+1], []byte("\n"+co.sigHeader+" ")) {
			t.Fatalf("payload %q still has the signature header or lost its tree", co.payload)
		}
	})
}

// FuzzSSHSig checks that the SSHSIG parser doesn't panic and that the log
// accepts an SSHSIG exactly when github.com/hiddeco/sshsig verifies it
// (the log verifies Ed25519 signatures itself, faster).
func FuzzSSHSig(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		f.Fatal(err)
	}
	k, err := parseSSHKey(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	if err != nil {
		f.Fatal(err)
	}
	payload := []byte("payload")
	for _, ns := range []string{"git", "other"} {
		sig, err := sshsig.Sign(bytes.NewReader(payload), signer, sshsig.HashSHA512, ns)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sshsig.Armor(sig))
	}
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, armored []byte) {
		err := verifySSHSig(k, payload, armored)
		if err != nil {
			checkRejected(t, err)
		}
		// What the library says of the same SSHSIG, once parsed: the fast
		// path for Ed25519 keys must agree.
		sig, perr := parseSSHSig(armored)
		if perr != nil {
			if err == nil {
				t.Fatalf("accepted an SSHSIG that doesn't parse: %v", perr)
			}
			return
		}
		libOK := sig.Namespace == "git" && bytes.Equal(sig.PublicKey.Marshal(), k.pub.Marshal()) && len(sig.Signature.Rest) == 0 &&
			sshsig.Verify(bytes.NewReader(payload), sig, k.pub, sig.HashAlgorithm, "git") == nil
		if libOK != (err == nil) {
			t.Fatalf("the log says %v, the library %v", err, libOK)
		}
	})
}

// BenchmarkCommitEntry is BenchmarkCanonicalEntry/apitest for the commit
// kind: what apitest.CommitSigner makes (an SSH Ed25519 signature).
func BenchmarkCommitEntry(b *testing.B) {
	body := apitest.NewCommitSignerFromSeed([]byte("bench")).Submission(testRepository, "a commit\n\nwith a body")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	defer reportCPU(b)()
	for b.Loop() {
		if _, err := CanonicalEntry(body); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzOpenPGPSig checks that the OpenPGP signature and key handling
// doesn't panic, and that a signature the log accepts verifies with
// go-crypto's own CheckArmoredDetachedSignature.
func FuzzOpenPGPSig(f *testing.F) {
	created := time.Unix(1700000000, 0)
	s := newPGPTestSigner(f, created, 0)
	payload := []byte("payload")
	f.Add(s.sign(created.Add(time.Minute))(payload), []byte(s.armor))
	f.Add([]byte("-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n"), []byte(s.armor))
	f.Fuzz(func(t *testing.T, armored, key []byte) {
		k, err := parseOpenPGPKey(string(key))
		if err != nil {
			checkRejected(t, err)
			return
		}
		minimal, err := verifyOpenPGPSig(k, payload, armored, time.Time{})
		if err != nil {
			checkRejected(t, err)
			return
		}
		el, err := openpgp.ReadArmoredKeyRing(strings.NewReader(minimal))
		if err != nil {
			t.Fatalf("the minimal key doesn't parse: %v", err)
		}
		_, sig, _ := parseOpenPGPSig(armored)
		config := &packet.Config{Time: func() time.Time { return sig.CreationTime }}
		if _, err := openpgp.CheckArmoredDetachedSignature(el, bytes.NewReader(payload), bytes.NewReader(armored), config); err != nil {
			t.Fatalf("accepted a signature the library refuses: %v", err)
		}
	})
}
