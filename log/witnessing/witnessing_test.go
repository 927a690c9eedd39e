package witnessing_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
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

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/witnessing"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

const origin = "candor.test/witnessed"

var quiet = slog.New(slog.DiscardHandler)

// waitTimeout bounds every wait for a condition.
const waitTimeout = 20 * time.Second

// logKey is the log's key, shared by the witnesses' configurations.
type logKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newLogKey() logKey {
	s, v, vkey := apitest.NewNoteKey(origin, rand.Reader)
	return logKey{s, v, vkey}
}

// The modes of a testWitness's front end.
const (
	up     = iota // the witness answers
	down          // connections are closed without a reply
	hang          // requests wait until the client gives up
	refuse        // 422 to every request
)

// testWitness is a witness behind a front end that can take it down, make
// it hang or refuse, and that counts add-checkpoint requests and how many
// are in flight at once.
type testWitness struct {
	name     string
	vkey     string
	srv      *httptest.Server
	mode     atomic.Int32
	h        atomic.Pointer[http.Handler]
	requests atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
	delay    atomic.Int64  // nanoseconds to wait before answering, when up
	quit     chan struct{} // closed at the end of the test: hanging requests end
	// lies, if set, holds sizes the front end claims, one per
	// add-checkpoint request, in 409 replies, before the witness answers.
	lies chan uint64
}

func (w *testWitness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/add-checkpoint" {
		w.requests.Add(1)
		n := w.inFlight.Add(1)
		defer w.inFlight.Add(-1)
		for {
			m := w.maxIn.Load()
			if n <= m || w.maxIn.CompareAndSwap(m, n) {
				break
			}
		}
	}
	if r.URL.Path == "/add-checkpoint" && w.lies != nil {
		select {
		case size := <-w.lies:
			rw.Header().Set("Content-Type", api.TlogSizeContentType)
			rw.WriteHeader(http.StatusConflict)
			rw.Write(api.MarshalTlogSize(size))
			return
		default:
		}
	}
	switch w.mode.Load() {
	case down:
		conn, _, err := rw.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case hang:
		// Read the body, so that the server notices when the client
		// gives up and cancels the request's context.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-w.quit:
		}
		return
	case refuse:
		http.Error(rw, "refused by the test", http.StatusUnprocessableEntity)
		return
	}
	if d := time.Duration(w.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	(*w.h.Load()).ServeHTTP(rw, r)
}

// newCandorWitness runs a witness of the witness package on pebble, over
// HTTP, following the log.
func newCandorWitness(t *testing.T, name string, lk logKey) *testWitness {
	t.Helper()
	skey, vkey, err := api.GenerateCosignerKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	w := &testWitness{name: name, vkey: vkey, quit: make(chan struct{})}
	w.reset(t, skey, lk)
	w.srv = httptest.NewServer(w)
	t.Cleanup(w.srv.Close)
	t.Cleanup(func() { close(w.quit) }) // runs first: hanging requests end
	return w
}

// reset gives the witness a new, empty state: it forgets what it cosigned.
func (w *testWitness) reset(t *testing.T, skey string, lk logKey) {
	t.Helper()
	state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	wit, err := witness.New(witness.Config{
		Cosigner: cosigner,
		Logs:     []witness.Log{{Origin: origin, Verifier: lk.verifier}},
		State:    state,
		Logger:   quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.NewHandler(wit, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w.h.Store(&h)
}

// testLog is a log on pebble with a witness policy, served over HTTP.
type testLog struct {
	t      *testing.T
	key    logKey
	policy *api.Policy
	dir    string
	wcfg   witnessing.Config
	log    *log.Log
	srv    *httptest.Server // submissions wait up to 5s for a cosigned checkpoint
	fast   *httptest.Server // the same log, submissions wait up to 300ms
	reg    *prometheus.Registry
	store  *pebble.Storage
	coll   *witnessing.Collector
	signer *apitest.BuildSigner
	n      int // entries submitted
}

// policyText is a 2-of-3 policy of the witnesses, listing the log too.
func policyText(lk logKey, ws ...*testWitness) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# test policy\nlog %s\n", lk.vkey)
	var names []string
	for _, w := range ws {
		fmt.Fprintf(&b, "witness %s %s %s\n", w.name, w.vkey, w.srv.URL)
		names = append(names, w.name)
	}
	fmt.Fprintf(&b, "group two 2 %s\nquorum two\n", strings.Join(names, " "))
	return b.String()
}

func newTestLog(t *testing.T, lk logKey, policy string, tweak func(*witnessing.Config)) *testLog {
	t.Helper()
	p, err := api.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	tl := &testLog{t: t, key: lk, policy: p, dir: t.TempDir(), signer: apitest.NewBuildSigner()}
	tl.wcfg = witnessing.Config{Policy: p, Verifier: lk.verifier, Timeout: 2 * time.Second, MaxBackoff: 200 * time.Millisecond, Logger: quiet}
	if tweak != nil {
		tweak(&tl.wcfg)
	}
	tl.open()
	return tl
}

func (tl *testLog) open() {
	t := tl.t
	t.Helper()
	store, err := pebble.Open(tl.dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tl.reg = prometheus.NewRegistry()
	cfg := tl.wcfg
	cfg.Registerer = tl.reg
	coll, err := witnessing.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := log.New(context.Background(), log.Config{
		Storage: store, Signer: tl.key.signer, Verifier: tl.key.verifier, Logger: quiet,
		Registerer: tl.reg, Witnessing: coll, MaxBatchSize: 64,
	})
	if err != nil {
		t.Fatal(err)
	}
	tl.log, tl.store, tl.coll = l, store, coll
	tl.srv = httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet, WitnessWait: 5 * time.Second}))
	tl.fast = httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet, WitnessWait: 300 * time.Millisecond}))
	t.Cleanup(tl.close)
}

