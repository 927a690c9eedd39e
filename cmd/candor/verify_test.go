package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// verifyLog is a log made in the test: entries hashed into a tree with
// sumdb/tlog, checkpoints signed by the log's key and cosigned by
// witnesses whose clocks the test sets.
type verifyLog struct {
	origin  string
	signer  note.Signer
	vkey    string
	entries [][]byte
	hashes  map[int64]tlog.Hash
	wskeys  []string // the witnesses' signer keys
	wvkeys  []string
}

func newVerifyLog(t testing.TB, origin string, witnesses int) *verifyLog {
	t.Helper()
	signer, _, vkey := apitest.NewNoteKey(origin, rand.Reader)
	l := &verifyLog{origin: origin, signer: signer, vkey: vkey, hashes: map[int64]tlog.Hash{}}
	for i := range witnesses {
		skey, wvkey, err := api.GenerateCosignerKey(rand.Reader, fmt.Sprintf("witness%d.example.com", i))
		if err != nil {
			t.Fatal(err)
		}
		l.wskeys, l.wvkeys = append(l.wskeys, skey), append(l.wvkeys, wvkey)
	}
	return l
}

// add appends canonical entries to the tree.
func (l *verifyLog) add(t testing.TB, entries ...[]byte) {
	t.Helper()
	for _, e := range entries {
		n := int64(len(l.entries))
		hs, err := tlog.StoredHashes(n, e, l)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hs {
			l.hashes[tlog.StoredHashIndex(0, n)+int64(i)] = h
		}
		l.entries = append(l.entries, e)
	}
}

