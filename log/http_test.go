package log_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/internal/bundlezstd"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// httpLog is a log on real pebble storage behind a real HTTP server.
type httpLog struct {
	log      *log.Log
	store    *gatedStorage
	srv      *httptest.Server
	client   *client.Client
	origin   string
	verifier note.Verifier
	reg      *prometheus.Registry
}

// newHTTPLog starts a log in t.TempDir() with the given engine and handler
// options (Storage, Signer, Verifier, Logger and Registerer are set here).
func newHTTPLog(t testing.TB, cfg log.Config, o log.HandlerOptions) *httpLog {
	t.Helper()
	return newHTTPLogOn(t, cfg, o, pebble.Options{})
}

// newHTTPLogOn is newHTTPLog on pebble with the options po (Logger and
// CacheBytes are set here).
func newHTTPLogOn(t testing.TB, cfg log.Config, o log.HandlerOptions, po pebble.Options) *httpLog {
	t.Helper()
	const origin = "example.com/candor/http-test"
	signer, verifier, _ := apitest.NewNoteKey(origin, rand.Reader)
	quiet := slog.New(slog.DiscardHandler)
	po.Logger, po.CacheBytes = quiet, 8<<20
	ps, err := pebble.Open(t.TempDir(), po)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	store := &gatedStorage{Storage: ps, entered: make(chan struct{}, 16), bundleEntered: make(chan struct{}, 64)}
	reg := prometheus.NewRegistry()
	cfg.Storage, cfg.Signer, cfg.Verifier, cfg.Logger, cfg.Registerer = store, signer, verifier, quiet, reg
	l, err := log.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if o.Logger == nil {
		o.Logger = quiet
	}
	srv := httptest.NewServer(log.NewHandler(l, o))
	t.Cleanup(srv.Close)
	// Runs first: never leave the sequencer blocked in a gated Commit,
	// nor a read in a gated bundle read.
	t.Cleanup(store.open)
	t.Cleanup(store.openBundles)
	return &httpLog{log: l, store: store, srv: srv, client: client.New(srv.URL, srv.Client()),
		origin: origin, verifier: verifier, reg: reg}
}

// gatedStorage injects a fault into Commit: while closed, every Commit
// reports on entered and then waits until the gate opens.
type gatedStorage struct {
	log.Storage
	entered chan struct{}
	mu      sync.Mutex
	gate    chan struct{} // nil when open

	bundleEntered        chan struct{}
	bundleGate           chan struct{} // nil when open
	reading, mostReading atomic.Int64
}

func (s *gatedStorage) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

func (s *gatedStorage) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

func (s *gatedStorage) Commit(ctx context.Context, c *log.Commit) error {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		s.entered <- struct{}{}
		<-gate
	}
	return s.Storage.Commit(ctx, c)
}

// AppendEntryBundle passes the storage's through: the log reads bundles
// into its pooled buffers, as it does on pebble. While the bundle gate is
// closed, every read reports on bundleEntered and waits until it opens
// (or its context ends);
// reading counts the reads in storage, and mostReading the most at once.
func (s *gatedStorage) AppendEntryBundle(ctx context.Context, dst []byte, index uint64) ([]byte, error) {
	now := s.reading.Add(1)
	defer s.reading.Add(-1)
	for {
		most := s.mostReading.Load()
		if now <= most || s.mostReading.CompareAndSwap(most, now) {
			break
		}
	}
	s.mu.Lock()
	gate := s.bundleGate
	s.mu.Unlock()
	if gate != nil {
		s.bundleEntered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Storage.(log.EntryBundleAppender).AppendEntryBundle(ctx, dst, index)
}

// AppendEncodedEntryBundle passes the storage's through.
func (s *gatedStorage) AppendEncodedEntryBundle(ctx context.Context, dst []byte, index uint64, coding string) ([]byte, bool, error) {
	return s.Storage.(log.EncodedEntryBundleReader).AppendEncodedEntryBundle(ctx, dst, index, coding)
}

// closeBundles closes the bundle gate; openBundles opens it.
func (s *gatedStorage) closeBundles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundleGate == nil {
		s.bundleGate = make(chan struct{})
	}
}

func (s *gatedStorage) openBundles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundleGate != nil {
		close(s.bundleGate)
		s.bundleGate = nil
	}
}

// checkpoint fetches /checkpoint and verifies the log's signature on it.
func (h *httpLog) checkpoint(t testing.TB) ([]byte, api.Checkpoint) {
	t.Helper()
	cp, err := h.client.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp, h.open(t, cp)
}

func (h *httpLog) open(t testing.TB, cp []byte) api.Checkpoint {
	t.Helper()
	c, _, err := api.OpenCheckpoint(cp, h.origin, h.verifier)
	if err != nil {
		t.Fatalf("checkpoint %q: %v", cp, err)
	}
	return c
}