func (tl *testLog) close() {
	if tl.srv == nil {
		return
	}
	tl.srv.Close()
	tl.fast.Close()
	tl.log.Close()
	tl.store.Close()
	tl.srv = nil
}

func (tl *testLog) get(path string) (int, http.Header, []byte) {
	tl.t.Helper()
	resp, err := http.Get(tl.srv.URL + path)
	if err != nil {
		tl.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tl.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// checkpoint returns the published checkpoint, after checking that it is
// the log's and satisfies the policy, and its cosigners.
func (tl *testLog) checkpoint() (api.Checkpoint, []string) {
	tl.t.Helper()
	code, _, body := tl.get("/checkpoint")
	if code != http.StatusOK {
		tl.t.Fatalf("GET /checkpoint: %d %s", code, body)
	}
	return tl.cosigned(body)
}

// cosigned checks that signed is the log's checkpoint with cosignatures
// that satisfy the policy, and returns it and its cosigners.
func (tl *testLog) cosigned(signed []byte) (api.Checkpoint, []string) {
	tl.t.Helper()
	c, n, err := api.OpenCheckpoint(signed, origin, tl.key.verifier)
	if err != nil {
		tl.t.Fatalf("a published checkpoint does not open: %v\n%s", err, signed)
	}
	if err := tl.policy.CheckCosignatures(n); err != nil {
		tl.t.Fatalf("a published checkpoint does not satisfy the policy: %v\n%s", err, signed)
	}
	if _, _, err := tl.policy.Open(signed); err != nil {
		tl.t.Fatalf("a published checkpoint does not open with the policy: %v\n%s", err, signed)
	}
	var names []string
	for _, s := range n.UnverifiedSigs {
		names = append(names, s.Name)
	}
	return c, names
}

// submitResult is a decoded reply to POST /v1/entries: 200, 201 or 202.
type submitResult struct {
	code          int
	Index         uint64 `json:"index"`
	LeafHash      []byte `json:"leafHash"`
	TreeSize      uint64 `json:"treeSize"`
	Proof         string `json:"proof"`
	Witnessed     *bool  `json:"witnessed"`
	Status        string `json:"status"`
	WitnessedSize uint64 `json:"witnessedSize"`
	ProofURL      string `json:"proofURL"`
}

// submit submits a new entry, waiting up to 5s for it to be witnessed.
func (tl *testLog) submit() submitResult {
	tl.t.Helper()
	return tl.submitTo(tl.srv)
}

// submitPending submits a new entry, waiting up to 300ms for it to be
// witnessed: for entries that will not be.
func (tl *testLog) submitPending() submitResult {
	tl.t.Helper()
	return tl.submitTo(tl.fast)
}

func (tl *testLog) submitTo(srv *httptest.Server) submitResult {
	tl.t.Helper()
	tl.n++
	digest := sha256.Sum256(fmt.Append(nil, "artifact ", tl.n, " ", tl.dir))
	sub := tl.signer.Submission(fmt.Sprint("witnessed/", tl.n), hex.EncodeToString(digest[:]))
	resp, err := http.Post(srv.URL+"/v1/entries", "application/json", bytes.NewReader(sub))
	if err != nil {
		tl.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := submitResult{code: resp.StatusCode}
	if err := json.Unmarshal(body, &r); err != nil {
		tl.t.Fatalf("POST /v1/entries: %d %s: %v", resp.StatusCode, body, err)
	}
	switch r.code {
	case http.StatusCreated, http.StatusOK:
		if r.Witnessed == nil || !*r.Witnessed {
			tl.t.Errorf("a %d reply without \"witnessed\": true: %s", r.code, body)
		}
		tl.checkBundle([]byte(r.Proof), r.LeafHash)
	case http.StatusAccepted:
		if r.Witnessed == nil || *r.Witnessed || r.Status != "sequenced" || r.Proof != "" ||
			r.ProofURL != fmt.Sprintf("/v1/proof/inclusion?index=%d", r.Index) || len(r.LeafHash) != 32 || r.WitnessedSize > r.Index {
			tl.t.Errorf("a bad 202 reply: %s", body)
		}
	default:
		tl.t.Fatalf("POST /v1/entries: %d %s", r.code, body)
	}
	return r
}

// checkBundle checks a tlog-proof bundle: a cosigned checkpoint that
// includes leafHash.
func (tl *testLog) checkBundle(b, leafHash []byte) {
	tl.t.Helper()
	p, err := api.ParseProofBundle(b)
	if err != nil {
		tl.t.Fatal(err)
	}
	if _, err := api.VerifyProofBundle(p, leafHash, origin, tl.key.verifier); err != nil {
		tl.t.Fatal(err)
	}
	tl.cosigned(p.Checkpoint)
}

// metric returns the value of a metric with the given labels.
func (tl *testLog) metric(name string, labels ...string) float64 {
	tl.t.Helper()
	mfs, err := tl.reg.Gather()
	if err != nil {
		tl.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	tl.t.Fatalf("no metric %s %v", name, labels)
	return 0
}

// waitFor polls cond until it holds, or fails the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPublished waits until the published checkpoint has size n.
func (tl *testLog) waitPublished(n uint64) (api.Checkpoint, []string) {
	tl.t.Helper()
	var c api.Checkpoint
	var names []string
	waitFor(tl.t, fmt.Sprintf("the log publishes size %d", n), func() bool {
		if code, _, _ := tl.get("/checkpoint"); code != http.StatusOK {
			return false
		}
		c, names = tl.checkpoint()
		if c.Size > n {
			tl.t.Fatalf("published size %d, beyond %d", c.Size, n)
		}
		return c.Size == n
	})
	return c, names
}

func TestPublishesOnlyCosigned(t *testing.T) {
	lk := newLogKey()
	ws := []*testWitness{newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)}
	tl := newTestLog(t, lk, policyText(lk, ws...), nil)

	// The empty tree is cosigned too, and late cosignatures are added.
	waitFor(t, "the empty tree is published with three cosignatures", func() bool {
		if code, _, _ := tl.get("/checkpoint"); code != http.StatusOK {
			return false
		}
		_, names := tl.checkpoint()
		return len(names) == 3
	})
	for range 5 {
		if r := tl.submit(); r.code != http.StatusCreated {
			t.Fatalf("submission: %d, want 201 with every witness up", r.code)
		}
	}
	c, names := tl.checkpoint()
	if c.Size != 5 || len(names) < 2 {
		t.Fatalf("published size %d with cosigners %v, want 5 and at least 2", c.Size, names)
	}
	if got := tl.metric("candor_log_witnessed_size"); got != 5 {
		t.Errorf("candor_log_witnessed_size %v, want 5", got)
	}
	for _, w := range ws {
		if got := tl.metric("candor_log_witness_requests_total", "witness", w.name, "result", "cosigned"); got < 1 {
			t.Errorf("no cosigned request counted for %s", w.name)
		}
	}
	// The proof endpoints carry cosigned checkpoints.
	code, _, body := tl.get("/v1/proof/inclusion?index=3")
	var ip api.InclusionProofResponse
	if code != http.StatusOK || json.Unmarshal(body, &ip) != nil {
		t.Fatalf("GET /v1/proof/inclusion: %d %s", code, body)
	}
	tl.cosigned([]byte(ip.Checkpoint))
	code, _, body = tl.get("/v1/proof/consistency?old=2")
	var cp api.ConsistencyProofResponse
	if code != http.StatusOK || json.Unmarshal(body, &cp) != nil {
		t.Fatalf("GET /v1/proof/consistency: %d %s", code, body)
	}
	tl.cosigned([]byte(cp.Checkpoint))
}

// TestWitnessesDown takes witnesses down one after the other: with one
// down the log still publishes, with two down it keeps accepting entries
// and says they are not witnessed, and when they come back it catches up.
func TestWitnessesDown(t *testing.T) {
	lk := newLogKey()
	w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), func(c *witnessing.Config) { c.Timeout = 300 * time.Millisecond })
	tl.waitPublished(0)
	if r := tl.submit(); r.code != http.StatusCreated {
		t.Fatalf("submission with all witnesses up: %d", r.code)
	}

	// One down (it hangs until the request times out): 2 of 3 still cosign.
	w3.mode.Store(hang)
	for range 3 {
		if r := tl.submit(); r.code != http.StatusCreated {
			t.Fatalf("submission with one witness down: %d, want 201", r.code)
		}
	}
	_, names := tl.waitPublished(4)
	for _, n := range names {
		if n == w3.name {
			t.Errorf("the hanging witness cosigned: %v", names)
		}
	}
	waitFor(t, "a timeout is counted", func() bool {
		return tl.metric("candor_log_witness_requests_total", "witness", w3.name, "result", "timeout") > 0
	})

	// Two down: entries are still sequenced and durable, not witnessed.
	w2.mode.Store(down)
	var pending []submitResult
	for range 3 {
		r := tl.submitPending()
		if r.code != http.StatusAccepted {
			t.Fatalf("submission with two witnesses down: %d, want 202", r.code)
		}
		pending = append(pending, r)
	}
	if c, _ := tl.checkpoint(); c.Size != 4 {
		t.Fatalf("published size %d with two witnesses down, want it to stay 4", c.Size)
	}
	if got := tl.metric("candor_log_witnessed_size"); got != 4 {
		t.Errorf("candor_log_witnessed_size %v, want 4", got)
	}
	if got := tl.metric("candor_log_tree_size"); got != 7 {
		t.Errorf("candor_log_tree_size %v, want 7", got)
	}
	waitFor(t, "the lag shows", func() bool { return tl.metric("candor_log_witness_lag_seconds") > 0 })
	waitFor(t, "an error is counted", func() bool {
		return tl.metric("candor_log_witness_requests_total", "witness", w2.name, "result", "error") > 0
	})
	// The proof is not there yet, the entry is.
	code, hdr, body := tl.get(pending[0].ProofURL)
	if code != http.StatusNotFound || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "not yet") {
		t.Errorf("GET %s before it is witnessed: %d %q %s, want 404 with Retry-After saying not yet", pending[0].ProofURL, code, hdr.Get("Retry-After"), body)
	}
	if code, _, body := tl.get(fmt.Sprintf("/v1/entries/%d", pending[0].Index)); code != http.StatusOK {
		t.Errorf("GET /v1/entries/%d of a sequenced entry: %d %s", pending[0].Index, code, body)
	}
	// The tiles of the committed tree are served (immutable at their paths).
	if code, _, body := tl.get("/tile/0/000.p/7"); code != http.StatusOK || len(body) != 7*32 {
		t.Errorf("GET /tile/0/000.p/7: %d, %d bytes", code, len(body))
	}
	// A duplicate of an unwitnessed entry is 202 too, with the same index.
	tl.n--
	if r := tl.submitPending(); r.code != http.StatusAccepted || r.Index != pending[2].Index {
		t.Errorf("duplicate of an unwitnessed entry: %d index %d, want 202 index %d", r.code, r.Index, pending[2].Index)
	}

	// Back up: the log catches up and publishes every entry.
	w2.mode.Store(up)
	w3.mode.Store(up)
	tl.waitPublished(7)
	for _, p := range pending {
		code, _, body := tl.get(p.ProofURL)
		var ip api.InclusionProofResponse
		if code != http.StatusOK || json.Unmarshal(body, &ip) != nil {
			t.Fatalf("GET %s once witnessed: %d %s", p.ProofURL, code, body)
		}
		c, _ := tl.cosigned([]byte(ip.Checkpoint))
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, c.Size, p.LeafHash, ip.Hashes, c.Hash[:]); err != nil {
			t.Errorf("the later inclusion proof of %d: %v", p.Index, err)
		}
	}
	if r := tl.submit(); r.code != http.StatusCreated {
		t.Errorf("submission after the witnesses came back: %d", r.code)
	}
	waitFor(t, "the lag is 0", func() bool { return tl.metric("candor_log_witness_lag_seconds") == 0 })
}

