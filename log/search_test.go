package log_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// searchLog is a log on real pebble storage in dir behind a real HTTP
// server, that can be stopped and started again on the same storage.
type searchLog struct {
	dir    string
	store  *pebble.Storage
	log    *log.Log
	srv    *httptest.Server
	client *client.Client
}

func startSearchLog(t *testing.T, dir string) *searchLog {
	t.Helper()
	return startSearchLogOn(t, dir, nil)
}

// startSearchLogOn is startSearchLog with the storage that wrap makes of
// the pebble storage (if not nil).
func startSearchLogOn(t *testing.T, dir string, wrap func(*pebble.Storage) log.Storage) *searchLog {
	t.Helper()
	signer, verifier := testKeys()
	store, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var ls log.Storage = store
	if wrap != nil {
		ls = wrap(store)
	}
	l, err := log.New(context.Background(), log.Config{Storage: ls, Signer: signer, Verifier: verifier, Logger: quiet})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet}))
	s := &searchLog{dir: dir, store: store, log: l, srv: srv, client: client.New(srv.URL, srv.Client())}
	t.Cleanup(s.stop)
	return s
}

func (s *searchLog) stop() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	s.log.Close()
	s.store.Close()
	s.srv = nil
}

// mixedSubmissions returns n submissions: build submissions signed by one
// of a few keys, each about a digest drawn from a small pool, and (one in
// four) signed commits by one of a few SSH keys in one of a few
// repositories, so that keys, digests and repositories are shared by many
// entries and conjunctions of them by some.
func mixedSubmissions(n int) [][]byte {
	var signers []*apitest.BuildSigner
	for i := range 5 {
		signers = append(signers, apitest.NewBuildSignerFromSeed(fmt.Appendf(nil, "search signer %d", i)))
	}
	var committers []*apitest.CommitSigner
	for i := range 3 {
		committers = append(committers, apitest.NewCommitSignerFromSeed(fmt.Appendf(nil, "search committer %d", i)))
	}
	imagers := []*apitest.ImageSigner{apitest.NewImageSigner(),
		apitest.NewImageSignerWithCertificate("release@example.com", "https://accounts.example.com"),
		apitest.NewImageSignerWithCertificate("https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main", "https://token.actions.githubusercontent.com")}
	rng := mrand.New(mrand.NewPCG(1, 2))
	salt := make([]byte, 4)
	rand.Read(salt)
	subs := make([][]byte, n)
	for i := range subs {
		if rng.IntN(3) == 0 {
			s := imagers[rng.IntN(len(imagers))]
			repo := fmt.Sprintf("registry.example.com/team/app-%d", rng.IntN(3))
			d := sha256Sum(fmt.Appendf(nil, "image %x %d", salt, rng.IntN(40)))
			subs[i] = s.Submission(repo, "sha256:"+hex.EncodeToString(d))
			continue
		}
		if rng.IntN(4) == 0 {
			c := committers[rng.IntN(len(committers))]
			repo := fmt.Sprintf("https://git.example.com/project-%d.git", rng.IntN(4))
			format := [2]string{"sha1", "sha256"}[rng.IntN(2)]
			subs[i] = c.SubmissionOf(format, repo, nil, fmt.Sprintf("change %x-%d\n", salt, i))
			continue
		}
		s := signers[rng.IntN(len(signers))]
		d := fmt.Appendf(nil, "digest %d", rng.IntN(23))
		subs[i] = s.Submission(fmt.Sprintf("artifact-%x-%d", salt, i), hex.EncodeToString(sha256Sum(d)))
	}
	return subs
}

// submit posts the submissions concurrently and fails t on any refusal.
func (s *searchLog) submit(t *testing.T, subs [][]byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	sem := make(chan struct{}, 32)
	for i, sub := range subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, _, errs[i] = s.client.AddEntry(context.Background(), sub)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("submission %d: %v", i, err)
		}
	}
}

// scan reads every entry of the published tree, parses it and returns the
// indexes of the entries that carry each term, and their leaf hashes.
func (s *searchLog) scan(t *testing.T) (map[api.SearchTerm][]uint64, [][]byte) {
	t.Helper()
	ctx := context.Background()
	_, size := s.log.Checkpoint()
	byTerm := map[api.SearchTerm][]uint64{}
	var leaves [][]byte
	for i := range size {
		e, err := s.log.Entry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		st, err := api.ParseEntry(e)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		for _, term := range api.SearchTerms(st) {
			byTerm[term] = append(byTerm[term], i)
		}
		leaves = append(leaves, hasher.HashLeaf(e))
	}
	return byTerm, leaves
}

