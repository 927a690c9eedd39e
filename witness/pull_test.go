package witness_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// pullWitness is a Witness on pebble state with a Puller, serving its
// monitoring path over HTTP.
type pullWitness struct {
	*testWitness
	w   *witness.Witness
	p   *witness.Puller
	reg *prometheus.Registry
}

// newPullWitness starts a witness following logs, pulling from sources.
// tweak, if not nil, adjusts the PullerConfig.
func newPullWitness(t testing.TB, logs []*testLog, sources []witness.Source, tweak func(*witness.PullerConfig)) *pullWitness {
	t.Helper()
	return startPullWitness(t, t.TempDir(), newCosignerKey(t), false, logs, sources, tweak)
}

// startPullWitness starts a witness on the state in dir, with the cosigner
// key skey, as newPullWitness does; with audit, it audits every log (the
// audit's position kept in the state, as candor-witness does).
func startPullWitness(t testing.TB, dir, skey string, audit bool, logs []*testLog, sources []witness.Source, tweak func(*witness.PullerConfig)) *pullWitness {
	t.Helper()
	state, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	for _, s := range sources {
		urls[s.Origin] = s.URL
	}
	var wl []witness.Log
	for _, l := range logs {
		// As candor-witness does: a pulled log's URL is also the one the
		// witness reads tiles from to check checkpoints against each other.
		wl = append(wl, witness.Log{Origin: l.origin, Verifier: l.verifier, URL: urls[l.origin], Audit: audit})
	}
	reg := prometheus.NewRegistry()
	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: wl, State: state, Evidence: state, Audit: state, Logger: quiet, Registerer: reg})
	if err != nil {
		state.Close()
		t.Fatal(err)
	}
	cfg := witness.PullerConfig{Sources: sources, Logger: quiet, Registerer: reg}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := witness.NewPuller(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tw := &testWitness{url: srv.URL, vkey: cosigner.VerifierKey(), verifier: cosigner.Verifier(), srv: srv, closeState: state.Close}
	t.Cleanup(func() { tw.close(t) })
	return &pullWitness{testWitness: tw, w: w, p: p, reg: reg}
}

// served returns the bytes the witness serves at the monitoring path of
// l, or nil before it cosigned any.
func (w *pullWitness) served(t testing.TB, l *testLog) []byte {
	t.Helper()
	r := get(t, w.url+originPath(l.origin))
	switch r.code {
	case http.StatusOK:
		return r.body
	case http.StatusNotFound:
		return nil
	}
	t.Fatalf("GET %s = %v", originPath(l.origin), r)
	return nil
}

