// Command candor-growth is the growth benchmark (make bench-growth): it
// builds one log up to each of the sizes it is given, through the log's
// own admission (api.AdmitEntry) and engine (log.Log on pebble) with valid
// signed entries, and at each size starts candor-log on it and measures
// with candor bench: submissions, inclusion proofs, hash tiles and entry
// bundles at uniformly random indexes, the time from start to ready, the
// server's resident memory and Go heap, and the disk bytes per entry. It
// prints one table, with this machine's Ed25519 and SHA-256 speed, so that
// runs from different hours and machines compare.
//
// The log is built without HTTP and without a process boundary: each
// core signs entries (Ed25519 with keys of its own) and admits them as
// the server would, and the log takes them in batches. Signing and
// checking a signature is most of the cost, about 80 µs an entry on one
// core.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/internal/keyfile"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

const origin = "growth.example/candor"

// config is what the flags say.
type config struct {
	sizes       []uint64
	dir         string
	keep        bool
	bin         string
	payload     string
	submissions int
	reads       int
	cacheMiB    int
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "candor-growth:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	if err := run(ctx, c, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "candor-growth:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("candor-growth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "1M,10M", "tree `sizes` to measure at, ascending (K and M suffixes)")
	fs.StringVar(&c.dir, "dir", "", "`directory` of the log (default: a new one in $TMPDIR, removed at the end); a log there is grown")
	fs.BoolVar(&c.keep, "keep", false, "keep the log's directory")
	fs.StringVar(&c.bin, "bin", "bin", "`directory` of the candor-log and candor binaries")
	fs.StringVar(&c.payload, "payload", "random", "entries' subject names: random (about 900-byte entries, as candor bench makes), repeated (the same, compressible) or incompressible (about 1,800-byte entries, mostly random)")
	fs.IntVar(&c.submissions, "submissions", 100000, "submissions over HTTP at each size")
	fs.IntVar(&c.reads, "reads", 100000, "inclusion proofs, and tile and entry bundle reads, at each size")
	fs.IntVar(&c.cacheMiB, "cache-mib", 256, "the server's --cache-mib")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor-growth [flags]\n\nBuilds a log to each size and measures candor-log on it (see make bench-growth).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := parseSize(s)
		if err != nil {
			return c, fmt.Errorf("--sizes: %w", err)
		}
		if len(c.sizes) > 0 && n <= c.sizes[len(c.sizes)-1] {
			return c, fmt.Errorf("--sizes: %s is not larger than the size before it", s)
		}
		c.sizes = append(c.sizes, n)
	}
	if c.payload != "random" && c.payload != "repeated" && c.payload != "incompressible" {
		return c, fmt.Errorf("--payload %q: want random, repeated or incompressible", c.payload)
	}
	if c.submissions < 1 || c.reads < 1 {
		return c, errors.New("--submissions and --reads must be positive")
	}
	return c, nil
}

// parseSize parses 1000, 10K or 1M.
func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	mult := uint64(1)
	switch {
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1_000, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q: want a positive number, with K or M", s)
	}
	return n * mult, nil
}

// row is the figures at one size.
type row struct {
	size         uint64  // the tree's size as built, when the reads ran
	fillRate     float64 // entries/s while building
	ready        time.Duration
	submit       benchFigures
	proofs       benchFigures
	tiles        benchFigures
	bundles      benchFigures // asked for in zstd
	plain        benchFigures // bundles asked for in no coding
	dedup        dedupFigures
	rssBytes     int64
	peakRSSBytes int64
	memory       map[string]float64 // the server's /metrics, unlabelled series
	diskBytes    int64
	entryBytes   int64  // of the tree's entries (their mean size from a sample)
	builtEntries uint64 // the tree's size at the end
}

// dedupFigures is the cost of checking new entries for duplicates in the
// log's storage, its leaf filter ready.
type dedupFigures struct {
	perCheck      time.Duration // one lookup of a leaf hash not in the log
	falsePositive float64       // the share of them that read pebble
	filterBytes   int64
	filterFill    time.Duration // from open until the filter answered
}

