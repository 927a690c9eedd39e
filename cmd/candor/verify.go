package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
)

// runVerify is "candor verify": offline, it checks that a proof bundle's
// entry is in a checkpoint that satisfies a witness policy, and that the
// entry is about the given artifact or commit.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("candor verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bundleFile := fs.String("bundle", "", "the c2sp.org/tlog-proof `file` (as candor submit writes it), required")
	policyFile := fs.String("policy", "", "the c2sp.org/tlog-policy `file`: the log's key and the witness quorum, required")
	logKey := fs.String("log-key", "", "the log's signed-note verifier `key`, for a policy that lists no logs")
	maxAge := fs.Duration("max-age", 0, "count only cosignatures made within this `duration` (0: any age)")
	artifact := fs.String("artifact", "", "check that the entry is a build attestation with this `file`'s SHA-256 digest among its subjects")
	commit := fs.String("commit", "", "check that the entry is the signed commit `[REPO@]REV` as git resolves it (REPO: a directory, default .)")
	image := fs.String("image", "", "check that the entry is a signature of the image `REGISTRY/REPOSITORY@sha256:HEX`")
	entryFile := fs.String("entry", "", "the canonical entry `file`, for a bundle that does not carry it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor verify --bundle FILE --policy FILE [--max-age D] (--artifact FILE | --commit [REPO@]REV | --image REF@DIGEST | --entry FILE)\n\n"+
			"Checks offline that the bundle's entry is in the log under a checkpoint that the\n"+
			"policy accepts (the log's signature and its witnesses' quorum), and that the\n"+
			"entry is about the artifact, commit or image. Exits 0 only if all of it holds.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	about := 0
	for _, f := range []string{*artifact, *commit, *image} {
		if f != "" {
			about++
		}
	}
	if *bundleFile == "" || *policyFile == "" || about > 1 || about == 0 && *entryFile == "" {
		fs.Usage()
		return errUsage
	}
	if *maxAge < 0 {
		return errors.New("--max-age must not be negative")
	}

	b, err := readInput(*bundleFile)
	if err != nil {
		return fmt.Errorf("couldn't read the bundle: %w", err)
	}
	bundle, err := api.ParseProofBundle(b)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	entry := bundle.Extra
	if *entryFile != "" {
		e, err := readInput(*entryFile)
		if err != nil {
			return fmt.Errorf("couldn't read the entry: %w", err)
		}
		if entry != nil && !bytes.Equal(e, entry) {
			return errors.New("NOT VERIFIED: the --entry file is not the entry the bundle carries")
		}
		entry = e
	}
	if entry == nil {
		return errors.New("the bundle does not carry its entry (no extra line): give it with --entry FILE")
	}
	v, err := bundleVerifier(*policyFile, *logKey, *maxAge, bundle.Checkpoint)
	if err != nil {
		return err
	}

	cp, err := v.verifier.VerifyBundle(bundle, rfc6962.DefaultHasher.HashLeaf(entry))
	if err != nil {
		return fmt.Errorf("NOT VERIFIED: %w", err)
	}
	// The entry's own signatures and canonical form, as the log checked
	// them when it admitted it.
	st, err := api.ParseEntry(entry)
	if err != nil {
		return fmt.Errorf("NOT VERIFIED: the logged entry does not verify: %w", err)
	}
	var what string
	switch {
	case *artifact != "":
		if what, err = checkArtifact(st, *artifact); err != nil {
			return fmt.Errorf("NOT VERIFIED: %w", err)
		}
	case *commit != "":
		if what, err = checkCommit(ctx, st, *commit); err != nil {
			return fmt.Errorf("NOT VERIFIED: %w", err)
		}
	case *image != "":
		if what, err = checkImage(st, *image); err != nil {
			return fmt.Errorf("NOT VERIFIED: %w", err)
		}
	default:
		what = describeEntry(st)
	}
	fmt.Fprintf(stdout, "VERIFIED: %s is entry %d of %s, in its tree of size %d (%s).\n", what, bundle.Index, cp.Origin, cp.Size, v.cosignedBy(cp.Signed))
	return nil
}

