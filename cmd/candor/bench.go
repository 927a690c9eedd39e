package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/valyala/fasthttp"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/internal/bundlezstd"
)

// benchConfig is what "candor bench" runs.
type benchConfig struct {
	// URL is the log's base URL. Default: http://localhost:8080, where
	// candor-log listens by default.
	URL string
	// Kind is the kind of the entries submit mode makes: build (in-toto
	// Statements in DSSE envelopes signed with Ed25519 keys), commit (git
	// commits signed with SSH Ed25519 keys) or image (cosign signatures
	// of container images with ECDSA P-256 keys). Default: build.
	Kind string
	// Mode is submit (POST /v1/entries), proofs (GET /v1/proof/inclusion
	// of random entries), tiles (GET the hash tiles, one level after the
	// other, on the path of random entries) or bundles (GET the entry
	// bundles of random entries). Default: submit.
	Mode string
	// Concurrency is the most requests in flight. Default: 64.
	Concurrency int
	// Rate is the target requests per second, sent open-loop on a fixed
	// schedule; 0 sends as fast as Concurrency allows. Default: 0.
	Rate float64
	// Count is the number of requests. Default: 100000.
	Count int
	// Duration bounds the run: no request is sent after it. Default: 60s.
	Duration time.Duration
	// Timeout bounds each request. Default: 30s.
	Timeout time.Duration
	// Signers is the number of keys (and goroutines) signing the
	// submissions before the run. Default: GOMAXPROCS.
	Signers int
	// VerifySample is the most successful replies verified after the run,
	// spread evenly over the run; 0 verifies none. Default: 1000.
	VerifySample int
	// VerifierKey is the log's signed-note verifier key. Optional: without
	// it, checkpoint signatures are not checked, but inclusion proofs still
	// are, against the checkpoints' root hashes.
	VerifierKey string
	// PrintPaths, in a read mode, prints the paths of the requests, one
	// per line, instead of sending them: the input of another load
	// generator (see scripts/wrk-paths.lua).
	PrintPaths bool
	// PrintBodies, in submit mode, prints the signed submissions, one JSON
	// object per line, instead of sending them (see scripts/wrk-submit.lua).
	PrintBodies bool
	// Identity, in bundles mode, asks for the entry bundles in no content
	// coding. Default: false: it asks for zstd, as the candor client
	// does; the replies that come so are decoded when verified, after
	// the run, as proofs are verified.
	Identity bool
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c benchConfig
	fs := flag.NewFlagSet("candor bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "http://localhost:8080", "the log's base `URL`")
	fs.StringVar(&c.Mode, "mode", "submit", "submit, proofs, tiles or bundles")
	fs.StringVar(&c.Kind, "kind", api.KindBuild, "submit: the kind of the entries, build, commit or image")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "most requests in flight")
	fs.Float64Var(&c.Rate, "rate", 0, "target requests/s, sent on a fixed schedule (0: as fast as possible)")
	fs.IntVar(&c.Count, "count", 100000, "number of requests")
	fs.DurationVar(&c.Duration, "duration", 60*time.Second, "stop sending after this long")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "timeout of each request")
	fs.IntVar(&c.Signers, "signers", runtime.GOMAXPROCS(0), "keys signing the submissions before the run")
	fs.IntVar(&c.VerifySample, "verify", 1000, "successful replies to verify after the run (0: none)")
	fs.StringVar(&c.VerifierKey, "verifier-key", "", "the log's verifier `key`, to check checkpoint signatures too")
	fs.BoolVar(&c.PrintPaths, "print-paths", false, "proofs, tiles, bundles: print the request paths, one per line, and send nothing")
	fs.BoolVar(&c.Identity, "identity", false, "bundles: ask for the bundles uncompressed (default: zstd, as the candor client does)")
	fs.BoolVar(&c.PrintBodies, "print-bodies", false, "submit: print the signed submissions, one JSON object per line, and send nothing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor bench --url URL [flags]\n\nLoad-tests a running log and reports throughput, latency and status codes.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.PrintPaths || c.PrintBodies {
		return printJobs(ctx, c, stdout)
	}
	var progress io.Writer
	if isTerminal(stderr) {
		progress = stderr
	}
	res, err := bench(ctx, c, stdout, progress)
	if err != nil {
		return err
	}
	res.print(stdout)
	if res.verifyFailed > 0 {
		return fmt.Errorf("%d of %d sampled replies failed verification: first: %v", res.verifyFailed, res.verified+res.verifyFailed, res.verifyErr)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (c *benchConfig) check() error {
	var errs []error
	switch c.Mode {
	case "submit", "proofs", "tiles", "bundles":
	default:
		errs = append(errs, fmt.Errorf("--mode %q: want submit, proofs, tiles or bundles", c.Mode))
	}
	switch c.Kind {
	case api.KindBuild, api.KindCommit, api.KindImage:
	default:
		errs = append(errs, fmt.Errorf("--kind %q: want %s, %s or %s", c.Kind, api.KindBuild, api.KindCommit, api.KindImage))
	}
	if c.URL == "" {
		errs = append(errs, errors.New("--url is required"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, errors.New("--concurrency must be at least 1"))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, errors.New("--rate must be a number ≥ 0"))
	}
	if c.Count < 1 {
		errs = append(errs, errors.New("--count must be at least 1"))
	}
	if c.Duration <= 0 || c.Timeout <= 0 {
		errs = append(errs, errors.New("--duration and --timeout must be positive"))
	}
	if c.Signers < 1 {
		errs = append(errs, errors.New("--signers must be at least 1"))
	}
	if c.VerifySample < 0 {
		errs = append(errs, errors.New("--verify must be ≥ 0"))
	}
	if c.Identity && c.Mode != "bundles" {
		errs = append(errs, errors.New("--identity: only for --mode bundles"))
	}
	return errors.Join(errs...)
}

// job is one prepared request.
type job struct {
	path string
	body []byte // POST body, nil for a GET
	// What the reply is checked against.
	leafHash []byte   // submit: of the canonical entry
	entryLen int      // submit: the canonical entry's length
	index    uint64   // proofs
	tile     api.Tile // tiles, bundles
}

// sample is a successful reply kept for verification after the run.
type sample struct {
	job  *job
	body []byte
	// zstd is true if body came compressed with zstd.
	zstd bool
}

// workerStats is what one worker records; they are merged after the run.
type workerStats struct {
	latencies []time.Duration
	codes     map[int]int
	errs      map[string]int
	samples   []sample
	// newBytes adds up the entries the log answered 201 Created to.
	newBytes int64
	// encoded counts the replies that came compressed, and their bytes.
	encoded, encodedBytes int64
}

// benchResult is the outcome of a run.
type benchResult struct {
	cfg               benchConfig
	sizeBefore        uint64
	sizeAfter         uint64
	prepared          time.Duration
	elapsed           time.Duration
	sent              int
	missed            int // due within Duration at Rate, never sent
	codes             map[int]int
	errs              map[string]int
	newBytes          int64
	encoded           int64
	encodedBytes      int64
	latencies         []time.Duration // sorted
	verified          int
	verifyFailed      int
	verifyErr         error
	signaturesChecked bool
}

func (r *benchResult) successes() int {
	n := 0
	for code, k := range r.codes {
		if code >= 200 && code < 300 {
			n += k
		}
	}
	return n
}

func (r *benchResult) failures() int {
	n := 0
	for _, k := range r.errs {
		n += k
	}
	return n
}

// percentile returns the q-quantile (0..1) of the sorted latencies, by the
// nearest-rank method.
func (r *benchResult) percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.latencies)))) - 1
	return r.latencies[max(i, 0)]
}