type benchFigures struct {
	rate float64       // successful requests/s
	p99  time.Duration // latency
}

func run(ctx context.Context, c config, stdout, stderr io.Writer) error {
	// The progress, this function and candor-log's stderr write to it
	// from their own goroutines.
	stderr = &lockedWriter{w: stderr}
	for _, b := range []string{"candor-log", "candor"} {
		if _, err := os.Stat(filepath.Join(c.bin, b)); err != nil {
			return fmt.Errorf("%s/%s is missing: run make build (or give --bin)", c.bin, b)
		}
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "candor-growth-")
		if err != nil {
			return err
		}
		c.dir = d
		if !c.keep {
			defer os.RemoveAll(d)
		}
	}
	fmt.Fprintf(stderr, "candor-growth: the log is in %s\n", c.dir)
	ed, sha := machineSpeed()
	var rows []row
	for _, size := range c.sizes {
		r, err := growAndMeasure(ctx, c, size, stderr)
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	printTable(stdout, c, ed, sha, rows)
	return checkMemory(c, rows)
}

// machineSpeed measures Ed25519 verifications/s and SHA-256 MB/s on one
// core, for a second each.
func machineSpeed() (edPerSec, shaMBPerSec float64) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 600)
	sig := ed25519.Sign(priv, msg)
	start := time.Now()
	n := 0
	for time.Since(start) < time.Second {
		for range 100 {
			ed25519.Verify(pub, msg, sig)
		}
		n += 100
	}
	edPerSec = float64(n) / time.Since(start).Seconds()
	buf := make([]byte, 1<<20)
	start = time.Now()
	n = 0
	for time.Since(start) < time.Second {
		sha256.Sum256(buf)
		n++
	}
	return edPerSec, float64(n) / time.Since(start).Seconds()
}

func growAndMeasure(ctx context.Context, c config, size uint64, stderr io.Writer) (row, error) {
	r := row{size: size}
	built, entryBytes, rate, err := fill(ctx, c, size, stderr)
	if err != nil {
		return r, err
	}
	// The reads run at the tree's size as built (at least size).
	r.size, r.builtEntries, r.entryBytes, r.fillRate = built, built, entryBytes, rate
	if r.dedup, err = measureDedup(c); err != nil {
		return r, err
	}
	s, err := startServer(c, stderr)
	if err != nil {
		return r, err
	}
	defer s.stop()
	r.ready = s.ready
	// Reads first, on the tree as built; then submissions.
	for _, m := range []struct {
		mode        string
		concurrency int
		out         *benchFigures
	}{
		{"proofs", 64, &r.proofs},
		{"tiles", 64, &r.tiles},
		{"bundles", 64, &r.bundles},
		{"bundles --identity", 64, &r.plain},
		{"submit", 256, &r.submit},
	} {
		count := c.reads
		if m.mode == "submit" {
			count = c.submissions
		}
		f, err := s.bench(m.mode, count, m.concurrency, stderr)
		if err != nil {
			return r, err
		}
		*m.out = f
	}
	if r.rssBytes, r.peakRSSBytes, err = s.rss(); err != nil {
		return r, err
	}
	if r.memory, err = s.metrics(); err != nil {
		return r, err
	}
	// The submissions grew the tree: the disk is per entry of the tree.
	final, err := s.treeSize()
	if err != nil {
		return r, err
	}
	r.entryBytes = r.entryBytes / int64(r.builtEntries) * int64(final)
	r.builtEntries = final
	s.stop()
	if r.diskBytes, err = dirBytes(filepath.Join(c.dir, "db")); err != nil {
		return r, err
	}
	return r, nil
}

