package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

var quiet = slog.New(slog.DiscardHandler)

// logKey is a log's signing key.
type logKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newLogKey(origin string) logKey {
	s, v, vkey := apitest.NewNoteKey(origin, rand.Reader)
	return logKey{s, v, vkey}
}

// candorLog is a real Candor log (pebble in a temporary directory) served
// over HTTP.
type candorLog struct {
	key     logKey
	log     *log.Log
	handler http.Handler
}

func newCandorLog(tb testing.TB, key logKey) *candorLog {
	tb.Helper()
	store, err := pebble.Open(tb.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: key.signer, Verifier: key.verifier, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return &candorLog{key: key, log: l, handler: log.NewHandler(l, log.HandlerOptions{Logger: quiet})}
}

// add adds the entries and waits until they are integrated.
func (c *candorLog) add(tb testing.TB, entries ...string) {
	tb.Helper()
	ctx := context.Background()
	futures := make([]*log.Future, len(entries))
	for i, e := range entries {
		futures[i] = c.log.Submit(ctx, []byte(e))
	}
	for _, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			tb.Fatal(err)
		}
	}
}

// checkpoint returns the log's latest signed checkpoint.
func (c *candorLog) checkpoint() []byte {
	cp, _ := c.log.Checkpoint()
	return cp
}

// entries returns n entries named prefix-i.
func entries(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, from+i)
	}
	return out
}

// faultHandler serves a log through rewrites of its replies, to fool
// clients. Its log can be switched, as a log that forks would.
type faultHandler struct {
	mu         sync.Mutex
	next       http.Handler
	rewrite    map[string]func([]byte) []byte // by path
	checkpoint []byte                         // served at /checkpoint, if set
}

func (f *faultHandler) setNext(h http.Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = h
}

// set rewrites the replies at path with fn; nil removes the rewrite.
func (f *faultHandler) set(path string, fn func([]byte) []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fn == nil {
		delete(f.rewrite, path)
		return
	}
	f.rewrite[path] = fn
}

func (f *faultHandler) serveCheckpoint(cp []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkpoint = cp
}

func (f *faultHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	next, fn, cp := f.next, f.rewrite[r.URL.Path], f.checkpoint
	f.mu.Unlock()
	if cp != nil && r.URL.Path == "/checkpoint" {
		w.Write(cp)
		return
	}
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if fn != nil && rec.Code == http.StatusOK {
		body = fn(bytes.Clone(body))
	}
	maps.Copy(w.Header(), rec.Header())
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	w.Write(body)
}

// serveLog serves h behind a faultHandler and returns it with a Client of it
// and its URL.
func serveLog(tb testing.TB, h http.Handler) (*faultHandler, *client.Client, string) {
	f := &faultHandler{next: h, rewrite: map[string]func([]byte) []byte{}}
	srv := httptest.NewServer(f)
	tb.Cleanup(srv.Close)
	return f, client.New(srv.URL, srv.Client()), srv.URL
}

// newVerifier returns a Verifier of the log of key that c reads.
func newVerifier(tb testing.TB, c *client.Client, key logKey, cfg client.VerifierConfig) *client.Verifier {
	tb.Helper()
	cfg.Origin, cfg.LogVerifier = key.verifier.Name(), key.verifier
	v, err := client.NewVerifier(c, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// tlogServer is a c2sp.org/tlog-tiles log that is not Candor: its tree
// is kept by golang.org/x/mod/sumdb/tlog, in memory, its tiles are
// computed by tlog.ReadTileData at the paths of tlog.ParseTilePath (with
// the height taken out), and its checkpoint is signed with note.
type tlogServer struct {
	origin string
	signer note.Signer

	mu      sync.Mutex
	hashes  []tlog.Hash // stored hashes, in tlog's order
	entries [][]byte
}

func (s *tlogServer) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

func (s *tlogServer) add(tb testing.TB, entries ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		hs, err := tlog.StoredHashes(int64(len(s.entries)), []byte(e), s)
		if err != nil {
			tb.Fatal(err)
		}
		s.hashes = append(s.hashes, hs...)
		s.entries = append(s.entries, []byte(e))
	}
}

func (s *tlogServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(len(s.entries))
	if r.URL.Path == "/checkpoint" {
		root, err := tlog.TreeHash(n, s)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		text := fmt.Sprintf("%s\n%d\n%s\n", s.origin, n, base64.StdEncoding.EncodeToString(root[:]))
		signed, err := note.Sign(&note.Note{Text: text}, s.signer)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(signed)
		return
	}
	// tlog's paths are c2sp.org/tlog-tiles' with the height after
	// "tile/", and "data" for the entries.
	p, ok := strings.CutPrefix(r.URL.Path, "/tile/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	p = "tile/" + strconv.Itoa(api.TileHeight) + "/" + strings.Replace(p, "entries/", "data/", 1)
	t, err := tlog.ParseTilePath(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	// Only the tiles of this tree: full ones, and the partial ones at
	// the right edge.
	count := n
	if t.L > 0 {
		count = n >> (uint(t.L) * uint(t.H))
	}
	start := t.N << t.H
	if end := start + int64(t.W); end > count || t.W < 1<<t.H && end != count {
		http.NotFound(w, r)
		return
	}
	if t.L == -1 {
		var b []byte
		for _, e := range s.entries[t.N<<t.H : t.N<<t.H+int64(t.W)] {
			b, _ = api.AppendBundleEntry(b, e)
		}
		w.Write(b)
		return
	}
	data, err := tlog.ReadTileData(t, s)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write(data)
}

// testWitness is a real witness on pebble state, following one log whose
// tiles are at logURL, served over HTTP.
type testWitness struct {
	w   *witness.Witness
	url string
}

func newTestWitness(tb testing.TB, key logKey, logURL string) *testWitness {
	tb.Helper()
	state, err := pebble.OpenWitnessState(tb.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { state.Close() })
	skey, _, err := api.GenerateCosignerKey(rand.Reader, "witness.example/w")
	if err != nil {
		tb.Fatal(err)
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: state, Evidence: state, Logger: quiet,
		Logs: []witness.Log{{Origin: key.verifier.Name(), Verifier: key.verifier, URL: logURL}}})
	if err != nil {
		tb.Fatal(err)
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return &testWitness{w: w, url: srv.URL}
}

// size returns the size of the log's latest checkpoint.
func (c *candorLog) size() int {
	_, n := c.log.Checkpoint()
	return int(n)
}