// client talks to the log with enough kept-alive connections for every
// worker. It is fasthttp's: on a machine the log shares, every microsecond
// the load generator spends per request is taken from the log, and
// net/http's client spends several times what fasthttp's does.
type client struct {
	prefix  string // the base URL's path, without its final slash
	http    *fasthttp.HostClient
	timeout time.Duration
	// accept is the content coding asked for in GETs (bundlezstd.Coding
	// or none).
	accept string
}

func newClient(base string, conns int, timeout time.Duration) (*client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http:// or https:// and a host", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	hc := &fasthttp.HostClient{
		Addr:                          addr,
		IsTLS:                         u.Scheme == "https",
		MaxConns:                      conns,
		MaxConnWaitTimeout:            timeout,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		MaxResponseBodySize:           64 << 20,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
	}
	return &client{prefix: strings.TrimSuffix(u.EscapedPath(), "/"), http: hc, timeout: timeout}, nil
}

// do sends one request, copies the whole reply into buf and returns the
// status code, and whether the reply is in the coding c.accept (not
// decoded: a log is measured, not the load generator).
func (c *client) do(ctx context.Context, j *job, buf *bytes.Buffer) (code int, encoded bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.prefix + j.path)
	req.Header.SetHost(c.http.Addr)
	if j.body != nil {
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(j.body)
	} else if c.accept != "" {
		req.Header.Set("Accept-Encoding", c.accept)
	}
	if err := c.http.DoTimeout(req, resp, c.timeout); err != nil {
		return 0, false, err
	}
	ce := string(resp.Header.ContentEncoding())
	if ce != "" && (c.accept == "" || ce != c.accept) {
		return 0, false, fmt.Errorf("reply in content coding %q, which was not asked for", ce)
	}
	buf.Reset()
	buf.Write(resp.Body())
	return resp.StatusCode(), ce != "", nil
}