// searchAll follows the cursor of GET /v1/search?query to the end, and
// returns the hits and how many pages they took.
func (s *searchLog) searchAll(t *testing.T, query url.Values) ([]api.SearchHit, int) {
	t.Helper()
	var hits []api.SearchHit
	pages := 0
	for {
		code, body := s.get(t, "/v1/search?"+query.Encode())
		if code != http.StatusOK {
			t.Fatalf("GET /v1/search?%s: %d: %s", query.Encode(), code, body)
		}
		var resp api.SearchResponse
		if err := json.Unmarshal(body, &resp); err != nil || resp.Hits == nil {
			t.Fatalf("GET /v1/search?%s: %v: %s", query.Encode(), err, body)
		}
		hits = append(hits, resp.Hits...)
		pages++
		if resp.Cursor == "" {
			return hits, pages
		}
		if pages > 10000 {
			t.Fatal("the cursor never ends")
		}
		query.Set("cursor", resp.Cursor)
	}
}

func (s *searchLog) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := s.srv.Client().Get(s.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// randomQueries returns n queries of 1 to 3 terms, mostly terms that one
// entry carries together (and now and then one that none does, or a term
// of another entry), in the spellings of clients, with random limits.
func randomQueries(byTerm map[api.SearchTerm][]uint64, n int) []url.Values {
	terms := slices.SortedFunc(func(yield func(api.SearchTerm) bool) {
		for t := range byTerm {
			if !yield(t) {
				return
			}
		}
	}, func(a, b api.SearchTerm) int { return strings.Compare(a.String(), b.String()) })
	byEntry := map[uint64][]api.SearchTerm{}
	for _, t := range terms {
		for _, i := range byTerm[t] {
			byEntry[i] = append(byEntry[i], t)
		}
	}
	rng := mrand.New(mrand.NewPCG(3, 4))
	var queries []url.Values
	for range n {
		q := url.Values{}
		own := byEntry[uint64(rng.IntN(len(byEntry)))]
		for range 1 + rng.IntN(3) {
			t := own[rng.IntN(len(own))]
			if rng.IntN(8) == 0 {
				t = terms[rng.IntN(len(terms))]
			}
			if rng.IntN(20) == 0 {
				t = api.SearchTerm{Param: api.SearchDigest, Value: "sha256:" + strings.Repeat("0", 64)}
			}
			v := t.Value
			if rng.IntN(2) == 0 && t.Param != api.SearchRepository && t.Param != api.SearchIdentity && t.Param != api.SearchIssuer {
				v = strings.ToUpper(v[:1]) + v[1:] // as some clients spell it
				if t.Param == api.SearchDigest {
					v = "sha256:" + strings.ToUpper(strings.TrimPrefix(t.Value, "sha256:"))
				}
			}
			q.Add(t.Param, v)
		}
		if rng.IntN(3) > 0 {
			q.Set("limit", strconv.Itoa(1+rng.IntN(40)))
		}
		queries = append(queries, q)
	}
	return queries
}

// want returns what a search for query must find: the entries that carry
// every one of its terms.
func want(t *testing.T, byTerm map[api.SearchTerm][]uint64, leaves [][]byte, query url.Values) []api.SearchHit {
	t.Helper()
	var sets [][]uint64
	for param, values := range query {
		if param == "limit" || param == "cursor" {
			continue
		}
		for _, v := range values {
			term, err := api.ParseSearchTerm(param, v)
			if err != nil {
				t.Fatal(err)
			}
			sets = append(sets, byTerm[term])
		}
	}
	hits := []api.SearchHit{}
	for _, i := range sets[0] {
		if !slices.ContainsFunc(sets[1:], func(s []uint64) bool { return !slices.Contains(s, i) }) {
			hits = append(hits, api.SearchHit{Index: i, LeafHash: leaves[i]})
		}
	}
	return hits
}

func sameHits(a, b []api.SearchHit) bool {
	return slices.EqualFunc(a, b, func(x, y api.SearchHit) bool { return x.Index == y.Index && bytes.Equal(x.LeafHash, y.LeafHash) })
}

// TestSearchAgainstScan checks every answer of GET /v1/search, followed
// page by page, against a scan of all the entries of a log of mixed
// entries; then deletes the index, rebuilds it with log.Reindex and gets
// the same answers.
func TestSearchAgainstScan(t *testing.T) {
	dir := t.TempDir()
	s := startSearchLog(t, dir)
	s.submit(t, mixedSubmissions(600))
	byTerm, leaves := s.scan(t)
	if len(leaves) != 600 {
		t.Fatalf("%d entries, want 600", len(leaves))
	}
	queries := randomQueries(byTerm, 250)
	answers := make([][]api.SearchHit, len(queries))
	var found, multiPage int
	foundBy := map[string]int{}
	for i, q := range queries {
		limit := api.DefaultSearchLimit
		if l := q.Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		got, pages := s.searchAll(t, cloneQuery(q))
		w := want(t, byTerm, leaves, q)
		if !sameHits(got, w) {
			t.Fatalf("GET /v1/search?%s found %v, the scan %v", q.Encode(), hitIndexes(got), hitIndexes(w))
		}
		if wantPages := max(1, (len(w)+limit-1)/limit); pages != wantPages {
			t.Errorf("GET /v1/search?%s: %d hits in %d pages of %d, want %d pages", q.Encode(), len(w), pages, limit, wantPages)
		}
		answers[i] = got
		if len(got) > 0 {
			found++
			for p := range q {
				foundBy[p]++
			}
		}
		if pages > 1 {
			multiPage++
		}
	}
	if found < len(queries)/3 || multiPage < 10 {
		t.Fatalf("only %d queries found anything, %d took several pages: the test tests too little", found, multiPage)
	}
	for _, p := range api.SearchParams {
		if foundBy[p] < 5 {
			t.Fatalf("only %d queries by %s found anything: the test tests too little", foundBy[p], p)
		}
	}

	// Rebuild the index from the entries, with the log stopped.
	s.stop()
	store, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.ResetSearchIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Search(ctx, []api.SearchTerm{{Param: api.SearchKey, Value: "sha256:" + strings.Repeat("0", 64)}}, 0, 600, 10); err == nil {
		t.Fatal("Search of a deleted index: no error")
	}
	stats, err := log.Reindex(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	var terms uint64
	for _, idx := range byTerm {
		terms += uint64(len(idx))
	}
	if stats.Entries != 600 || stats.Terms != terms {
		t.Errorf("Reindex = %+v, want 600 entries and %d terms", stats, terms)
	}
	store.Close()
	s = startSearchLog(t, dir)
	for i, q := range queries {
		if got, _ := s.searchAll(t, cloneQuery(q)); !sameHits(got, answers[i]) {
			t.Fatalf("after reindex, GET /v1/search?%s found %v, before %v", q.Encode(), hitIndexes(got), hitIndexes(answers[i]))
		}
	}
}

func cloneQuery(q url.Values) url.Values {
	c := make(url.Values, len(q))
	for k, v := range q {
		c[k] = slices.Clone(v)
	}
	return c
}

func hitIndexes(hits []api.SearchHit) []uint64 {
	idx := make([]uint64, len(hits))
	for i, h := range hits {
		idx[i] = h.Index
	}
	return idx
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// TestSearchBadInput checks that malformed, unknown and missing search
// parameters get 400 with a JSON reason that names the fault.
func TestSearchBadInput(t *testing.T) {
	s := startSearchLog(t, t.TempDir())
	s.submit(t, mixedSubmissions(3))
	key := "key=SHA256:" + strings.Repeat("A", 43)
	for _, tt := range []struct{ query, reason string }{
		{"", "give at least one of commit, repository, digest, key"},
		{"limit=10", "give at least one"},
		{"colour=red", "unknown parameter"},
		{"commit=xyz", "want 40 or 64 hex digits"},
		{"commit=", "empty"},
		{"digest=sha256:12", "want 64 hex digits"},
		{"digest=nocolon", "alg:digest"},
		{"key=md5:00", "want"},
		{"repository=a%01b", "printable"},
		{key + "&limit=0", "limit"},
		{key + "&limit=1001", "limit"},
		{key + "&limit=ten", "limit"},
		{key + "&limit=010", "limit"},
		{key + "&limit=1&limit=2", "limit given 2 times"},
		{key + "&cursor=%%%", "malformed query"},
		{key + "&cursor=abc", "cursor"},
		{key + "&cursor=" + strings.Repeat("A", 20), "cursor"},
		{strings.Repeat("commit="+strings.Repeat("a", 40)+"&", 1) + "digest=a:1&digest=a:2&digest=a:3&digest=a:4&digest=a:5&digest=a:6&digest=a:7&digest=a:8", "at most 8"},
	} {
		resp, err := s.srv.Client().Get(s.srv.URL + "/v1/search?" + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkError(t, tt.query, resp.StatusCode, resp.Header, body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tt.reason) {
			t.Errorf("GET /v1/search?%s: %d %s, want 400 saying %q", tt.query, resp.StatusCode, body, tt.reason)
		}
	}
	// POST is not a search.
	resp, err := s.srv.Client().Post(s.srv.URL+"/v1/search?"+key, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/search: %d, want 405", resp.StatusCode)
	}
	// A well-formed query that nothing matches is no error.
	if code, body := s.get(t, "/v1/search?"+key); code != http.StatusOK || string(body) != "{\"hits\":[]}\n" {
		t.Errorf("GET /v1/search?%s = %d %s, want no hits", key, code, body)
	}
}

// TestSearchUnavailable checks that a log whose storage keeps no search
// index, or an incomplete one, answers 503 with a reason.
func TestSearchUnavailable(t *testing.T) {
	dir := t.TempDir()
	s := startSearchLog(t, dir)
	s.submit(t, mixedSubmissions(3))
	s.stop()
	store, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ResetSearchIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.Close()
	s = startSearchLog(t, dir)
	key := "/v1/search?key=SHA256:" + strings.Repeat("A", 43)
	if code, body := s.get(t, key); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "candor-log reindex") {
		t.Errorf("GET %s with the index deleted: %d %s, want 503 naming candor-log reindex", key, code, body)
	}

	// A storage without a search index (this wrapper hides it).
	signer, verifier := testKeys()
	ps, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	l, err := log.New(context.Background(), log.Config{Storage: struct{ log.Storage }{ps}, Signer: signer, Verifier: verifier, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "keeps no search index") {
		t.Errorf("GET %s without an index: %d %s, want 503", key, resp.StatusCode, body)
	}
}

// TestSearchPublishedOnly checks that with a Witnessing, search finds only
// the entries of the published (cosigned) checkpoint, though the committed
// tree and its index run ahead of it.
func TestSearchPublishedOnly(t *testing.T) {
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	signer, verifier := testKeys()
	wit := &captured{got: make(chan log.WitnessedLog, 1), stopped: make(chan struct{})}
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet, Witnessing: wit})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wl := <-wit.got
	ctx := context.Background()
	term := api.SearchTerm{Param: api.SearchRepository, Value: "https://example.com/r.git"}
	var cps [][]byte
	for i, e := range makeEntries("published", 4) {
		r, err := l.AddWithTerms(ctx, e, []api.SearchTerm{term})
		if err != nil || r.Index != uint64(i) {
			t.Fatalf("AddWithTerms: %+v, %v", r, err)
		}
		cps = append(cps, r.Checkpoint)
	}
	search := func() []uint64 {
		t.Helper()
		hits, next, err := l.Search(ctx, []api.SearchTerm{term}, 0, 10)
		if err != nil || next != 0 {
			t.Fatalf("Search: %v, next %d", err, next)
		}
		return hitIndexes(hits)
	}
	if got := search(); len(got) != 0 {
		t.Fatalf("before any publication, Search found %v", got)
	}
	if err := wl.Publish(ctx, cps[1]); err != nil {
		t.Fatal(err)
	}
	if got := search(); !slices.Equal(got, []uint64{0, 1}) {
		t.Fatalf("with size 2 published, Search found %v, want [0 1]", got)
	}
	// Paging stops at the published size too.
	hits, next, err := l.Search(ctx, []api.SearchTerm{term}, 0, 1)
	if err != nil || len(hits) != 1 || next != 1 {
		t.Fatalf("Search with limit 1: %v, next %d, %v", hitIndexes(hits), next, err)
	}
	if hits, next, err = l.Search(ctx, []api.SearchTerm{term}, next, 1); err != nil || len(hits) != 1 || hits[0].Index != 1 || next != 0 {
		t.Fatalf("Search from 1 with limit 1: %v, next %d, %v", hitIndexes(hits), next, err)
	}
	if err := wl.Publish(ctx, cps[3]); err != nil {
		t.Fatal(err)
	}
	if got := search(); !slices.Equal(got, []uint64{0, 1, 2, 3}) {
		t.Fatalf("with size 4 published, Search found %v", got)
	}
}
