package log_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// Search forwards to the storage's search index, so that the benchmarks'
// timing wrapper hides nothing of it.
func (s *timedStorage) Search(ctx context.Context, terms []api.SearchTerm, start, end uint64, limit int) ([]uint64, error) {
	return s.Storage.(log.SearchStorage).Search(ctx, terms, start, end, limit)
}

// LeafHashes forwards to the storage's reading of many leaf hashes.
func (s *timedStorage) LeafHashes(ctx context.Context, indexes []uint64) ([][]byte, error) {
	return s.Storage.(interface {
		LeafHashes(context.Context, []uint64) ([][]byte, error)
	}).LeafHashes(ctx, indexes)
}

// IndexedSize and IndexCommitted forward to the storage's deferred
// indexing, so that the log defers as it does on the storage itself.
func (s *timedStorage) IndexedSize(ctx context.Context) (uint64, bool, error) {
	return s.Storage.(log.DeferredIndexer).IndexedSize(ctx)
}

func (s *timedStorage) IndexCommitted(ctx context.Context, leaves []log.LeafIndex, next uint64) error {
	return s.Storage.(log.DeferredIndexer).IndexCommitted(ctx, leaves, next)
}

// The terms of the benchmarks' entries: those of a signed commit, its id
// (one entry each), its repository (one of benchRepos) and its key's
// fingerprint (one of benchKeys). Repositories and keys are spread over
// the whole log, so that a page of their hits is spread over it too.
const (
	benchRepos = 1000
	benchKeys  = 100
)

func benchCommit(i uint64) string {
	h := sha256.Sum256(fmt.Appendf(nil, "commit %d", i))
	return hex.EncodeToString(h[:20])
}

func benchRepo(r uint64) string {
	return fmt.Sprintf("https://git.example.com/team-%d/project-%d.git", r%37, r)
}