// checkpoint fetches and opens the log's checkpoint: with v, its signature
// is checked; without, only its text is parsed.
func (c *client) checkpoint(ctx context.Context, v note.Verifier) (api.Checkpoint, error) {
	var buf bytes.Buffer
	code, _, err := c.do(ctx, &job{path: "/checkpoint"}, &buf)
	b := buf.Bytes()
	if err != nil {
		return api.Checkpoint{}, fmt.Errorf("couldn't fetch the checkpoint: %w", err)
	}
	if code != http.StatusOK {
		return api.Checkpoint{}, fmt.Errorf("couldn't fetch the checkpoint: %s: %s", http.StatusText(code), bytes.TrimSpace(b))
	}
	cp, err := openCheckpoint(b, "", v)
	if err != nil {
		return api.Checkpoint{}, fmt.Errorf("log's checkpoint: %w", err)
	}
	return cp, nil
}

// openCheckpoint opens a signed checkpoint of origin (any origin if empty).
// With v nil the signatures are not checked.
func openCheckpoint(signed []byte, origin string, v note.Verifier) (api.Checkpoint, error) {
	if v != nil {
		c, _, err := api.OpenCheckpoint(signed, v.Name(), v)
		return c, err
	}
	// With no known key, note.Open still parses the note and hands back
	// its text in the error.
	_, err := note.Open(signed, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return api.Checkpoint{}, fmt.Errorf("malformed signed note: %w", err)
	}
	c, err := api.ParseCheckpoint([]byte(unverified.Note.Text))
	if err != nil {
		return api.Checkpoint{}, err
	}
	if origin != "" && c.Origin != origin {
		return api.Checkpoint{}, fmt.Errorf("checkpoint is for origin %q, want %q", c.Origin, origin)
	}
	return c, nil
}

// bench prepares the requests, runs them and verifies a sample of the
// replies. It writes progress to progress, if not nil.
func bench(ctx context.Context, cfg benchConfig, stdout, progress io.Writer) (*benchResult, error) {
	r, err := prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.close()
	what := cfg.Mode
	if cfg.Mode == "submit" {
		what += " " + cfg.Kind
	}
	fmt.Fprintf(stdout, "candor bench: %s against %s (origin %s, tree size %d): %d requests prepared in %s\n",
		what, cfg.URL, r.cp.Origin, r.cp.Size, len(r.jobs), r.res.prepared.Round(time.Millisecond))
	r.send(ctx, progress)
	return r.finish(ctx), nil
}

