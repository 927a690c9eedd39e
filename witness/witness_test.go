package witness_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tree is an in-memory RFC 6962 Merkle tree built with sumdb/tlog, whose
// proofs are checked by transparency-dev/merkle in the witness.
type tree struct {
	hashes []tlog.Hash
	size   uint64 // number of leaves
}

func (tr *tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(tr.hashes)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = tr.hashes[x]
	}
	return out, nil
}

// newTree returns a tree of n leaves, "<prefix> i" for i >= from and
// "leaf i" before, so that trees with the same from and different prefixes
// fork at size from.
func newTree(t testing.TB, n, from int, prefix string) *tree {
	tr := &tree{}
	for i := range n {
		leaf := fmt.Sprintf("leaf %d", i)
		if i >= from {
			leaf = fmt.Sprintf("%s %d", prefix, i)
		}
		hs, err := tlog.StoredHashes(int64(i), []byte(leaf), tr)
		if err != nil {
			t.Fatal(err)
		}
		tr.hashes = append(tr.hashes, hs...)
	}
	tr.size = uint64(n)
	return tr
}

func (tr *tree) root(t testing.TB, size uint64) [api.HashSize]byte {
	t.Helper()
	h, err := tr.rootErr(size)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (tr *tree) rootErr(size uint64) ([api.HashSize]byte, error) {
	if size == 0 {
		return [api.HashSize]byte(rfc6962.DefaultHasher.EmptyRoot()), nil
	}
	return tlog.TreeHash(int64(size), tr)
}

// proof returns the consistency proof from old to size.
func (tr *tree) proof(t testing.TB, old, size uint64) [][]byte {
	t.Helper()
	p, err := tr.proofErr(old, size)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (tr *tree) proofErr(old, size uint64) ([][]byte, error) {
	if old == 0 || old == size {
		return nil, nil
	}
	p, err := tlog.ProveTree(int64(size), int64(old), tr)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out, nil
}

// testLog is a log's key.
type testLog struct {
	origin   string
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newTestLog(origin string) *testLog {
	s, v, vkey := apitest.NewNoteKey(origin, rand.Reader)
	return &testLog{origin: origin, signer: s, verifier: v, vkey: vkey}
}

// checkpoint signs the checkpoint of tr at size.
func (l *testLog) checkpoint(t testing.TB, tr *tree, size uint64) []byte {
	return l.sign(t, api.Checkpoint{Origin: l.origin, Size: size, Hash: tr.root(t, size)})
}

func (l *testLog) sign(t testing.TB, c api.Checkpoint) []byte {
	b, err := api.SignCheckpoint(c, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testWitness is a witness on pebble state in dir, served over HTTP.
type testWitness struct {
	url      string
	vkey     string
	verifier note.Verifier
	srv      *httptest.Server
	// closeState, if set, is called by close after the server closed.
	closeState func() error
}

// newCosignerKey returns a new cosignature/v1 private key.
func newCosignerKey(t testing.TB) string {
	skey, _, err := api.GenerateCosignerKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

func startWitness(t testing.TB, dir, skey string, logs ...*testLog) *testWitness {
	t.Helper()
	state, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w := serveWitness(t, state, skey, logs...)
	w.closeState = state.Close
	t.Cleanup(func() { w.close(t) })
	return w
}

// serveWitness serves a new Witness on state. Several may share a state.
func serveWitness(t testing.TB, state witness.State, skey string, logs ...*testLog) *testWitness {
	t.Helper()
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wl []witness.Log
	for _, l := range logs {
		wl = append(wl, witness.Log{Origin: l.origin, Verifier: l.verifier})
	}
	cfg := witness.Config{Cosigner: cosigner, Logs: wl, State: state, Logger: quiet}
	if es, ok := state.(witness.EvidenceStore); ok {
		// As candor-witness does: evidence kept with the state.
		cfg.Evidence = es
	}
	w, err := witness.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	return &testWitness{url: srv.URL, vkey: cosigner.VerifierKey(), verifier: cosigner.Verifier(), srv: srv}
}

func (w *testWitness) close(t testing.TB) {
	if w.srv == nil {
		return
	}
	w.srv.Close()
	w.srv = nil
	if w.closeState != nil {
		if err := w.closeState(); err != nil {
			t.Errorf("closing the witness state: %v", err)
		}
	}
}

type reply struct {
	code int
	hdr  http.Header
	body []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %q", r.code, r.body) }

func post(t testing.TB, url string, body []byte) reply {
	t.Helper()
	r, err := postErr(url, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func postErr(url string, body []byte) (reply, error) {
	return postPath(url+"/add-checkpoint", body)
}

// postPath posts body to url.
func postPath(url string, body []byte) (reply, error) {
	resp, err := http.Post(url, "text/plain", bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, resp.Header, b}, nil
}

func get(t testing.TB, url string) reply {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func addBody(old uint64, proof [][]byte, checkpoint []byte) []byte {
	return api.AddCheckpointRequest{OldSize: old, Proof: proof, Checkpoint: checkpoint}.Marshal()
}

// checkCosigned checks a 200 reply: one cosignature line by the witness
// that verifies on checkpoint with a recent timestamp, and that the note
// with it opens with the log's and the witness's keys.
func checkCosigned(t testing.TB, w *testWitness, l *testLog, checkpoint []byte, r reply) {
	t.Helper()
	if err := cosignedErr(w, l, checkpoint, r); err != nil {
		t.Fatal(err)
	}
}

func cosignedErr(w *testWitness, l *testLog, checkpoint []byte, r reply) error {
	if r.code != http.StatusOK {
		return fmt.Errorf("add-checkpoint = %v, want 200", r)
	}
	sigs, err := api.ParseCosignatureLines(r.body)
	if err != nil {
		return fmt.Errorf("200 body %q: %w", r.body, err)
	}
	if len(sigs) != 1 || sigs[0].Name != w.verifier.Name() || sigs[0].Hash != w.verifier.KeyHash() {
		return fmt.Errorf("200 body %q: want one cosignature by %s", r.body, w.vkey)
	}
	signed, err := api.AppendSignatures(checkpoint, r.body)
	if err != nil {
		return err
	}
	v, err := api.NewCosignatureVerifier(w.vkey)
	if err != nil {
		return err
	}
	n, err := note.Open(signed, note.VerifierList(l.verifier, v))
	if err != nil {
		return fmt.Errorf("the cosigned checkpoint does not open: %w\n%s", err, signed)
	}
	if len(n.Sigs) != 2 || n.Sigs[1].Name != v.Name() {
		return fmt.Errorf("verified signatures %+v, want the log's then the witness's", n.Sigs)
	}
	ts, err := api.CosignatureTime(n.Sigs[1])
	if err != nil {
		return err
	}
	if d := time.Since(ts); d < -time.Minute || d > time.Minute {
		return fmt.Errorf("cosignature time %v, %v from now", ts, d)
	}
	// A cosignature is over this checkpoint only.
	other, err := api.SignCheckpoint(api.Checkpoint{Origin: l.origin, Size: 1 << 40, Hash: [32]byte{1}}, l.signer)
	if err != nil {
		return err
	}
	forged, err := api.AppendSignatures(other, r.body)
	if err != nil {
		return err
	}
	if _, err := note.Open(forged, note.VerifierList(l.verifier, v)); err == nil {
		return errors.New("the cosignature verifies on another checkpoint")
	}
	return nil
}

func originPath(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return "/" + hex.EncodeToString(sum[:]) + "/checkpoint"
}

// latest returns the checkpoint the witness serves as its latest cosigned
// checkpoint of l, checking the log's and its own signatures, and false if
// it serves none (404).
func (w *testWitness) latest(t testing.TB, l *testLog) (api.Checkpoint, bool) {
	t.Helper()
	c, ok, err := w.latestErr(l)
	if err != nil {
		t.Fatal(err)
	}
	return c, ok
}

func (w *testWitness) latestErr(l *testLog) (api.Checkpoint, bool, error) {
	resp, err := http.Get(w.url + originPath(l.origin))
	if err != nil {
		return api.Checkpoint{}, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return api.Checkpoint{}, false, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return api.Checkpoint{}, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return api.Checkpoint{}, false, fmt.Errorf("GET %s = %d %q", originPath(l.origin), resp.StatusCode, b)
	}
	n, err := note.Open(b, note.VerifierList(l.verifier, w.verifier))
	if err != nil {
		return api.Checkpoint{}, false, fmt.Errorf("the served checkpoint does not open: %w\n%s", err, b)
	}
	if len(n.Sigs) != 2 {
		return api.Checkpoint{}, false, fmt.Errorf("the served checkpoint has %d verified signatures, want the log's and the witness's", len(n.Sigs))
	}
	c, err := api.ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return api.Checkpoint{}, false, err
	}
	return c, true, nil
}

func TestAddCheckpointStatusCodes(t *testing.T) {
	l := newTestLog("example.com/log")
	fresh := newTestLog("example.com/fresh")
	w := startWitness(t, t.TempDir(), newCosignerKey(t), l, fresh)
	honest := newTree(t, 300, 300, "")
	fork := newTree(t, 300, 100, "fork")

	// Nothing cosigned yet.
	if r := get(t, w.url+originPath(l.origin)); r.code != http.StatusNotFound {
		t.Fatalf("GET checkpoint before any cosignature = %v, want 404", r)
	}
	if r := get(t, w.url+originPath("example.com/unknown")); r.code != http.StatusNotFound {
		t.Fatalf("GET checkpoint of an unknown log = %v, want 404", r)
	}

	cp10 := l.checkpoint(t, honest, 10)
	checkCosigned(t, w, l, cp10, post(t, w.url, addBody(0, nil, cp10)))
	if c, ok := w.latest(t, l); !ok || c.Size != 10 || c.Hash != honest.root(t, 10) {
		t.Fatalf("served checkpoint %+v, want size 10", c)
	}

	otherKey := newTestLog(l.origin) // same name, another key
	unknown := newTestLog("example.com/unknown")
	cp150 := l.checkpoint(t, honest, 150)
	// The log's key name and ID with a signature that fails to verify.
	// Base64 character 8 encodes bits of signature byte 2 (characters 0
	// to 5 hold the key ID); the replacement stays valid base64.
	badSig := bytes.Clone(cp150)
	i := bytes.LastIndex(badSig, []byte(" ")) + 1 + 8
	if badSig[i] == 'A' {
		badSig[i] = 'B'
	} else {
		badSig[i] = 'A'
	}
	// The valid log signature with the bad one after or before it: every
	// line under the log's key must verify.
	goodThenBad := append(bytes.Clone(cp150), lastLine(badSig)...)
	badThenGood := append(bytes.Clone(badSig), lastLine(cp150)...)
	// The valid log signature twice, which verifies.
	goodTwice := append(bytes.Clone(cp150), lastLine(cp150)...)
	// A valid log signature plus an unknown key's line, which is ignored.
	withUnknown := append(bytes.Clone(cp150), lastLine(otherKey.checkpoint(t, honest, 150))...)
	tooMany := make([][]byte, 64)
	for i := range tooMany {
		tooMany[i] = make([]byte, 32)
	}
	proof10to150 := honest.proof(t, 10, 150)
	badProof := bytes.Clone(proof10to150[0])
	badProof[0] ^= 1
	cp9 := l.checkpoint(t, honest, 9)

	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"unknown origin", addBody(10, proof10to150, unknown.checkpoint(t, honest, 150)), 404},
		{"signed by another key", addBody(10, proof10to150, otherKey.checkpoint(t, honest, 150)), 403},
		{"log signature fails to verify", addBody(10, proof10to150, badSig), 403},
		{"a valid log signature followed by a bad one under the log's key", addBody(10, proof10to150, goodThenBad), 403},
		{"a bad log signature followed by a valid one", addBody(10, proof10to150, badThenGood), 403},
		{"empty body", nil, 400},
		{"no old line", []byte("\n" + string(cp150)), 400},
		{"old with a leading zero", []byte("old 010\n\n" + string(cp150)), 400},
		{"negative old", []byte("old -1\n\n" + string(cp150)), 400},
		{"no empty line", []byte("old 10\n" + string(cp150)), 400},
		{"no checkpoint", []byte("old 10\n\n"), 400},
		{"proof line not base64", []byte("old 10\nnot base64!\n\n" + string(cp150)), 400},
		{"proof hash too short", addBody(10, [][]byte{make([]byte, 31)}, cp150), 400},
		{"64 proof lines", addBody(10, tooMany, cp150), 400},
		{"not a signed note", []byte("old 10\n\nexample.com/log\n150\n"), 400},
		{"malformed checkpoint", addBody(10, nil, []byte("example.com/log\nx\nAAAA\n\n— example.com/log AAAAAAA=\n")), 400},
		{"old size above the checkpoint's", addBody(151, nil, cp150), 400},
		{"size going backwards, old is the witness's", addBody(10, nil, cp9), 400},
		{"size going backwards, old is the checkpoint's", addBody(9, nil, cp9), 409},
		{"old size 0 but the witness has 10", addBody(0, nil, cp150), 409},
		{"old size 11 but the witness has 10", addBody(11, honest.proof(t, 11, 150), cp150), 409},
		{"bad consistency proof", addBody(10, append([][]byte{badProof}, proof10to150[1:]...), cp150), 422},
		{"missing consistency proof", addBody(10, nil, cp150), 422},
		{"truncated consistency proof", addBody(10, proof10to150[:len(proof10to150)-1], cp150), 422},
		{"padded consistency proof", addBody(10, append(slices.Clone(proof10to150), make([]byte, 32)), cp150), 422},
		{"proof of the wrong sizes", addBody(10, honest.proof(t, 11, 150), cp150), 422},
		{"same size, proof not empty", addBody(10, [][]byte{make([]byte, 32)}, cp10), 422},
		{"size 0 with a non-empty root", addBody(0, nil, fresh.sign(t, api.Checkpoint{Origin: fresh.origin, Size: 0, Hash: honest.root(t, 1)})), 422},
		{"old size 0 with a proof", addBody(0, [][]byte{make([]byte, 32)}, fresh.checkpoint(t, honest, 5)), 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, w.url, tc.body)
			if r.code != tc.want {
				t.Fatalf("add-checkpoint = %v, want %d", r, tc.want)
			}
			if r.code == http.StatusConflict {
				if ct := r.hdr.Get("Content-Type"); ct != "text/x.tlog.size" {
					t.Errorf("409 Content-Type %q, want text/x.tlog.size", ct)
				}
				if string(r.body) != "10\n" {
					t.Errorf("409 body %q, want %q", r.body, "10\n")
				}
			}
			// Nothing refused changes what the witness holds.
			if c, ok := w.latest(t, l); !ok || c.Size != 10 || c.Hash != honest.root(t, 10) {
				t.Fatalf("after a refused request the witness serves %+v", c)
			}
			if _, ok := w.latest(t, fresh); ok {
				t.Fatal("after a refused request the witness serves a checkpoint of the fresh log")
			}
		})
	}
	if t.Failed() {
		return
	}

	// The unknown key's line is ignored.
	checkCosigned(t, w, l, cp150, post(t, w.url, addBody(10, proof10to150, withUnknown)))
	// The same checkpoint again is cosigned again.
	checkCosigned(t, w, l, cp150, post(t, w.url, addBody(150, nil, cp150)))
	// So is it with the log's valid signature line twice.
	checkCosigned(t, w, l, cp150, post(t, w.url, addBody(150, nil, goodTwice)))
	// The fork, which agrees with the witness up to size 100, is refused
	// at larger sizes, with the fork's own proofs.
	for _, size := range []uint64{151, 300} {
		if r := post(t, w.url, addBody(150, fork.proof(t, 150, size), l.checkpoint(t, fork, size))); r.code != http.StatusUnprocessableEntity {
			t.Errorf("fork at size %d: %v, want 422", size, r)
		}
	}
	cp300 := l.checkpoint(t, honest, 300)
	checkCosigned(t, w, l, cp300, post(t, w.url, addBody(150, honest.proof(t, 150, 300), cp300)))
	if c, ok := w.latest(t, l); !ok || c.Size != 300 || c.Hash != honest.root(t, 300) {
		t.Fatalf("served checkpoint %+v, want size 300", c)
	}

	// A log starting from the empty tree.
	cp0 := fresh.checkpoint(t, honest, 0)
	checkCosigned(t, w, fresh, cp0, post(t, w.url, addBody(0, nil, cp0)))
	cp1 := fresh.checkpoint(t, honest, 1)
	if r := post(t, w.url, addBody(0, [][]byte{make([]byte, 32)}, cp1)); r.code != http.StatusUnprocessableEntity {
		t.Errorf("proof from size 0: %v, want 422", r)
	}
	checkCosigned(t, w, fresh, cp1, post(t, w.url, addBody(0, nil, cp1)))

	// A checkpoint at the cosigned size with another root: 422, and two
	// checkpoints the log signed at one size are evidence. The witness
	// then refuses the log, even its honest checkpoints.
	if r := post(t, w.url, addBody(300, nil, l.checkpoint(t, fork, 300))); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("same size, different root: %v, want 422", r)
	}
	if r := get(t, w.url+"/v1/evidence"); !bytes.Contains(r.body, []byte(`"equivocation"`)) {
		t.Fatalf("no equivocation evidence after a fork at the cosigned size: %s", r.body)
	}
	if r := post(t, w.url, addBody(300, nil, cp300)); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("the cosigned checkpoint again, after evidence: %v, want 422", r)
	}
	if c, _ := w.latest(t, l); c.Size != 300 || c.Hash != honest.root(t, 300) {
		t.Fatalf("after evidence the witness serves %+v, want size 300", c)
	}
}

func TestHTTPLimits(t *testing.T) {
	l := newTestLog("example.com/log")
	w := startWitness(t, t.TempDir(), newCosignerKey(t), l)
	if r := post(t, w.url, bytes.Repeat([]byte("x"), 1<<20)); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB body: %v, want 413", r)
	}
	if r := get(t, w.url+"/add-checkpoint"); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET /add-checkpoint: %v, want 405", r)
	}
	if r := get(t, w.url+"/healthz"); r.code != http.StatusOK {
		t.Errorf("GET /healthz: %v", r)
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	l := newTestLog("example.com/log")
	honest := newTree(t, 50, 50, "")
	fork := newTree(t, 50, 20, "fork")
	dir, skey := t.TempDir(), newCosignerKey(t)

	w := startWitness(t, dir, skey, l)
	cp30 := l.checkpoint(t, honest, 30)
	checkCosigned(t, w, l, cp30, post(t, w.url, addBody(0, nil, cp30)))
	w.close(t)

	w = startWitness(t, dir, skey, l)
	if c, ok := w.latest(t, l); !ok || c.Size != 30 || c.Hash != honest.root(t, 30) {
		t.Fatalf("after reopening the witness serves %+v, want size 30", c)
	}
	if r := post(t, w.url, addBody(0, nil, cp30)); r.code != http.StatusConflict || string(r.body) != "30\n" {
		t.Fatalf("after reopening, old size 0: %v, want 409 30", r)
	}
	cp50 := l.checkpoint(t, honest, 50)
	checkCosigned(t, w, l, cp50, post(t, w.url, addBody(30, honest.proof(t, 30, 50), cp50)))
	if r := post(t, w.url, addBody(50, nil, l.checkpoint(t, fork, 50))); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("after reopening, a fork at the same size: %v, want 422", r)
	}
	// That was evidence, which survives reopening too.
	w.close(t)
	w = startWitness(t, dir, skey, l)
	if r := post(t, w.url, addBody(50, nil, cp50)); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("the cosigned checkpoint again, after evidence and reopening: %v, want 422", r)
	}
}