// TestWitnessReset: a witness that lost its state answers 409 with size
// 0, and the log proves the checkpoint again from there.
func TestWitnessReset(t *testing.T) {
	lk := newLogKey()
	skey, vkey, err := api.GenerateCosignerKey(rand.Reader, "w1.test/witness")
	if err != nil {
		t.Fatal(err)
	}
	w1 := &testWitness{name: "w1.test/witness", vkey: vkey, quit: make(chan struct{})}
	w1.reset(t, skey, lk)
	w1.srv = httptest.NewServer(w1)
	t.Cleanup(w1.srv.Close)
	w2, w3 := newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), nil)
	tl.waitPublished(0)
	for range 3 {
		tl.submit()
	}
	tl.waitPublished(3)
	waitFor(t, "w1 cosigned size 3", func() bool {
		return tl.metric("candor_log_witness_cosigned_size", "witness", w1.name) == 3
	})
	conflicts := tl.metric("candor_log_witness_requests_total", "witness", w1.name, "result", "conflict")

	w1.reset(t, skey, lk)
	w2.mode.Store(down) // so that w1 is needed
	if r := tl.submit(); r.code != http.StatusCreated {
		t.Fatalf("submission with w1 reset and w2 down: %d, want 201", r.code)
	}
	_, names := tl.checkpoint()
	if !strings.Contains(strings.Join(names, " "), w1.name) {
		t.Errorf("cosigners %v, want %s among them", names, w1.name)
	}
	if got := tl.metric("candor_log_witness_requests_total", "witness", w1.name, "result", "conflict"); got <= conflicts {
		t.Errorf("no 409 counted for the reset witness")
	}
}