// policyVerifier is an offline Verifier of one log under a policy.
type policyVerifier struct {
	verifier *logclient.Verifier
	policy   *api.Policy
}

// bundleVerifier reads the policy and returns an offline verifier of the
// log that signed checkpoint: the policy's log of that origin, or the one
// --log-key names.
func bundleVerifier(policyFile, logKey string, maxAge time.Duration, checkpoint []byte) (*policyVerifier, error) {
	return logVerifier(policyFile, logKey, maxAge, checkpoint, nil, nil)
}

// logVerifier is bundleVerifier for a Verifier that reads the log through
// c (nil: offline) and keeps its last verified checkpoint in state (nil:
// in memory).
func logVerifier(policyFile, logKey string, maxAge time.Duration, checkpoint []byte, c *logclient.Client, state logclient.State) (*policyVerifier, error) {
	text, err := os.ReadFile(policyFile)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the policy: %w", err)
	}
	policy, err := api.ParsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	body, err := api.CheckpointBody(checkpoint)
	if err != nil {
		return nil, fmt.Errorf("NOT VERIFIED: the checkpoint: %w", err)
	}
	cp, err := api.ParseCheckpoint(body)
	if err != nil {
		return nil, fmt.Errorf("NOT VERIFIED: the checkpoint: %w", err)
	}
	var logV note.Verifier
	if logKey != "" {
		if logV, err = api.NewNoteVerifier(logKey); err != nil {
			return nil, fmt.Errorf("--log-key: %w", err)
		}
		if _, ok := logV.(*api.CosignatureVerifier); ok {
			return nil, errors.New("--log-key: a witness's cosignature key, not a log's key")
		}
		if logV.Name() != cp.Origin {
			return nil, fmt.Errorf("NOT VERIFIED: the checkpoint is of the log %q, not of %q (--log-key)", cp.Origin, logV.Name())
		}
	} else {
		i := slices.IndexFunc(policy.Logs(), func(l api.PolicyLog) bool { return l.Origin == cp.Origin })
		if i < 0 {
			return nil, fmt.Errorf("NOT VERIFIED: the checkpoint is of the log %q, which the policy does not list", cp.Origin)
		}
		logV = policy.Logs()[i].Verifier
	}
	if maxAge > 0 && len(policy.Witnesses()) == 0 {
		return nil, errors.New("--max-age: the policy names no witnesses")
	}
	v, err := logclient.NewVerifier(c, logclient.VerifierConfig{Origin: cp.Origin, LogVerifier: logV, Policy: policy, MaxCosignatureAge: maxAge, State: state})
	if err != nil {
		return nil, fmt.Errorf("NOT VERIFIED: %w", err)
	}
	return &policyVerifier{verifier: v, policy: policy}, nil
}

// cosignedBy says which of the policy's witnesses cosigned signed, in the
// policy's order.
func (v *policyVerifier) cosignedBy(signed []byte) string {
	var names []string
	for _, w := range v.policy.Witnesses() {
		if _, ok := cosignature(signed, w); ok {
			names = append(names, w.Name)
		}
	}
	if len(names) == 0 {
		return "the policy asks for no witness cosignature"
	}
	return "cosigned by " + strings.Join(names, ", ")
}

// cosignature returns w's cosignature on signed, if one verifies.
func cosignature(signed []byte, w api.PolicyWitness) (note.Signature, bool) {
	n, err := note.Open(signed, note.VerifierList(w.Verifier))
	if err != nil || len(n.Sigs) == 0 {
		return note.Signature{}, false
	}
	return n.Sigs[0], true
}

