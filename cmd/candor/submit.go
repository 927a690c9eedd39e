package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/internal/atomicfile"
)

// The submit command: one way to log every kind of entry.
//
//	candor submit commit [--repo DIR] --key FILE [--repository NAME] [<rev>]
//	candor submit build --key FILE [--key FILE ...] envelope.json
//	candor submit image --key FILE REGISTRY/REPOSITORY@sha256:HEX
//	candor submit image --payload FILE --signature FILE (--key FILE | --cert FILE)
//	candor submit bundle [--key FILE] [--image REF@DIGEST] FILE
//
// It sends the submission to the log (--log or CANDOR_LOG), retries while
// the log answers 429 or 503 (after the Retry-After it asks for), waits for
// the proof of an entry the log accepted but has not yet had cosigned by
// its witnesses (202), checks the proof bundle against the entry it sent,
// and writes the bundle.

const (
	// defaultWait bounds the time spent waiting, by default.
	defaultWait = time.Minute
	// defaultRetries is how many times a 429 or 503 is retried, by default.
	defaultRetries = 8
	// firstBackoff is the delay before the first retry of a reply with no
	// Retry-After; it doubles up to maxBackoff.
	firstBackoff = time.Second
	maxBackoff   = 10 * time.Second
	// maxInputSize bounds the files read: an entry is at most 64 KiB.
	maxInputSize = 4 << 20
	// proofSuffix is the extension of a written bundle.
	proofSuffix = ".tlog-proof"
	// requestSlack is how much longer than --wait a request to the log may
	// take: a log with a witness policy holds a submission for its
	// witnessWait before it answers 202.
	requestSlack = 30 * time.Second
)

// submitOptions are the flags every kind of submission takes.
type submitOptions struct {
	log     string
	logKey  string
	out     string
	wait    time.Duration
	retries int
}

func (o *submitOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.log, "log", "", "the log's base `URL` (default: $CANDOR_LOG)")
	fs.StringVar(&o.logKey, "log-key", "", "the log's signed-note verifier `key` (name+id+key): if given, the checkpoint's signature is checked too")
	fs.StringVar(&o.out, "out", "", "the `file` to write the c2sp.org/tlog-proof bundle to (default: beside the envelope; for a commit, <git dir>/candor/<commit>.tlog-proof)")
	fs.DurationVar(&o.wait, "wait", defaultWait, "the most time spent waiting: for the Retry-After of a busy log, and for the proof of an entry the log's witnesses have not yet cosigned")
	fs.IntVar(&o.retries, "retries", defaultRetries, "the most retries of a submission the log answers with 429 or 503")
}

// submitter sends one submission and gets its checked proof bundle.
type submitter struct {
	c       *logclient.Client
	verify  note.Verifier // nil: the checkpoint's signature is not checked
	wait    time.Duration
	retries int
	stderr  io.Writer
}

func (o *submitOptions) submitter(stderr io.Writer) (*submitter, error) {
	if o.log == "" {
		o.log = os.Getenv("CANDOR_LOG")
	}
	if o.log == "" {
		return nil, errors.New("no log: give --log URL or set CANDOR_LOG")
	}
	if !strings.HasPrefix(o.log, "http://") && !strings.HasPrefix(o.log, "https://") {
		return nil, fmt.Errorf("the log %q is not an http:// or https:// URL", o.log)
	}
	if o.wait < 0 || o.retries < 0 {
		return nil, errors.New("--wait and --retries must not be negative")
	}
	s := &submitter{c: logclient.New(o.log, &http.Client{Timeout: o.wait + requestSlack}), wait: o.wait, retries: o.retries, stderr: stderr}
	if o.logKey != "" {
		v, err := api.NewNoteVerifier(o.logKey)
		if err != nil {
			return nil, fmt.Errorf("--log-key: %w", err)
		}
		if _, ok := v.(*api.CosignatureVerifier); ok {
			return nil, errors.New("--log-key: a witness's cosignature key, not a log's key")
		}
		s.verify = v
	}
	return s, nil
}

// logged is a checked submission.
type logged struct {
	index     uint64
	duplicate bool
	witnessed *bool
	bundle    []byte
	cp        api.Checkpoint
}

// refusedError is the log's refusal of a submission: a 4xx with a reason.
type refusedError struct {
	code   int
	reason string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("the log refused it (%d %s): %s", e.code, http.StatusText(e.code), e.reason)
}