// TestWitnessRefuses: a witness that cosigned a fork of the log refuses
// its checkpoints with 422; the log counts it, and never publishes without
// the quorum.
func TestWitnessRefuses(t *testing.T) {
	lk := newLogKey()
	w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), nil)
	tl.waitPublished(0)
	waitFor(t, "w1 cosigned size 0", func() bool {
		return tl.metric("candor_log_witness_requests_total", "witness", w1.name, "result", "cosigned") > 0
	})
	// A fork of size 2, signed with the log's key, shown to w1 only.
	var root [32]byte
	rand.Read(root[:])
	fork, err := api.SignCheckpoint(api.Checkpoint{Origin: origin, Size: 2, Hash: root}, lk.signer)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(w1.srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(api.AddCheckpointRequest{Checkpoint: fork}.Marshal()))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("showing w1 the fork: %v %v", resp, err)
	}
	resp.Body.Close()

	w2.mode.Store(down)
	for range 4 {
		if r := tl.submitPending(); r.code != http.StatusAccepted {
			t.Fatalf("submission with w1 refusing and w2 down: %d, want 202", r.code)
		}
	}
	waitFor(t, "w1's refusals are counted", func() bool {
		return tl.metric("candor_log_witness_requests_total", "witness", w1.name, "result", "refused") > 0
	})
	if c, _ := tl.checkpoint(); c.Size != 0 {
		t.Fatalf("published size %d without a quorum", c.Size)
	}

	w2.mode.Store(up)
	_, names := tl.waitPublished(4)
	for _, n := range names {
		if n == w1.name {
			t.Errorf("the refusing witness cosigned: %v", names)
		}
	}
}