func (l *verifyLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := l.hashes[x]
		if !ok {
			return nil, fmt.Errorf("no hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

// bundle returns the proof bundle of entry i in the current tree, its
// checkpoint signed by signers (the log's key unless given) and cosigned
// by the witnesses listed in cosigners at time at.
func (l *verifyLog) bundle(t testing.TB, i int, at time.Time, cosigners []int, signers ...note.Signer) api.ProofBundle {
	t.Helper()
	n := int64(len(l.entries))
	root, err := tlog.TreeHash(n, l)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tlog.ProveRecord(n, int64(i), l)
	if err != nil {
		t.Fatal(err)
	}
	if signers == nil {
		signers = []note.Signer{l.signer}
	}
	for _, w := range cosigners {
		c, err := api.NewCosigner(l.wskeys[w], func() time.Time { return at })
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, c)
	}
	text := api.Checkpoint{Origin: l.origin, Size: uint64(n), Hash: root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(text)}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	b := api.ProofBundle{Extra: l.entries[i], Index: uint64(i), Checkpoint: signed}
	for _, h := range p {
		b.Hashes = append(b.Hashes, h[:])
	}
	return b
}

// policy writes a policy that lists the log and needs k of its witnesses.
func (l *verifyLog) policy(t testing.TB, dir string, k int) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "log %s\n", l.vkey)
	var names []string
	for i, w := range l.wvkeys {
		fmt.Fprintf(&b, "witness w%d %s\n", i, w)
		names = append(names, fmt.Sprintf("w%d", i))
	}
	if k > 0 {
		fmt.Fprintf(&b, "group g %d %s\nquorum g\n", k, strings.Join(names, " "))
	}
	file := filepath.Join(dir, fmt.Sprintf("policy-%d-of-%d", k, len(l.wvkeys)))
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestVerify checks candor verify against what it must accept and every
// way a bundle, its checkpoint or its entry can fail it.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()

	// A build attestation of a real file, and another one.
	artifact := writeFile(t, dir, "app.tar.gz", []byte("the app's release\n"))
	other := writeFile(t, dir, "other.tar.gz", []byte("another file\n"))
	sum := sha256.Sum256([]byte("the app's release\n"))
	build, err := api.CanonicalEntry(apitest.NewBuildSigner().Submission("app.tar.gz", fmt.Sprintf("%x", sum)))
	if err != nil {
		t.Fatal(err)
	}
	// A commit signed with a real ssh-keygen key in a real repository.
	repo := filepath.Join(dir, "repo")
	os.Mkdir(repo, 0o755)
	key := sshKey(t, dir, "dev")
	signedID, unsignedID := newRepo(t, repo, "sha1", key)
	commit, err := api.CanonicalEntry(commitBody(t, repo, signedID, "https://git.example.com/repo.git", key+".pub"))
	if err != nil {
		t.Fatal(err)
	}

	l := newVerifyLog(t, "example.com/verify", 3)
	l.add(t, []byte("first"), build, commit, []byte("last"))
	twoOfThree := l.policy(t, dir, 2)
	threeOfThree := l.policy(t, dir, 3)
	bundleFile := func(name string, b api.ProofBundle) string {
		return writeFile(t, dir, name, b.Marshal())
	}
	good := l.bundle(t, 1, now, []int{0, 2})
	goodFile := bundleFile("build.tlog-proof", good)
	commitFile := bundleFile("commit.tlog-proof", l.bundle(t, 2, now, []int{0, 1, 2}))

	bare := good
	bare.Extra = nil
	bareFile := bundleFile("bare.tlog-proof", bare)
	altered := good
	altered.Extra = bytes.Clone(good.Extra)
	altered.Extra[len(altered.Extra)/2] ^= 1
	badProof := good
	badProof.Hashes = append([][]byte(nil), good.Hashes...)
	badProof.Hashes[0] = bytes.Repeat([]byte{1}, 32)
	otherSigner, _, _ := apitest.NewNoteKey("example.com/verify", rand.Reader)
	otherLog := newVerifyLog(t, "example.com/other", 0)
	otherLog.add(t, build)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"artifact", []string{"--bundle", goodFile, "--policy", twoOfThree, "--artifact", artifact}, 0,
			"VERIFIED: the build attestation of " + artifact + " (sha256:" + fmt.Sprintf("%x", sum) + ") is entry 1 of example.com/verify, in its tree of size 4 (cosigned by w0, w2)"},
		{"artifact, fresh enough", []string{"--bundle", goodFile, "--policy", twoOfThree, "--max-age", "1h", "--artifact", artifact}, 0, "VERIFIED"},
		{"entry file", []string{"--bundle", bareFile, "--policy", twoOfThree, "--entry", writeFile(t, dir, "build.entry", build)}, 0, "VERIFIED: the build attestation of sha256:"},
		{"commit", []string{"--bundle", commitFile, "--policy", threeOfThree, "--commit", repo + "@HEAD~1"}, 0,
			"VERIFIED: the signed commit " + signedID + " of https://git.example.com/repo.git is entry 2"},

		{"another artifact", []string{"--bundle", goodFile, "--policy", twoOfThree, "--artifact", other}, 1, "NOT VERIFIED: the build attestation is not about " + other},
		{"another commit", []string{"--bundle", commitFile, "--policy", threeOfThree, "--commit", repo + "@HEAD"}, 1, "is the commit " + signedID + ", not " + unsignedID},
		{"a build as a commit", []string{"--bundle", goodFile, "--policy", twoOfThree, "--commit", repo + "@HEAD~1"}, 1, "the entry is of kind build, not the signed commit"},
		{"a commit as an artifact", []string{"--bundle", commitFile, "--policy", twoOfThree, "--artifact", artifact}, 1, "the entry is of kind commit"},
		{"entry altered by one byte", []string{"--bundle", bundleFile("altered", altered), "--policy", twoOfThree, "--artifact", artifact}, 1, "NOT VERIFIED: couldn't verify the inclusion"},
		{"another entry file", []string{"--bundle", goodFile, "--policy", twoOfThree, "--entry", writeFile(t, dir, "commit.entry", commit)}, 1, "not the entry the bundle carries"},
		{"no entry", []string{"--bundle", bareFile, "--policy", twoOfThree, "--artifact", artifact}, 1, "give it with --entry FILE"},
		{"bad proof", []string{"--bundle", bundleFile("badproof", badProof), "--policy", twoOfThree, "--artifact", artifact}, 1, "NOT VERIFIED: couldn't verify the inclusion"},
		{"unsigned checkpoint", []string{"--bundle", bundleFile("unsigned", l.bundle(t, 1, now, []int{0, 1, 2}, []note.Signer{}...)), "--policy", twoOfThree, "--artifact", artifact}, 1, "NOT VERIFIED"},
		{"signed by another key", []string{"--bundle", bundleFile("forged", l.bundle(t, 1, now, []int{0, 1}, otherSigner)), "--policy", twoOfThree, "--artifact", artifact}, 1, "NOT VERIFIED"},
		{"another log", []string{"--bundle", bundleFile("otherlog", otherLog.bundle(t, 0, now, nil)), "--policy", twoOfThree, "--artifact", artifact}, 1, `the log "example.com/other", which the policy does not list`},
		{"under-cosigned", []string{"--bundle", goodFile, "--policy", threeOfThree, "--artifact", artifact}, 1, "quorum"},
		{"stale cosignatures", []string{"--bundle", bundleFile("stale", l.bundle(t, 1, now.Add(-2*time.Hour), []int{0, 1, 2})), "--policy", twoOfThree, "--max-age", "1h", "--artifact", artifact}, 1, "cosignatures too old"},
		{"a cosignature from the future", []string{"--bundle", bundleFile("future", l.bundle(t, 1, now.Add(time.Hour), []int{0, 1})), "--policy", twoOfThree, "--max-age", "24h", "--artifact", artifact}, 1, "cosignatures too old"},
		{"not a bundle", []string{"--bundle", artifact, "--policy", twoOfThree, "--artifact", artifact}, 1, "--bundle:"},

		{"no policy", []string{"--bundle", goodFile, "--artifact", artifact}, 2, "usage: candor verify"},
		{"nothing to check", []string{"--bundle", goodFile, "--policy", twoOfThree}, 2, "usage: candor verify"},
		{"artifact and commit", []string{"--bundle", goodFile, "--policy", twoOfThree, "--artifact", artifact, "--commit", "HEAD"}, 2, "usage: candor verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCandor(t, append([]string{"verify"}, tc.args...)...)
			t.Logf("exit %d: %s%s", code, stdout, firstLine(stderr))
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, tc.code, tc.want, stdout, stderr)
			}
			if code != 0 && strings.Contains(stdout, "VERIFIED") {
				t.Errorf("a failure printed %q", stdout)
			}
		})
	}

	// A cosignature line that does not verify under a witness's key makes
	// the checkpoint invalid, whatever the others say.
	forged := l.bundle(t, 1, now, []int{0, 1, 2})
	cp := bytes.Clone(forged.Checkpoint)
	i := bytes.LastIndex(cp, []byte("\n\u2014 "))
	sig := cp[i+len("\n\u2014 "):]
	sig = sig[bytes.IndexByte(sig, ' ')+1:]
	sig[len(sig)-4] ^= 'A' ^ 'B'
	forged.Checkpoint = cp
	code, stdout, stderr := runCandor(t, "verify", "--bundle", bundleFile("forgedcosig", forged), "--policy", twoOfThree, "--artifact", artifact)
	if code != 1 || !strings.Contains(stderr, "NOT VERIFIED") {
		t.Errorf("a forged cosignature: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// BenchmarkVerify measures candor verify of one build attestation's bundle
// under a 2-of-3 policy with --artifact, as a pipeline runs it, files read
// and all, without starting a process. One op is one verification.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	data := bytes.Repeat([]byte("release "), 1<<14) // 128 KiB
	artifact := writeFile(b, dir, "app.tar.gz", data)
	build, err := api.CanonicalEntry(apitest.NewBuildSigner().Submission("app.tar.gz", fmt.Sprintf("%x", sha256.Sum256(data))))
	if err != nil {
		b.Fatal(err)
	}
	l := newVerifyLog(b, "example.com/verify", 3)
	for i := range 1000 {
		l.add(b, fmt.Appendf(nil, "entry %d", i))
	}
	l.add(b, build)
	bundle := writeFile(b, dir, "app.tlog-proof", l.bundle(b, 1000, time.Now(), []int{0, 1, 2}).Marshal())
	args := []string{"verify", "--bundle", bundle, "--policy", l.policy(b, dir, 2), "--max-age", "1h", "--artifact", artifact}
	for b.Loop() {
		if code := run(b.Context(), args, io.Discard, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