// printJobs prepares a run and prints, one per line, its request paths
// (--print-paths, read modes) or bodies (--print-bodies, submit mode).
func printJobs(ctx context.Context, cfg benchConfig, stdout io.Writer) error {
	switch {
	case cfg.PrintPaths && cfg.PrintBodies:
		return errors.New("--print-paths and --print-bodies: choose one")
	case cfg.PrintPaths && cfg.Mode == "submit":
		return errors.New("--print-paths: only for --mode proofs, tiles or bundles (submit has --print-bodies)")
	case cfg.PrintBodies && cfg.Mode != "submit":
		return errors.New("--print-bodies: only for --mode submit")
	}
	r, err := prepare(ctx, cfg)
	if err != nil {
		return err
	}
	r.close()
	w := bufio.NewWriter(stdout)
	for _, j := range r.jobs {
		if cfg.PrintBodies {
			// Compact JSON: a line each.
			w.Write(j.body)
		} else {
			w.WriteString(j.path)
		}
		w.WriteByte('\n')
	}
	return w.Flush()
}

// benchRun is a prepared run.
type benchRun struct {
	cfg      benchConfig
	cl       *client
	verifier note.Verifier  // nil without --verifier-key
	cp       api.Checkpoint // the log's, before the run
	jobs     []job
	stats    []*workerStats
	res      *benchResult
}