// grow adds arbitrary unique entries through the engine, concurrently,
// until the log has n entries, recording each at its index in entries.
func (h *httpLog) grow(t testing.TB, entries *[][]byte, n int) {
	t.Helper()
	start := len(*entries)
	if n <= start {
		return
	}
	*entries = append(*entries, make([][]byte, n-start)...)
	got := *entries
	var (
		next  atomic.Int64
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	salt := make([]byte, 4)
	rand.Read(salt)
	for range min(n-start, 512) {
		wg.Go(func() {
			for {
				k := start + int(next.Add(1)-1)
				if k >= n {
					return
				}
				e := fmt.Appendf(nil, "%x entry %d", salt, k)
				rc, err := h.log.Add(context.Background(), e)
				switch {
				case err != nil:
					fail(fmt.Errorf("Add(%q): %w", e, err))
					return
				case rc.Duplicate || rc.Index < uint64(start) || rc.Index >= uint64(n):
					fail(fmt.Errorf("Add(%q) = index %d, duplicate %v, want a new index in [%d, %d)", e, rc.Index, rc.Duplicate, start, n))
					return
				}
				mu.Lock()
				if got[rc.Index] != nil {
					first = fmt.Errorf("index %d given twice", rc.Index)
				}
				got[rc.Index] = e
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// TestHTTPTlogClient checks that a client using only
// golang.org/x/mod/sumdb/tlog over the tile API (through client.TileReader)
// proves and checks records and tree consistency, at tree sizes around tile
// boundaries, and that the entry bundles hold the entries whose record
// hashes the authenticated level 0 tiles hold.
func TestHTTPTlogClient(t *testing.T) {
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	ctx := context.Background()
	tr := &client.TileReader{Client: h.client, Context: ctx}
	var entries [][]byte

	// trees are all the distinct checkpoints seen, in order.
	var trees []tlog.Tree
	see := func(c api.Checkpoint) {
		tree := tlog.Tree{N: int64(c.Size), Hash: tlog.Hash(c.Hash)}
		if len(trees) > 0 && trees[len(trees)-1] == tree {
			return
		}
		trees = append(trees, tree)
	}
	checkConsistency := func(old, new tlog.Tree) {
		t.Helper()
		switch {
		case new.N < old.N:
			t.Fatalf("tree shrank from %d to %d", old.N, new.N)
		case old.N == 0:
			if old.Hash != tlog.Hash(sha256.Sum256(nil)) {
				t.Fatalf("empty tree has hash %v", old.Hash)
			}
		case old.N == new.N:
			if old.Hash != new.Hash {
				t.Fatalf("two roots at size %d: %v and %v", old.N, old.Hash, new.Hash)
			}
		default:
			p, err := tlog.ProveTree(new.N, old.N, tlog.TileHashReader(new, tr))
			if err != nil {
				t.Fatalf("ProveTree(%d, %d): %v", new.N, old.N, err)
			}
			if err := tlog.CheckTree(p, new.N, new.Hash, old.N, old.Hash); err != nil {
				t.Fatalf("CheckTree(%d, %d): %v", new.N, old.N, err)
			}
		}
	}

	prev := 0
	for _, size := range []int{0, 1, 255, 256, 257, 65536, 65537} {
		// Watch the checkpoints published while the log grows.
		type watch struct {
			seen []api.Checkpoint
			err  error
		}
		stop := make(chan struct{})
		watched := make(chan watch, 1)
		go func() {
			var w watch
			defer func() { watched <- w }()
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				var cp []byte
				if cp, w.err = h.client.Checkpoint(ctx); w.err != nil {
					return
				}
				c, _, err := api.OpenCheckpoint(cp, h.origin, h.verifier)
				if w.err = err; err != nil {
					return
				}
				w.seen = append(w.seen, c)
			}
		}()
		func() {
			defer close(stop)
			h.grow(t, &entries, size)
		}()
		w := <-watched
		if w.err != nil {
			t.Fatal(w.err)
		}
		for _, c := range w.seen {
			see(c)
		}
		_, c := h.checkpoint(t)
		if c.Size != uint64(size) {
			t.Fatalf("checkpoint size %d, want %d", c.Size, size)
		}
		see(c)
		tree := trees[len(trees)-1]
		if size == 0 {
			continue
		}
		hr := tlog.TileHashReader(tree, tr)
		if root, err := tlog.TreeHash(tree.N, hr); err != nil || root != tree.Hash {
			t.Fatalf("TreeHash(%d) = %v, %v; want %v", tree.N, root, err, tree.Hash)
		}

		// Every new record: the entry bundles serve the entries, and the
		// authenticated level 0 tiles hold their record hashes.
		var bundles []tlog.Tile
		for n := int64(prev / api.TileWidth); n*api.TileWidth < tree.N; n++ {
			bundles = append(bundles, tlog.Tile{H: api.TileHeight, L: -1, N: n, W: int(min(api.TileWidth, tree.N-n*api.TileWidth))})
		}
		data, err := tr.ReadTiles(bundles)
		if err != nil {
			t.Fatal(err)
		}
		var served [][]byte
		for i, b := range data {
			es, err := api.ParseEntryBundle(b)
			if err != nil {
				t.Fatalf("%s: %v", bundles[i].Path(), err)
			}
			if len(es) != bundles[i].W {
				t.Fatalf("%s has %d entries", bundles[i].Path(), len(es))
			}
			served = append(served, es...)
		}
		first := bundles[0].N * api.TileWidth
		var indexes []int64
		for i := int64(prev); i < tree.N; i++ {
			indexes = append(indexes, tlog.StoredHashIndex(0, i))
		}
		hashes, err := hr.ReadHashes(indexes)
		if err != nil {
			t.Fatal(err)
		}
		for k, hash := range hashes {
			i := int64(prev + k)
			e := served[i-first]
			if !bytes.Equal(e, entries[i]) {
				t.Fatalf("entry %d is %q, want %q", i, e, entries[i])
			}
			if hash != tlog.RecordHash(e) {
				t.Fatalf("record %d: tile hash %v, RecordHash of the served entry %v", i, hash, tlog.RecordHash(e))
			}
		}

		// Inclusion of the first, the last and the records at tile
		// boundaries.
		for _, i := range []int64{0, 1, tree.N / 2, 255, 256, 257, 65535, 65536, tree.N - 2, tree.N - 1} {
			if i < 0 || i >= tree.N {
				continue
			}
			p, err := tlog.ProveRecord(tree.N, i, hr)
			if err != nil {
				t.Fatalf("ProveRecord(%d, %d): %v", tree.N, i, err)
			}
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, tlog.RecordHash(entries[i])); err != nil {
				t.Fatalf("CheckRecord(%d, %d): %v", tree.N, i, err)
			}
			if i > 0 {
				if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, tlog.RecordHash(entries[i-1])); err == nil {
					t.Fatalf("CheckRecord(%d, %d) accepted entry %d", tree.N, i, i-1)
				}
			}
		}
		prev = size
	}

	if len(trees) < 7 {
		t.Fatalf("saw %d checkpoints, want at least 7", len(trees))
	}
	for i := 1; i < len(trees); i++ {
		checkConsistency(trees[i-1], trees[i])
	}
	// And between the sizes the test stopped at, across many tiles.
	last := trees[len(trees)-1]
	for _, old := range trees {
		if old.N == 1 || old.N == 255 || old.N == 256 || old.N == 257 {
			checkConsistency(old, last)
		}
	}
	t.Logf("checked consistency between %d checkpoints", len(trees))
}

// getJSON GETs path from the server and decodes a 200 reply into v.
func (h *httpLog) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := h.srv.Client().Get(h.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

// TestHTTPEntriesAndProofs submits real build entries over HTTP, and
// verifies the replies' proof bundles and every JSON read with
// transparency-dev/merkle.
func TestHTTPEntriesAndProofs(t *testing.T) {
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	ctx := context.Background()
	signer := apitest.NewBuildSignerFromSeed([]byte("TestHTTPEntriesAndProofs"))
	hasher := rfc6962.DefaultHasher

	// roots holds every checkpoint seen, by size.
	roots := map[uint64][]byte{}
	record := func(cp []byte) api.Checkpoint {
		t.Helper()
		c := h.open(t, cp)
		if r, ok := roots[c.Size]; ok && !bytes.Equal(r, c.Hash[:]) {
			t.Fatalf("two roots at size %d", c.Size)
		}
		roots[c.Size] = c.Hash[:]
		return c
	}
	cp0, _ := h.checkpoint(t)
	if c0 := record(cp0); c0.Size != 0 {
		t.Fatalf("new log has size %d", c0.Size)
	}

	type submitted struct {
		body  []byte
		index uint64
	}
	var subs []submitted
	var entries [][]byte
	submit := func(name string) {
		t.Helper()
		digest := sha256.Sum256([]byte(name))
		body := signer.Submission(name, hex.EncodeToString(digest[:]))
		canonical, err := api.CanonicalEntry(body)
		if err != nil {
			t.Fatal(err)
		}
		leaf := hasher.HashLeaf(canonical)
		want := http.StatusCreated
		var index uint64
		for range 2 { // then a duplicate
			r, code, err := h.client.AddEntry(ctx, body)
			if err != nil || code != want {
				t.Fatalf("AddEntry(%s) = %d, %v; want %d", name, code, err, want)
			}
			if want == http.StatusOK && r.Index != index {
				t.Fatalf("duplicate of entry %d got index %d", index, r.Index)
			}
			index = r.Index
			if !bytes.Equal(r.LeafHash, leaf) {
				t.Fatalf("leafHash %x, want %x", r.LeafHash, leaf)
			}
			p, err := api.ParseProofBundle([]byte(r.Proof))
			if err != nil {
				t.Fatalf("proof: %v\n%s", err, r.Proof)
			}
			c, err := api.VerifyProofBundle(p, leaf, h.origin, h.verifier)
			if err != nil {
				t.Fatal(err)
			}
			if p.Index != r.Index || c.Size != r.TreeSize || r.Index >= r.TreeSize {
				t.Fatalf("bundle index %d size %d, reply index %d size %d", p.Index, c.Size, r.Index, r.TreeSize)
			}
			if _, err := api.VerifyProofBundle(p, hasher.HashLeaf([]byte("other")), h.origin, h.verifier); err == nil {
				t.Fatal("proof bundle verified for another leaf")
			}
			record(p.Checkpoint)
			want = http.StatusOK
		}
		if index != uint64(len(entries)) {
			t.Fatalf("%s got index %d, want %d", name, index, len(entries))
		}
		subs = append(subs, submitted{body: canonical, index: index})
		entries = append(entries, canonical)
	}

	submit("first")
	submit("second")
	submit("third")
	h.grow(t, &entries, 300)
	cp300, _ := h.checkpoint(t)
	record(cp300)
	submit("fourth")
	h.grow(t, &entries, 513)
	submit("fifth")
	cp, cur := h.checkpoint(t)
	record(cp)

	// An old duplicate gets its index and a proof to the latest checkpoint.
	r, code, err := h.client.AddEntry(ctx, subs[0].body)
	if err != nil || code != http.StatusOK || r.Index != subs[0].index || r.TreeSize != cur.Size {
		t.Fatalf("AddEntry(first) again = %d, %+v, %v", code, r, err)
	}
	if p, err := api.ParseProofBundle([]byte(r.Proof)); err != nil {
		t.Fatal(err)
	} else if _, err := api.VerifyProofBundle(p, hasher.HashLeaf(subs[0].body), h.origin, h.verifier); err != nil {
		t.Fatal(err)
	}

	for _, s := range subs {
		var e api.EntryResponse
		h.getJSON(t, fmt.Sprintf("/v1/entries/%d", s.index), &e)
		if e.Index != s.index || !bytes.Equal(e.Entry, s.body) || !bytes.Equal(e.LeafHash, hasher.HashLeaf(s.body)) {
			t.Fatalf("entry %d: got %+v", s.index, e)
		}
	}
	for _, i := range []uint64{0, 255, 256, 512} {
		var e api.EntryResponse
		h.getJSON(t, fmt.Sprintf("/v1/entries/%d", i), &e)
		if !bytes.Equal(e.Entry, entries[i]) {
			t.Fatalf("entry %d is %q, want %q", i, e.Entry, entries[i])
		}
	}

	// Inclusion proofs, by index and by leaf hash in every spelling, at
	// the latest size and at older ones.
	for _, s := range subs {
		leaf := hasher.HashLeaf(s.body)
		keys := []url.Values{
			{"index": {strconv.FormatUint(s.index, 10)}},
			{"leafHash": {hex.EncodeToString(leaf)}},
			{"leafHash": {strings.ToUpper(hex.EncodeToString(leaf))}},
			{"leafHash": {base64.StdEncoding.EncodeToString(leaf)}},
			{"leafHash": {base64.URLEncoding.EncodeToString(leaf)}},
		}
		for _, q := range keys {
			for size, root := range roots {
				for _, withSize := range []bool{false, true} {
					if !withSize && size != cur.Size || size <= s.index {
						continue
					}
					if withSize {
						q.Set("size", strconv.FormatUint(size, 10))
					} else {
						q.Del("size")
					}
					var r api.InclusionProofResponse
					h.getJSON(t, "/v1/proof/inclusion?"+q.Encode(), &r)
					if r.Index != s.index || r.TreeSize != size || !bytes.Equal(r.LeafHash, leaf) {
						t.Fatalf("%s: index %d size %d leaf %x", q.Encode(), r.Index, r.TreeSize, r.LeafHash)
					}
					if err := proof.VerifyInclusion(hasher, s.index, size, leaf, r.Hashes, root); err != nil {
						t.Fatalf("%s: %v", q.Encode(), err)
					}
					if size == cur.Size {
						if c := h.open(t, []byte(r.Checkpoint)); c.Size != size {
							t.Fatalf("%s: checkpoint of size %d", q.Encode(), c.Size)
						}
					} else if r.Checkpoint != "" {
						t.Fatalf("%s: checkpoint of another size: %q", q.Encode(), r.Checkpoint)
					}
				}
			}
		}
	}

	// Consistency proofs between every pair of sizes seen.
	for old, oldRoot := range roots {
		for new, newRoot := range roots {
			if old > new {
				continue
			}
			var r api.ConsistencyProofResponse
			h.getJSON(t, fmt.Sprintf("/v1/proof/consistency?old=%d&new=%d", old, new), &r)
			if r.Old != old || r.New != new {
				t.Fatalf("consistency %d→%d: reply for %d→%d", old, new, r.Old, r.New)
			}
			if err := proof.VerifyConsistency(hasher, old, new, r.Hashes, oldRoot, newRoot); err != nil {
				t.Fatalf("consistency %d→%d: %v", old, new, err)
			}
			if new == cur.Size {
				var r2 api.ConsistencyProofResponse
				h.getJSON(t, fmt.Sprintf("/v1/proof/consistency?old=%d", old), &r2)
				if r2.New != new || h.open(t, []byte(r2.Checkpoint)).Size != new {
					t.Fatalf("consistency %d→latest: new %d, checkpoint %q", old, r2.New, r2.Checkpoint)
				}
				if err := proof.VerifyConsistency(hasher, old, new, r2.Hashes, oldRoot, newRoot); err != nil {
					t.Fatalf("consistency %d→latest: %v", old, err)
				}
			}
		}
	}

	// Caching headers.
	for _, tc := range []struct{ path, contentType, cache string }{
		{"/checkpoint", "text/plain; charset=utf-8", "no-store"},
		{"/tile/0/000", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"/tile/0/001", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"/tile/entries/000", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"/tile/0/002.p/1", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"/tile/1/000.p/2", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"/tile/entries/002.p/1", "application/octet-stream", "public, max-age=31536000, immutable"},
		{"/v1/entries/0", "application/json", "no-store"},
		{"/tile/0/003", "application/json", "no-store"}, // 404s must not be cached
	} {
		resp, err := h.srv.Client().Get(h.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.contentType)
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
	}
}

// gzipped returns data compressed with gzip.
func gzipped(t testing.TB, data io.Reader) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(zw, data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zeros reads as n zero bytes.
type zeros int64

func (z *zeros) Read(p []byte) (int, error) {
	if *z <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), int64(*z)))
	clear(p[:n])
	*z -= zeros(n)
	return n, nil
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// checkError checks that a reply is a 4xx with a JSON error.
func checkError(t testing.TB, what string, code int, header http.Header, body []byte) {
	t.Helper()
	if code < 400 || code >= 500 {
		t.Errorf("%s: status %d, want 4xx: %s", what, code, body)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if cc := header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q", what, cc)
	}
	var e api.ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("%s: body is not a JSON error (%v): %q", what, err, body)
	}
}

// TestHTTPBadInput checks that malformed, oversized, out of range and
// unverifiable requests all get a 4xx with a JSON reason, and change
// nothing.
func TestHTTPBadInput(t *testing.T) {
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	ctx := context.Background()
	signer := apitest.NewBuildSignerFromSeed([]byte("TestHTTPBadInput"))
	digest := sha256.Sum256([]byte("artifact"))
	valid := signer.Submission("artifact", hex.EncodeToString(digest[:]))
	if _, code, err := h.client.AddEntry(ctx, valid); err != nil || code != http.StatusCreated {
		t.Fatalf("AddEntry = %d, %v", code, err)
	}
	entries := [][]byte{valid}
	h.grow(t, &entries, 3)
	cp, c := h.checkpoint(t)
	if c.Size != 3 {
		t.Fatalf("size %d", c.Size)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(valid)
	unknown := make([]byte, 32)
	rand.Read(unknown)

	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(valid, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	badSig := edit(func(m map[string]any) {
		sig := m["envelope"].(map[string]any)["signatures"].([]any)[0].(map[string]any)
		s, _ := base64.StdEncoding.DecodeString(sig["sig"].(string))
		s[0] ^= 1
		sig["sig"] = base64.StdEncoding.EncodeToString(s)
	})
	otherKey := edit(func(m map[string]any) {
		var o map[string]any
		json.Unmarshal(apitest.NewBuildSignerFromSeed([]byte("other")).Submission("artifact", hex.EncodeToString(digest[:])), &o)
		m["publicKeys"] = o["publicKeys"]
	})
	// Over the 2 × 64 KiB body limit, and under it but with a canonical
	// entry over 64 KiB.
	overLimit := append([]byte(`{"kind":"build","pad":"`), bytes.Repeat([]byte("a"), 2*api.MaxEntrySize)...)
	overLimit = append(overLimit, `"}`...)
	tooLarge := signer.Submission(strings.Repeat("n", 50000), hex.EncodeToString(digest[:]))
	if len(tooLarge) > 2*api.MaxEntrySize {
		t.Fatalf("tooLarge is %d bytes", len(tooLarge))
	}
	// 16 MiB of zeros in 16 KiB.
	bomb := gzipped(t, new(zeros(16<<20)))

	const (
		maxIndex  = "18446744073709551615"
		overflow  = "18446744073709551616"
		overflowT = "x018/x446/x744/x073/x709/x551/616"
	)
	type header = map[string]string
	cases := []struct {
		method, path string
		header       header
		body         []byte
		want         int
	}{
		{"POST", "/v1/entries", nil, nil, 400},
		{"POST", "/v1/entries", nil, []byte(`{"kind":`), 400},
		{"POST", "/v1/entries", nil, []byte(`[1,2]`), 400},
		{"POST", "/v1/entries", nil, []byte(`"build"`), 400},
		{"POST", "/v1/entries", nil, []byte(`{"kind":"nope","v":1}`), 400},
		{"POST", "/v1/entries", nil, []byte(`{"kind":"build","kind":"build"}`), 400},
		{"POST", "/v1/entries", nil, []byte(`{"kind":"build","v":1}`), 400},
		{"POST", "/v1/entries", nil, bytes.Replace(valid, []byte(`"v":1`), []byte(`"v":2`), 1), 400},
		{"POST", "/v1/entries", nil, append(bytes.Clone(valid), " x"...), 400},
		{"POST", "/v1/entries", nil, append(bytes.Clone(valid), valid...), 400},
		{"POST", "/v1/entries", nil, badSig, 400},
		{"POST", "/v1/entries", nil, otherKey, 400},
		{"POST", "/v1/entries", nil, overLimit, 413},
		{"POST", "/v1/entries", nil, tooLarge, 413},
		{"POST", "/v1/entries", header{"Content-Encoding": "gzip"}, gzipped(t, bytes.NewReader(valid)), 415},
		{"POST", "/v1/entries", header{"Content-Encoding": "br"}, valid, 415},
		{"POST", "/v1/entries", header{"Content-Encoding": "gzip"}, bomb, 415},

		// Tiles beyond the tree of size 3.
		{"GET", "/tile/0/000", nil, nil, 404},
		{"GET", "/tile/0/001", nil, nil, 404},
		{"GET", "/tile/0/001.p/1", nil, nil, 404},
		{"GET", "/tile/0/000.p/4", nil, nil, 404},
		{"GET", "/tile/0/000.p/255", nil, nil, 404},
		{"GET", "/tile/1/000", nil, nil, 404},
		{"GET", "/tile/1/000.p/1", nil, nil, 404},
		{"GET", "/tile/63/000.p/1", nil, nil, 404},
		{"GET", "/tile/0/x001/000", nil, nil, 404},
		{"GET", "/tile/0/" + strings.Replace(overflowT, "616", "615", 1), nil, nil, 404},
		{"GET", "/tile/entries/000", nil, nil, 404},
		{"GET", "/tile/entries/000.p/4", nil, nil, 404},
		{"GET", "/tile/entries/001.p/1", nil, nil, 404},
		{"GET", "/tile/entries/x001/000.p/1", nil, nil, 404},
		// Malformed tile paths.
		{"GET", "/tile/", nil, nil, 400},
		{"GET", "/tile/0", nil, nil, 400},
		{"GET", "/tile/0/", nil, nil, 400},
		{"GET", "/tile/0/0", nil, nil, 400},
		{"GET", "/tile/0/00", nil, nil, 400},
		{"GET", "/tile/0/0000", nil, nil, 400},
		{"GET", "/tile/0/000/", nil, nil, 400},
		{"GET", "/tile/0/00a", nil, nil, 400},
		{"GET", "/tile/0/x000/001", nil, nil, 400},
		{"GET", "/tile/0/x001", nil, nil, 400},
		{"GET", "/tile/0/001/002", nil, nil, 400},
		{"GET", "/tile/0/" + overflowT, nil, nil, 400},
		{"GET", "/tile/64/000", nil, nil, 400},
		{"GET", "/tile/00/000", nil, nil, 400},
		{"GET", "/tile/-1/000", nil, nil, 400},
		{"GET", "/tile/data/000", nil, nil, 400},
		{"GET", "/tile/0/000.p", nil, nil, 400},
		{"GET", "/tile/0/000.p/", nil, nil, 400},
		{"GET", "/tile/0/000.p/0", nil, nil, 400},
		{"GET", "/tile/0/000.p/01", nil, nil, 400},
		{"GET", "/tile/0/000.p/256", nil, nil, 400},
		{"GET", "/tile/0/000.p/1/", nil, nil, 400},
		{"GET", "/tile/0/000.x/1", nil, nil, 400},
		{"GET", "/tile/entries/000.p/0", nil, nil, 400},
		{"GET", "/tile/entries/0", nil, nil, 400},

		{"GET", "/v1/entries/3", nil, nil, 404},
		{"GET", "/v1/entries/" + maxIndex, nil, nil, 404},
		{"GET", "/v1/entries/01", nil, nil, 400},
		{"GET", "/v1/entries/00", nil, nil, 400},
		{"GET", "/v1/entries/-1", nil, nil, 400},
		{"GET", "/v1/entries/+1", nil, nil, 400},
		{"GET", "/v1/entries/0x1", nil, nil, 400},
		{"GET", "/v1/entries/1e0", nil, nil, 400},
		{"GET", "/v1/entries/%201", nil, nil, 404}, // escaped: no such path
		{"GET", "/v1/entries/" + overflow, nil, nil, 400},

		{"GET", "/v1/proof/inclusion", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=3", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=" + maxIndex, nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=0&size=0", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=2&size=2", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=0&size=4", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=0&size=" + maxIndex, nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=01", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=-1", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=" + overflow, nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=0&size=03", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=0&size=-3", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?index=0&leafHash=" + hex.EncodeToString(leaf), nil, nil, 400},
		{"GET", "/v1/proof/inclusion?leafHash=" + hex.EncodeToString(leaf) + "&size=0", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?leafHash=zz", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?leafHash=" + hex.EncodeToString(leaf)[1:], nil, nil, 400},
		{"GET", "/v1/proof/inclusion?leafHash=" + hex.EncodeToString(leaf)[1:] + "g", nil, nil, 400},
		{"GET", "/v1/proof/inclusion?leafHash=" + url.QueryEscape(base64.StdEncoding.EncodeToString(leaf[:31])), nil, nil, 400},
		{"GET", "/v1/proof/inclusion?leafHash=" + hex.EncodeToString(unknown), nil, nil, 404},
		{"GET", "/v1/proof/inclusion?leafHash=" + url.QueryEscape(base64.StdEncoding.EncodeToString(unknown)), nil, nil, 404},

		{"GET", "/v1/proof/consistency", nil, nil, 400},
		{"GET", "/v1/proof/consistency?new=3", nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=4", nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=2&new=1", nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=0&new=4", nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=" + maxIndex, nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=00", nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=-1", nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=1&new=03", nil, nil, 400},
		{"GET", "/v1/proof/consistency?old=1&new=" + overflow, nil, nil, 400},
	}
	for _, tc := range cases {
		what := tc.method + " " + tc.path
		if tc.header != nil {
			what += fmt.Sprint(" ", tc.header)
		}
		if len(tc.body) > 0 {
			what += fmt.Sprintf(" (%d bytes)", len(tc.body))
		}
		req, err := http.NewRequest(tc.method, h.srv.URL+tc.path, bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d: %s", what, resp.StatusCode, tc.want, body)
		}
		checkError(t, what, resp.StatusCode, resp.Header, body)
		if now, _ := h.checkpoint(t); !bytes.Equal(now, cp) {
			t.Fatalf("%s changed the checkpoint", what)
		}
	}

	// The gzip bomb is refused without reading, let alone inflating, it.
	body := &countingReader{r: bytes.NewReader(bomb)}
	req := httptest.NewRequest("POST", "/v1/entries", body)
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	log.NewHandler(h.log, log.HandlerOptions{Logger: slog.New(slog.DiscardHandler)}).ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType || body.n.Load() != 0 {
		t.Errorf("gzip bomb: status %d after reading %d bytes", rec.Code, body.n.Load())
	}
	checkError(t, "gzip bomb", rec.Code, rec.Header(), rec.Body.Bytes())

	// The limit is on the body as sent, and its error says so.
	_, code, err := h.client.AddEntry(ctx, overLimit)
	var se *client.StatusError
	if !errors.As(err, &se) || code != 413 || !strings.Contains(se.Message, "too large") {
		t.Errorf("over the limit: %d, %v", code, err)
	}

	// Bodies of unknown length (sent chunked) are read and limited alike.
	for _, tc := range []struct {
		body []byte
		want int
	}{
		{overLimit, http.StatusRequestEntityTooLarge},
		{signer.Submission("chunked", hex.EncodeToString(digest[:])), http.StatusCreated},
	} {
		resp, err := h.srv.Client().Post(h.srv.URL+"/v1/entries", "application/json", io.MultiReader(bytes.NewReader(tc.body)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("chunked body of %d bytes: status %d, want %d: %s", len(tc.body), resp.StatusCode, tc.want, body)
		}
	}

	// What the out of range requests asked for does exist once the tree
	// is large enough.
	for _, path := range []string{"/tile/0/000.p/3", "/tile/entries/000.p/3", "/tile/entries/000.p/1", "/v1/entries/2",
		"/v1/proof/inclusion?index=2", "/v1/proof/inclusion?index=0&size=1", "/v1/proof/consistency?old=0&new=3",
		"/v1/proof/inclusion?leafHash=" + hex.EncodeToString(leaf)} {
		resp, err := h.srv.Client().Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
}

// gauge returns the value of one of the log's gauges.
func (h *httpLog) gauge(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s metric", name)
	return 0
}

// post submits body in the background and sends the reply's status code,
// or the error if there was no reply, on the returned channel.
func (h *httpLog) post(body []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, code, err := h.client.AddEntry(context.Background(), body)
		if code != 0 {
			err = fmt.Errorf("status %d", code)
		}
		done <- err
	}()
	return done
}

// TestHTTPOverload checks the answers to submissions beyond the HTTP
// handler's and the engine's limits, while a commit is stuck in storage.
func TestHTTPOverload(t *testing.T) {
	signer := apitest.NewBuildSignerFromSeed([]byte("TestHTTPOverload"))
	entry := func(i int) []byte {
		d := sha256.Sum256([]byte{byte(i)})
		return signer.Submission(fmt.Sprint("artifact-", i), hex.EncodeToString(d[:]))
	}
	checkRefused := func(t *testing.T, h *httpLog, body []byte, want int) {
		t.Helper()
		before, _ := h.log.Checkpoint()
		resp, err := h.srv.Client().Post(h.srv.URL+"/v1/entries", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, b)
		}
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("no Retry-After")
		}
		var e api.ErrorResponse
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Errorf("body %q", b)
		}
		if after, _ := h.log.Checkpoint(); !bytes.Equal(before, after) {
			t.Error("the checkpoint changed")
		}
	}

	t.Run("in-flight", func(t *testing.T) {
		h := newHTTPLog(t, log.Config{}, log.HandlerOptions{MaxInFlight: 1})
		h.store.close()
		first := h.post(entry(0))
		<-h.store.entered
		checkRefused(t, h, entry(1), http.StatusTooManyRequests)
		h.store.open()
		if err := <-first; fmt.Sprint(err) != "status 201" {
			t.Fatalf("blocked submission: %v", err)
		}
		// The slot is free again.
		if _, code, err := h.client.AddEntry(context.Background(), entry(1)); code != http.StatusCreated {
			t.Fatalf("after release: %d, %v", code, err)
		}
	})

	t.Run("pending", func(t *testing.T) {
		h := newHTTPLog(t, log.Config{MaxPending: 1, MaxInflight: 2, PipelineMin: -1}, log.HandlerOptions{})
		h.store.close()
		first := h.post(entry(0)) // in the stuck commit
		<-h.store.entered
		second := h.post(entry(1)) // in the batch waiting for that commit
		for deadline := time.Now().Add(10 * time.Second); h.gauge(t, "candor_log_integrating_entries") < 2; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the second submission never got into a batch")
			}
		}
		third := h.post(entry(2)) // waiting in the queue
		for deadline := time.Now().Add(10 * time.Second); h.gauge(t, "candor_log_pending_entries") < 1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the third submission never got queued")
			}
		}
		checkRefused(t, h, entry(3), http.StatusServiceUnavailable)
		h.store.open()
		for _, c := range []<-chan error{first, second, third} {
			if err := <-c; fmt.Sprint(err) != "status 201" {
				t.Fatalf("queued submission: %v", err)
			}
		}
		if _, c := h.checkpoint(t); c.Size != 3 {
			t.Fatalf("size %d, want 3", c.Size)
		}
	})
}

