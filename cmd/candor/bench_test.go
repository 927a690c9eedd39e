package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// newTestLog serves a real log on pebble in a temporary directory, with
// the handler wrapped by wrap if not nil. It returns its URL and verifier
// key.
func newTestLog(t testing.TB, wrap func(http.Handler) http.Handler) (string, string) {
	t.Helper()
	signer, verifier, vkey := apitest.NewNoteKey("example.com/bench-test", rand.Reader)
	url, _ := newTestLogWithKey(t, signer, verifier, wrap)
	return url, vkey
}

// newTestLogWithKey serves a new log on pebble that signs with signer, and
// returns its URL and engine. Two logs with one key are a log that forked.
func newTestLogWithKey(t testing.TB, signer note.Signer, verifier note.Verifier, wrap func(http.Handler) http.Handler) (string, *log.Log) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: logger, BundleFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	h := log.NewHandler(l, log.HandlerOptions{Logger: logger})
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, l
}

func testConfig(url, mode string, count int) benchConfig {
	return benchConfig{
		URL:          url,
		Kind:         api.KindBuild,
		Mode:         mode,
		Concurrency:  8,
		Count:        count,
		Duration:     time.Minute,
		Timeout:      10 * time.Second,
		Signers:      2,
		VerifySample: count,
	}
}