// submit sends body, a POST /v1/entries body, and returns the checked
// proof bundle of the entry.
func (s *submitter) submit(ctx context.Context, body []byte) (logged, error) {
	// The entry as the log will store it: its leaf hash is what the bundle
	// must prove. A body this client cannot canonicalize is still sent,
	// so that the log gives its reason.
	entry, localErr := api.CanonicalEntry(body)
	deadline := time.Now().Add(s.wait)

	var r logclient.Submitted
	for attempt := 0; ; attempt++ {
		var err error
		r, err = s.c.Submit(ctx, body)
		if err == nil {
			break
		}
		var se *logclient.StatusError
		if !errors.As(err, &se) {
			return logged{}, err
		}
		if se.StatusCode != http.StatusTooManyRequests && se.StatusCode != http.StatusServiceUnavailable {
			if se.StatusCode >= 400 && se.StatusCode < 500 {
				return logged{}, &refusedError{code: se.StatusCode, reason: se.Message}
			}
			return logged{}, err
		}
		if attempt >= s.retries {
			return logged{}, fmt.Errorf("the log is still busy after %d attempts: %d %s: %s", attempt+1, se.StatusCode, http.StatusText(se.StatusCode), se.Message)
		}
		if err := s.pause(ctx, deadline, retryDelay(se.RetryAfter, attempt), fmt.Sprintf("the log answered %d (%s)", se.StatusCode, se.Message)); err != nil {
			return logged{}, err
		}
	}
	if localErr != nil {
		return logged{}, fmt.Errorf("the log accepted the entry at index %d, but this client couldn't check it: %w", r.Index, localErr)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)
	if !bytes.Equal(r.LeafHash, leaf) {
		return logged{}, fmt.Errorf("the log says it stored an entry with leaf hash %x at index %d, but the entry sent has leaf hash %x", r.LeafHash, r.Index, leaf)
	}
	if r.Pending {
		fmt.Fprintf(s.stderr, "candor submit: the entry is sequenced at index %d; waiting for a checkpoint cosigned by the log's witnesses\n", r.Index)
		b, err := s.awaitProof(ctx, deadline, r.Index, leaf)
		if err != nil {
			return logged{}, err
		}
		yes := true
		r.Bundle, r.Witnessed = b, &yes
	}
	cp, bundle, err := s.checkBundle(r.Bundle, r.Index, entry)
	if err != nil {
		return logged{}, err
	}
	r.Bundle = bundle
	return logged{index: r.Index, duplicate: r.Duplicate, witnessed: r.Witnessed, bundle: r.Bundle, cp: cp}, nil
}

// awaitProof polls the inclusion proof of the entry at index, sequenced
// but not yet witnessed, until a cosigned checkpoint includes it or the
// deadline, and returns it as a proof bundle.
func (s *submitter) awaitProof(ctx context.Context, deadline time.Time, index uint64, leaf []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		p, err := s.c.InclusionProof(ctx, index)
		if err == nil {
			if !bytes.Equal(p.LeafHash, leaf) {
				return nil, fmt.Errorf("the log's inclusion proof of index %d is for leaf hash %x, want %x", index, p.LeafHash, leaf)
			}
			return api.ProofBundle{Index: index, Hashes: p.Hashes, Checkpoint: []byte(p.Checkpoint)}.Marshal(), nil
		}
		var se *logclient.StatusError
		// Not yet witnessed is a 404 with Retry-After.
		retry := errors.As(err, &se) && (se.StatusCode == http.StatusTooManyRequests || se.StatusCode == http.StatusServiceUnavailable ||
			se.StatusCode == http.StatusNotFound && se.RetryAfter > 0)
		if !retry {
			return nil, fmt.Errorf("couldn't get the proof of the entry at index %d: %w", index, err)
		}
		why := fmt.Sprintf("the proof of index %d is not ready", index)
		if err := s.pause(ctx, deadline, retryDelay(se.RetryAfter, attempt), why); err != nil {
			return nil, fmt.Errorf("%w; the entry is sequenced and durable at index %d: submit it again later to get its proof (the log answers a duplicate with its index)", err, index)
		}
	}
}