// cosigned is a checkpoint a witness cosigned, and the tree it is of.
type cosigned struct {
	size uint64
	root [api.HashSize]byte
	tree *tree
}

// checkAllConsistent checks that every two cosigned checkpoints are
// consistent: the smaller one's root is the larger one's tree's root at
// that size (the trees are the test's ground truth).
func checkAllConsistent(t testing.TB, all []cosigned) {
	t.Helper()
	for _, a := range all {
		for _, b := range all {
			if a.size <= b.size && b.tree.root(t, a.size) != a.root {
				t.Fatalf("the witness cosigned inconsistent checkpoints: size %d root %x and size %d root %x", a.size, a.root, b.size, b.root)
			}
		}
	}
}

// TestConcurrentAddCheckpoint races clients pushing an honest tree and a
// fork of it through two Witness instances sharing one pebble state, so
// that both the per-origin lock and the state's compare-and-swap are
// exercised. Each round starts with the witness at size 140, where the
// trees still agree, and releases all clients at once with checkpoints
// past the fork point at 150: exactly one tree may win. No two cosigned
// checkpoints may be inconsistent.
func TestConcurrentAddCheckpoint(t *testing.T) {
	l := newTestLog("example.com/log")
	const size, forkAt, start = 400, 150, 140
	trees := []*tree{newTree(t, size, size, ""), newTree(t, size, forkAt, "fork")}
	skey := newCosignerKey(t)
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ws := []*testWitness{serveWitness(t, state, skey, l), serveWitness(t, state, skey, l)}
		cp := l.checkpoint(t, trees[0], start)
		checkCosigned(t, ws[0], l, cp, post(t, ws[0].url, addBody(0, nil, cp)))

		var (
			mu     sync.Mutex
			all    = []cosigned{{start, trees[0].root(t, start), trees[0]}}
			wg     sync.WaitGroup
			start_ = make(chan struct{})
			errc   = make(chan error, 16)
		)
		const workers, requests = 8, 30
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start_
				if err := pushTree(l, ws[(i/2)%2], trees[i%2], trees[(i+1)%2], start, uint64(round*workers+i), requests, func(c cosigned) {
					mu.Lock()
					all = append(all, c)
					mu.Unlock()
				}); err != nil {
					errc <- err
				}
			}()
		}
		close(start_)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		checkAllConsistent(t, all)
		c, _ := ws[0].latest(t, l)
		var winner *tree
		for _, tr := range trees {
			if tr.root(t, c.Size) == c.Hash {
				winner = tr
			}
		}
		if c.Size <= forkAt || winner == nil {
			t.Fatalf("round %d: the witness ends at size %d root %x, want past the fork point on one tree", round, c.Size, c.Hash)
		}
		checkAllConsistent(t, append(all, cosigned{c.Size, c.Hash, winner}))
		t.Logf("round %d: %d checkpoints cosigned, the witness ends at size %d of tree %d", round, len(all), c.Size, slices.Index(trees, winner))
		for _, w := range ws {
			w.srv.Close()
		}
		if err := state.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// gatedState is a State whose first two Latest calls each wait for the
