package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/witnessing"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// TestMain lets the test binary act as the candor command, for git hooks
// run by the real git: with CANDOR_TEST_RUN_AS_CANDOR=1, it runs the
// arguments as a candor command line.
func TestMain(m *testing.M) {
	if os.Getenv("CANDOR_TEST_RUN_AS_CANDOR") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// runCandor runs the candor command with args and returns its exit code,
// stdout and stderr.
func runCandor(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// buildFiles writes, in dir, the DSSE envelope of a build submission by
// signer (as name.json) and the signer's PEM public key (as name.pem). It
// returns their paths and the submission.
func buildFiles(t testing.TB, dir, name string, signer *apitest.BuildSigner, subject string) (envFile, keyFile string, submission []byte) {
	t.Helper()
	digest := fmt.Sprintf("%064x", []byte(subject))[:64]
	submission = signer.Submission(subject, digest)
	var s struct {
		Envelope   json.RawMessage `json:"envelope"`
		PublicKeys []string        `json:"publicKeys"`
	}
	if err := json.Unmarshal(submission, &s); err != nil {
		t.Fatal(err)
	}
	// Indented, as in-toto tools write it.
	var env bytes.Buffer
	if err := json.Indent(&env, s.Envelope, "", "  "); err != nil {
		t.Fatal(err)
	}
	envFile, keyFile = filepath.Join(dir, name+".json"), filepath.Join(dir, name+".pem")
	if err := os.WriteFile(envFile, append(env.Bytes(), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(s.PublicKeys[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	return envFile, keyFile, submission
}

// checkBundleFile checks that file holds a proof bundle of the entry of
// submission at index, signed by the log of vkey, and returns it.
func checkBundleFile(t testing.TB, file string, submission []byte, index uint64, vkey string) api.ProofBundle {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the proof bundle: %v", err)
	}
	p, err := api.ParseProofBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Index != index {
		t.Fatalf("the bundle's index is %d, want %d", p.Index, index)
	}
	entry, err := api.CanonicalEntry(submission)
	if err != nil {
		t.Fatal(err)
	}
	v, err := api.NewNoteVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.VerifyProofBundle(p, rfc6962.DefaultHasher.HashLeaf(entry), v.Name(), v); err != nil {
		t.Fatalf("the written bundle: %v", err)
	}
	return p
}

// TestSubmitBuild submits a build envelope to a real log: a new entry, a
// duplicate, and what the command refuses or the log refuses.
func TestSubmitBuild(t *testing.T) {
	t.Setenv("CANDOR_LOG", "")
	url, vkey := newTestLog(t, nil)
	dir := t.TempDir()
	signer := apitest.NewBuildSigner()
	env, key, submission := buildFiles(t, dir, "app", signer, "app.tar.gz")

	code, stdout, stderr := runCandor(t, "submit", "build", "--log", url, "--key", key, env)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	t.Logf("stdout:\n%s", stdout)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 || lines[0] != "0" || !strings.Contains(lines[1], "logged at index 0 of example.com/bench-test") ||
		!strings.Contains(lines[1], env+".tlog-proof") || strings.Contains(lines[1], "already") {
		t.Errorf("stdout:\n%s", stdout)
	}
	first := checkBundleFile(t, env+".tlog-proof", submission, 0, vkey)

	// A second entry, so that the duplicate is proven in a larger tree;
	// the log from CANDOR_LOG, the file before the flags.
	env2, key2, submission2 := buildFiles(t, dir, "lib", apitest.NewBuildSigner(), "lib.so")
	t.Setenv("CANDOR_LOG", url)
	if code, stdout, stderr := runCandor(t, "submit", "build", env2, "--key", key2, "--log-key", vkey); code != 0 || !strings.HasPrefix(stdout, "1\n") {
		t.Fatalf("second entry: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	checkBundleFile(t, env2+".tlog-proof", submission2, 1, vkey)

	// The same envelope again: 200, the same index, a new proof.
	out := filepath.Join(dir, "again", "app.proof")
	code, stdout, stderr = runCandor(t, "submit", "build", "--key", key, "--out", out, "--log-key", vkey, env)
	if code != 0 || !strings.HasPrefix(stdout, "0\n") || !strings.Contains(stdout, "already logged at index 0") {
		t.Fatalf("duplicate: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	again := checkBundleFile(t, out, submission, 0, vkey)
	if len(again.Hashes) == len(first.Hashes) {
		t.Errorf("the duplicate's proof has %d hashes, like the first one in a tree of one entry", len(again.Hashes))
	}

	// Refusals. None writes a bundle.
	otherEnv, _, _ := buildFiles(t, dir, "other", apitest.NewBuildSigner(), "other.bin")
	privateKey := filepath.Join(dir, "private.pem")
	os.WriteFile(privateKey, []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"), 0o600)
	_, _, otherLogVkey := apitest.NewNoteKey("example.com/bench-test", rand.Reader)
	refusedOut := filepath.Join(dir, "refused.proof")
	for _, tc := range []struct {
		name string
		args []string
		env  string // CANDOR_LOG
		want string
	}{
		{"another signer's key", []string{"--key", key, otherEnv}, url, "the log refused it (400 Bad Request): invalid entry: envelope signature 0 doesn't verify"},
		{"no log", []string{"--key", key, env}, "", "no log: give --log URL or set CANDOR_LOG"},
		{"two keys for one signature", []string{"--key", key, "--key", key2, env}, url, "has 1 signatures, and 2 --key given"},
		{"a private key", []string{"--key", privateKey, env}, url, "holds a PRIVATE key"},
		{"not an envelope", []string{"--key", key, key}, url, "is not a JSON DSSE envelope"},
		{"another log's key", []string{"--key", key, "--log-key", otherLogVkey, env}, url, "the log's proof bundle: couldn't verify proof bundle"},
	} {
		t.Setenv("CANDOR_LOG", tc.env)
		code, stdout, stderr := runCandor(t, append([]string{"submit", "build", "--out", refusedOut}, tc.args...)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.name, code, stdout, stderr, tc.want)
		}
		if _, err := os.Stat(refusedOut); err == nil {
			t.Fatalf("%s: a bundle was written", tc.name)
		}
	}
	// Usage errors exit 2.
	for _, args := range [][]string{{"submit"}, {"submit", "image"}, {"submit", "build", env}, {"submit", "build", "--key", key}, {"submit", "commit"}} {
		if code, _, _ := runCandor(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// faultFront answers submissions with the replies in faults, one each,
// before passing them to the log, and records when each submission came.
// If endless, the last fault is the answer to every later submission.
type faultFront struct {
	next    http.Handler
	mu      sync.Mutex
	faults  []fault
	endless bool
	posts   []time.Time
}

type fault struct {
	code       int
	retryAfter string
}

func (f *faultFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/entries" {
		f.mu.Lock()
		f.posts = append(f.posts, time.Now())
		var ft *fault
		if len(f.faults) > 0 {
			ft = &f.faults[0]
			if len(f.faults) > 1 || !f.endless {
				f.faults = f.faults[1:]
			}
		}
		f.mu.Unlock()
		if ft != nil {
			io.Copy(io.Discard, r.Body)
			if ft.retryAfter != "" {
				w.Header().Set("Retry-After", ft.retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ft.code)
			fmt.Fprintf(w, `{"error":"injected %d"}`+"\n", ft.code)
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

func (f *faultFront) set(endless bool, faults ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults, f.endless, f.posts = faults, endless, nil
}

func (f *faultFront) submissions() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts
}

// TestSubmitRetries checks that 503 and 429 are retried after the delay
// their Retry-After asks for, and that retries are bounded by --retries
// and --wait.
func TestSubmitRetries(t *testing.T) {
	front := &faultFront{}
	url, vkey := newTestLog(t, func(h http.Handler) http.Handler { front.next = h; return front })
	dir := t.TempDir()
	env, key, submission := buildFiles(t, dir, "app", apitest.NewBuildSigner(), "app")

	front.set(false, fault{http.StatusServiceUnavailable, ""}, fault{http.StatusTooManyRequests, "2"}, fault{http.StatusServiceUnavailable, "1"})
	code, stdout, stderr := runCandor(t, "submit", "build", "--log", url, "--key", key, env)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	t.Logf("stderr:\n%s", stderr)
	posts := front.submissions()
	if len(posts) != 4 || !strings.HasPrefix(stdout, "0\n") {
		t.Fatalf("%d submissions, stdout %q; want 4 (3 faults, then the log)", len(posts), stdout)
	}
	// Each retry came no sooner than asked: the first backoff after a
	// reply without Retry-After, then 2s and 1s.
	for i, want := range []time.Duration{firstBackoff, 2 * time.Second, time.Second} {
		if gap := posts[i+1].Sub(posts[i]); gap < want {
			t.Errorf("retry %d came %s after the fault, before the %s asked for", i+1, gap, want)
		}
	}
	for _, want := range []string{"the log answered 503 (injected 503); retrying in 1s", "the log answered 429 (injected 429); retrying in 2s", "the log answered 503 (injected 503); retrying in 1s"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	checkBundleFile(t, env+".tlog-proof", submission, 0, vkey)

	// A log that stays busy: --retries bounds the attempts.
	os.Remove(env + ".tlog-proof")
	front.set(true, fault{http.StatusServiceUnavailable, "1"})
	code, _, stderr = runCandor(t, "submit", "build", "--log", url, "--key", key, "--retries", "2", env)
	if n := len(front.submissions()); code != 1 || n != 3 || !strings.Contains(stderr, "the log is still busy after 3 attempts: 503 Service Unavailable: injected 503") {
		t.Errorf("endless 503 with --retries 2: exit %d after %d submissions, stderr:\n%s", code, n, stderr)
	}
	// A Retry-After beyond --wait: no wait at all.
	front.set(true, fault{http.StatusTooManyRequests, "3600"})
	code, _, stderr = runCandor(t, "submit", "build", "--log", url, "--key", key, "--wait", "10s", env)
	if n := len(front.submissions()); code != 1 || n != 1 || !strings.Contains(stderr, "waiting 1h0m0s more would exceed --wait 10s") {
		t.Errorf("Retry-After 3600 with --wait 10s: exit %d after %d submissions, stderr:\n%s", code, n, stderr)
	}
	if _, err := os.Stat(env + ".tlog-proof"); err == nil {
		t.Error("a bundle was written after the log stayed busy")
	}
}

// gatedWitness is a real witness whose add-checkpoint requests wait while
// its gate is shut: a witness that cosigns late.
type gatedWitness struct {
	h    http.Handler
	mu   sync.Mutex
	gate chan struct{} // closed: open
}

func (g *gatedWitness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	select {
	case <-gate:
	case <-r.Context().Done():
		return
	}
	g.h.ServeHTTP(w, r)
}

func (g *gatedWitness) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}

func (g *gatedWitness) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
		g.gate = make(chan struct{})
	default:
	}
}

// TestSubmitPending submits to a log with a witness policy whose only
// witness cosigns only once the command asks for the proof: the log
// answers 202 and the command waits for the cosigned checkpoint. Then the
// witness cosigns too late for --wait, and the command fails; submitted
// again once the witness is back, the entry gets its proof.
func TestSubmitPending(t *testing.T) {
	const origin = "example.com/witnessed"
	quiet := slog.New(slog.DiscardHandler)
	signer, verifier, vkey := apitest.NewNoteKey(origin, rand.Reader)

	skey, wvkey, err := api.GenerateCosignerKey(rand.Reader, "example.com/witness")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	wit, err := witness.New(witness.Config{Cosigner: cosigner, Logs: []witness.Log{{Origin: origin, Verifier: verifier}}, State: state, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	wh, err := witness.NewHandler(wit, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	gw := &gatedWitness{h: wh, gate: make(chan struct{})}
	wsrv := httptest.NewServer(gw)
	t.Cleanup(wsrv.Close)
	t.Cleanup(gw.open) // runs first: requests waiting at the gate end

	policy, err := api.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness w %s %s\ngroup g 1 w\nquorum g\n", vkey, wvkey, wsrv.URL))
	if err != nil {
		t.Fatal(err)
	}
	coll, err := witnessing.New(witnessing.Config{Policy: policy, Verifier: verifier, Timeout: time.Minute, MaxBackoff: 200 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet, Witnessing: coll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h := log.NewHandler(l, log.HandlerOptions{Logger: quiet, WitnessWait: 100 * time.Millisecond})
	var mu sync.Mutex
	var codes []string
	var openOnProof atomic.Bool
	openOnProof.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/proof/inclusion" && openOnProof.Load() {
			gw.open() // the command asks for the proof: the witness may cosign
		}
		sw := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		mu.Lock()
		codes = append(codes, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, sw.code))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	env, key, submission := buildFiles(t, dir, "app", apitest.NewBuildSigner(), "app")
	code, stdout, stderr := runCandor(t, "submit", "build", "--log", srv.URL, "--key", key, "--log-key", vkey, env)
	t.Logf("requests: %q\nstderr:\n%s", codes, stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if len(codes) < 2 || codes[0] != "POST /v1/entries 202" || codes[len(codes)-1] != "GET /v1/proof/inclusion 200" {
		t.Errorf("requests %q: want a 202, then the proof", codes)
	}
	if !strings.Contains(stderr, "sequenced at index 0; waiting for a checkpoint cosigned by the log's witnesses") ||
		!strings.Contains(stdout, "logged at index 0 of example.com/witnessed") || !strings.Contains(stdout, "cosigned by its witnesses") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	p := checkBundleFile(t, env+".tlog-proof", submission, 0, vkey)
	wv, err := api.NewCosignatureVerifier(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.OpenCheckpoint(p.Checkpoint, origin, verifier); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(p.Checkpoint, []byte("\u2014 "+wv.Name()+" ")) {
		t.Errorf("the bundle's checkpoint has no cosignature of the witness:\n%s", p.Checkpoint)
	}

	// The witness stays away beyond --wait: the command fails, saying
	// that the entry is durable, and writes nothing.
	gw.shut()
	openOnProof.Store(false)
	env2, key2, submission2 := buildFiles(t, dir, "lib", apitest.NewBuildSigner(), "lib")
	code, stdout, stderr = runCandor(t, "submit", "build", "--log", srv.URL, "--key", key2, "--wait", "1s", env2)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "would exceed --wait 1s; the entry is sequenced and durable at index 1: submit it again later") {
		t.Errorf("witness away: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(env2 + ".tlog-proof"); err == nil {
		t.Error("a bundle was written without a proof")
	}
	// Submitted again once the witness is back: the same index, with a
	// cosigned proof.
	gw.open()
	code, stdout, stderr = runCandor(t, "submit", "build", "--log", srv.URL, "--key", key2, "--log-key", vkey, env2)
	if code != 0 || !strings.HasPrefix(stdout, "1\n") || !strings.Contains(stdout, "already logged at index 1") {
		t.Errorf("again: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	p = checkBundleFile(t, env2+".tlog-proof", submission2, 1, vkey)
	if !bytes.Contains(p.Checkpoint, []byte("\u2014 "+wv.Name()+" ")) {
		t.Errorf("the bundle's checkpoint has no cosignature of the witness:\n%s", p.Checkpoint)
	}

	// The written bundle carries the entry and passes candor verify under
	// the log's policy, offline; a policy that needs another witness
	// refuses it.
	entry2, err := api.CanonicalEntry(submission2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Extra, entry2) {
		t.Errorf("the bundle's extra line is not the canonical entry")
	}
	policyFile := writeFile(t, dir, "policy", policy.Marshal())
	code, stdout, stderr = runCandor(t, "verify", "--bundle", env2+".tlog-proof", "--policy", policyFile, "--max-age", "1m", "--entry", writeFile(t, dir, "lib.entry", entry2))
	if code != 0 || !strings.Contains(stdout, "VERIFIED: the build attestation of sha256:") || !strings.Contains(stdout, "is entry 1 of "+origin) || !strings.Contains(stdout, "cosigned by w") {
		t.Errorf("verify: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	_, otherW, err := api.GenerateCosignerKey(rand.Reader, "example.com/other-witness")
	if err != nil {
		t.Fatal(err)
	}
	strict := writeFile(t, dir, "strict-policy", fmt.Appendf(nil, "log %s\nwitness w %s\nwitness x %s\ngroup g 2 w x\nquorum g\n", vkey, wvkey, otherW))
	code, stdout, stderr = runCandor(t, "verify", "--bundle", env2+".tlog-proof", "--policy", strict, "--entry", writeFile(t, dir, "lib.entry", entry2))
	if code != 1 || !strings.Contains(stderr, "NOT VERIFIED") || !strings.Contains(stderr, "quorum") {
		t.Errorf("verify under a stricter policy: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}

	// candor checkpoint and candor prove read the live log under the
	// policy, and their bundles pass candor verify.
	stateFile := filepath.Join(dir, "state")
	code, stdout, stderr = runCandor(t, "checkpoint", "--log", srv.URL, "--policy", policyFile, "--state", stateFile)
	if code != 0 || !strings.Contains(stdout, origin+"\nsize 2\n") || !strings.Contains(stdout, "witness w: cosigned ") || !strings.Contains(stdout, `VERIFIED: the log's signature and the policy's quorum "g"`) {
		t.Errorf("checkpoint: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCandor(t, "checkpoint", "--log", srv.URL, "--policy", strict)
	if code != 1 || !strings.Contains(stdout, "witness x: no cosignature") || !strings.Contains(stderr, "NOT VERIFIED") {
		t.Errorf("checkpoint under a stricter policy: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	digest := "sha256:" + fmt.Sprintf("%064x", []byte("lib"))[:64]
	for _, by := range [][]string{
		{"--index", "1"},
		{"--leaf-hash", hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(entry2))},
		{"--digest", digest},
	} {
		out := filepath.Join(dir, "proved.tlog-proof")
		os.Remove(out)
		code, stdout, stderr = runCandor(t, append([]string{"prove", "--log", srv.URL, "--policy", policyFile, "--state", stateFile, "--out", out}, by...)...)
		if code != 0 || !strings.HasPrefix(stdout, "1\n") || !strings.Contains(stdout, "the build attestation of "+digest+": entry 1 of "+origin+", proven in its tree of size 2 (cosigned by w)") {
			t.Errorf("prove %q: exit %d, stdout %q, stderr:\n%s", by, code, stdout, stderr)
			continue
		}
		code, stdout, stderr = runCandor(t, "verify", "--bundle", out, "--policy", policyFile, "--entry", writeFile(t, dir, "lib.entry", entry2))
		if code != 0 || !strings.Contains(stdout, "VERIFIED") {
			t.Errorf("verify of the bundle of prove %q: exit %d, stdout %q, stderr:\n%s", by, code, stdout, stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--index", "2"}, 1, "index 2 is not in the log's tree of size 2"},
		{[]string{"--digest", "sha256:" + strings.Repeat("0", 64)}, 1, "no entry of the log's published tree has digest"},
		{[]string{"--leaf-hash", "xyz"}, 1, `--leaf-hash: "xyz" is not a SHA-256 hash in hex or base64`},
		{[]string{"--index", "0", "--digest", digest}, 2, "usage: candor prove"},
		{nil, 2, "usage: candor prove"},
	} {
		code, stdout, stderr = runCandor(t, append([]string{"prove", "--log", srv.URL, "--policy", policyFile}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("prove %q: exit %d, want %d with %q; stdout %q, stderr:\n%s", tc.args, code, tc.code, tc.want, stdout, stderr)
		}
	}
}

// statusRecorder remembers the status code of a reply.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// gitEnv isolates git from the user's configuration: HOME and the global
// configuration are in a temporary directory.
func gitEnv(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"git", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: %v", tool, err)
		}
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, "gitconfig"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_AUTHOR_NAME", "Ada Tester")
	t.Setenv("GIT_AUTHOR_EMAIL", "ada@example.com")
	t.Setenv("GIT_COMMITTER_NAME", "Ada Tester")
	t.Setenv("GIT_COMMITTER_EMAIL", "ada@example.com")
	t.Setenv("CANDOR_LOG", "")
	return home
}

// git runs git in dir and returns its output, trimmed.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// sshKey makes an Ed25519 key with ssh-keygen and returns the private
// key's path; the public key is beside it, with ".pub".
func sshKey(t testing.TB, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name+"@example.com", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return path
}

// newRepo makes a repository of the object format with one SSH-signed
// commit by key and one unsigned commit on top of it.
func newRepo(t testing.TB, dir, format, key string) (signed, unsigned string) {
	t.Helper()
	git(t, dir, "init", "-q", "--object-format="+format)
	os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644)
	git(t, dir, "add", "README")
	git(t, dir, "-c", "gpg.format=ssh", "-c", "user.signingkey="+key, "commit", "-q", "-S", "-m", "signed")
	signed = git(t, dir, "rev-parse", "HEAD")
	git(t, dir, "commit", "-q", "--allow-empty", "-m", "unsigned")
	return signed, git(t, dir, "rev-parse", "HEAD")
}

// bodyRecorder records the submissions it passes to the log.
type bodyRecorder struct {
	next   http.Handler
	mu     sync.Mutex
	bodies [][]byte
}

func (b *bodyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.bodies = append(b.bodies, body)
		b.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	b.next.ServeHTTP(w, r)
}

func (b *bodyRecorder) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bodies = nil
}

func (b *bodyRecorder) all() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bodies)
}

func (b *bodyRecorder) last() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bodies) == 0 {
		return nil
	}
	return b.bodies[len(b.bodies)-1]
}

// TestSubmitCommitBody makes SSH-signed commits with the real git and
// ssh-keygen, in both object formats, and checks what the command sends:
// the raw object, its id and format, the repository and the key.
func TestSubmitCommitBody(t *testing.T) {
	home := gitEnv(t)
	rec := &bodyRecorder{}
	url, _ := newTestLog(t, func(h http.Handler) http.Handler { rec.next = h; return rec })
	key := sshKey(t, home, "id_ed25519")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	for _, format := range []string{"sha1", "sha256"} {
		dir := filepath.Join(t.TempDir(), "repo")
		os.Mkdir(dir, 0o755)
		signed, unsigned := newRepo(t, dir, format, key)
		git(t, dir, "remote", "add", "origin", "https://ci-bot:s3cret@git.example.com/team/app.git")
		object := git(t, dir, "cat-file", "commit", signed)

		for _, tc := range []struct {
			name       string
			args       []string
			repository string
		}{
			{"origin, credentials removed", []string{"--repo", dir, signed}, "https://git.example.com/team/app.git"},
			{"--repository", []string{"--repo", dir, "--repository", "example/app", "HEAD~1"}, "example/app"},
		} {
			code, stdout, stderr := runCandor(t, append([]string{"submit", "commit", "--log", url, "--key", key + ".pub"}, tc.args...)...)
			body := rec.last()
			rec.reset()
			if body == nil {
				t.Fatalf("%s %s: nothing sent; exit %d, stderr:\n%s", format, tc.name, code, stderr)
			}
			// The log has its say: a proof, or its reason (while it has no
			// commit kind, that it does not know it).
			if code == 0 {
				if !strings.Contains(stdout, "commit "+signed+" of "+tc.repository) {
					t.Errorf("%s %s: stdout %q", format, tc.name, stdout)
				}
			} else if !strings.Contains(stderr, "the log refused it (400 Bad Request): ") {
				t.Errorf("%s %s: exit %d without the log's reason: %s", format, tc.name, code, stderr)
			}
			var got commitSubmission
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("%s %s: body %s: %v", format, tc.name, body, err)
			}
			raw, err := base64.StdEncoding.Strict().DecodeString(got.Object)
			if err != nil {
				t.Fatalf("%s %s: object: %v", format, tc.name, err)
			}
			want := commitSubmission{Kind: "commit", ObjectFormat: format, Commit: signed, Object: got.Object,
				Repository: tc.repository, PublicKey: strings.TrimSpace(string(pub))}
			if got != want {
				t.Errorf("%s %s: sent\n%+v\nwant\n%+v", format, tc.name, got, want)
			}
			if string(raw) != object+"\n" || !strings.Contains(string(raw), "\ngpgsig") {
				t.Errorf("%s %s: the object sent is not git cat-file's:\n%s", format, tc.name, raw)
			}
			if len(signed) != map[string]int{"sha1": 40, "sha256": 64}[format] {
				t.Errorf("%s: commit id %s", format, signed)
			}
		}

		// What the command refuses before sending anything.
		git(t, dir, "remote", "remove", "origin")
		privateKey := key
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"an unsigned commit", []string{"--key", key + ".pub", "--repository", "x", unsigned}, "commit " + unsigned + " is not signed"},
			{"no origin", []string{"--key", key + ".pub", signed}, "has no remote.origin.url; give --repository NAME"},
			{"a private key", []string{"--key", privateKey, "--repository", "x", signed}, "holds a PRIVATE key"},
			{"not a key", []string{"--key", filepath.Join(dir, "README"), "--repository", "x", signed}, "is neither an SSH public key nor an armored OpenPGP public key"},
			{"no such revision", []string{"--key", key + ".pub", "--repository", "x", "no-such-branch"}, "rev-parse --verify --end-of-options no-such-branch^{commit}"},
			{"an option as the revision", []string{"--key", key + ".pub", "--repository", "x", "--", "--output=/tmp/x"}, "rev-parse --verify --end-of-options --output=/tmp/x^{commit}"},
		} {
			code, _, stderr := runCandor(t, append([]string{"submit", "commit", "--log", url, "--repo", dir}, tc.args...)...)
			if code != 1 || !strings.Contains(stderr, tc.want) || rec.last() != nil {
				t.Errorf("%s %s: exit %d, stderr %q; want exit 1, nothing sent, and %q", format, tc.name, code, stderr, tc.want)
			}
		}
	}
}

func TestRepositoryName(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/candorlog/candor.git":           "https://github.com/candorlog/candor.git",
		"https://x-access-token:ghs_abc@github.com/o/r.git": "https://github.com/o/r.git",
		"https://ghp_token@github.com/o/r":                  "https://github.com/o/r",
		"ssh://git@github.com/o/r.git":                      "ssh://git@github.com/o/r.git",
		"ssh://git:pw@host/r.git":                           "ssh://host/r.git",
		"git@github.com:o/r.git":                            "git@github.com:o/r.git",
		"/srv/git/r.git":                                    "/srv/git/r.git",
		"":                                                  "",
	} {
		if got := repositoryName(in); got != want {
			t.Errorf("repositoryName(%q) = %q, want %q", in, got, want)
		}
	}
}
