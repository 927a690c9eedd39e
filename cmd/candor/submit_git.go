package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// gitCommit is a commit as the real git stores it.
type gitCommit struct {
	id     string // hex
	format string // "sha1" or "sha256"
	object []byte // git cat-file commit <id>
	gitDir string // absolute
	origin string // remote.origin.url, "" if unset
}

// commitSubmission is the body of a commit submission (api/commit.go).
type commitSubmission struct {
	Kind         string `json:"kind"`
	ObjectFormat string `json:"objectFormat"`
	Commit       string `json:"commit"`
	Object       string `json:"object"`
	Repository   string `json:"repository"`
	PublicKey    string `json:"publicKey"`
}

func runSubmitCommit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o submitOptions
	fs := flag.NewFlagSet("candor submit commit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	repo := fs.String("repo", ".", "the `directory` of the git repository")
	keyFile := fs.String("key", "", "the signer's public key `file`: an SSH public key (.pub, an authorized_keys line) or an armored OpenPGP public key, required")
	repository := fs.String("repository", "", "the repository's `name` in the log (default: remote.origin.url, without credentials)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor submit commit [--repo DIR] --key FILE [--repository NAME] [flags] [<rev>]\n\nLogs a signed git commit (default: HEAD) and writes the log's proof bundle to\n<git dir>/candor/<commit>"+proofSuffix+".")
		fs.PrintDefaults()
	}
	rev, err := parseWithFile(fs, args)
	if err != nil {
		return err
	}
	if *keyFile == "" {
		fs.Usage()
		return errUsage
	}
	if rev == "" {
		rev = "HEAD"
	}
	key, err := readCommitKey(*keyFile)
	if err != nil {
		return err
	}
	c, err := readCommit(ctx, *repo, rev)
	if err != nil {
		return err
	}
	if !c.signed() {
		return fmt.Errorf("commit %s is not signed (it has no gpgsig header): the log accepts signed commits only", c.id)
	}
	name := *repository
	if name == "" {
		name = repositoryName(c.origin)
	}
	if name == "" {
		return fmt.Errorf("couldn't tell the repository's name: %s has no remote.origin.url; give --repository NAME", c.gitDir)
	}
	body, err := json.Marshal(commitSubmission{
		Kind:         "commit",
		ObjectFormat: c.format,
		Commit:       c.id,
		Object:       base64.StdEncoding.EncodeToString(c.object),
		Repository:   name,
		PublicKey:    key,
	})
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = filepath.Join(c.gitDir, "candor", c.id+proofSuffix)
	}
	s, err := o.submitter(stderr)
	if err != nil {
		return err
	}
	l, err := s.submit(ctx, body)
	if err != nil {
		return err
	}
	return l.report(stdout, "commit "+c.id+" of "+name, out)
}

// readCommit reads the commit rev of the repository in dir with git.
func readCommit(ctx context.Context, dir, rev string) (*gitCommit, error) {
	c := &gitCommit{}
	out, err := runGit(ctx, dir, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return nil, err
	}
	c.gitDir = out
	if c.format, err = runGit(ctx, dir, "rev-parse", "--show-object-format"); err != nil {
		return nil, err
	}
	var h hash.Hash
	switch c.format {
	case "sha1":
		h = sha1.New()
	case "sha256":
		h = sha256.New()
	default:
		return nil, fmt.Errorf("the repository's object format is %q, want sha1 or sha256", c.format)
	}
	if c.id, err = runGit(ctx, dir, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}"); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "cat-file", "commit", c.id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if c.object, err = cmd.Output(); err != nil {
		return nil, gitError(cmd.Args, err, stderr.Bytes())
	}
	// What is sent hashes to the id, as the log checks.
	h.Write([]byte("commit " + strconv.Itoa(len(c.object)) + "\x00"))
	h.Write(c.object)
	if got := hex.EncodeToString(h.Sum(nil)); got != c.id {
		return nil, fmt.Errorf("git cat-file commit %s gave an object that hashes to %s", c.id, got)
	}
	// Exit status 1: no such key.
	if c.origin, err = runGit(ctx, dir, "config", "--get", "remote.origin.url"); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			return nil, err
		}
		c.origin = ""
	}
	return c, nil
}

// signed reports whether the commit has a signature header.
func (c *gitCommit) signed() bool {
	header, _, _ := bytes.Cut(c.object, []byte("\n\n"))
	for line := range bytes.SplitSeq(header, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("gpgsig ")) || bytes.HasPrefix(line, []byte("gpgsig-sha256 ")) {
			return true
		}
	}
	return false
}

// runGit runs git in dir and returns its output without the final newline.
func runGit(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", gitError(cmd.Args, err, stderr.Bytes())
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

func gitError(args []string, err error, stderr []byte) error {
	if msg := strings.TrimSpace(string(stderr)); msg != "" {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
}

// repositoryName is the name a remote URL gives the repository in the
// log: the URL as given, without the user information of an http(s) URL
// (which may be a token) nor any password.
func repositoryName(remote string) string {
	u, err := url.Parse(remote)
	if err != nil || u.Scheme == "" || u.User == nil {
		return remote // a path, scp-like syntax (git@host:path), or no credentials
	}
	if _, hasPassword := u.User.Password(); hasPassword || u.Scheme == "http" || u.Scheme == "https" {
		u.User = nil
	}
	return u.String()
}

// readCommitKey reads the signer's public key of a commit: an SSH public
// key line or an armored OpenPGP public key. It returns the file's text,
// trimmed.
func readCommitKey(file string) (string, error) {
	data, err := readInput(file)
	if err != nil {
		return "", err
	}
	if err := refusePrivateKey(file, data); err != nil {
		return "", err
	}
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		return text, nil
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text)); err != nil {
		return "", fmt.Errorf("--key %s is neither an SSH public key nor an armored OpenPGP public key: %w", file, err)
	}
	return text, nil
}
