package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests need the log's commit kind (api/commit.go): they submit
// commits signed by the real git to a real log, and expect it to accept
// them.

// commitBody is the submission the command makes for the commit id of the
// repository in dir.
func commitBody(t testing.TB, dir, id, repository, pubFile string) []byte {
	t.Helper()
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(commitSubmission{
		Kind:         "commit",
		ObjectFormat: git(t, dir, "rev-parse", "--show-object-format"),
		Commit:       id,
		Object:       base64.StdEncoding.EncodeToString([]byte(git(t, dir, "cat-file", "commit", id) + "\n")),
		Repository:   repository,
		PublicKey:    strings.TrimSpace(string(pub)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestSubmitCommitEndToEnd logs SSH-signed commits of both object formats
// in a real log and checks the proof bundles written in the repository.
func TestSubmitCommitEndToEnd(t *testing.T) {
	home := gitEnv(t)
	url, vkey := newTestLog(t, nil)
	key := sshKey(t, home, "id_ed25519")
	for i, format := range []string{"sha1", "sha256"} {
		dir := filepath.Join(t.TempDir(), "repo")
		os.Mkdir(dir, 0o755)
		signed, _ := newRepo(t, dir, format, key)
		git(t, dir, "remote", "add", "origin", "https://git.example.com/team/app-"+format+".git")
		index := uint64(i)

		code, stdout, stderr := runCandor(t, "submit", "commit", "--log", url, "--key", key+".pub", "--repo", dir, "HEAD~1")
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr:\n%s", format, code, stderr)
		}
		if !strings.HasPrefix(stdout, fmt.Sprintf("%d\n", index)) || !strings.Contains(stdout, "commit "+signed+" of https://git.example.com/team/app-"+format+".git: logged at index") {
			t.Errorf("%s: stdout:\n%s", format, stdout)
		}
		bundle := filepath.Join(dir, ".git", "candor", signed+".tlog-proof")
		body := commitBody(t, dir, signed, "https://git.example.com/team/app-"+format+".git", key+".pub")
		checkBundleFile(t, bundle, body, index, vkey)
		// The bundle alone proves the commit, for candor verify, offline.
		policy := filepath.Join(dir, "policy")
		os.WriteFile(policy, []byte("log "+vkey+"\nquorum none\n"), 0o644)
		code, stdout, stderr = runCandor(t, "verify", "--bundle", bundle, "--policy", policy, "--commit", dir+"@HEAD~1")
		if code != 0 || !strings.Contains(stdout, "VERIFIED: the signed commit "+signed+" of https://git.example.com/team/app-"+format+".git is entry") {
			t.Errorf("%s: verify: exit %d, stdout %q, stderr:\n%s", format, code, stdout, stderr)
		}
		// A fresh bundle found by the commit id, from the live log.
		proved := filepath.Join(dir, "proved.tlog-proof")
		code, stdout, stderr = runCandor(t, "prove", "--log", url, "--policy", policy, "--commit", strings.ToUpper(signed), "--out", proved)
		if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("%d\n", index)) {
			t.Errorf("%s: prove --commit: exit %d, stdout %q, stderr:\n%s", format, code, stdout, stderr)
		}
		code, stdout, stderr = runCandor(t, "verify", "--bundle", proved, "--policy", policy, "--commit", dir+"@"+signed)
		if code != 0 || !strings.Contains(stdout, "VERIFIED: the signed commit "+signed) {
			t.Errorf("%s: verify of the proved bundle: exit %d, stdout %q, stderr:\n%s", format, code, stdout, stderr)
		}

		// Again: a duplicate, with the same index.
		code, stdout, stderr = runCandor(t, "submit", "commit", "--log", url, "--key", key+".pub", "--repo", dir, "--log-key", vkey, signed)
		if code != 0 || !strings.HasPrefix(stdout, fmt.Sprintf("%d\n", index)) || !strings.Contains(stdout, "already logged") {
			t.Errorf("%s again: exit %d, stdout:\n%s\nstderr:\n%s", format, code, stdout, stderr)
		}
	}
}

// TestPrePushHook installs scripts/hooks/pre-push in a repository made
// with the real git and pushes to a local bare repository: the signed
// commits pushed are logged, the unsigned ones are not, and a commit the
// log refuses stops the push.
func TestPrePushHook(t *testing.T) {
	home := gitEnv(t)
	rec := &bodyRecorder{}
	url, vkey := newTestLog(t, func(h http.Handler) http.Handler { rec.next = h; return rec })
	key := sshKey(t, home, "id_ed25519")

	// The test binary is the candor command the hook runs.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(home, "bin")
	os.Mkdir(bin, 0o755)
	wrapper := fmt.Sprintf("#!/bin/sh\nCANDOR_TEST_RUN_AS_CANDOR=1 exec '%s' \"$@\"\n", exe)
	if err := os.WriteFile(filepath.Join(bin, "candor"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	hook, err := os.ReadFile(filepath.Join("..", "..", "scripts", "hooks", "pre-push"))
	if err != nil {
		t.Fatal(err)
	}

	bare := filepath.Join(t.TempDir(), "remote.git")
	git(t, home, "init", "-q", "--bare", bare)
	dir := filepath.Join(t.TempDir(), "repo")
	os.Mkdir(dir, 0o755)
	signed, unsigned := newRepo(t, dir, "sha1", key)
	git(t, dir, "remote", "add", "origin", bare)
	if err := os.WriteFile(filepath.Join(dir, ".git", "hooks", "pre-push"), hook, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "config", "candor.log", url)
	git(t, dir, "config", "user.signingkey", key) // the hook takes the .pub beside it

	// The first push: the signed commit is logged, the unsigned one is not.
	git(t, dir, "push", "-q", "origin", "HEAD:refs/heads/main")
	logged := func() []string {
		var ids []string
		for _, b := range rec.all() {
			var s commitSubmission
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.Commit)
		}
		return ids
	}
	if got := logged(); len(got) != 1 || got[0] != signed {
		t.Fatalf("submitted %q, want the signed commit %s only", got, signed)
	}
	checkBundleFile(t, filepath.Join(dir, ".git", "candor", signed+".tlog-proof"), commitBody(t, dir, signed, bare, key+".pub"), 0, vkey)
	if _, err := os.Stat(filepath.Join(dir, ".git", "candor", unsigned+".tlog-proof")); err == nil {
		t.Error("the unsigned commit has a proof bundle")
	}

	// The next push logs only the new signed commit.
	os.WriteFile(filepath.Join(dir, "NEWS"), []byte("news\n"), 0o644)
	git(t, dir, "add", "NEWS")
	git(t, dir, "-c", "gpg.format=ssh", "-c", "user.signingkey="+key, "commit", "-q", "-S", "-m", "second signed")
	second := git(t, dir, "rev-parse", "HEAD")
	rec.reset()
	git(t, dir, "push", "-q", "origin", "HEAD:refs/heads/main")
	if got := logged(); len(got) != 1 || got[0] != second {
		t.Fatalf("second push submitted %q, want %s only", got, second)
	}
	checkBundleFile(t, filepath.Join(dir, ".git", "candor", second+".tlog-proof"), commitBody(t, dir, second, bare, key+".pub"), 1, vkey)
	if got := git(t, bare, "rev-parse", "main"); got != second {
		t.Fatalf("the remote's main is %s, want %s", got, second)
	}

	// A commit signed by another key than the one given: the log refuses
	// it, and the push does not happen.
	other := sshKey(t, home, "other")
	git(t, dir, "-c", "gpg.format=ssh", "-c", "user.signingkey="+other, "commit", "-q", "--allow-empty", "-S", "-m", "another signer")
	cmd := exec.Command("git", "-C", dir, "push", "origin", "HEAD:refs/heads/main")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		t.Fatalf("the push of a commit the log refuses succeeded:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "the log refused it") || !strings.Contains(out.String(), "push refused") {
		t.Errorf("git push output:\n%s", out.String())
	}
	if got := git(t, bare, "rev-parse", "main"); got != second {
		t.Errorf("the remote's main moved to %s", got)
	}
}