// TestHTTPMetrics checks the requests counted by handler and status code,
// and the latency histogram.
func TestHTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{Registerer: reg})
	digest := sha256.Sum256([]byte("artifact"))
	entry := apitest.NewBuildSignerFromSeed([]byte("TestHTTPMetrics")).Submission("artifact", hex.EncodeToString(digest[:]))
	for _, body := range [][]byte{entry, entry, []byte("{")} {
		resp, err := h.srv.Client().Post(h.srv.URL+"/v1/entries", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, path := range []string{"/checkpoint", "/tile/0/000", "/nowhere"} {
		resp, err := h.srv.Client().Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	want := map[string]int{
		"add-entry 201": 1, "add-entry 200": 1, "add-entry 400": 1,
		"checkpoint 200": 1, "tile 404": 1, "unknown 404": 1,
	}
	got := map[string]int{}
	present := map[string]bool{} // with zeros
	observed := map[string]int{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "candor_http_requests_total":
				key := labels["handler"] + " " + labels["code"]
				present[key] = true
				if n := int(m.GetCounter().GetValue()); n > 0 {
					got[key] = n
				}
			case "candor_http_request_duration_seconds":
				if n := int(m.GetHistogram().GetSampleCount()); n > 0 {
					observed[labels["handler"]] = n
				}
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("candor_http_requests_total = %v, want %v", got, want)
	}
	// An alert on a rate of 500s needs the series before the first one.
	for _, key := range []string{"readyz 200", "readyz 500", "entry 500", "add-entry 500", "consistency-proof 500"} {
		if !present[key] {
			t.Errorf("candor_http_requests_total has no series %q from the start", key)
		}
	}
	if want := map[string]int{"add-entry": 3, "checkpoint": 1, "tile": 1, "unknown": 1}; !maps.Equal(observed, want) {
		t.Errorf("candor_http_request_duration_seconds counts = %v, want %v", observed, want)
	}
}

// Search forwards to the storage's search index, so that the gate hides
// nothing of it.
func (s *gatedStorage) Search(ctx context.Context, terms []api.SearchTerm, start, end uint64, limit int) ([]uint64, error) {
	return s.Storage.(log.SearchStorage).Search(ctx, terms, start, end, limit)
}

// TestBundleReadsBounded checks that the log reads at most
// log.MaxBundleReads entry bundles from storage at once: the rest of a
// burst of clients waits its turn and then gets its bundle, and a read
// whose client gives up while it waits ends with its context's error.
func TestBundleReadsBounded(t *testing.T) {
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	var entries [][]byte
	h.grow(t, &entries, 2*api.TileWidth+5)
	want, err := h.log.EntryBundle(context.Background(), api.Tile{Level: api.EntriesLevel, Index: 1, Width: api.TileWidth})
	if err != nil {
		t.Fatal(err)
	}
	h.store.closeBundles()
	const clients = log.MaxBundleReads + 8
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	path := h.srv.URL + "/" + api.Tile{Level: api.EntriesLevel, Index: 1, Width: api.TileWidth}.Path()
	for range clients {
		wg.Go(func() {
			resp, err := h.srv.Client().Get(path)
			if err != nil {
				errs <- err
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				errs <- fmt.Errorf("GET %s: %d, %d bytes, %v: not the bundle's bytes", path, resp.StatusCode, len(body), err)
			}
		})
	}
	for range log.MaxBundleReads {
		<-h.store.bundleEntered
	}
	// The others are waiting for a place, not in storage: none gets in
	// while the first hold theirs.
	time.Sleep(200 * time.Millisecond)
	if n := h.store.reading.Load(); n != log.MaxBundleReads {
		t.Errorf("%d bundle reads in storage at once, want %d", n, log.MaxBundleReads)
	}
	// A read that waits for a place ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = h.log.EntryBundle(ctx, api.Tile{Level: api.EntriesLevel, Index: 0, Width: api.TileWidth})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a read waiting for a place past its deadline: %v, want context.DeadlineExceeded", err)
	}
	h.store.openBundles()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if most := h.store.mostReading.Load(); most > log.MaxBundleReads {
		t.Errorf("%d bundle reads in storage at once, want at most %d", most, log.MaxBundleReads)
	}
}

// TestHTTPConcurrentBundleReads checks that entry bundles and entries read
// at once by many clients each get their own bytes: the log reads bundles
// into buffers it reuses, and one given back too early would be
// overwritten by another read while its reply is written.
func TestHTTPConcurrentBundleReads(t *testing.T) {
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	var entries [][]byte
	const n = 6*api.TileWidth + 17
	h.grow(t, &entries, n)
	bundle := func(b uint64) []byte {
		var out []byte
		for i := b * api.TileWidth; i < min(n, (b+1)*api.TileWidth); i++ {
			out = binary.BigEndian.AppendUint16(out, uint16(len(entries[i])))
			out = append(out, entries[i]...)
		}
		return out
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for k := range 60 {
				b := uint64((g*7 + k*3) % 7)
				path := api.Tile{Level: api.EntriesLevel, Index: b, Width: min(n-int(b)*api.TileWidth, api.TileWidth)}.Path()
				resp, err := h.srv.Client().Get(h.srv.URL + "/" + path)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, bundle(b)) {
					errs <- fmt.Errorf("GET %s: %d, %d bytes, %v: not the bundle's bytes", path, resp.StatusCode, len(body), err)
					return
				}
				i := (g*131 + k*17) % n
				var e api.EntryResponse
				resp, err = h.srv.Client().Get(fmt.Sprintf("%s/v1/entries/%d", h.srv.URL, i))
				if err != nil {
					errs <- err
					return
				}
				err = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if err != nil || !bytes.Equal(e.Entry, entries[i]) {
					errs <- fmt.Errorf("entry %d: %q (%v), want %q", i, e.Entry, err, entries[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHTTPEncodedBundles checks that a full entry bundle that storage
// keeps compressed with zstd is served so, as stored, to the clients
// that take zstd, and uncompressed to the others; that partial bundles
// and partial reads of full ones are served uncompressed; and that the
// candor client reads them either way.
func TestHTTPEncodedBundles(t *testing.T) {
	h := newHTTPLogOn(t, log.Config{}, log.HandlerOptions{}, pebble.Options{BundleFiles: true})
	var entries [][]byte
	const n = 3*api.TileWidth + 10
	h.grow(t, &entries, n)
	bundle := func(b uint64, width int) []byte {
		var out []byte
		for i := b * api.TileWidth; i < b*api.TileWidth+uint64(width); i++ {
			out = binary.BigEndian.AppendUint16(out, uint16(len(entries[i])))
			out = append(out, entries[i]...)
		}
		return out
	}
	get := func(path, accept string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/"+path, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		resp, err := h.srv.Client().Transport.RoundTrip(req) // no transparent decoding
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("GET %s: Vary %q, want Accept-Encoding", path, resp.Header.Get("Vary"))
		}
		return resp, body
	}
	full := func(b uint64) string { return api.Tile{Level: api.EntriesLevel, Index: b, Width: api.TileWidth}.Path() }
	// The mover takes the full bundles to the files within a second or so
	// of their commit.
	deadline := time.Now().Add(30 * time.Second)
	for b := uint64(0); b < 3; b++ {
		for {
			resp, _ := get(full(b), "zstd")
			if resp.Header.Get("Content-Encoding") == "zstd" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bundle %d is not served compressed 30 s after its commit", b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, tc := range []struct {
		accept string
		zstd   bool
	}{
		{"zstd", true},
		{"gzip, deflate, br, zstd", true},
		{"ZSTD;q=0.5", true},
		{"*", true},
		{"", false},
		{"gzip", false},
		{"zstd;q=0", false},
		{"*, zstd;q=0", false},
		{"zstd;q=zero", false},
		{"identity", false},
	} {
		for b := uint64(0); b < 3; b++ {
			resp, body := get(full(b), tc.accept)
			ce := resp.Header.Get("Content-Encoding")
			if tc.zstd {
				if ce != "zstd" {
					t.Fatalf("Accept-Encoding %q: bundle %d in coding %q, want zstd", tc.accept, b, ce)
				}
				if resp.ContentLength != int64(len(body)) || len(body) >= len(bundle(b, api.TileWidth)) {
					t.Errorf("Accept-Encoding %q: bundle %d of %d bytes compressed to %d (Content-Length %d)", tc.accept, b, len(bundle(b, api.TileWidth)), len(body), resp.ContentLength)
				}
				var err error
				if body, err = bundlezstd.AppendDecoded(nil, body); err != nil {
					t.Fatalf("Accept-Encoding %q: bundle %d: %v", tc.accept, b, err)
				}
			} else if ce != "" {
				t.Fatalf("Accept-Encoding %q: bundle %d in coding %q, want none", tc.accept, b, ce)
			}
			if !bytes.Equal(body, bundle(b, api.TileWidth)) {
				t.Fatalf("Accept-Encoding %q: bundle %d: not its bytes", tc.accept, b)
			}
		}
	}
	// The partial bundle, and a full one read in part, are not stored
	// compressed as served.
	for _, tl := range []api.Tile{{Level: api.EntriesLevel, Index: 3, Width: 10}, {Level: api.EntriesLevel, Index: 1, Width: 7}} {
		resp, body := get(tl.Path(), "zstd")
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || !bytes.Equal(body, bundle(tl.Index, tl.Width)) {
			t.Errorf("%s: coding %q, %d bytes; want its bytes uncompressed", tl.Path(), ce, len(body))
		}
	}
	// A bundle beyond the tree is an error in either case.
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/"+full(4), nil)
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s beyond the tree: %d, want 404", full(4), resp.StatusCode)
	}
	for b := uint64(0); b < 4; b++ {
		width := min(api.TileWidth, n-int(b)*api.TileWidth)
		got, err := h.client.Tile(context.Background(), api.Tile{Level: api.EntriesLevel, Index: b, Width: width})
		if err != nil || !bytes.Equal(got, bundle(b, width)) {
			t.Errorf("client.Tile(bundle %d): %d bytes, %v", b, len(got), err)
		}
	}
}