// prepare fetches the log's checkpoint and makes every request: for
// submissions, that is where the signing happens.
func prepare(ctx context.Context, cfg benchConfig) (*benchRun, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &benchRun{cfg: cfg}
	if cfg.VerifierKey != "" {
		v, err := note.NewVerifier(cfg.VerifierKey)
		if err != nil {
			return nil, fmt.Errorf("--verifier-key: %w", err)
		}
		r.verifier = v
	}
	cl, err := newClient(cfg.URL, cfg.Concurrency, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	if cfg.Mode == "bundles" && !cfg.Identity {
		cl.accept = bundlezstd.Coding
	}
	r.cl = cl
	cp, err := r.cl.checkpoint(ctx, r.verifier)
	if err != nil {
		r.close()
		return nil, err
	}
	r.cp = cp
	r.res = &benchResult{cfg: cfg, sizeBefore: cp.Size, signaturesChecked: r.verifier != nil}
	start := time.Now()
	switch cfg.Mode {
	case "submit":
		if r.jobs, err = submitJobs(cfg.Kind, cfg.Count, cfg.Signers); err != nil {
			r.close()
			return nil, err
		}
	case "proofs", "tiles", "bundles":
		if cp.Size == 0 {
			r.close()
			return nil, errors.New("the log is empty: add entries first (--mode submit)")
		}
		r.jobs = readJobs(cfg.Mode, cfg.Count, cp.Size)
	}
	r.res.prepared = time.Since(start)
	return r, nil
}

func (r *benchRun) close() { r.cl.http.CloseIdleConnections() }

// finish merges the workers' records and verifies the sampled replies.
func (r *benchRun) finish(ctx context.Context) *benchResult {
	res := r.res
	res.codes, res.errs = map[int]int{}, map[string]int{}
	var samples []sample
	for _, s := range r.stats {
		res.latencies = append(res.latencies, s.latencies...)
		for code, n := range s.codes {
			res.codes[code] += n
		}
		for e, n := range s.errs {
			res.errs[e] += n
		}
		res.newBytes += s.newBytes
		res.encoded += s.encoded
		res.encodedBytes += s.encodedBytes
		samples = append(samples, s.samples...)
	}
	slices.Sort(res.latencies)
	for _, s := range samples {
		if err := verifyReply(r.cfg.Mode, s, r.cp, r.verifier); err != nil {
			res.verifyFailed++
			if res.verifyErr == nil {
				res.verifyErr = err
			}
			continue
		}
		res.verified++
	}
	if after, err := r.cl.checkpoint(ctx, r.verifier); err == nil {
		res.sizeAfter = after.Size
	}
	return res
}

// submitJobs signs n unique submissions of a kind with the given number
// of keys, one goroutine each.
func submitJobs(kind string, n, signers int) ([]job, error) {
	var run [8]byte
	rand.Read(run[:])
	runID := hex.EncodeToString(run[:])
	jobs := make([]job, n)
	errs := make([]error, signers)
	var wg sync.WaitGroup
	for s := range signers {
		wg.Go(func() {
			var sign func(i int) []byte
			switch kind {
			case api.KindCommit:
				signer := apitest.NewCommitSigner()
				repository := "https://candor.invalid/candor-bench/" + runID + ".git"
				sign = func(i int) []byte {
					return signer.Submission(repository, fmt.Sprintf("candor bench %s %d", runID, i))
				}
			case api.KindImage:
				signer := apitest.NewImageSigner()
				repository := "candor.invalid/candor-bench/" + runID
				sign = func(i int) []byte {
					return signer.Submission(repository, fmt.Sprintf("sha256:%s%048x", runID, i))
				}
			default:
				signer := apitest.NewBuildSigner()
				sign = func(i int) []byte {
					name := fmt.Sprintf("candor-bench/%s/%d", runID, i)
					digest := fmt.Sprintf("%s%048x", runID, i)
					return signer.Submission(name, digest)
				}
			}
			for i := s; i < n; i += signers {
				body := sign(i)
				// A build submission is its canonical entry; a commit or
				// an image submission leaves out what the log derives.
				entry := body
				if kind != api.KindBuild {
					var err error
					if entry, err = api.CanonicalEntry(body); err != nil {
						errs[s] = fmt.Errorf("couldn't make a %s submission: %w", kind, err)
						return
					}
				}
				jobs[i] = job{path: "/v1/entries", body: body, leafHash: rfc6962.DefaultHasher.HashLeaf(entry), entryLen: len(entry)}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return jobs, nil
}

// readJobs makes n requests about random entries of the tree of the given
// size: their inclusion proofs, the hash tiles on their path (cycling
// through the levels, as a client proving inclusion from tiles reads one
// tile per level) or their entry bundles.
func readJobs(mode string, n int, size uint64) []job {
	levels := 1
	for size>>(api.TileHeight*levels) > 0 {
		levels++
	}
	jobs := make([]job, n)
	for i := range jobs {
		idx := mrand.Uint64N(size)
		switch mode {
		case "proofs":
			jobs[i] = job{path: fmt.Sprintf("/v1/proof/inclusion?index=%d&size=%d", idx, size), index: idx}
		case "tiles":
			level := i % levels
			t, _ := api.TileForSize(level, idx>>(api.TileHeight*(level+1)), size)
			jobs[i] = job{path: "/" + t.Path(), tile: t}
		case "bundles":
			t, _ := api.TileForSize(api.EntriesLevel, idx/api.TileWidth, size)
			jobs[i] = job{path: "/" + t.Path(), tile: t}
		}
	}
	return jobs
}

// send sends the jobs from cfg.Concurrency workers. Workers take the jobs in
// order. At a rate, job i is due at start + i/rate and its latency counts
// from then, not from when a worker got free to send it, so that a slow
// server shows in the latency instead of quietly lowering the rate
// (coordinated omission). As fast as possible, latency counts from the
// send.
func (r *benchRun) send(ctx context.Context, progress io.Writer) {
	cfg, cl, jobs, res := r.cfg, r.cl, r.jobs, r.res
	// Keep about cfg.VerifySample replies, spread over the run.
	stride := 0
	if cfg.VerifySample > 0 {
		stride = max(1, len(jobs)/cfg.VerifySample)
	}
	var next, done atomic.Int64
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	stop := make(chan struct{})
	if progress != nil {
		go showProgress(progress, &done, len(jobs), start, stop)
	}
	r.stats = make([]*workerStats, cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range r.stats {
		s := &workerStats{
			latencies: make([]time.Duration, 0, len(jobs)/cfg.Concurrency+1),
			codes:     map[int]int{},
			errs:      map[string]int{},
		}
		r.stats[w] = s
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				var due time.Time
				if cfg.Rate > 0 {
					due = start.Add(time.Duration(float64(i) * float64(time.Second) / cfg.Rate))
					// A request due in time but not sent by the deadline
					// is counted as missed, after the run.
					if due.After(deadline) || time.Now().After(deadline) {
						return
					}
					if d := time.Until(due); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return
						}
					}
				} else {
					due = time.Now()
					if due.After(deadline) {
						return
					}
				}
				code, encoded, err := cl.do(ctx, &jobs[i], &buf)
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted: not the server's fault
					}
					s.errs[errorKind(err)]++
				} else {
					s.latencies = append(s.latencies, time.Since(due))
					s.codes[code]++
					if code == http.StatusCreated {
						s.newBytes += int64(jobs[i].entryLen)
					}
					if encoded {
						s.encoded++
						s.encodedBytes += int64(buf.Len())
					}
					if stride > 0 && i%stride == 0 && code >= 200 && code < 300 {
						s.samples = append(s.samples, sample{job: &jobs[i], body: bytes.Clone(buf.Bytes()), zstd: encoded})
					}
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.sent = int(done.Load())
	if cfg.Rate > 0 {
		due := min(len(jobs), int(cfg.Rate*cfg.Duration.Seconds())+1)
		res.missed = max(0, due-res.sent)
	}
	close(stop)
	if progress != nil {
		fmt.Fprint(progress, "\r\033[K")
	}
}

// errorKind shortens a transport error for counting: the same failure on
// different connections counts once.
func errorKind(err error) string {
	var ne net.Error
	if errors.Is(err, fasthttp.ErrTimeout) || errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, fasthttp.ErrConnectionClosed) {
		return "connection closed"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed"
	}
	return err.Error()
}

func showProgress(w io.Writer, done *atomic.Int64, total int, start time.Time, stop chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n := done.Load()
			fmt.Fprintf(w, "\r\033[K%d/%d requests, %.0f req/s", n, total, float64(n)/time.Since(start).Seconds())
		}
	}
}

// verifyReply checks one successful reply against what was asked and the
// checkpoint cp the run started from.
func verifyReply(mode string, s sample, cp api.Checkpoint, v note.Verifier) error {
	switch mode {
	case "submit":
		var r api.AddEntryResponse
		if err := json.Unmarshal(s.body, &r); err != nil {
			return fmt.Errorf("malformed reply: %w", err)
		}
		if !bytes.Equal(r.LeafHash, s.job.leafHash) {
			return fmt.Errorf("entry %d: reply has leaf hash %x, want %x", r.Index, r.LeafHash, s.job.leafHash)
		}
		p, err := api.ParseProofBundle([]byte(r.Proof))
		if err != nil {
			return fmt.Errorf("entry %d: %w", r.Index, err)
		}
		if p.Index != r.Index {
			return fmt.Errorf("entry %d: proof bundle is for index %d", r.Index, p.Index)
		}
		var c api.Checkpoint
		if v != nil {
			c, err = api.VerifyProofBundle(p, s.job.leafHash, v.Name(), v)
		} else {
			c, err = openCheckpoint(p.Checkpoint, cp.Origin, nil)
			if err == nil {
				err = proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, c.Size, s.job.leafHash, p.Hashes, c.Hash[:])
			}
		}
		if err != nil {
			return fmt.Errorf("entry %d: %w", r.Index, err)
		}
		if c.Size != r.TreeSize {
			return fmt.Errorf("entry %d: reply says tree size %d, its checkpoint %d", r.Index, r.TreeSize, c.Size)
		}
	case "proofs":
		var r api.InclusionProofResponse
		if err := json.Unmarshal(s.body, &r); err != nil {
			return fmt.Errorf("malformed reply: %w", err)
		}
		if r.Index != s.job.index || r.TreeSize != cp.Size {
			return fmt.Errorf("asked for entry %d in tree size %d, got %d in %d", s.job.index, cp.Size, r.Index, r.TreeSize)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, r.TreeSize, r.LeafHash, r.Hashes, cp.Hash[:]); err != nil {
			return fmt.Errorf("entry %d: %w", r.Index, err)
		}
	case "tiles", "bundles":
		t := s.job.tile
		if t.Level == api.EntriesLevel {
			body := s.body
			if s.zstd {
				var err error
				if body, err = bundlezstd.AppendDecoded(nil, body); err != nil {
					return fmt.Errorf("%s: %w", t.Path(), err)
				}
			}
			entries, err := api.ParseEntryBundle(body)
			if err != nil {
				return fmt.Errorf("%s: %w", t.Path(), err)
			}
			if len(entries) != t.Width {
				return fmt.Errorf("%s: %d entries, want %d", t.Path(), len(entries), t.Width)
			}
		} else if len(s.body) != t.Width*api.HashSize {
			return fmt.Errorf("%s: %d bytes, want %d", t.Path(), len(s.body), t.Width*api.HashSize)
		}
	}
	return nil
}