// fill grows the log in c.dir to size entries and returns how many
// entries it holds, their bytes (estimated from a sample), and the rate
// it added them at (0 if it added none).
func fill(ctx context.Context, c config, size uint64, stderr io.Writer) (uint64, int64, float64, error) {
	keyPath := filepath.Join(c.dir, "log.key")
	skey, err := keyfile.Load(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if skey, _, err = note.GenerateKey(rand.Reader, origin); err == nil {
			err = keyfile.Create(keyPath, skey)
		}
	}
	if err != nil {
		return 0, 0, 0, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return 0, 0, 0, err
	}
	vkey, err := api.VerifierKey(skey)
	if err != nil {
		return 0, 0, 0, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return 0, 0, 0, err
	}
	quiet := slog.New(slog.DiscardHandler)
	store, err := pebble.Open(filepath.Join(c.dir, "db"), pebble.Options{CacheBytes: int64(c.cacheMiB) << 20, TileFiles: true, BundleFiles: true, Logger: quiet})
	if err != nil {
		return 0, 0, 0, err
	}
	defer store.Close()
	l, err := log.New(ctx, log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet})
	if err != nil {
		return 0, 0, 0, err
	}
	defer l.Close()
	_, have := l.CommittedCheckpoint()
	if have >= size {
		mean, err := meanEntryBytes(ctx, l, have)
		return have, int64(mean * float64(have)), 0, err
	}
	// Each worker signs with a key of its own and numbers its entries
	// from a random run ID, so that every entry is new.
	var runID [8]byte
	rand.Read(runID[:])
	var next, added atomic.Uint64
	next.Store(have)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	start := time.Now()
	done := make(chan struct{})
	go progress(stderr, size, &added, have, start, done)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			errs[w] = fillWorker(ctx, l, c.payload, runID[:], &next, size, &added)
		})
	}
	wg.Wait()
	close(done)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, 0, err
	}
	_, got := l.CommittedCheckpoint()
	elapsed := time.Since(start)
	n := added.Load()
	fmt.Fprintf(stderr, "\rcandor-growth: %d entries added in %s (%.0f/s), tree size %d\n", n, elapsed.Round(time.Second), float64(n)/elapsed.Seconds(), got)
	mean, err := meanEntryBytes(ctx, l, got)
	return got, int64(mean * float64(got)), float64(n) / elapsed.Seconds(), err
}

// meanEntryBytes returns the mean size of the entries of the log's first
// size entries, from a sample of them.
func meanEntryBytes(ctx context.Context, l *log.Log, size uint64) (float64, error) {
	const samples = 2000
	var total int
	for i := range samples {
		e, err := l.Entry(ctx, uint64(i)*size/samples)
		if err != nil {
			return 0, fmt.Errorf("couldn't read an entry: %w", err)
		}
		total += len(e)
	}
	return float64(total) / samples, nil
}

// fillWorker signs, admits and adds entries in batches until next passes
// size.
func fillWorker(ctx context.Context, l *log.Log, payload string, runID []byte, next *atomic.Uint64, size uint64, added *atomic.Uint64) error {
	signer := apitest.NewBuildSigner()
	const batch = 512
	futures := make([]*log.Future, 0, batch)
	name := make([]byte, 0, 128)
	random := make([]byte, 24)
	if payload == "incompressible" {
		random = make([]byte, 512)
	}
	for {
		first := next.Add(batch) - batch
		if first >= size {
			return nil
		}
		last := min(first+batch, size)
		futures = futures[:0]
		for i := first; i < last; i++ {
			// About 880-byte entries, as candor bench makes: with
			// random, 24 random bytes in each subject's name; with
			// repeated, the same words. The digest, the signature and
			// the encodings are the rest. With incompressible, 512
			// random bytes in the name, so that most of the entry is
			// random (base64 within the statement's base64).
			name = fmt.Appendf(name[:0], "growth/%x/%d/", runID[:4], i)
			if payload != "repeated" {
				rand.Read(random)
				name = base64.RawURLEncoding.AppendEncode(name, random)
			} else {
				name = append(name, "the-same-words-again-and-again-a"...)
			}
			digest := sha256.Sum256(name)
			body := signer.Submission(string(name), fmt.Sprintf("%x", digest))
			entry, st, err := api.AdmitEntry(body)
			if err != nil {
				return fmt.Errorf("the log refused a built entry: %w", err)
			}
			futures = append(futures, l.SubmitWithTerms(ctx, entry, api.SearchTerms(st)))
		}
		for _, f := range futures {
			r, err := f.Wait(ctx)
			if err != nil {
				return err
			}
			if r.Duplicate {
				return fmt.Errorf("entry %d is a duplicate", r.Index)
			}
		}
		added.Add(uint64(len(futures)))
	}
}

