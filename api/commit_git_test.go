package api

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Tests with the real git, ssh-keygen and gpg: commits made and signed by
// the tools as users make them, submitted to the log, and checked with git
// verify-commit, which must agree with the log.

// requireTools skips the test if a tool is missing, unless under CI
// (.ci/run installs them), where it fails.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing (CI installs it: see .ci/run): %v", tool, err)
			}
			t.Skipf("%s is missing: %v", tool, err)
		}
	}
}

// gitEnv runs the tools in a home of their own: no configuration of the
// machine's user is read.
type gitEnv struct {
	t   *testing.T
	dir string
	env []string
}

func newGitEnv(t *testing.T) *gitEnv {
	requireTools(t, "git", "ssh-keygen", "gpg", "gpgconf")
	// gpg-agent's socket path must be short: not under t.TempDir().
	dir, err := os.MkdirTemp("", "candor-git")
	if err != nil {
		t.Fatal(err)
	}
	g := &gitEnv{t: t, dir: dir}
	gnupg := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	gitconfig := filepath.Join(dir, "gitconfig")
	if err := os.WriteFile(gitconfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g.env = []string{
		"HOME=" + dir, "GNUPGHOME=" + gnupg, "GIT_CONFIG_GLOBAL=" + gitconfig, "GIT_CONFIG_NOSYSTEM=1",
		"PATH=" + os.Getenv("PATH"), "LANG=C", "LC_ALL=C", "TZ=UTC",
	}
	t.Cleanup(func() {
		g.killAgents()
		os.RemoveAll(dir)
	})
	return g
}

func (g *gitEnv) killAgents() {
	entries, _ := os.ReadDir(g.dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "gnupg") {
			cmd := exec.Command("gpgconf", "--kill", "all")
			cmd.Env = g.envWith("GNUPGHOME=" + filepath.Join(g.dir, e.Name()))
			cmd.Run()
		}
	}
}

// envWith returns the environment with vars added or replaced.
func (g *gitEnv) envWith(vars ...string) []string {
	env := make([]string, 0, len(g.env)+len(vars))
	for _, e := range g.env {
		name, _, _ := strings.Cut(e, "=")
		replaced := false
		for _, v := range vars {
			if strings.HasPrefix(v, name+"=") {
				replaced = true
			}
		}
		if !replaced {
			env = append(env, e)
		}
	}
	return append(env, vars...)
}