func benchKey(k uint64) string {
	h := sha256.Sum256(fmt.Appendf(nil, "key %d", k))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

func benchDigest(i uint64) string {
	h := sha256.Sum256(fmt.Appendf(nil, "digest %d", i))
	return "sha256:" + hex.EncodeToString(h[:])
}

// benchTerms returns the terms of entry i as a signed commit has them:
// its id, its repository and its key (a build entry has fewer: a digest
// per subject, usually one, and a key).
func benchTerms(i uint64) []api.SearchTerm {
	return []api.SearchTerm{
		{Param: api.SearchCommit, Value: benchCommit(i)},
		{Param: api.SearchKey, Value: benchKey(i * 7919 % benchKeys)},
		{Param: api.SearchRepository, Value: benchRepo(i * 104729 % benchRepos)},
	}
}

// submitWithTerms is submitEntries with each entry's terms (none if terms
// is nil).
func submitWithTerms(b *testing.B, l *log.Log, entries [][]byte, terms [][]api.SearchTerm, producers, window int) {
	b.Helper()
	var at func(int) []api.SearchTerm
	if terms != nil {
		at = func(i int) []api.SearchTerm { return terms[i] }
	}
	submitWithTermsOf(b, l, entries, at, producers, window)
}

// submitWithTermsOf is submitWithTerms with the terms of entry i made by
// terms(i) as it is submitted, as admission makes them.
func submitWithTermsOf(b *testing.B, l *log.Log, entries [][]byte, terms func(int) []api.SearchTerm, producers, window int) {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, producers)
	for p := range producers {
		wg.Go(func() {
			ring := make([]*log.Future, window/producers)
			wait := func(f *log.Future) bool {
				if f == nil {
					return true
				}
				_, err := f.Wait(ctx)
				errs[p] = err
				return err == nil
			}
			k := 0
			for i := p; i < len(entries); i += producers {
				if !wait(ring[k]) {
					return
				}
				var t []api.SearchTerm
				if terms != nil {
					t = terms(i)
				}
				ring[k] = l.SubmitWithTerms(ctx, entries[i], t)
				k = (k + 1) % len(ring)
			}
			for _, f := range ring {
				if !wait(f) {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendIndex measures what the search index costs the engine's
// durable throughput: BenchmarkSubmit's load (window=4096) with entries
// added without terms (index=off) and with a commit's three terms each
// (index=on). The terms' values are made before the clock starts, in one
// string, and each entry's terms are put together as it is submitted, as
// admission does: millions of terms made and kept beforehand would be
// work for the collector that a server never has. One op is one entry.
func BenchmarkAppendIndex(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("index=%s", map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
			var terms func(int) []api.SearchTerm
			if on {
				terms = benchTermsArena(b.N)
			}
			// On a shared machine the CPU time per entry varies less than
			// the throughput.
			var cpu time.Duration
			benchWrites(b, func(l *log.Log, entries [][]byte) {
				start := processCPUTime()
				submitWithTermsOf(b, l, entries, terms, 2, 4096)
				cpu = processCPUTime() - start
			})
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/entry")
		})
	}
}

// benchTermsArena returns a function that gives the terms of entry i <
// n, benchTerms(i), from values made once and held in one string.
func benchTermsArena(n int) func(int) []api.SearchTerm {
	const perEntry = 3
	var all strings.Builder
	ends := make([]uint32, 0, n*perEntry)
	for i := range n {
		for _, t := range benchTerms(uint64(i)) {
			all.WriteString(t.Value)
			ends = append(ends, uint32(all.Len()))
		}
	}
	values := all.String()
	params := [perEntry]string{api.SearchCommit, api.SearchKey, api.SearchRepository}
	return func(i int) []api.SearchTerm {
		terms := make([]api.SearchTerm, perEntry)
		start := uint32(0)
		if i > 0 {
			start = ends[i*perEntry-1]
		}
		for k := range terms {
			end := ends[i*perEntry+k]
			terms[k] = api.SearchTerm{Param: params[k], Value: values[start:end]}
			start = end
		}
		return terms
	}
}

// searchBenchSize is the size of the log BenchmarkSearchHTTP searches.
const searchBenchSize = 1_000_000

// BenchmarkSearchHTTP measures GET /v1/search through the real handler and
// a real HTTP client on loopback, on a log of searchBenchSize entries,
// with 64 clients: each sending its next request as soon as it has the
// reply (rate=max: the latency is mostly the wait for the CPU behind the
// 63 other clients, client and server sharing the machine), or all of
// them together 2,000 requests per second on a fixed schedule (rate=2000,
// the latency counted from when a request was due). For each parameter it
// reports the latency percentiles; commit
// and digest find one entry, repository and key a first page of 100 of
// their 1,000 and 10,000 entries, key+repository the entries they share
// (10 each), spread over the log. One op is one request.
func BenchmarkSearchHTTP(b *testing.B) {
	l, _ := newBenchLog(b, b.TempDir(), nil)
	// Commit terms, and a digest of its own for every entry.
	terms := make([][]api.SearchTerm, searchBenchSize)
	for i := range terms {
		terms[i] = append(benchTerms(uint64(i)), api.SearchTerm{Param: api.SearchDigest, Value: benchDigest(uint64(i))})
	}
	for first := 0; first < searchBenchSize; first += 100_000 {
		submitWithTerms(b, l, benchEntries(uint64(first), 100_000), terms[first:first+100_000], 2, 4096)
	}
	terms = nil
	// The time each request spends in the handler, from when the server
	// has read it to when the reply is written: the client's latency less
	// the queueing in the kernel and in the clients' scheduling.
	var served serverTimes
	h := log.NewHandler(l, log.HandlerOptions{Logger: quiet})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		h.ServeHTTP(w, r)
		served.add(time.Since(t0))
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	queries := map[string]func(rng *rand.Rand) (url.Values, int){
		"commit": func(rng *rand.Rand) (url.Values, int) {
			return url.Values{"commit": {benchCommit(rng.Uint64N(searchBenchSize))}}, 1
		},
		"digest": func(rng *rand.Rand) (url.Values, int) {
			return url.Values{"digest": {benchDigest(rng.Uint64N(searchBenchSize))}}, 1
		},
		"repository": func(rng *rand.Rand) (url.Values, int) {
			return url.Values{"repository": {benchRepo(rng.Uint64N(benchRepos))}}, api.DefaultSearchLimit
		},
		"key": func(rng *rand.Rand) (url.Values, int) {
			return url.Values{"key": {benchKey(rng.Uint64N(benchKeys))}}, api.DefaultSearchLimit
		},
		"key+repository": func(rng *rand.Rand) (url.Values, int) {
			// Entry i has key i*7919 % 100 and repository i*104729 % 1000:
			// take both from one entry.
			i := rng.Uint64N(searchBenchSize)
			return url.Values{"key": {benchKey(i * 7919 % benchKeys)}, "repository": {benchRepo(i * 104729 % benchRepos)}}, -1
		},
	}
	// Let pebble's compactions of the fill settle (they take some 20 s of
	// both cores after a fill of 1 M entries), so that they do not weigh on
	// the first measurements only.
	time.Sleep(30 * time.Second)
	warm := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		for _, q := range queries {
			v, _ := q(warm)
			resp, err := hc.Get(srv.URL + "/v1/search?" + v.Encode())
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	for _, rate := range []int{0, 2000} {
		for _, param := range []string{"commit", "repository", "digest", "key", "key+repository"} {
			name := "param=" + param + "/rate=max"
			if rate > 0 {
				name = fmt.Sprintf("param=%s/rate=%d", param, rate)
			}
			b.Run(name, func(b *testing.B) {
				served.reset()
				benchSearchClients(b, hc, srv.URL, 64, float64(rate), queries[param])
				b.ReportMetric(served.percentile(0.99), "server-p99-ms")
			})
		}
	}
}

// serverTimes collects the durations of requests in a handler.
type serverTimes struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *serverTimes) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

func (s *serverTimes) reset() {
	s.mu.Lock()
	s.d = s.d[:0]
	s.mu.Unlock()
}

// percentile returns the p-th percentile in milliseconds.
func (s *serverTimes) percentile(p float64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.d) == 0 {
		return 0
	}
	slices.Sort(s.d)
	return float64(s.d[min(len(s.d)-1, int(p*float64(len(s.d))))].Microseconds()) / 1000
}

// benchSearchClients sends b.N searches from clients goroutines, as fast
// as they can or at rate requests per second in all, and reports the
// latency percentiles. query returns a search and the hits it must find
// on its first page (-1: at least one).
func benchSearchClients(b *testing.B, hc *http.Client, base string, clients int, rate float64, query func(*rand.Rand) (url.Values, int)) {
	var next atomic.Int64
	latencies := make([]time.Duration, b.N)
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 99))
			for failed.Load() == nil {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				q, want := query(rng)
				t0 := time.Now()
				if rate > 0 {
					// Request i is due at i/rate: wait for it, and count
					// the latency from then even if the client is late.
					t0 = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					time.Sleep(time.Until(t0))
				}
				resp, err := hc.Get(base + "/v1/search?" + q.Encode())
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				latencies[i] = time.Since(t0)
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s: %s", resp.Status, body)
				}
				if err == nil {
					var r api.SearchResponse
					if r, err = decodeSearch(body); err == nil && (want >= 0 && len(r.Hits) != want || want < 0 && len(r.Hits) == 0) {
						err = fmt.Errorf("GET /v1/search?%s: %d hits, want %d", q.Encode(), len(r.Hits), want)
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}

func decodeSearch(body []byte) (api.SearchResponse, error) {
	var r api.SearchResponse
	err := json.Unmarshal(body, &r)
	return r, err
}

// BenchmarkReindex measures log.Reindex over a log of real build entries
// (each signed by one of a few Ed25519 keys, about one subject): it
// parses every entry and indexes its terms. One op is one reindex of
// the whole log.
func BenchmarkReindex(b *testing.B) {
	const n = 200_000
	dir := b.TempDir()
	store, err := pebble.Open(dir, pebble.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	signer, verifier := testKeys()
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	entries := make([][]byte, n)
	var signers []*apitest.BuildSigner
	for k := range 10 {
		signers = append(signers, apitest.NewBuildSignerFromSeed(fmt.Appendf(nil, "reindex %d", k)))
	}
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				entries[i] = signers[i%len(signers)].Submission(fmt.Sprintf("artifact-%d.tar.gz", i), benchDigest(uint64(i))[len("sha256:"):])
			}
		})
	}
	wg.Wait()
	// The submissions are canonical entries already; their terms are
	// those the reindex must find again.
	terms := make([][]api.SearchTerm, n)
	for i, e := range entries {
		if terms[i], err = api.StoredEntryTerms(e); err != nil {
			b.Fatal(err)
		}
	}
	submitWithTerms(b, l, entries, terms, 2, 4096)
	l.Close()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		stats, err := log.Reindex(context.Background(), store, nil)
		if err != nil {
			b.Fatal(err)
		}
		if stats.Entries != n {
			b.Fatalf("reindexed %d entries, want %d", stats.Entries, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/time.Since(start).Seconds(), "entries/s")
}