// progress prints the fill's progress every few seconds until done.
func progress(w io.Writer, size uint64, added *atomic.Uint64, from uint64, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			n := added.Load()
			rate := float64(n) / time.Since(start).Seconds()
			left := time.Duration(float64(size-from-n)/rate) * time.Second
			fmt.Fprintf(w, "\rcandor-growth: building: %d of %d entries, %.0f/s, %s left   ", from+n, size, rate, left.Round(time.Second))
		}
	}
}

// server is a candor-log process on the log.
type server struct {
	cmd   *exec.Cmd
	url   string
	vkey  string
	ready time.Duration
	bin   string
	once  sync.Once
}

func startServer(c config, stderr io.Writer) (*server, error) {
	cmd := exec.Command(filepath.Join(c.bin, "candor-log"), "--data", c.dir, "--key", filepath.Join(c.dir, "log.key"),
		"--listen", "127.0.0.1:0", "--log-level", "warn", "--cache-mib", strconv.Itoa(c.cacheMiB))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, bin: c.bin}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		line := lines.Text()
		if v, ok := strings.CutPrefix(line, "candor-log: verifier key "); ok {
			s.vkey = v
		}
		if u, ok := strings.CutPrefix(line, "candor-log: listening on "); ok {
			s.url = u
			break
		}
	}
	go io.Copy(io.Discard, out)
	if s.url == "" {
		s.stop()
		return nil, errors.New("candor-log did not start")
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("candor-log was not ready within 10 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.ready = time.Since(start)
	// The leaf filter is filled in the background after the start (the
	// dedup figures time that): the rates are of the log once it is in
	// use, not of the scan's competition for the cores and the cache.
	if err := s.waitMetrics(deadline, func(m map[string]float64) bool { return m["candor_log_leaf_filter_entries"] > 0 }, nil,
		errors.New("candor-log's leaf filter was not filled within 10 minutes")); err != nil {
		return nil, err
	}
	// So are the tile files, if the log has none yet (one grown by an
	// older version).
	size, err := s.treeSize()
	if err != nil {
		s.stop()
		return nil, err
	}
	var full float64
	for n := size / api.TileWidth; n > 0; n /= api.TileWidth {
		full += float64(n)
	}
	if err := s.waitMetrics(deadline, func(m map[string]float64) bool { return m["candor_log_tile_file_tiles"] >= full }, nil,
		fmt.Errorf("candor-log's tile files did not hold the %.0f full tiles within 10 minutes", full)); err != nil {
		return nil, err
	}
	// So is the search index, if it is of an older format (a log grown
	// by an older version): the log rebuilds it in the background, some
	// 100 k entries a second.
	if err := s.waitMetrics(time.Now().Add(10*time.Minute+time.Duration(size/50_000)*time.Second),
		func(m map[string]float64) bool { return m["candor_log_search_unindexed_entries"] == 0 },
		func(m map[string]float64) {
			fmt.Fprintf(stderr, "candor-growth: waiting for candor-log to index %.0f entries for search\n", m["candor_log_search_unindexed_entries"])
		},
		errors.New("candor-log's search index did not cover the log in time")); err != nil {
		return nil, err
	}
	// And the bundles of a log grown before the bundle files: the log
	// moves them out of pebble in the background (some 2,000 bundles a
	// second here).
	bundles := float64(size / api.TileWidth)
	if err := s.waitMetrics(time.Now().Add(10*time.Minute+time.Duration(size/100_000)*time.Second),
		func(m map[string]float64) bool { return m["candor_log_bundle_file_bundles"] >= bundles },
		func(m map[string]float64) {
			fmt.Fprintf(stderr, "candor-growth: waiting for candor-log to move %.0f entry bundles to its bundle files\n", bundles-m["candor_log_bundle_file_bundles"])
		},
		errors.New("candor-log did not move the entry bundles to its bundle files in time")); err != nil {
		return nil, err
	}
	return s, nil
}

// waitMetrics reads the server's metrics every 100 ms until done says
// they show what it waits for. waiting, if set, is called once, with the
// first metrics read that do not. Past deadline it stops the server and
// returns failure.
func (s *server) waitMetrics(deadline time.Time, done func(map[string]float64) bool, waiting func(map[string]float64), failure error) error {
	for said := waiting == nil; ; {
		m, err := s.metrics()
		if err == nil && done(m) {
			return nil
		}
		if !said && err == nil {
			waiting(m)
			said = true
		}
		if time.Now().After(deadline) {
			s.stop()
			return failure
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
	})
}

var (
	throughputLine = regexp.MustCompile(`throughput\s+\S+ req/s, (\S+) successful/s`)
	latencyLine    = regexp.MustCompile(`latency\s+p50 \S+\s+p90 \S+\s+p99 (\S+)`)
	errorsLine     = regexp.MustCompile(`errors\s+(\d+)`)
)

// bench runs candor bench against the server and returns its figures.
func (s *server) bench(mode string, count, concurrency int, stderr io.Writer) (benchFigures, error) {
	fmt.Fprintf(stderr, "candor-growth: candor bench --mode %s --count %d --concurrency %d\n", mode, count, concurrency)
	args := append([]string{"bench", "--url", s.url, "--verifier-key", s.vkey, "--mode"}, strings.Fields(mode)...)
	cmd := exec.Command(filepath.Join(s.bin, "candor"), append(args,
		"--count", strconv.Itoa(count), "--concurrency", strconv.Itoa(concurrency), "--duration", "10m", "--verify", "100")...)
	out, err := cmd.Output()
	if err != nil {
		return benchFigures{}, fmt.Errorf("candor bench --mode %s: %w\n%s", mode, err, out)
	}
	text := string(out)
	t, l, e := throughputLine.FindStringSubmatch(text), latencyLine.FindStringSubmatch(text), errorsLine.FindStringSubmatch(text)
	if t == nil || l == nil || e == nil {
		return benchFigures{}, fmt.Errorf("candor bench --mode %s printed no figures:\n%s", mode, text)
	}
	if e[1] != "0" {
		return benchFigures{}, fmt.Errorf("candor bench --mode %s had errors:\n%s", mode, text)
	}
	rate, err := strconv.ParseFloat(t[1], 64)
	if err != nil {
		return benchFigures{}, err
	}
	p99, err := time.ParseDuration(l[1])
	if err != nil {
		return benchFigures{}, err
	}
	return benchFigures{rate: rate, p99: p99}, nil
}

// treeSize returns the size of the server's checkpoint.
func (s *server) treeSize() (uint64, error) {
	resp, err := http.Get(s.url + "/checkpoint")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, err
	}
	body, err := api.CheckpointBody(b)
	if err != nil {
		return 0, err
	}
	c, err := api.ParseCheckpoint(body)
	return c.Size, err
}