// TestWitnessLiesOnce: two witnesses of three answer 409 with sizes
// beyond the log's tree (2^64-1, w2 then another), then behave, and the
// third is down, so both are needed. Each such answer is a refusal of its
// round, counted and logged at error level once per size claimed, and the
// witnesses are asked again: the log publishes, and goes on publishing,
// with their cosignatures.
func TestWitnessLiesOnce(t *testing.T) {
	lk := newLogKey()
	w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	const huge = math.MaxUint64
	w1.lies = make(chan uint64, 3)
	w1.lies <- huge
	w1.lies <- huge
	w1.lies <- huge
	w2.lies = make(chan uint64, 2)
	w2.lies <- huge
	w2.lies <- 1 << 40
	w3.mode.Store(down)
	logs := new(lockedBuffer)
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), func(c *witnessing.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	tl.waitPublished(0)
	for i := range 3 {
		if r := tl.submit(); r.code != http.StatusCreated {
			t.Fatalf("submission %d after the lies: %d, want 201", i, r.code)
		}
	}
	_, names := tl.waitPublished(3)
	if got := strings.Join(names, " "); !strings.Contains(got, w1.name) || !strings.Contains(got, w2.name) {
		t.Errorf("cosigners %v, want %s and %s", names, w1.name, w2.name)
	}
	for _, w := range []*testWitness{w1, w2} {
		if n := len(w.lies); n != 0 {
			t.Errorf("%s: %d lies not told", w.name, n)
		}
	}
	for _, c := range []struct {
		w             *testWitness
		refused, logs int
	}{{w1, 3, 1}, {w2, 2, 2}} {
		if got := tl.metric("candor_log_witness_requests_total", "witness", c.w.name, "result", "refused"); got != float64(c.refused) {
			t.Errorf("%s: %v refusals counted, want %d", c.w.name, got, c.refused)
		}
		n := 0
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, "larger than the log's tree") && strings.Contains(line, "witness="+c.w.name) {
				n++
			}
		}
		if n != c.logs {
			t.Errorf("%s: %d error lines about its sizes, want %d:\n%s", c.w.name, n, c.logs, logs)
		}
	}
	if got := tl.metric("candor_log_witness_cosigned_size", "witness", w1.name); got != 3 {
		t.Errorf("w1's cosigned size %v, want 3", got)
	}
}

