package apitest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// The ids of the empty tree, which every commit of a CommitSigner names.
const (
	emptyTreeSHA1   = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	emptyTreeSHA256 = "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"
)

// CommitIdentity is the author and committer of a CommitSigner's commits,
// as git writes it in a commit object.
const CommitIdentity = "Candor Test <test@candor.invalid> 1700000000 +0000"

// CommitSigner makes signed "commit" submissions: git commit objects
// signed as git does with gpg.format=ssh (an SSHSIG in the namespace
// "git", hash sha512, as ssh-keygen -Y sign makes it) with one SSH Ed25519
// key. It is safe for concurrent use.
type CommitSigner struct {
	signer ssh.Signer
	// authorizedKey is the public key as an authorized_keys line without
	// comment.
	authorizedKey string
	fingerprint   string
}

// NewCommitSigner returns a CommitSigner with a new random key.
func NewCommitSigner() *CommitSigner {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	return newCommitSigner(ed25519.NewKeyFromSeed(seed))
}

// NewCommitSignerFromSeed returns a CommitSigner whose key is derived from
// seed, of any length: the same seed gives the same key.
func NewCommitSignerFromSeed(seed []byte) *CommitSigner {
	h := sha256.Sum256(append([]byte("commit "), seed...))
	return newCommitSigner(ed25519.NewKeyFromSeed(h[:]))
}

func newCommitSigner(key ed25519.PrivateKey) *CommitSigner {
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		panic("apitest: couldn't make an SSH signer: " + err.Error())
	}
	pub := signer.PublicKey()
	return &CommitSigner{
		signer:        signer,
		authorizedKey: pub.Type() + " " + base64.StdEncoding.EncodeToString(pub.Marshal()),
		fingerprint:   ssh.FingerprintSHA256(pub),
	}
}

// PublicKey returns the signer's public key as an authorized_keys line
// without comment, as the publicKey field of a submission.
func (s *CommitSigner) PublicKey() string { return s.authorizedKey }

// KeyFingerprint returns the key's fingerprint as api.Statement's
// KeyFingerprints reports it and ssh-keygen -l prints it:
// "SHA256:<unpadded base64>".
func (s *CommitSigner) KeyFingerprint() string { return s.fingerprint }

// Commit returns a signed commit object of a repository of objectFormat
// ("sha1" or "sha256") with the empty tree, the given parents (ids in that
// format), CommitIdentity as author and committer, and message, and its id
// in hex. The result depends only on the inputs and the key (Ed25519 is
// deterministic).
func (s *CommitSigner) Commit(objectFormat string, parents []string, message string) (id string, object []byte) {
	tree, sigHeader := emptyTreeSHA1, "gpgsig"
	var h hash.Hash = sha1.New()
	if objectFormat == "sha256" {
		tree, sigHeader, h = emptyTreeSHA256, "gpgsig-sha256", sha256.New()
	}
	var head bytes.Buffer
	head.WriteString("tree " + tree + "\n")
	for _, p := range parents {
		head.WriteString("parent " + p + "\n")
	}
	head.WriteString("author " + CommitIdentity + "\n")
	head.WriteString("committer " + CommitIdentity + "\n")
	body := "\n" + message
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}

	payload := append(bytes.Clone(head.Bytes()), body...)
	sig, err := sshsig.Sign(bytes.NewReader(payload), s.signer, sshsig.HashSHA512, "git")
	if err != nil {
		panic("apitest: couldn't sign a commit: " + err.Error())
	}
	armored := strings.TrimSuffix(string(sshsig.Armor(sig)), "\n")

	object = head.Bytes()
	object = append(object, sigHeader+" "...)
	object = append(object, strings.ReplaceAll(armored, "\n", "\n ")...)
	object = append(object, '\n')
	object = append(object, body...)

	h.Write([]byte("commit " + strconv.Itoa(len(object)) + "\x00"))
	h.Write(object)
	return hex.EncodeToString(h.Sum(nil)), object
}

// Submission returns a complete POST /v1/entries body of kind "commit": a
// commit of a sha1 repository made by Commit with no parents, for
// repository. The result depends only on the inputs and the key.
func (s *CommitSigner) Submission(repository, message string) []byte {
	return s.SubmissionOf("sha1", repository, nil, message)
}

// SubmissionOf is Submission for a repository of objectFormat, with
// parents.
func (s *CommitSigner) SubmissionOf(objectFormat, repository string, parents []string, message string) []byte {
	id, object := s.Commit(objectFormat, parents, message)
	b := make([]byte, 0, 256+len(repository)+len(s.authorizedKey)+base64.StdEncoding.EncodedLen(len(object)))
	b = append(b, `{"kind":"commit","objectFormat":`...)
	b = appendJSONString(b, objectFormat)
	b = append(b, `,"commit":"`...)
	b = append(b, id...)
	b = append(b, `","object":"`...)
	b = base64.StdEncoding.AppendEncode(b, object)
	b = append(b, `","repository":`...)
	b = appendJSONString(b, repository)
	b = append(b, `,"publicKey":`...)
	b = appendJSONString(b, s.authorizedKey)
	return append(b, '}')
}