// other, so that two add-checkpoint requests read the same stored
// checkpoint before either swaps: the race that the compare-and-swap must
// settle.
type gatedState struct {
	witness.State
	mu      sync.Mutex
	calls   int
	arrived chan struct{} // closed by the second call
}

func (s *gatedState) Latest(ctx context.Context, origin string) ([]byte, error) {
	b, err := s.State.Latest(ctx, origin)
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	switch n {
	case 1:
		select {
		case <-s.arrived:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case 2:
		close(s.arrived)
	}
	return b, err
}

// TestAddCheckpointRace has two Witness instances on one pebble state read
// the same stored checkpoint at size 140, then race to cosign sizes 200
// of two trees that fork at 150: one must win, the other get 409 with the
// winner's size.
func TestAddCheckpointRace(t *testing.T) {
	l := newTestLog("example.com/log")
	trees := []*tree{newTree(t, 200, 200, ""), newTree(t, 200, 150, "fork")}
	pstate, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer pstate.Close()
	cp140 := l.checkpoint(t, trees[0], 140)
	skey := newCosignerKey(t)
	setup := serveWitness(t, pstate, skey, l)
	checkCosigned(t, setup, l, cp140, post(t, setup.url, addBody(0, nil, cp140)))
	setup.srv.Close()

	state := &gatedState{State: pstate, arrived: make(chan struct{})}
	var replies [2]reply
	var errs [2]error
	var cps [2][]byte
	var wg sync.WaitGroup
	for i, tr := range trees {
		w := serveWitness(t, state, skey, l)
		defer w.srv.Close()
		cps[i] = l.checkpoint(t, tr, 200)
		body := addBody(140, tr.proof(t, 140, 200), cps[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = postErr(w.url, body)
			if errs[i] == nil && replies[i].code == http.StatusOK {
				errs[i] = cosignedErr(w, l, cps[i], replies[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	won := slices.IndexFunc(replies[:], func(r reply) bool { return r.code == http.StatusOK })
	if won < 0 || replies[1-won].code != http.StatusConflict || string(replies[1-won].body) != "200\n" {
		t.Fatalf("racing requests got %v and %v, want one 200 and one 409 with size 200", replies[0], replies[1])
	}
	w := serveWitness(t, pstate, skey, l)
	defer w.srv.Close()
	if c, ok := w.latest(t, l); !ok || c.Size != 200 || c.Hash != trees[won].root(t, 200) {
		t.Fatalf("the witness holds %+v, want the winner's checkpoint", c)
	}
}

// pushTree is one client of TestConcurrentAddCheckpoint: it sends
// requests checkpoints of tr of growing random sizes to w, starting
// from old size known, learning the
// witness's size from 409 replies, and reports each cosigned one. It stops
// early once the witness provably follows other, the tree tr forks from.
func pushTree(l *testLog, w *testWitness, tr, other *tree, known, seed uint64, requests int, report func(cosigned)) error {
	rng := mathrand.New(mathrand.NewPCG(seed, 1))
	for range requests {
		n := min(known+11+rng.Uint64N(20), tr.size)
		root, err := tr.rootErr(n)
		if err != nil {
			return err
		}
		cp, err := api.SignCheckpoint(api.Checkpoint{Origin: l.origin, Size: n, Hash: root}, l.signer)
		if err != nil {
			return err
		}
		p, err := tr.proofErr(known, n)
		if err != nil {
			return err
		}
		r, err := postErr(w.url, addBody(known, p, cp))
		if err != nil {
			return err
		}
		switch r.code {
		case http.StatusOK:
			if err := cosignedErr(w, l, cp, r); err != nil {
				return err
			}
			report(cosigned{n, root, tr})
			known = n
		case http.StatusConflict:
			if known, err = api.ParseTlogSize(r.body); err != nil {
				return err
			}
		case http.StatusUnprocessableEntity:
			if bytes.Contains(r.body, []byte("holds evidence")) {
				// Both trees are signed by the log: a push at the size
				// the witness holds of the other tree proved it
				// equivocated, and the witness refuses it from then on.
				return nil
			}
			// Only right if the witness follows the other tree past the
			// point where the trees differ.
			c, ok, err := w.latestErr(l)
			if err != nil {
				return err
			}
			ours, err := tr.rootErr(min(c.Size, tr.size))
			if err != nil {
				return err
			}
			theirs, err := other.rootErr(min(c.Size, other.size))
			if err != nil {
				return err
			}
			if !ok || c.Size > tr.size || ours == c.Hash || theirs != c.Hash {
				return fmt.Errorf("size %d from %d refused with %v, but the witness holds size %d root %x", n, known, r, c.Size, c.Hash)
			}
			return nil
		default:
			return fmt.Errorf("add-checkpoint of size %d from %d: %v", n, known, r)
		}
	}
	return nil
}

func lastLine(b []byte) []byte {
	i := bytes.LastIndexByte(b[:len(b)-1], '\n')
	return b[i+1:]
}