// pulls returns the value of candor_witness_pull_total{origin, result}.
func (w *pullWitness) pulls(t testing.TB, origin string, result witness.PullResult) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "candor_witness_pull_total" {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "origin" && lp.GetValue() != origin ||
					lp.GetName() == "result" && lp.GetValue() != string(result) {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// poll polls l once and checks the result, and that the error wraps want
// (nil: no error).
func (w *pullWitness) poll(t testing.TB, l *testLog, res witness.PullResult, want error) {
	t.Helper()
	got, err := w.p.Poll(context.Background(), l.origin)
	if got != res || want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("Poll = %q, %v; want %q, %v", got, err, res, want)
	}
}

// pollCosigned polls l once, expecting the witness to cosign want (size
// and root), and checks the checkpoint it then serves.
func (w *pullWitness) pollCosigned(t testing.TB, l *testLog, want api.Checkpoint) {
	t.Helper()
	w.poll(t, l, witness.PullCosigned, nil)
	c, ok := w.latest(t, l)
	if !ok || c.Size != want.Size || c.Hash != want.Hash {
		t.Fatalf("after a cosigned poll the witness serves size %d root %x (%v), want size %d root %x", c.Size, c.Hash, ok, want.Size, want.Hash)
	}
}

// candorLog is a Candor log engine on pebble, signing with l's key.
type candorLog struct {
	log     *log.Log
	handler http.Handler
	entries int
}

func newCandorLog(t testing.TB, l *testLog) *candorLog {
	t.Helper()
	ps, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	lg, err := log.New(context.Background(), log.Config{Storage: ps, Signer: l.signer, Verifier: l.verifier, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	return &candorLog{log: lg, handler: log.NewHandler(lg, log.HandlerOptions{Logger: quiet})}
}

// grow adds entries "<tag> i" until the log has n, and returns its
// checkpoint.
func (c *candorLog) grow(t testing.TB, l *testLog, tag string, n int) api.Checkpoint {
	t.Helper()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next.Store(int64(c.entries))
	for range min(n-c.entries, 32) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := c.log.Add(context.Background(), fmt.Appendf(nil, "%s %d", tag, i)); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
	c.entries = n
	cp, size := c.log.Checkpoint()
	if size != uint64(n) {
		t.Fatalf("log size %d after adding %d entries", size, n)
	}
	checkpoint, _, err := api.OpenCheckpoint(cp, l.origin, l.verifier)
	if err != nil {
		t.Fatal(err)
	}
	return checkpoint
}

// switchHandler serves with whichever handler was set last.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (s *switchHandler) set(h http.Handler) { s.h.Store(&h) }
func (s *switchHandler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(rw, r)
}

// TestPullCandorLog follows a real Candor log (engine, pebble, HTTP
// handler) that grows between polls: the witness cosigns each new size
// through tiles alone. A second log signing with the same key (a fork)
// is refused, at the same size and larger, with the state unchanged.
// Then Run follows the log on its own until it is stopped.
func TestPullCandorLog(t *testing.T) {
	l := newTestLog("example.com/pull/candor")
	lg := newCandorLog(t, l)
	var sw switchHandler
	sw.set(lg.handler)
	srv := httptest.NewServer(&sw)
	defer srv.Close()
	w := newPullWitness(t, []*testLog{l}, []witness.Source{{Origin: l.origin, URL: srv.URL + "/", Interval: 20 * time.Millisecond}}, nil)

	// The empty log, then the same again: nothing to do.
	w.pollCosigned(t, l, lg.grow(t, l, "main", 0))
	before := w.served(t, l)
	w.poll(t, l, witness.PullUnchanged, nil)
	if !bytes.Equal(w.served(t, l), before) {
		t.Fatal("an unchanged poll changed the stored checkpoint")
	}
	// Sizes around tile boundaries: partial and full level 0 tiles, and
	// level 1 tiles.
	var last api.Checkpoint
	for _, n := range []int{1, 2, 7, 255, 256, 257, 600} {
		last = lg.grow(t, l, "main", n)
		w.pollCosigned(t, l, last)
	}
	if got := w.pulls(t, l.origin, witness.PullCosigned); got != 8 {
		t.Errorf("pull_total{result=cosigned} = %v, want 8", got)
	}

	// Followed by Run: each size the log reaches is cosigned, until Run is
	// stopped.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.p.Run(ctx)
	}()
	for _, n := range []int{650, 1000} {
		last = lg.grow(t, l, "main", n)
		waitServed(t, w, l, last)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}

	// A fork: another tree under the same key, at the same size. It is
	// refused and becomes evidence; from then on the witness refuses the
	// log, also its larger checkpoints, and keeps what it had.
	fork := newCandorLog(t, l)
	fork.grow(t, l, "fork", 1000)
	sw.set(fork.handler)
	before = w.served(t, l)
	w.poll(t, l, witness.PullInconsistent, witness.ErrInconsistent)
	w.checkEvidence(t, l)
	fork.grow(t, l, "fork", 1100)
	w.poll(t, l, witness.PullRefused, witness.ErrMisbehaved)
	if !bytes.Equal(w.served(t, l), before) {
		t.Fatal("a refused fork changed the stored checkpoint")
	}
	if got := w.pulls(t, l.origin, witness.PullInconsistent); got != 1 {
		t.Errorf("pull_total{result=inconsistent} = %v, want 1", got)
	}
	if c, _ := w.latest(t, l); c.Size != last.Size || c.Hash != last.Hash {
		t.Fatalf("after the fork the witness serves size %d, want %d", c.Size, last.Size)
	}
}

// checkEvidence checks that the witness serves evidence about l that
// verifies with l's key alone.
func (w *pullWitness) checkEvidence(t testing.TB, l *testLog) {
	t.Helper()
	resp, err := http.Get(w.url + "/v1/evidence")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Evidence []json.RawMessage `json:"evidence"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("GET /v1/evidence: %v", err)
	}
	for _, raw := range list.Evidence {
		e, err := api.ParseEvidence(raw)
		if err != nil {
			t.Fatalf("unparseable evidence: %v", err)
		}
		if e.Origin != l.origin {
			continue
		}
		if _, err := e.Verify(l.verifier); err != nil {
			t.Fatalf("evidence of kind %q does not verify: %v", e.Kind, err)
		}
		return
	}
	t.Fatalf("no evidence about %s among %d", l.origin, len(list.Evidence))
}

// waitServed waits, for at most 20 seconds, until the witness serves a
// cosigned checkpoint of l at want's size and root.
func waitServed(t testing.TB, w *pullWitness, l *testLog, want api.Checkpoint) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, ok := w.latest(t, l)
		if ok && c.Size == want.Size && c.Hash == want.Hash {
			return
		}
		if ok && c.Size > want.Size {
			t.Fatalf("the witness serves size %d, beyond %d", c.Size, want.Size)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness serves size %d (%v), not %d, after 20s", c.Size, ok, want.Size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tilesServer is a minimal c2sp.org/tlog-tiles log that is not Candor:
// hash tiles made by golang.org/x/mod/sumdb/tlog from an in-memory tree,
// and a checkpoint signed with golang.org/x/mod/sumdb/note. Its fields
// can be changed between polls, under mu.
type tilesServer struct {
	mu     sync.Mutex
	origin string
	signer note.Signer // signs the checkpoint
	tree   *tree
	size   uint64
	// checkpoint, if set, is served instead of a signed checkpoint.
	checkpoint []byte
	// tile, if set, may replace the data of a tile (given its path).
	tile func(path string, data []byte) []byte
	// hang, if set, makes every request wait until it is closed or the
	// request is canceled, reporting on hung first.
	hang chan struct{}
	hung chan string

	tiles atomic.Int64 // tile requests served
}

func newTilesServer(t testing.TB, l *testLog, tr *tree, size uint64) (*tilesServer, string) {
	s := &tilesServer{origin: l.origin, signer: l.signer, tree: tr, size: size}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

func (s *tilesServer) set(f func(s *tilesServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *tilesServer) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hang, hung := s.hang, s.hung
	s.mu.Unlock()
	if hang != nil {
		select {
		case hung <- r.URL.Path:
		default:
		}
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/checkpoint" {
		if s.checkpoint != nil {
			rw.Write(s.checkpoint)
			return
		}
		root, err := s.tree.rootErr(s.size)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		signed, err := note.Sign(&note.Note{Text: string(api.Checkpoint{Origin: s.origin, Size: s.size, Hash: root}.Marshal())}, s.signer)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		rw.Write(signed)
		return
	}
	at, err := api.ParseTilePath(r.URL.Path)
	if err != nil || at.Level == api.EntriesLevel {
		http.NotFound(rw, r)
		return
	}
	if want, ok := api.TileForSize(at.Level, at.Index, s.size); !ok || want != at {
		http.NotFound(rw, r)
		return
	}
	s.tiles.Add(1)
	data, err := tlog.ReadTileData(tlog.Tile{H: api.TileHeight, L: at.Level, N: int64(at.Index), W: at.Width}, s.tree)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	if s.tile != nil {
		data = s.tile(r.URL.Path, data)
	}
	rw.Header().Set("Cache-Control", "public, max-age=604800, immutable")
	rw.Write(data)
}

// TestPullAnyTlogTilesLog follows a tlog-tiles log built with
// golang.org/x/mod/sumdb only, across tile levels 0 to 2, and refuses its
// forks; tiles that do not hash to its checkpoint are not cosigned.
func TestPullAnyTlogTilesLog(t *testing.T) {
	l := newTestLog("example.org/not-candor")
	const max = 70_001 // past 256² leaves: level 2 tiles
	tr := newTree(t, max, max, "")
	s, url := newTilesServer(t, l, tr, 3)
	w := newPullWitness(t, []*testLog{l}, []witness.Source{{Origin: l.origin, URL: url}}, nil)
	for _, n := range []uint64{3, 255, 256, 257, 65535, 65536, 65537, max} {
		s.set(func(s *tilesServer) { s.size = n })
		w.pollCosigned(t, l, api.Checkpoint{Size: n, Hash: tr.root(t, n)})
	}
	w.poll(t, l, witness.PullUnchanged, nil)
	cosigned := w.served(t, l)

	// The log's own tree, larger, but with a tile that does not hash to
	// its root.
	grown := newTree(t, max+10, max+10, "")
	s.set(func(s *tilesServer) {
		s.tree, s.size = grown, max+10
		s.tile = func(path string, data []byte) []byte {
			data = bytes.Clone(data)
			data[0] ^= 1
			return data
		}
	})
	got, err := w.p.Poll(context.Background(), l.origin)
	if got != witness.PullError || err == nil || !strings.Contains(err.Error(), "do not hash") {
		t.Fatalf("Poll with a tampered tile = %q, %v; want an error", got, err)
	}
	if !bytes.Equal(w.served(t, l), cosigned) {
		t.Fatal("refused checkpoints changed the stored one")
	}
	s.set(func(s *tilesServer) { s.tile = nil })
	w.pollCosigned(t, l, api.Checkpoint{Size: max + 10, Hash: grown.root(t, max+10)})
	cosigned = w.served(t, l)

	// A fork from size 1000, larger: the witness reads the fork's tiles,
	// finds its root at size max+10 is not the one it cosigned, and holds
	// evidence; then it refuses the log.
	fork := newTree(t, max+20, 1000, "fork")
	s.set(func(s *tilesServer) { s.tree, s.size = fork, max+20 })
	w.poll(t, l, witness.PullInconsistent, witness.ErrInconsistent)
	w.checkEvidence(t, l)
	w.poll(t, l, witness.PullRefused, witness.ErrMisbehaved)
	if !bytes.Equal(w.served(t, l), cosigned) {
		t.Fatal("a refused fork changed the stored checkpoint")
	}
}

// TestPullRefusesUnverified checks that a checkpoint that is not the
// log's, signed by its key, is ignored before any tile is fetched.
func TestPullRefusesUnverified(t *testing.T) {
	l := newTestLog("example.org/pulled")
	other := newTestLog("example.org/other") // another log the witness follows
	impostor := newTestLog(l.origin)         // the same name, another key
	tr := newTree(t, 20, 20, "")
	s, url := newTilesServer(t, l, tr, 10)
	w := newPullWitness(t, []*testLog{l, other}, []witness.Source{{Origin: l.origin, URL: url}}, nil)
	w.pollCosigned(t, l, api.Checkpoint{Size: 10, Hash: tr.root(t, 10)})
	cosigned := w.served(t, l)
	tiles := s.tiles.Load()

	for _, tc := range []struct {
		name string
		set  func(s *tilesServer)
		want error
	}{
		{"another key", func(s *tilesServer) { s.signer = impostor.signer; s.size = 20 }, witness.ErrNotSigned},
		{"another log", func(s *tilesServer) {
			s.checkpoint = other.sign(t, api.Checkpoint{Origin: other.origin, Size: 20, Hash: tr.root(t, 20)})
		}, witness.ErrNotSigned},
		{"another origin under the log's key", func(s *tilesServer) {
			n, err := note.Sign(&note.Note{Text: string(api.Checkpoint{Origin: other.origin, Size: 20, Hash: tr.root(t, 20)}.Marshal())}, l.signer)
			if err != nil {
				t.Fatal(err)
			}
			s.checkpoint = n
		}, witness.ErrBadRequest},
		{"unsigned", func(s *tilesServer) {
			s.checkpoint = append(api.Checkpoint{Origin: l.origin, Size: 20, Hash: tr.root(t, 20)}.Marshal(), '\n')
		}, witness.ErrBadRequest},
		{"garbage", func(s *tilesServer) { s.checkpoint = []byte("<html>hello</html>") }, witness.ErrBadRequest},
		{"a valid log signature followed by a bad one", func(s *tilesServer) {
			signed := l.checkpoint(t, tr, 20)
			bad := bytes.Clone(lastLine(signed))
			// Character 8 of the base64 is in the signature, past the key ID.
			i := bytes.IndexByte(bad[len("— "):], ' ') + len("— ") + 1 + 8
			if bad[i] == 'A' {
				bad[i] = 'B'
			} else {
				bad[i] = 'A'
			}
			s.checkpoint = append(signed, bad...)
		}, witness.ErrNotSigned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.set(func(s *tilesServer) {
				s.signer, s.size, s.checkpoint = l.signer, 10, nil
				tc.set(s)
			})
			w.poll(t, l, witness.PullUnverified, tc.want)
			if !bytes.Equal(w.served(t, l), cosigned) || w.served(t, other) != nil {
				t.Fatal("an unverified checkpoint changed the witness's state")
			}
			if n := s.tiles.Load(); n != tiles {
				t.Fatalf("%d tiles fetched for an unverified checkpoint", n-tiles)
			}
		})
	}
	if got := w.pulls(t, l.origin, witness.PullUnverified); got != 6 {
		t.Errorf("pull_total{result=unverified} = %v, want 6", got)
	}
}

// TestPullLimits checks that oversized, short and slow replies are
// refused, in bounded time, and nothing is cosigned.
func TestPullLimits(t *testing.T) {
	l := newTestLog("example.org/limits")
	tr := newTree(t, 300, 300, "")
	s, url := newTilesServer(t, l, tr, 10)
	w := newPullWitness(t, []*testLog{l}, []witness.Source{{Origin: l.origin, URL: url}}, func(c *witness.PullerConfig) {
		c.Timeout = 500 * time.Millisecond
	})
	w.pollCosigned(t, l, api.Checkpoint{Size: 10, Hash: tr.root(t, 10)})
	cosigned := w.served(t, l)

	signed := l.checkpoint(t, tr, 300)
	for _, tc := range []struct {
		name, want string
		set        func(s *tilesServer)
	}{
		// A valid checkpoint padded with signature-like lines past 64 KiB.
		{"checkpoint too large", "longer than", func(s *tilesServer) {
			s.checkpoint = append(bytes.Clone(signed), bytes.Repeat([]byte("— x AAAAAAAA\n"), 64<<10/12)...)
		}},
		{"tile too large", "longer than", func(s *tilesServer) {
			s.size = 300
			s.tile = func(path string, data []byte) []byte { return append(data, make([]byte, 1<<20)...) }
		}},
		{"tile one hash short", "want", func(s *tilesServer) {
			s.size = 300
			s.tile = func(path string, data []byte) []byte { return data[:len(data)-api.HashSize] }
		}},
		{"hanging log", "deadline", func(s *tilesServer) { s.hang = make(chan struct{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.set(func(s *tilesServer) {
				s.size, s.checkpoint, s.tile, s.hang = 10, nil, nil, nil
				tc.set(s)
			})
			start := time.Now()
			got, err := w.p.Poll(context.Background(), l.origin)
			if got != witness.PullError || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Poll = %q, %v; want an error about %q", got, err, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Poll took %v", d)
			}
			if !bytes.Equal(w.served(t, l), cosigned) {
				t.Fatal("a refused reply changed the witness's state")
			}
		})
	}
	s.set(func(s *tilesServer) { s.size, s.checkpoint, s.tile, s.hang = 300, nil, nil, nil })
	w.pollCosigned(t, l, api.Checkpoint{Size: 300, Hash: tr.root(t, 300)})
}

// TestPullRunStops checks that Run returns once its context is canceled,
// also while a request to the log hangs.
func TestPullRunStops(t *testing.T) {
	l := newTestLog("example.org/stops")
	tr := newTree(t, 5, 5, "")
	s, url := newTilesServer(t, l, tr, 5)
	hung := make(chan string, 1)
	s.set(func(s *tilesServer) { s.hang, s.hung = make(chan struct{}), hung })
	w := newPullWitness(t, []*testLog{l}, []witness.Source{{Origin: l.origin, URL: url}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.p.Run(ctx)
	}()
	select {
	case p := <-hung:
		if p != "/checkpoint" {
			t.Errorf("the first request is for %s, want /checkpoint", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run made no request in 10s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
	if w.served(t, l) != nil {
		t.Error("the witness cosigned while the log hung")
	}
	// A canceled poll is not the log's failure.
	if got := w.pulls(t, l.origin, witness.PullError); got != 0 {
		t.Errorf("pull_total{result=error} = %v after a shutdown, want 0", got)
	}
}

func TestNewPullerRejects(t *testing.T) {
	l := newTestLog("example.org/log")
	good := witness.Source{Origin: l.origin, URL: "https://log.example.org/tiles"}
	for _, tc := range []struct {
		name    string
		sources []witness.Source
	}{
		{"unknown origin", []witness.Source{{Origin: "example.org/unknown", URL: good.URL}}},
		{"twice", []witness.Source{good, good}},
		{"ftp", []witness.Source{{Origin: l.origin, URL: "ftp://log.example.org/"}}},
		{"relative", []witness.Source{{Origin: l.origin, URL: "log.example.org/tiles"}}},
		{"no host", []witness.Source{{Origin: l.origin, URL: "http:///tiles"}}},
		{"query", []witness.Source{{Origin: l.origin, URL: "https://log.example.org/?a=b"}}},
		{"user", []witness.Source{{Origin: l.origin, URL: "https://u:p@log.example.org/"}}},
		{"negative interval", []witness.Source{{Origin: l.origin, URL: good.URL, Interval: -time.Second}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier}},
				State: nopState{}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := witness.NewPuller(w, witness.PullerConfig{Sources: []witness.Source{good}}); err != nil {
				t.Fatalf("a good source: %v", err)
			}
			if _, err := witness.NewPuller(w, witness.PullerConfig{Sources: tc.sources}); err == nil {
				t.Fatalf("NewPuller(%+v) succeeded", tc.sources)
			}
		})
	}
}

// nopState is a State that is never read.
type nopState struct{}

func (nopState) Latest(context.Context, string) ([]byte, error) {
	return nil, errors.New("nopState")
}
func (nopState) Swap(context.Context, string, []byte, []byte) error { return errors.New("nopState") }