// checkArtifact checks that st is a build statement with the SHA-256
// digest of file among its subjects, and describes it.
func checkArtifact(st api.Statement, file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("couldn't read the artifact: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("couldn't read the artifact: %w", err)
	}
	digest := fmt.Sprintf("sha256:%x", h.Sum(nil))
	if st.Kind() != api.KindBuild {
		return "", fmt.Errorf("the entry is of kind %s, not a build attestation about %s (%s)", st.Kind(), file, digest)
	}
	if !slices.Contains(st.Subjects(), digest) {
		return "", fmt.Errorf("the build attestation is not about %s: its digest %s is not among the subjects %s", file, digest, strings.Join(st.Subjects(), ", "))
	}
	return fmt.Sprintf("the build attestation of %s (%s)", file, digest), nil
}

// checkCommit checks that st is the signed commit that git resolves spec,
// [REPO@]REV, to, and describes it.
func checkCommit(ctx context.Context, st api.Statement, spec string) (string, error) {
	dir, rev := splitCommitSpec(spec)
	id, err := runGit(ctx, dir, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("couldn't resolve %s: %w", spec, err)
	}
	if st.Kind() != api.KindCommit {
		return "", fmt.Errorf("the entry is of kind %s, not the signed commit %s", st.Kind(), id)
	}
	if logged := termValue(st, api.SearchCommit); logged != id {
		return "", fmt.Errorf("the entry is the commit %s, not %s (%s)", logged, id, spec)
	}
	return describeEntry(st), nil
}

// imageStatement is what verify reads of an image entry.
type imageStatement interface {
	ImageDigest() string
	ImageRepository() string
}

// checkImage checks that st is a signature of the image ref,
// REGISTRY/REPOSITORY@sha256:HEX: of its digest and its repository.
func checkImage(st api.Statement, ref string) (string, error) {
	d, err := name.NewDigest(ref)
	if err != nil {
		return "", fmt.Errorf("--image %q is not an image reference with a digest (REGISTRY/REPOSITORY@sha256:HEX): %w", ref, err)
	}
	is, ok := st.(imageStatement)
	if !ok {
		return "", fmt.Errorf("the entry is of kind %s, not a signature of the image %s", st.Kind(), ref)
	}
	if is.ImageDigest() != d.DigestStr() {
		return "", fmt.Errorf("the entry signs the image manifest %s, not %s", is.ImageDigest(), d.DigestStr())
	}
	if is.ImageRepository() != d.Context().Name() {
		return "", fmt.Errorf("the entry signs an image of %s, not of %s", is.ImageRepository(), d.Context().Name())
	}
	return describeEntry(st), nil
}

// splitCommitSpec splits [REPO@]REV: REPO is the longest prefix before an
// @ that is a directory, so that revisions such as main@{1} still work.
func splitCommitSpec(spec string) (dir, rev string) {
	for i := len(spec) - 1; i > 0; i-- {
		if spec[i] != '@' {
			continue
		}
		if fi, err := os.Stat(spec[:i]); err == nil && fi.IsDir() {
			return spec[:i], spec[i+1:]
		}
	}
	return ".", spec
}

// termValue returns the value of st's search term param (one that a
// statement has once), or "".
func termValue(st api.Statement, param string) string {
	for _, t := range api.SearchTerms(st) {
		if t.Param == param {
			return t.Value
		}
	}
	return ""
}

// describeEntry names what an entry is about.
func describeEntry(st api.Statement) string {
	switch st.Kind() {
	case api.KindCommit:
		return fmt.Sprintf("the signed commit %s of %s", termValue(st, api.SearchCommit), termValue(st, api.SearchRepository))
	case api.KindBuild:
		return "the build attestation of " + strings.Join(st.Subjects(), ", ")
	case api.KindImage:
		if is, ok := st.(imageStatement); ok {
			return fmt.Sprintf("the signature of the image %s@%s by key %s", is.ImageRepository(), is.ImageDigest(), st.KeyFingerprints()[0])
		}
		return "the image signature"
	default:
		return "the " + st.Kind() + " entry"
	}
}