// TestWitnessAheadOfSharedTree: for a front end of a shared tree
// (Config.SharedTree), a witness that cosigned a larger tree than the
// front end committed is another front end's witness, not a liar: the
// round is refused and counted as for any log, logged at info, not error,
// and the witness cosigns once asked again.
func TestWitnessAheadOfSharedTree(t *testing.T) {
	lk := newLogKey()
	w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	w1.lies = make(chan uint64, 1)
	w1.lies <- 1 << 40
	w3.mode.Store(down)
	logs := new(lockedBuffer)
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), func(c *witnessing.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.SharedTree = true
	})
	tl.waitPublished(0)
	if r := tl.submit(); r.code != http.StatusCreated {
		t.Fatalf("submission: %d, want 201", r.code)
	}
	tl.waitPublished(1)
	if got := tl.metric("candor_log_witness_requests_total", "witness", w1.name, "result", "refused"); got != 1 {
		t.Errorf("%v refusals counted, want 1", got)
	}
	if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "level=INFO msg=\"a witness cosigned a larger tree than this front end has yet") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestAdopted: a front end of a shared tree that published another front
// end's cosigned checkpoint (Adopted) asks the witnesses about no tree up
// to that size, is not lagging for it, and asks them again for a larger
// one.
func TestAdopted(t *testing.T) {
	lk := newLogKey()
	w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), func(c *witnessing.Config) { c.SharedTree = true })
	tl.waitPublished(0)
	requests := func() float64 {
		n := 0.0
		for _, w := range []*testWitness{w1, w2, w3} {
			for _, r := range []string{"cosigned", "conflict", "refused", "invalid", "timeout", "error"} {
				n += tl.metric("candor_log_witness_requests_total", "witness", w.name, "result", r)
			}
		}
		return n
	}
	// Let the round of size 0 end (the third witness's answer too).
	time.Sleep(200 * time.Millisecond)
	before := requests()
	tl.coll.Adopted(3)
	for range 3 {
		if r := tl.submitPending(); r.code != http.StatusAccepted {
			t.Fatalf("submission: %d, want 202 (no checkpoint of it is cosigned)", r.code)
		}
	}
	if got := requests(); got != before {
		t.Errorf("%v requests to the witnesses for trees another front end had cosigned", got-before)
	}
	if err := tl.coll.Ready(); err != nil {
		t.Errorf("lagging for trees another front end had cosigned: %v", err)
	}
	if r := tl.submit(); r.code != http.StatusCreated {
		t.Fatalf("a submission beyond: %d, want 201", r.code)
	}
	if c, _ := tl.checkpoint(); c.Size != 4 {
		t.Errorf("published size %d, want 4", c.Size)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes, for logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestWitnessRedirectNotFollowed: the policy's URL of a witness answers
// add-checkpoint with a redirect (307, which would keep the method and
// the body) to the witness itself, which would cosign. The Collector does
// not follow it, with its default client and with the caller's, which is
// left as it was: the witness is never reached, the reply counts as an
// error and is logged as a redirect not followed, and the log publishes
// only once another witness makes the quorum.
func TestWitnessRedirectNotFollowed(t *testing.T) {
	for _, own := range []bool{false, true} {
		lk := newLogKey()
		w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
		redirect := httptest.NewServer(http.RedirectHandler(w2.srv.URL+"/add-checkpoint", http.StatusTemporaryRedirect))
		t.Cleanup(redirect.Close)
		policy := strings.Replace(policyText(lk, w1, w2, w3), w2.srv.URL, redirect.URL, 1)
		w1.mode.Store(down)
		client := &http.Client{Timeout: time.Minute}
		logs := new(lockedBuffer)
		tl := newTestLog(t, lk, policy, func(c *witnessing.Config) {
			c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			if own {
				c.Client = client
			}
		})
		if r := tl.submitPending(); r.code != http.StatusAccepted {
			t.Fatalf("own client %v: submission with w1 down and w2 redirected: %d, want 202", own, r.code)
		}
		waitFor(t, "the redirect is counted as an error", func() bool {
			return tl.metric("candor_log_witness_requests_total", "witness", w2.name, "result", "error") > 0
		})
		if n := w2.requests.Load(); n != 0 {
			t.Fatalf("own client %v: the witness behind the redirect got %d requests", own, n)
		}
		if code, _, _ := tl.get("/checkpoint"); code == http.StatusOK {
			if c, _ := tl.checkpoint(); c.Size != 0 {
				t.Fatalf("own client %v: published size %d without a quorum", own, c.Size)
			}
		}
		for _, want := range []string{"307 Temporary Redirect", "redirects are not followed"} {
			if !strings.Contains(logs.String(), want) {
				t.Fatalf("own client %v: the logs do not say %q:\n%s", own, want, logs)
			}
		}
		if client.CheckRedirect != nil || client.Timeout != time.Minute {
			t.Fatal("witnessing.New changed the caller's client")
		}

		w1.mode.Store(up)
		_, names := tl.waitPublished(1)
		for _, n := range names {
			if n == w2.name {
				t.Errorf("own client %v: the redirected witness cosigned: %v", own, names)
			}
		}
		if n := w2.requests.Load(); n != 0 {
			t.Fatalf("own client %v: the witness behind the redirect got %d requests", own, n)
		}
	}
}

// TestMinimalWitness: witnesses written from c2sp.org/tlog-witness alone,
// which share no code with Candor's, are enough for the quorum.
func TestMinimalWitness(t *testing.T) {
	lk := newLogKey()
	w1 := newCandorWitness(t, "w1.test/witness", lk)
	m2, m3 := newMinimalWitness(t, "m2.test/witness", lk), newMinimalWitness(t, "m3.test/witness", lk)
	w1.mode.Store(down)
	tl := newTestLog(t, lk, policyText(lk, w1, m2, m3), nil)
	tl.waitPublished(0)
	for range 3 {
		if r := tl.submit(); r.code != http.StatusCreated {
			t.Fatalf("submission: %d, want 201", r.code)
		}
	}
	_, names := tl.waitPublished(3)
	if len(names) != 2 {
		t.Errorf("cosigners %v, want the two minimal witnesses", names)
	}
	if m2.requests.Load() == 0 || m2.maxIn.Load() > 1 {
		t.Errorf("m2: %d requests, %d at once", m2.requests.Load(), m2.maxIn.Load())
	}
}

// newMinimalWitness runs a tlog-witness made from the specifications only:
// crypto/ed25519, the cosignature/v1 message and the RFC 6962 consistency
// proof, an in-memory state. Its replies carry a cosignature by an
// unknown key first, which the log must ignore.
func newMinimalWitness(t *testing.T, name string, lk logKey) *testWitness {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, strangerPriv, _ := ed25519.GenerateKey(rand.Reader)
	keyID := func(name string, pub ed25519.PublicKey) []byte {
		h := sha256.Sum256(append(append([]byte(name+"\n"), 0x04), pub...))
		return h[:4]
	}
	vkey := fmt.Sprintf("%s+%x+%s", name, keyID(name, pub), base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))
	cosign := func(name string, priv ed25519.PrivateKey, body string) string {
		ts := uint64(time.Now().Unix())
		sig := ed25519.Sign(priv, fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, body))
		raw := append(keyID(name, priv.Public().(ed25519.PublicKey)), binary.BigEndian.AppendUint64(nil, ts)...)
		return "— " + name + " " + base64.StdEncoding.EncodeToString(append(raw, sig...)) + "\n"
	}
	var mu sync.Mutex
	var size uint64
	var root []byte
	var h http.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/add-checkpoint" {
			http.NotFound(rw, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		head, signed, ok := strings.Cut(string(body), "\n\n")
		if !ok {
			http.Error(rw, "malformed", http.StatusBadRequest)
			return
		}
		lines := strings.Split(head, "\n")
		old, err := strconv.ParseUint(strings.TrimPrefix(lines[0], "old "), 10, 64)
		if err != nil {
			http.Error(rw, "malformed", http.StatusBadRequest)
			return
		}
		var hashes [][]byte
		for _, l := range lines[1:] {
			b, err := base64.StdEncoding.DecodeString(l)
			if err != nil {
				http.Error(rw, "malformed", http.StatusBadRequest)
				return
			}
			hashes = append(hashes, b)
		}
		n, err := note.Open([]byte(signed), note.VerifierList(lk.verifier))
		if err != nil {
			http.Error(rw, "not signed", http.StatusForbidden)
			return
		}
		f := strings.Split(n.Text, "\n")
		if len(f) < 3 || f[0] != origin {
			http.Error(rw, "unknown log", http.StatusNotFound)
			return
		}
		newSize, err1 := strconv.ParseUint(f[1], 10, 64)
		newRoot, err2 := base64.StdEncoding.DecodeString(f[2])
		if err1 != nil || err2 != nil || old > newSize {
			http.Error(rw, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if old != size {
			rw.Header().Set("Content-Type", "text/x.tlog.size")
			rw.WriteHeader(http.StatusConflict)
			fmt.Fprintf(rw, "%d\n", size)
			return
		}
		if old == 0 && len(hashes) > 0 {
			http.Error(rw, "proof from 0", http.StatusUnprocessableEntity)
			return
		}
		if old > 0 {
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, newSize, hashes, root, newRoot); err != nil {
				http.Error(rw, "inconsistent", http.StatusUnprocessableEntity)
				return
			}
		}
		size, root = newSize, newRoot
		io.WriteString(rw, cosign("stranger.test/witness", strangerPriv, n.Text)+cosign(name, priv, n.Text))
	})
	w := &testWitness{name: name, vkey: vkey, quit: make(chan struct{})}
	w.h.Store(&h)
	w.srv = httptest.NewServer(w)
	t.Cleanup(w.srv.Close)
	return w
}