// rss returns the server's resident memory and its peak, from /proc.
func (s *server) rss() (now, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("resident memory (needs Linux's /proc): %w", err)
	}
	field := func(name string) (int64, error) {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				return kb << 10, err
			}
		}
		return 0, fmt.Errorf("no %s in /proc/PID/status", name)
	}
	if now, err = field("VmRSS"); err != nil {
		return 0, 0, err
	}
	peak, err = field("VmHWM")
	return now, peak, err
}

// metrics returns the values of the server's unlabelled metrics.
func (s *server) metrics() (map[string]float64, error) {
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		name, v, ok := strings.Cut(lines.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			m[name] = f
		}
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if _, ok := m["go_memstats_heap_inuse_bytes"]; !ok {
		return nil, errors.New("no go_memstats_heap_inuse_bytes in /metrics")
	}
	return m, nil
}

// dirBytes returns the bytes of the files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}

func printTable(w io.Writer, c config, ed, sha float64, rows []row) {
	fmt.Fprintf(w, "candor-growth: %s payloads; this machine: %d cores, Ed25519 %.0f verifications/s, SHA-256 %.0f MB/s (one core)\n",
		c.payload, runtime.NumCPU(), ed, sha)
	fmt.Fprintf(w, "submissions: %d at concurrency 256; proofs, tiles, bundles: %d each at concurrency 64, uniformly random indexes; bundles asked for in zstd (as the candor client does), then in no coding (plain)\n\n", c.submissions, c.reads)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tree size\tbuilt/s\tready\tsubmit/s\tp99\tproofs/s\tp99\ttiles/s\tp99\tbundles/s\tp99\tplain/s\tp99\tdisk B/entry\tentry B\t")
	for _, r := range rows {
		built := "-"
		if r.fillRate > 0 {
			built = fmt.Sprintf("%.0f", r.fillRate)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.0f\t%s\t%.0f\t%s\t%.0f\t%s\t%.0f\t%s\t%.0f\t%s\t%.0f\t%.0f\t\n",
			r.size, built, r.ready.Round(time.Millisecond),
			r.submit.rate, r.submit.p99.Round(100*time.Microsecond),
			r.proofs.rate, r.proofs.p99.Round(100*time.Microsecond),
			r.tiles.rate, r.tiles.p99.Round(100*time.Microsecond),
			r.bundles.rate, r.bundles.p99.Round(100*time.Microsecond),
			r.plain.rate, r.plain.p99.Round(100*time.Microsecond),
			float64(r.diskBytes)/float64(r.builtEntries), float64(r.entryBytes)/float64(r.builtEntries))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nduplicate checks of %d new leaf hashes in the storage, one goroutine; the server's memory after the runs, its peak and the bound its configuration sets (MiB)\n", dedupChecks)
	pure := pureGo(c.bin)
	if !pure {
		fmt.Fprintln(w, "candor-log was built with cgo: pebble's block cache and memtables are outside its memory limit, so there is no bound (make build builds without)")
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Without cgo, the block cache and memtables are part of the Go
	// heap; with it, outside is what malloc holds besides them.
	fmt.Fprintln(tw, "tree size\tcheck ns\tfalse pos.\tfilter MiB\tfilter fill\tRSS\tpeak\tbound\tGo heap\tGo other\tblock cache\tmemtables\tleaf filter\toutside\t")
	for _, r := range rows {
		m := r.memory
		goHeld := m["go_memstats_sys_bytes"] - m["go_memstats_heap_released_bytes"]
		bound, outside := "-", "-"
		if pure {
			bound = fmt.Sprintf("%.0f", mib(memoryBound(m)))
		} else {
			outside = fmt.Sprintf("%.0f", mib(float64(r.rssBytes)-goHeld-m["candor_log_leaf_filter_bytes"]-m["candor_log_pebble_block_cache_bytes"]-m["candor_log_pebble_memtable_bytes"]))
		}
		fmt.Fprintf(tw, "%d\t%d\t%.4f%%\t%.1f\t%s\t%d\t%d\t%s\t%.0f\t%.0f\t%.1f\t%.0f\t%.0f\t%s\t\n",
			r.size, r.dedup.perCheck.Nanoseconds(), 100*r.dedup.falsePositive, float64(r.dedup.filterBytes)/(1<<20), r.dedup.filterFill.Round(10*time.Millisecond),
			r.rssBytes>>20, r.peakRSSBytes>>20, bound,
			mib(m["go_memstats_heap_inuse_bytes"]), mib(goHeld-m["go_memstats_heap_inuse_bytes"]),
			mib(m["candor_log_pebble_block_cache_bytes"]), mib(m["candor_log_pebble_memtable_bytes"]), mib(m["candor_log_leaf_filter_bytes"]),
			outside)
	}
	tw.Flush()
}

func mib(b float64) float64 { return b / (1 << 20) }

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