func TestBenchModes(t *testing.T) {
	url, vkey := newTestLog(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		mode, vkey string
		code       int
		kind       string
	}{
		{"submit", vkey, http.StatusCreated, api.KindBuild},
		{"submit", "", http.StatusCreated, api.KindBuild},
		{"submit", vkey, http.StatusCreated, api.KindCommit},
		{"submit", vkey, http.StatusCreated, api.KindImage},
		{"proofs", vkey, http.StatusOK, ""},
		{"proofs", "", http.StatusOK, ""},
		{"tiles", "", http.StatusOK, ""},
		{"bundles", "", http.StatusOK, ""},
	} {
		cfg := testConfig(url, tc.mode, 300)
		cfg.VerifierKey = tc.vkey
		if tc.kind != "" {
			cfg.Kind = tc.kind
		}
		res, err := bench(ctx, cfg, io.Discard, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		var out bytes.Buffer
		res.print(&out)
		t.Logf("%s, verifier key %q:\n%s", tc.mode, tc.vkey, out.String())
		if res.sent != 300 || res.codes[tc.code] != 300 || res.failures() != 0 {
			t.Errorf("%s: sent %d, codes %v, errors %v; want 300 × %d", tc.mode, res.sent, res.codes, res.errs, tc.code)
		}
		if res.verified != 300 || res.verifyFailed != 0 {
			t.Errorf("%s: %d verified, %d failed (%v); want 300 verified", tc.mode, res.verified, res.verifyFailed, res.verifyErr)
		}
		if len(res.latencies) != 300 || res.percentile(0.5) <= 0 || res.percentile(1) < res.percentile(0.99) {
			t.Errorf("%s: latencies %d, p50 %s, p99 %s, max %s", tc.mode, len(res.latencies), res.percentile(0.5), res.percentile(0.99), res.percentile(1))
		}
		if res.signaturesChecked != (tc.vkey != "") {
			t.Errorf("%s: signaturesChecked = %v with verifier key %q", tc.mode, res.signaturesChecked, tc.vkey)
		}
	}
}

// TestBenchPrintPaths checks that --print-paths prints, for each read
// mode, paths the log serves, and --print-bodies submissions it accepts,
// and that neither sends anything itself.
func TestBenchPrintPaths(t *testing.T) {
	var requests atomic.Int64
	url, _ := newTestLog(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	if _, err := bench(ctx, testConfig(url, "submit", 300), io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, args := range [][]string{
		{"--mode", "submit", "--kind", "sbom"},
		{"--mode", "submit", "--print-paths"},
		{"--mode", "proofs", "--print-bodies"},
		{"--mode", "submit", "--print-paths", "--print-bodies"},
		{"--mode", "proofs", "--identity"},
	} {
		if err := runBench(ctx, append([]string{"--url", url}, args...), &out, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	for _, mode := range []string{"proofs", "tiles", "bundles"} {
		out.Reset()
		before := requests.Load()
		if err := runBench(ctx, []string{"--url", url, "--mode", mode, "--count", "50", "--print-paths"}, &out, io.Discard); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if n := requests.Load() - before; n != 1 {
			t.Errorf("%s: %d requests to the log, want 1 (the checkpoint)", mode, n)
		}
		paths := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(paths) != 50 {
			t.Fatalf("%s: %d paths, want 50:\n%s", mode, len(paths), out.String())
		}
		for _, p := range paths {
			resp, err := http.Get(url + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: GET %s: %s", mode, p, resp.Status)
			}
		}
	}
	out.Reset()
	before := requests.Load()
	if err := runBench(ctx, []string{"--url", url, "--count", "20", "--print-bodies"}, &out, io.Discard); err != nil {
		t.Fatalf("--print-bodies: %v", err)
	}
	if n := requests.Load() - before; n != 1 {
		t.Errorf("--print-bodies: %d requests to the log, want 1 (the checkpoint)", n)
	}
	bodies := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(bodies) != 20 {
		t.Fatalf("--print-bodies: %d lines, want 20:\n%s", len(bodies), out.String())
	}
	for _, b := range bodies {
		resp, err := http.Post(url+"/v1/entries", "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("POST /v1/entries of a printed body: %s", resp.Status)
		}
	}
}

// TestBenchDetectsBadProofs checks that a log answering submissions with
// proofs for the wrong index fails the run, with and without the
// verifier key.
func TestBenchDetectsBadProofs(t *testing.T) {
	var tamper atomic.Bool
	url, vkey := newTestLog(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !tamper.Load() || r.URL.Path != "/v1/entries" {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var resp api.AddEntryResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Error(err)
				return
			}
			p, err := api.ParseProofBundle([]byte(resp.Proof))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Index ^= 1
			p.Index ^= 1
			resp.Proof = string(p.Marshal())
			w.WriteHeader(rec.Code)
			json.NewEncoder(w).Encode(resp)
		})
	})
	ctx := context.Background()
	// A tree of more than one entry, so that every proof has a hash.
	if _, err := bench(ctx, testConfig(url, "submit", 20), io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	tamper.Store(true)
	for _, key := range []string{vkey, ""} {
		cfg := testConfig(url, "submit", 50)
		cfg.VerifierKey = key
		res, err := bench(ctx, cfg, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.verifyFailed != 50 || res.verified != 0 {
			t.Errorf("verifier key %q: %d verified, %d failed; want all 50 to fail", key, res.verified, res.verifyFailed)
		}
	}
	args := []string{"--url", url, "--count", "10", "--concurrency", "2"}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, append([]string{"bench"}, args...), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "failed verification") {
		t.Errorf("candor bench %s: exit code %d, stderr %q; want 1 and a verification failure", strings.Join(args, " "), code, stderr.String())
	}
}

// slowTiles serves a log of 1000 entries whose tiles (all zeroes) take d
// to serve.
func slowTiles(t *testing.T, d time.Duration) http.Handler {
	skey, _, err := note.GenerateKey(rand.Reader, "example.com/slow")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := api.SignCheckpoint(api.Checkpoint{Origin: "example.com/slow", Size: 1000}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/checkpoint" {
			w.Write(cp)
			return
		}
		time.Sleep(d)
		tile, err := api.ParseTilePath(r.URL.Path)
		if err != nil || tile.Level == api.EntriesLevel {
			// An entry bundle of zero-length entries.
			w.Write(make([]byte, 2*tile.Width))
			return
		}
		w.Write(make([]byte, api.HashSize*tile.Width))
	})
}

// TestBenchOpenLoop checks that at a rate, latency counts from when a
// request was due, not from when a busy worker got to send it: one worker
// against a server that takes 50ms per request, at 100 requests/s, falls
// further behind with every request.
func TestBenchOpenLoop(t *testing.T) {
	srv := httptest.NewServer(slowTiles(t, 50*time.Millisecond))
	defer srv.Close()
	cfg := testConfig(srv.URL, "tiles", 20)
	cfg.Concurrency = 1
	cfg.Rate = 100
	res, err := bench(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.verifyFailed != 0 || res.codes[200] != 20 {
		t.Fatalf("codes %v, %d verification failures (%v)", res.codes, res.verifyFailed, res.verifyErr)
	}
	// Request i is due at 10i ms and done no earlier than 50(i+1) ms.
	if min := 40*19*time.Millisecond + 50*time.Millisecond; res.percentile(1) < min {
		t.Errorf("max latency %s, want at least %s", res.percentile(1), min)
	}
	if res.percentile(0) < 50*time.Millisecond {
		t.Errorf("min latency %s, want at least the 50ms the server takes", res.percentile(0))
	}
}

// TestBenchDuration checks that --duration stops the run.
func TestBenchDuration(t *testing.T) {
	url, _ := newTestLog(t, nil)
	cfg := testConfig(url, "submit", 1000)
	cfg.Rate = 100
	cfg.Duration = 200 * time.Millisecond
	res, err := bench(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Requests 0 to 20 are due within the duration.
	if res.sent < 1 || res.sent > 21 || res.sent+res.missed != 21 {
		t.Errorf("sent %d requests, missed %d, in a 200ms run at 100/s; want 21 in all", res.sent, res.missed)
	}
}

// TestBenchDurationBehind checks that --duration stops a run that falls
// behind its rate, and that the requests it could not send are counted.
func TestBenchDurationBehind(t *testing.T) {
	srv := httptest.NewServer(slowTiles(t, 50*time.Millisecond))
	defer srv.Close()
	cfg := testConfig(srv.URL, "tiles", 1000)
	cfg.Concurrency = 1
	cfg.Rate = 1000
	cfg.Duration = 300 * time.Millisecond
	start := time.Now()
	res, err := bench(context.Background(), cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 300ms run took %s", d)
	}
	// 301 are due; one worker at 50ms each sends about 7.
	if res.sent > 20 || res.sent+res.missed != 301 {
		t.Errorf("sent %d, missed %d; want few sent and 301 in all", res.sent, res.missed)
	}
}

func TestRunUsage(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{nil, {"nosuch"}} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("candor %q: exit code %d, stderr %q; want 2 and usage", args, code, stderr.String())
		}
	}
	// Help that was asked for is not an error.
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"bench", "-h"}, {"verify-evidence", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != 0 || stderr.Len() == 0 {
			t.Errorf("candor %q: exit code %d, stderr %q; want 0 and usage", args, code, stderr.String())
		}
	}
	for _, args := range [][]string{{"--version"}, {"bench", "--version"}, {"verify-evidence", "-version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, args, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "candor ") ||
			!strings.Contains(stdout.String(), "(revision ") {
			t.Errorf("candor %q: exit code %d, stdout %q; want 0 and the version", args, code, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"bench", "--mode", "nosuch", "--concurrency", "0"}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "--mode") || !strings.Contains(stderr.String(), "--concurrency") {
		t.Errorf("bad flags: exit code %d, stderr %q; want 1 naming both flags", code, stderr.String())
	}
}

func TestPercentile(t *testing.T) {
	r := &benchResult{}
	for i := 1; i <= 100; i++ {
		r.latencies = append(r.latencies, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0: 1, 0.5: 50, 0.9: 90, 0.99: 99, 1: 100} {
		if got := r.percentile(q); got != want {
			t.Errorf("percentile(%v) = %d, want %d", q, got, want)
		}
	}
}

// BenchmarkHTTP runs "candor bench" against a log served in the same
// process, so that one CPU profile shows the server's and the client's
// work per request. One op is one request; signing the submissions is not
// timed. The read modes run on the log the submissions made.
func BenchmarkHTTP(b *testing.B) {
	url, vkey := newTestLog(b, nil)
	run := func(b *testing.B, kind, mode string, conc int) {
		cfg := testConfig(url, mode, b.N)
		cfg.Kind = kind
		cfg.Concurrency = conc
		cfg.VerifierKey = vkey
		cfg.VerifySample = 100
		cfg.Signers = runtime.GOMAXPROCS(0)
		r, err := prepare(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer r.close()
		b.ResetTimer()
		r.send(context.Background(), nil)
		b.StopTimer()
		res := r.finish(context.Background())
		if res.successes() != b.N || res.verifyFailed != 0 {
			b.Fatalf("codes %v, errors %v, %d verification failures (%v)", res.codes, res.errs, res.verifyFailed, res.verifyErr)
		}
		b.ReportMetric(float64(b.N)/res.elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(res.percentile(0.99))/1e6, "p99-ms")
	}
	for _, conc := range []int{64, 256} {
		b.Run(fmt.Sprintf("mode=submit/concurrency=%d", conc), func(b *testing.B) { run(b, api.KindBuild, "submit", conc) })
	}
	// Commits signed with SSH Ed25519 keys against builds signed with
	// Ed25519 keys: both cost the log one Ed25519 verification; images
	// signed with ECDSA P-256 keys, as cosign signs, one P-256
	// verification (compare with api's BenchmarkECDSAP256Verify).
	for _, kind := range []string{api.KindBuild, api.KindCommit, api.KindImage} {
		b.Run(fmt.Sprintf("mode=submit/kind=%s/concurrency=64", kind), func(b *testing.B) { run(b, kind, "submit", 64) })
	}
	for _, mode := range []string{"proofs", "tiles", "bundles"} {
		b.Run(fmt.Sprintf("mode=%s/concurrency=64", mode), func(b *testing.B) {
			// The reads need a log of some size, if the submissions did
			// not run.
			cl, err := newClient(url, 1, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			cp, err := cl.checkpoint(context.Background(), nil)
			if err != nil {
				b.Fatal(err)
			}
			if cp.Size < 10000 {
				if _, err := bench(context.Background(), testConfig(url, "submit", int(10000-cp.Size)), io.Discard, nil); err != nil {
					b.Fatal(err)
				}
			}
			run(b, api.KindBuild, mode, 64)
		})
	}
}

// TestBenchBundlesZstd checks that bundles mode asks for zstd, keeps the
// replies compressed and verifies them decoded, and that --identity asks
// for none.
func TestBenchBundlesZstd(t *testing.T) {
	url, _ := newTestLog(t, nil)
	ctx := context.Background()
	if _, err := bench(ctx, testConfig(url, "submit", 3*api.TileWidth), io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	// The log moves full bundles to its bundle files, which serve them
	// in zstd, within a second or so of their commit.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := bench(ctx, testConfig(url, "bundles", 200), io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.failures() != 0 || res.verified != 200 || res.verifyFailed != 0 {
			t.Fatalf("bundles: %d errors %v, %d verified, %d failed (%v)", res.failures(), res.errs, res.verified, res.verifyFailed, res.verifyErr)
		}
		if res.encoded == 200 { // three full bundles, no partial one
			var out bytes.Buffer
			res.print(&out)
			if !strings.Contains(out.String(), "replies in zstd") {
				t.Errorf("the report does not say the replies came in zstd:\n%s", out.String())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bundles: %d of 200 replies in zstd 30 s after the bundles filled", res.encoded)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg := testConfig(url, "bundles", 200)
	cfg.Identity = true
	res, err := bench(ctx, cfg, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.encoded != 0 || res.verified != 200 || res.failures() != 0 {
		t.Errorf("--identity: %d replies in zstd, %d verified, %d errors; want none, 200, none", res.encoded, res.verified, res.failures())
	}
}