// TestCoalesces: with slow witnesses and a log that commits many small
// batches, each witness gets one request at a time, and fewer requests
// than commits: checkpoints are coalesced, never queued.
func TestCoalesces(t *testing.T) {
	lk := newLogKey()
	var ws []*testWitness
	for _, n := range []string{"w1.test/witness", "w2.test/witness", "w3.test/witness"} {
		w := newCandorWitness(t, n, lk)
		w.delay.Store(int64(200 * time.Millisecond))
		ws = append(ws, w)
	}
	tl := newTestLog(t, lk, policyText(lk, ws...), nil)
	tl.waitPublished(0)
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digest := sha256.Sum256(fmt.Append(nil, "coalesced ", i))
			sub := tl.signer.Submission(fmt.Sprint("coalesced/", i), hex.EncodeToString(digest[:]))
			resp, err := http.Post(tl.srv.URL+"/v1/entries", "application/json", bytes.NewReader(sub))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
		time.Sleep(2 * time.Millisecond) // spread the entries over many commits
	}
	wg.Wait()
	tl.waitPublished(n)
	commits := tl.metric("candor_log_batch_entries")
	for _, w := range ws {
		if w.maxIn.Load() > 1 {
			t.Errorf("%s had %d requests in flight at once", w.name, w.maxIn.Load())
		}
		if got := float64(w.requests.Load()); got >= commits {
			t.Errorf("%s got %v requests for %v commits", w.name, got, commits)
		}
	}
	t.Logf("%v commits; requests: %d %d %d", commits, ws[0].requests.Load(), ws[1].requests.Load(), ws[2].requests.Load())
}