// run runs a tool in dir with stdin and returns its stdout; the error
// carries its stderr.
func (g *gitEnv) run(dir string, env []string, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = env
	if env == nil {
		cmd.Env = g.env
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

func (g *gitEnv) mustRun(dir string, stdin []byte, name string, args ...string) []byte {
	g.t.Helper()
	out, err := g.run(dir, nil, stdin, name, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// repo creates a repository of an object format.
func (g *gitEnv) repo(format string) string {
	g.t.Helper()
	dir := filepath.Join(g.dir, "repo-"+format)
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	g.mustRun(g.dir, nil, "git", "init", "-q", "--object-format="+format, dir)
	return dir
}

var gitIdentityConfig = []string{"-c", "user.name=Candor Test", "-c", "user.email=test@candor.invalid", "-c", "commit.gpgsign=false"}

// commit makes an empty commit in repo with the extra git configuration
// (e.g. the signing options) and returns its id and object.
func (g *gitEnv) commit(repo, message string, sign bool, config ...string) (string, []byte) {
	g.t.Helper()
	args := append(append(append([]string{}, gitIdentityConfig...), config...), "commit", "-q", "--allow-empty", "-m", message)
	if sign {
		args = append(args, "-S")
	}
	g.mustRun(repo, nil, "git", args...)
	id := strings.TrimSpace(string(g.mustRun(repo, nil, "git", "rev-parse", "HEAD")))
	return id, g.mustRun(repo, nil, "git", "cat-file", "commit", id)
}

// writeObject stores a commit object in repo, as it is, and returns its id.
func (g *gitEnv) writeObject(repo string, object []byte) string {
	g.t.Helper()
	return strings.TrimSpace(string(g.mustRun(repo, object, "git", "hash-object", "-t", "commit", "-w", "--literally", "--stdin")))
}

// sshKey makes a key with ssh-keygen and returns its private key path and
// its public key line.
func (g *gitEnv) sshKey(name string, args ...string) (string, string) {
	g.t.Helper()
	path := filepath.Join(g.dir, name)
	g.mustRun(g.dir, nil, "ssh-keygen", append([]string{"-q", "-N", "", "-C", name + "@candor.invalid", "-f", path}, args...)...)
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		g.t.Fatal(err)
	}
	return path, string(pub)
}

// sshFingerprint returns the fingerprint ssh-keygen -l prints of a key.
func (g *gitEnv) sshFingerprint(path string) string {
	g.t.Helper()
	f := strings.Fields(string(g.mustRun(g.dir, nil, "ssh-keygen", "-l", "-E", "sha256", "-f", path+".pub")))
	if len(f) < 2 {
		g.t.Fatalf("ssh-keygen -l printed %q", f)
	}
	return f[1]
}

// verifySSH runs git verify-commit with only pubLine allowed.
func (g *gitEnv) verifySSH(repo, id, pubLine string) error {
	allowed := filepath.Join(g.dir, "allowed_signers")
	if err := os.WriteFile(allowed, []byte("* "+pubLine), 0o600); err != nil {
		g.t.Fatal(err)
	}
	_, err := g.run(repo, nil, nil, "git", "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", id)
	return err
}

// verifyOpenPGP runs git verify-commit with gpg knowing only the armored
// key, in a GnuPG home of its own.
func (g *gitEnv) verifyOpenPGP(repo, id, key string) error {
	home, err := os.MkdirTemp(g.dir, "gnupg-verify")
	if err != nil {
		g.t.Fatal(err)
	}
	env := g.envWith("GNUPGHOME=" + home)
	if _, err := g.run(g.dir, env, []byte(key), "gpg", "--batch", "--quiet", "--import"); err != nil {
		g.t.Fatal(err)
	}
	_, err = g.run(repo, env, nil, "git", "verify-commit", id)
	return err
}

// gpgKey generates an OpenPGP key with gpg --batch from a parameter file
// body (%no-protection and %commit are added), with extra gpg options
// (e.g. --faked-system-time), and returns its fingerprint.
func (g *gitEnv) gpgKey(name, params string, opts ...string) string {
	g.t.Helper()
	email := name + "@candor.invalid"
	p := "%no-protection\n" + params + "\nName-Real: " + name + "\nName-Email: " + email + "\n%commit\n"
	g.mustRun(g.dir, []byte(p), "gpg", append(append([]string{"--batch", "--quiet"}, opts...), "--gen-key")...)
	out := g.mustRun(g.dir, nil, "gpg", "--batch", "--with-colons", "--fingerprint", email)
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Split(line, ":"); f[0] == "fpr" {
			return f[9]
		}
	}
	g.t.Fatalf("no fingerprint for %s in %s", name, out)
	return ""
}

func (g *gitEnv) gpgExport(fpr string) string {
	g.t.Helper()
	return string(g.mustRun(g.dir, nil, "gpg", "--batch", "--armor", "--export", fpr))
}

// submit returns the submission of a commit.
func submission(t *testing.T, format, id string, object []byte, key string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{
		"kind": KindCommit, "objectFormat": format, "commit": id,
		"object": base64.StdEncoding.EncodeToString(object), "repository": "https://git.example.com/" + format + ".git", "publicKey": key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gitCase is one commit checked by the log and by git verify-commit.
type gitCase struct {
	name   string
	format string
	repo   string
	id     string
	object []byte
	key    string
	// verify runs git verify-commit (or whatever git has to say).
	verify func() error
	// reason is the log's refusal, "" if it accepts.
	reason string
	// gitDiffers, when set, says why git verify-commit accepts a commit
	// that the log refuses by design.
	gitDiffers string
	// fingerprint is the key fingerprint the entry must have, if accepted.
	fingerprint string
}

func (c gitCase) check(t *testing.T) {
	t.Helper()
	entry, logErr := CanonicalEntry(submission(t, c.format, c.id, c.object, c.key))
	gitErr := c.verify()
	t.Logf("log: %v; git: %v", logErr, gitErr)
	if c.reason == "" {
		if logErr != nil {
			t.Fatalf("the log refuses: %v", logErr)
		}
		checkAccepted(t, entry)
		st, _ := ParseEntry(entry)
		if c.fingerprint != "" && st.KeyFingerprints()[0] != c.fingerprint {
			t.Errorf("fingerprint %s, want %s", st.KeyFingerprints()[0], c.fingerprint)
		}
	} else {
		if logErr == nil {
			t.Fatalf("the log accepts:\n%s", entry)
		}
		checkRejected(t, logErr)
		if !strings.Contains(logErr.Error(), c.reason) {
			t.Errorf("the log's reason is %q, want one containing %q", logErr, c.reason)
		}
	}
	switch {
	case c.gitDiffers != "":
		if gitErr != nil {
			t.Errorf("git verify-commit refuses (%v), expected it to accept: %s", gitErr, c.gitDiffers)
		}
	case (logErr == nil) != (gitErr == nil):
		t.Errorf("the log and git verify-commit disagree: log %v, git %v", logErr, gitErr)
	}
}

// replaceSignature returns object with its signature header holding sig
// (armored, ending in a newline) instead.
func replaceSignature(t *testing.T, format string, object, sig []byte) []byte {
	t.Helper()
	co, err := parseCommitObject(object, format)
	if err != nil {
		t.Fatal(err)
	}
	return insertSignature(format, co.payload, sig)
}

// insertSignature returns an unsigned object with a signature header
// holding sig (armored, ending in a newline) after its other headers, as
// git writes it.
func insertSignature(format string, object, sig []byte) []byte {
	header := signatureHeader(format) + " " + strings.ReplaceAll(strings.TrimSuffix(string(sig), "\n"), "\n", "\n ") + "\n"
	end := bytes.Index(object, []byte("\n\n"))
	return append(append(append([]byte{}, object[:end+1]...), header...), object[end+1:]...)
}

// revoke revokes a key with the revocation certificate gpg made with it,
// and returns the key exported with its revocation.
func (g *gitEnv) revoke(fpr string) string {
	g.t.Helper()
	cert, err := os.ReadFile(filepath.Join(g.dir, "gnupg", "openpgp-revocs.d", fpr+".rev"))
	if err != nil {
		g.t.Fatal(err)
	}
	// gpg prefixes the armor with a colon so that the certificate isn't
	// imported by mistake.
	cert = bytes.Replace(cert, []byte(":-----BEGIN PGP PUBLIC KEY BLOCK-----"), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----"), 1)
	g.mustRun(g.dir, cert, "gpg", "--batch", "--quiet", "--import")
	return g.gpgExport(fpr)
}

// signIgnoringFlags makes a binary OpenPGP signature over payload with the
// private primary key of fpr, exported from gpg, whatever its key flags.
func (g *gitEnv) signIgnoringFlags(fpr string, payload []byte) []byte {
	g.t.Helper()
	secret := g.mustRun(g.dir, nil, "gpg", "--batch", "--armor", "--export-secret-keys", fpr)
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(secret))
	if err != nil {
		g.t.Fatal(err)
	}
	priv := el[0].PrivateKey
	sig := &packet.Signature{
		Version:      4,
		SigType:      packet.SigTypeBinary,
		PubKeyAlgo:   priv.PubKeyAlgo,
		Hash:         crypto.SHA256,
		CreationTime: time.Now(),
		IssuerKeyId:  &priv.KeyId,
	}
	h, err := sig.PrepareSign(nil)
	if err != nil {
		g.t.Fatal(err)
	}
	h.Write(payload)
	if err := sig.Sign(h, priv, nil); err != nil {
		g.t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := armorEncodeType(&b, openpgp.SignatureType)
	if err != nil {
		g.t.Fatal(err)
	}
	if err := sig.Serialize(w); err != nil {
		g.t.Fatal(err)
	}
	w.Close()
	b.WriteByte('\n')
	return b.Bytes()
}

func TestCommitGitSSH(t *testing.T) {
	g := newGitEnv(t)
	type key struct {
		name, path, pub string
	}
	var good []key
	for _, k := range []struct {
		name string
		args []string
	}{
		{"ed25519", []string{"-t", "ed25519"}},
		{"ecdsa256", []string{"-t", "ecdsa", "-b", "256"}},
		{"ecdsa384", []string{"-t", "ecdsa", "-b", "384"}},
		{"rsa2048", []string{"-t", "rsa", "-b", "2048"}},
		{"rsa3072", []string{"-t", "rsa", "-b", "3072"}},
	} {
		path, pub := g.sshKey(k.name, k.args...)
		good = append(good, key{k.name, path, pub})
	}
	ed, other := good[0], good[1]
	rsa1024, rsa1024Pub := g.sshKey("rsa1024", "-t", "rsa", "-b", "1024")
	sshSign := func(path string) []string {
		return []string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + path}
	}

	for _, format := range []string{"sha1", "sha256"} {
		repo := g.repo(format)
		var cases []gitCase
		add := func(c gitCase) {
			c.format, c.repo = format, repo
			cases = append(cases, c)
		}
		for _, k := range good {
			id, object := g.commit(repo, "signed with "+k.name, true, sshSign(k.path)...)
			add(gitCase{name: k.name, id: id, object: object, key: k.pub,
				verify: func() error { return g.verifySSH(repo, id, k.pub) }, fingerprint: g.sshFingerprint(k.path)})
		}
		id, object := g.commit(repo, "signed with ed25519", true, sshSign(ed.path)...)
		add(gitCase{name: "another key", id: id, object: object, key: other.pub,
			verify: func() error { return g.verifySSH(repo, id, other.pub) }, reason: "SSH signature is by key"})

		tampered := bytes.Replace(object, []byte("signed with"), []byte("signed by"), 1)
		tamperedID := g.writeObject(repo, tampered)
		add(gitCase{name: "tampered object", id: tamperedID, object: tampered, key: ed.pub,
			verify: func() error { return g.verifySSH(repo, tamperedID, ed.pub) }, reason: "SSH signature doesn't verify"})

		parent := strings.TrimSpace(string(g.mustRun(repo, nil, "git", "rev-parse", "HEAD~1")))
		add(gitCase{name: "wrong id", id: parent, object: object, key: ed.pub, reason: "object hashes to",
			verify: func() error {
				// git names the object by its hash, which is not the id
				// given.
				got := strings.TrimSpace(string(g.mustRun(repo, object, "git", "hash-object", "-t", "commit", "--stdin")))
				if got == parent {
					return nil
				}
				return fmt.Errorf("git hash-object gives %s, not %s", got, parent)
			}})

		// An SSHSIG of the same payload in another namespace, made with
		// ssh-keygen -Y sign -n other.
		co, err := parseCommitObject(object, format)
		if err != nil {
			t.Fatal(err)
		}
		payloadFile := filepath.Join(g.dir, "payload-"+format)
		if err := os.WriteFile(payloadFile, co.payload, 0o600); err != nil {
			t.Fatal(err)
		}
		g.mustRun(g.dir, nil, "ssh-keygen", "-q", "-Y", "sign", "-n", "other", "-f", ed.path, payloadFile)
		otherSig, err := os.ReadFile(payloadFile + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(payloadFile + ".sig")
		otherNS := replaceSignature(t, format, object, otherSig)
		otherNSID := g.writeObject(repo, otherNS)
		add(gitCase{name: "namespace other", id: otherNSID, object: otherNS, key: ed.pub,
			verify: func() error { return g.verifySSH(repo, otherNSID, ed.pub) }, reason: `namespace "other"`})

		// The armor without its last line.
		truncSig := co.signature[:bytes.LastIndex(co.signature[:len(co.signature)-1], []byte("\n"))+1]
		trunc := replaceSignature(t, format, object, truncSig)
		truncID := g.writeObject(repo, trunc)
		add(gitCase{name: "truncated armor", id: truncID, object: trunc, key: ed.pub,
			verify: func() error { return g.verifySSH(repo, truncID, ed.pub) }, reason: "SSH signature armor is malformed or truncated"})

		// The signature under the other object format's header: git reads
		// only its own format's.
		otherHeader := map[string]string{"sha1": "gpgsig-sha256 ", "sha256": "gpgsig "}[format]
		swapped := bytes.Replace(object, []byte(signatureHeader(format)+" "), []byte(otherHeader), 1)
		swappedID := g.writeObject(repo, swapped)
		add(gitCase{name: "other format's header", id: swappedID, object: swapped, key: ed.pub,
			verify: func() error { return g.verifySSH(repo, swappedID, ed.pub) }, reason: "commit is not signed"})

		unsignedID, unsigned := g.commit(repo, "not signed", false)
		add(gitCase{name: "no signature", id: unsignedID, object: unsigned, key: ed.pub,
			verify: func() error { return g.verifySSH(repo, unsignedID, ed.pub) }, reason: "commit is not signed"})

		rsaID, rsaObject := g.commit(repo, "signed with rsa1024", true, sshSign(rsa1024)...)
		add(gitCase{name: "rsa1024", id: rsaID, object: rsaObject, key: rsa1024Pub,
			verify: func() error { return g.verifySSH(repo, rsaID, rsa1024Pub) }, reason: "RSA with 1024 bits",
			gitDiffers: "OpenSSH verifies RSA keys from 1024 bits; the log wants 2048"})

		bigID, bigObject := g.commit(repo, "big\n\n"+strings.Repeat("0123456789abcdef\n", maxCommitObjectSize/16), true, sshSign(ed.path)...)
		add(gitCase{name: "over the size limit", id: bigID, object: bigObject, key: ed.pub,
			verify: func() error { return g.verifySSH(repo, bigID, ed.pub) }, reason: "commit object is",
			gitDiffers: "git has no size limit; an entry has one"})

		for _, c := range cases {
			t.Run(format+"/"+c.name, c.check)
		}
	}
}

func TestCommitGitOpenPGP(t *testing.T) {
	g := newGitEnv(t)
	// A primary key that signs, a primary key that only certifies with a
	// signing subkey, an RSA key, a key that has expired (made and used in
	// the past), a key revoked after it signed, and a key that can't sign
	// (a certifying primary key, an encryption subkey).
	primary := g.gpgKey("primary", "Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign,cert")
	subkey := g.gpgKey("subkey", "Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: cert\nSubkey-Type: eddsa\nSubkey-Curve: ed25519\nSubkey-Usage: sign")
	rsaKey := g.gpgKey("rsa", "Key-Type: RSA\nKey-Length: 2048\nKey-Usage: sign,cert")
	const past = "20240101T120000"
	expired := g.gpgKey("expired", "Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign,cert\nExpire-Date: 30", "--faked-system-time", past)
	revoked := g.gpgKey("revoked", "Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign,cert")
	noSign := g.gpgKey("nosign", "Key-Type: RSA\nKey-Length: 2048\nKey-Usage: cert\nSubkey-Type: RSA\nSubkey-Length: 2048\nSubkey-Usage: encrypt")

	// gpg in the past, for the expired key.
	pastGPG := filepath.Join(g.dir, "gpg-past")
	if err := os.WriteFile(pastGPG, []byte("#!/bin/sh\nexec gpg --faked-system-time "+past+" \"$@\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	pgpSign := func(fpr string) []string {
		return []string{"-c", "gpg.format=openpgp", "-c", "user.signingkey=" + fpr}
	}

	// Signed by the key to be revoked before it is.
	type commit struct {
		id     string
		object []byte
	}
	revokedCommits := make(map[string]commit)
	for _, format := range []string{"sha1", "sha256"} {
		id, object := g.commit(g.repo(format), "signed by revoked", true, pgpSign(revoked)...)
		revokedCommits[format] = commit{id, object}
	}
	revokedKey := g.revoke(revoked)

	for _, format := range []string{"sha1", "sha256"} {
		repo := g.repo(format)
		var cases []gitCase
		add := func(c gitCase) {
			c.format, c.repo = format, repo
			id, key := c.id, c.key
			c.verify = func() error { return g.verifyOpenPGP(repo, id, key) }
			cases = append(cases, c)
		}
		for _, k := range []struct{ name, fpr string }{{"primary", primary}, {"subkey", subkey}, {"rsa", rsaKey}} {
			id, object := g.commit(repo, "signed by "+k.name, true, pgpSign(k.fpr)...)
			add(gitCase{name: k.name, id: id, object: object, key: g.gpgExport(k.fpr), fingerprint: strings.ToLower(k.fpr)})
		}

		id, object := g.commit(repo, "signed by primary", true, pgpSign(primary)...)
		add(gitCase{name: "another key", id: id, object: object, key: g.gpgExport(subkey), reason: "not publicKey"})
		tampered := bytes.Replace(object, []byte("signed by"), []byte("signed with"), 1)
		add(gitCase{name: "tampered object", id: g.writeObject(repo, tampered), object: tampered, key: g.gpgExport(primary), reason: "OpenPGP signature doesn't verify"})
		co, err := parseCommitObject(object, format)
		if err != nil {
			t.Fatal(err)
		}
		trunc := replaceSignature(t, format, object, co.signature[:len(co.signature)/2])
		add(gitCase{name: "truncated armor", id: g.writeObject(repo, trunc), object: trunc, key: g.gpgExport(primary), reason: "malformed or truncated"})

		id, object = g.commit(repo, "signed by expired", true, append(pgpSign(expired), "-c", "gpg.program="+pastGPG)...)
		add(gitCase{name: "expired", id: id, object: object, key: g.gpgExport(expired), reason: "is expired"})

		add(gitCase{name: "revoked", id: revokedCommits[format].id, object: revokedCommits[format].object, key: revokedKey, reason: "is revoked"})

		// gpg won't sign with a key not for signing: the signature is made
		// here with its private primary key, as a tool that ignores the
		// key flags could.
		_, object = g.commit(repo, "not signed", false)
		withSig := insertSignature(format, object, g.signIgnoringFlags(noSign, object))
		add(gitCase{name: "key not for signing", id: g.writeObject(repo, withSig), object: withSig, key: g.gpgExport(noSign), reason: "is not for signing"})

		for _, c := range cases {
			t.Run(format+"/"+c.name, c.check)
		}
	}
}