func (r *benchResult) print(w io.Writer) {
	c := r.cfg
	rate := "as fast as possible"
	if c.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s scheduled", c.Rate)
	}
	fmt.Fprintf(w, "  load        %d requests, concurrency %d, %s\n", c.Count, c.Concurrency, rate)
	stopped := ""
	if r.sent < c.Count {
		stopped = fmt.Sprintf(" (stopped at --duration %s)", c.Duration)
	}
	fmt.Fprintf(w, "  sent        %d in %s%s\n", r.sent, r.elapsed.Round(time.Millisecond), stopped)
	if r.missed > 0 {
		fmt.Fprintf(w, "  MISSED      %d requests due within --duration were never sent: the log (or --concurrency) could not keep up with --rate, and the latencies below leave them out\n", r.missed)
	}
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "  throughput  %.0f req/s, %.0f successful/s\n", float64(r.sent)/secs, float64(r.successes())/secs)
	codes := slices.Sorted(maps.Keys(r.codes))
	var sb strings.Builder
	for _, code := range codes {
		fmt.Fprintf(&sb, " %d: %d", code, r.codes[code])
	}
	if sb.Len() == 0 {
		sb.WriteString(" none")
	}
	fmt.Fprintf(w, "  status     %s\n", sb.String())
	if n := r.codes[http.StatusCreated]; n > 0 {
		fmt.Fprintf(w, "  new entries %d, %d bytes, %.0f bytes each\n", n, r.newBytes, float64(r.newBytes)/float64(n))
	}
	if c.Mode == "bundles" {
		switch {
		case c.Identity:
			fmt.Fprintf(w, "  coding      none asked for (--identity)\n")
		case r.encoded > 0:
			fmt.Fprintf(w, "  coding      %d replies in zstd, %.0f bytes each\n", r.encoded, float64(r.encodedBytes)/float64(r.encoded))
		default:
			fmt.Fprintf(w, "  coding      none: the log served no bundle in zstd\n")
		}
	}
	fmt.Fprintf(w, "  errors      %d\n", r.failures())
	for _, e := range slices.Sorted(maps.Keys(r.errs)) {
		fmt.Fprintf(w, "    %6d  %s\n", r.errs[e], e)
	}
	from := "from send"
	if c.Rate > 0 {
		from = "from scheduled send time"
	}
	fmt.Fprintf(w, "  latency     p50 %s  p90 %s  p99 %s  max %s  (%s, %d replies)\n",
		ms(r.percentile(0.50)), ms(r.percentile(0.90)), ms(r.percentile(0.99)), ms(r.percentile(1)), from, len(r.latencies))
	what := map[string]string{
		"submit":  "proof bundles",
		"proofs":  "inclusion proofs",
		"tiles":   "tile sizes",
		"bundles": "entry bundles parse, with the right number of entries",
	}[c.Mode]
	if c.Mode == "submit" || c.Mode == "proofs" {
		if r.signaturesChecked {
			what += " and checkpoint signatures"
		} else {
			what += "; checkpoint signatures not checked: no --verifier-key"
		}
	}
	fmt.Fprintf(w, "  verified    %d of %d sampled replies ok: %s\n", r.verified, r.verified+r.verifyFailed, what)
	fmt.Fprintf(w, "  tree size   %d before, %d after\n", r.sizeBefore, r.sizeAfter)
}

// ms formats d in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}