// pause sleeps d, unless that would pass the deadline.
func (s *submitter) pause(ctx context.Context, deadline time.Time, d time.Duration, why string) error {
	if time.Until(deadline) < d {
		return fmt.Errorf("%s, and waiting %s more would exceed --wait %s", why, d, s.wait)
	}
	fmt.Fprintf(s.stderr, "candor submit: %s; retrying in %s\n", why, d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryDelay is the server's Retry-After if it gave one, else an
// exponential backoff.
func retryDelay(retryAfter time.Duration, attempt int) time.Duration {
	if retryAfter > 0 {
		return retryAfter
	}
	return min(firstBackoff<<min(attempt, 8), maxBackoff)
}

// checkBundle checks that b is a proof bundle of entry at index, against
// its checkpoint, whose log signature it checks too with the --log-key
// verifier if there is one. It returns the checkpoint and the bundle with
// the entry in its extra line (as the log serves it), so that the bundle
// alone is enough for candor verify.
func (s *submitter) checkBundle(b []byte, index uint64, entry []byte) (api.Checkpoint, []byte, error) {
	p, err := api.ParseProofBundle(b)
	if err != nil {
		return api.Checkpoint{}, nil, fmt.Errorf("the log's proof bundle: %w", err)
	}
	if p.Index != index {
		return api.Checkpoint{}, nil, fmt.Errorf("the log's proof bundle is for index %d, but the log says the entry is at index %d", p.Index, index)
	}
	if p.Extra != nil && !bytes.Equal(p.Extra, entry) {
		return api.Checkpoint{}, nil, fmt.Errorf("the log's proof bundle carries another entry than the one sent")
	}
	p.Extra = entry
	c, err := s.checkProof(p, rfc6962.DefaultHasher.HashLeaf(entry))
	if err != nil {
		return api.Checkpoint{}, nil, err
	}
	return c, p.Marshal(), nil
}

// checkProof checks that p proves leaf, as checkBundle says.
func (s *submitter) checkProof(p api.ProofBundle, leaf []byte) (api.Checkpoint, error) {
	if s.verify != nil {
		c, err := api.VerifyProofBundle(p, leaf, s.verify.Name(), s.verify)
		if err != nil {
			return api.Checkpoint{}, fmt.Errorf("the log's proof bundle: %w", err)
		}
		return c, nil
	}
	body, err := api.CheckpointBody(p.Checkpoint)
	if err != nil {
		return api.Checkpoint{}, fmt.Errorf("the log's proof bundle: %w", err)
	}
	c, err := api.ParseCheckpoint(body)
	if err != nil {
		return api.Checkpoint{}, fmt.Errorf("the log's proof bundle: %w", err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, c.Size, leaf, p.Hashes, c.Hash[:]); err != nil {
		return api.Checkpoint{}, fmt.Errorf("the log's proof bundle: the inclusion proof of index %d in the tree of size %d does not verify: %w", p.Index, c.Size, err)
	}
	return c, nil
}

// report writes the bundle to out and prints the index and a summary.
func (l logged) report(stdout io.Writer, what, out string) error {
	if err := atomicfile.Replace(out, l.bundle, 0o644); err != nil {
		return fmt.Errorf("couldn't write the proof bundle: %w", err)
	}
	state := "logged"
	if l.duplicate {
		state = "already logged"
	}
	var witnessed string
	switch {
	case l.witnessed == nil:
	case *l.witnessed:
		witnessed = ", cosigned by its witnesses"
	default:
		witnessed = ", not cosigned by its witnesses"
	}
	fmt.Fprintf(stdout, "%d\n%s: %s at index %d of %s (checkpoint of size %d%s); proof in %s\n",
		l.index, what, state, l.index, l.cp.Origin, l.cp.Size, witnessed, out)
	return nil
}

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, `usage: candor submit <kind> [flags]

  candor submit commit [--repo DIR] --key FILE [--repository NAME] [<rev>]
        log a signed git commit (default: HEAD of the current repository);
        FILE is the signer's SSH public key (.pub) or armored OpenPGP key
  candor submit build --key FILE [--key FILE ...] envelope.json
        log a DSSE envelope holding an in-toto Statement; one PEM public
        key per signature
  candor submit image --key cosign.pub REGISTRY/REPOSITORY@sha256:HEX
  candor submit image --payload FILE --signature FILE (--key FILE | --cert FILE)
        log cosign's signatures of a container image, from its registry
        or from files
  candor submit bundle [--key FILE] [--image REF@DIGEST] bundle.json
        log a Sigstore bundle: a build attestation, or with --image a
        signature of that image

The log is --log URL or $CANDOR_LOG. The proof bundle is written to --out,
by default beside the envelope (envelope.json.tlog-proof) or, for a
commit, to <git dir>/candor/<commit>.tlog-proof. Run "candor submit <kind> -h"
for the flags.`)
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	switch args[0] {
	case "commit":
		return runSubmitCommit(ctx, args[1:], stdout, stderr)
	case "build":
		return runSubmitBuild(ctx, args[1:], stdout, stderr)
	case "image":
		return runSubmitImage(ctx, args[1:], stdout, stderr)
	case "bundle":
		return runSubmitBundle(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage()
		return flag.ErrHelp
	default:
		fmt.Fprintf(stderr, "candor submit: unknown kind %q\n", args[0])
		usage()
		return errUsage
	}
}

// stringsFlag is a flag that may be repeated.
type stringsFlag []string

func (f *stringsFlag) String() string     { return strings.Join(*f, ",") }
func (f *stringsFlag) Set(v string) error { *f = append(*f, v); return nil }

func runSubmitBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o submitOptions
	var keys stringsFlag
	fs := flag.NewFlagSet("candor submit build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs)
	fs.Var(&keys, "key", "a PEM public key `file` (or an X.509 certificate) of a signer; one per signature of the envelope, required")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor submit build --key FILE [--key FILE ...] [flags] envelope.json\n\nLogs a DSSE envelope holding an in-toto Statement (as in-toto tools write it:\none JSON object, or a .jsonl file of one line) and writes the log's proof\nbundle beside it, as envelope.json"+proofSuffix+".")
		fs.PrintDefaults()
	}
	file, err := parseWithFile(fs, args)
	if err != nil {
		return err
	}
	if file == "" || len(keys) == 0 {
		fs.Usage()
		return errUsage
	}
	body, err := buildSubmission(file, keys)
	if err != nil {
		return err
	}
	return o.submitBeside(ctx, body, file, "build "+file, stdout, stderr)
}

// submitBeside submits body, read from file, and writes the proof bundle
// to --out, by default beside file.
func (o *submitOptions) submitBeside(ctx context.Context, body []byte, file, what string, stdout, stderr io.Writer) error {
	out := o.out
	if out == "" {
		out = file + proofSuffix
	}
	s, err := o.submitter(stderr)
	if err != nil {
		return err
	}
	l, err := s.submit(ctx, body)
	if err != nil {
		return err
	}
	return l.report(stdout, what, out)
}

// parseWithFile parses flags and one positional argument, which may come
// before the flags, after them or between them; it returns "" if there is
// none.
func parseWithFile(fs *flag.FlagSet, args []string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(pos) {
	case 0:
		return "", nil
	case 1:
		return pos[0], nil
	default:
		return "", fmt.Errorf("unexpected arguments %q", pos[1:])
	}
}

// buildSubmission reads a DSSE envelope and the signers' keys and returns
// the body of a build submission (api/build.go).
func buildSubmission(file string, keyFiles []string) ([]byte, error) {
	data, err := readInput(file)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s is not a JSON DSSE envelope: %w", file, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s holds more than one JSON value: give one envelope per submission", file)
	}
	var env struct {
		PayloadType string            `json:"payloadType"`
		Payload     string            `json:"payload"`
		Signatures  []json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.PayloadType == "" || env.Payload == "" {
		return nil, fmt.Errorf("%s is not a DSSE envelope (an object with payloadType, payload and signatures)", file)
	}
	if len(env.Signatures) != len(keyFiles) {
		return nil, fmt.Errorf("%s has %d signatures, and %d --key given: give the public key of each signer", file, len(env.Signatures), len(keyFiles))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	pems := make([]string, len(keyFiles))
	for i, f := range keyFiles {
		if pems[i], err = readPEMPublicKey(f); err != nil {
			return nil, err
		}
	}
	keysJSON, err := json.Marshal(pems)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"kind":"build","envelope":`)
	b.Write(compact.Bytes())
	b.WriteString(`,"publicKeys":`)
	b.Write(keysJSON)
	b.WriteString("}")
	return b.Bytes(), nil
}

// readPEMPublicKey reads a PEM "PUBLIC KEY" file, or the key of a PEM
// certificate, and returns it as a PEM "PUBLIC KEY" block.
func readPEMPublicKey(file string) (string, error) {
	data, err := readInput(file)
	if err != nil {
		return "", err
	}
	if err := refusePrivateKey(file, data); err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("--key %s is not a PEM public key", file)
	}
	der := block.Bytes
	switch block.Type {
	case "PUBLIC KEY":
		if _, err := x509.ParsePKIXPublicKey(der); err != nil {
			return "", fmt.Errorf("--key %s: %w", file, err)
		}
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return "", fmt.Errorf("--key %s: %w", file, err)
		}
		if der, err = x509.MarshalPKIXPublicKey(cert.PublicKey); err != nil {
			return "", fmt.Errorf("--key %s: the certificate's key: %w", file, err)
		}
	default:
		return "", fmt.Errorf("--key %s is a PEM %q block, want a PUBLIC KEY or a CERTIFICATE", file, block.Type)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// refusePrivateKey fails if data looks like a private key, so that one
// given by mistake for its public half is not published in the log.
func refusePrivateKey(file string, data []byte) error {
	if bytes.Contains(data, []byte("PRIVATE KEY")) {
		return fmt.Errorf("--key %s holds a PRIVATE key: give the public key (such as the .pub file, or the output of gpg --armor --export)", file)
	}
	return nil
}

// readInput reads a file of at most maxInputSize bytes.
func readInput(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", file, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInputSize+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", file, err)
	}
	if len(data) > maxInputSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", file, maxInputSize)
	}
	return data, nil
}