// TestRestart: a restarted log publishes its saved cosigned checkpoint
// while the witnesses are down; without the saved one it has none to
// publish and says so.
func TestRestart(t *testing.T) {
	lk := newLogKey()
	w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	state := t.TempDir() + "/witnessed-checkpoint"
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), func(c *witnessing.Config) { c.StateFile = state })
	tl.waitPublished(0)
	for range 3 {
		tl.submit()
	}
	tl.waitPublished(3)
	tl.close()
	for _, w := range []*testWitness{w1, w2, w3} {
		w.mode.Store(down)
	}
	tl.open()
	tl.waitPublished(3)
	if r := tl.submitPending(); r.code != http.StatusAccepted {
		t.Errorf("submission with every witness down: %d, want 202", r.code)
	}
	tl.close()

	tl.wcfg.StateFile = ""
	tl.open()
	code, hdr, body := tl.get("/checkpoint")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("GET /checkpoint with nothing cosigned: %d %s, want 503 with Retry-After", code, body)
	}
	w1.mode.Store(up)
	w3.mode.Store(up)
	tl.waitPublished(4)
}

// TestNewChecksPolicy: policies a log can't satisfy are refused.
func TestNewChecksPolicy(t *testing.T) {
	lk := newLogKey()
	other := newLogKey()
	_, wkey, _ := api.GenerateCosignerKey(rand.Reader, "w.test/witness")
	_, wkey2, _ := api.GenerateCosignerKey(rand.Reader, "w2.test/witness")
	for _, policy := range []string{
		"witness w " + wkey + " http://127.0.0.1:1\nquorum none\n",
		"log " + other.vkey + "\nwitness w " + wkey + " http://127.0.0.1:1\nquorum w\n",
		"witness w " + wkey + "\nquorum w\n",
		"witness w " + wkey + " http://127.0.0.1:1\nwitness v " + wkey2 + "\ngroup g all w v\nquorum g\n",
	} {
		p, err := api.ParsePolicy([]byte(policy))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := witnessing.New(witnessing.Config{Policy: p, Verifier: lk.verifier}); err == nil {
			t.Errorf("New accepted the policy\n%s", policy)
		}
	}
	p, err := api.ParsePolicy([]byte("witness w " + wkey + " http://127.0.0.1:1\nwitness v " + wkey2 + "\ngroup g any w v\nquorum g\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := witnessing.New(witnessing.Config{Policy: p, Verifier: lk.verifier, Registerer: reg}); err != nil {
		t.Errorf("New: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "candor_log_witness_requests_total" {
			series = len(mf.GetMetric())
		}
	}
	if series != 6 {
		t.Errorf("candor_log_witness_requests_total: %d series, want 6 for the one witness with a URL", series)
	}
}
