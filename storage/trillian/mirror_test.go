package trillian_test

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
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tpb "github.com/google/trillian"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

const testOrigin = "example.com/candor-on-trillian"

// frontEnd is a candor-log front end on a Trillian tree: a log mirroring
// the tree in a directory of its own, its Mirror and its HTTP API.
type frontEnd struct {
	t      testing.TB
	dir    string
	store  *pebble.Storage
	log    *log.Log
	mirror *trillian.Mirror
	pub    *trillian.Publisher
	reg    *prometheus.Registry
	srv    *httptest.Server
	cancel context.CancelFunc
	ran    chan error
}

type trillianTree struct {
	env      *trilliantest.Env
	client   tpb.TrillianLogClient
	treeID   int64
	signer   note.Signer
	verifier note.Verifier
	// admissionKey is the front ends' (trillian.AdmissionKey of the
	// log's key).
	admissionKey []byte
}

func newTrillianTree(t testing.TB) *trillianTree {
	return newTrillianTreeWith(t, trilliantest.Options{SequencerInterval: 20 * time.Millisecond})
}

// newTrillianTreeWith starts Trillian with the signer's options o and
// creates a tree.
func newTrillianTreeWith(t testing.TB, o trilliantest.Options) *trillianTree {
	t.Helper()
	env := trilliantest.Start(t, o)
	conn, err := trillian.Dial(trillian.Options{Address: env.Addr, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tree, err := trillian.CreateTree(context.Background(), conn, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &trillianTree{env: env, client: tpb.NewTrillianLogClient(conn), treeID: tree.TreeId, signer: signer, verifier: verifier, admissionKey: trillian.AdmissionKey(skey)}
}

// start starts a front end with its mirror in dir, publishing through
// the tree's checkpoint record.
func (tt *trillianTree) start(t testing.TB, dir string) (*frontEnd, error) {
	return tt.startWith(t, dir, tt.treeID, tt.treeID)
}

// startWith starts a front end of tree treeID that publishes through the
// checkpoint record of tree recordTree.
func (tt *trillianTree) startWith(t testing.TB, dir string, treeID, recordTree int64) (*frontEnd, error) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	rec, err := trillian.OpenRecord(ctx, tt.env.DSN, recordTree, quiet)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	pub, err := trillian.NewPublisher(trillian.PublisherConfig{Record: rec, Verifier: tt.verifier, PollInterval: 100 * time.Millisecond, Logger: quiet, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	store, err := pebble.Open(filepath.Join(dir, "db"), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := log.New(ctx, log.Config{Storage: store, Signer: tt.signer, Verifier: tt.verifier, Logger: quiet, Witnessing: pub})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	m, err := trillian.NewMirror(ctx, trillian.MirrorConfig{Log: l, Client: tt.client, TreeID: treeID, Logger: quiet, AddWait: 20 * time.Second, Publisher: pub, AdmissionKey: tt.admissionKey, Registerer: reg})
	if err != nil {
		l.Close()
		store.Close()
		pub.Close()
		return nil, err
	}
	fe := &frontEnd{t: t, dir: dir, store: store, log: l, mirror: m, pub: pub, reg: reg, ran: make(chan error, 1)}
	runCtx, cancel := context.WithCancel(ctx)
	fe.cancel = cancel
	go func() { fe.ran <- m.Run(runCtx) }()
	// All clients are on loopback: no limit per client.
	fe.srv = httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet, Adder: m, WitnessWait: 5 * time.Second, MaxInFlightPerClient: 4096}))
	t.Cleanup(fe.stop)
	return fe, nil
}

// startTwo starts two front ends of the tree, each in a new directory.
func (tt *trillianTree) startTwo(t testing.TB) (a, b *frontEnd) {
	t.Helper()
	var fes [2]*frontEnd
	for i := range fes {
		fe, err := tt.start(t, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fes[i] = fe
	}
	return fes[0], fes[1]
}

func (fe *frontEnd) stop() {
	if fe.cancel == nil {
		return
	}
	fe.srv.Close()
	fe.cancel()
	<-fe.ran
	fe.log.Close()
	fe.store.Close()
	fe.pub.Close()
	fe.cancel = nil
}

// submit posts an entry and returns the status and reply.
func (fe *frontEnd) submit(body []byte) (int, api.AddEntryResponse, string) {
	code, r, msg, err := fe.post(body)
	if err != nil {
		fe.t.Fatal(err)
	}
	return code, r, msg
}

// post submits body and returns the status, the reply (for a success) and
// its body; an error for no reply or a success that does not parse. Safe
// from any goroutine.
func (fe *frontEnd) post(body []byte) (int, api.AddEntryResponse, string, error) {
	resp, err := http.Post(fe.srv.URL+"/v1/entries", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, api.AddEntryResponse{}, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r api.AddEntryResponse
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(b, &r); err != nil {
			return resp.StatusCode, r, string(b), fmt.Errorf("reply %q: %w", b, err)
		}
	}
	return resp.StatusCode, r, string(b), nil
}

// checkpoint returns the front end's published checkpoint, verified.
func (fe *frontEnd) checkpoint(tt *trillianTree) api.Checkpoint {
	cp, _ := fe.log.Checkpoint()
	c, _, err := api.OpenCheckpoint(cp, testOrigin, tt.verifier)
	if err != nil {
		fe.t.Fatal(err)
	}
	return c
}

// TestMirror runs two front ends on one Trillian tree (a real log server
// and signer on MariaDB): entries submitted to either, concurrently, get
// proofs from the log's checkpoints; both mirror the one tree, whose root
// is Trillian's; a duplicate gets the first entry's index; a front end
// restarted goes on from its mirror, and one whose mirror was deleted
// rebuilds it.
func TestMirror(t *testing.T) {
	tt := newTrillianTree(t)
	a, b := tt.startTwo(t)
	s := apitest.NewBuildSigner()
	const n = 60
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = s.Submission(fmt.Sprintf("artifact-%d", i), fmt.Sprintf("%064x", i))
	}
	var wg sync.WaitGroup
	replies := make([]api.AddEntryResponse, n)
	for i := range bodies {
		fe := []*frontEnd{a, b}[i%2]
		wg.Go(func() {
			code, r, msg := fe.submit(bodies[i])
			if code != http.StatusCreated {
				t.Errorf("submission %d: %d %s", i, code, msg)
				return
			}
			replies[i] = r
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	seen := map[uint64]bool{}
	for i, r := range replies {
		entry, _, err := api.AdmitEntry(bodies[i])
		if err != nil {
			t.Fatal(err)
		}
		p, err := api.ParseProofBundle([]byte(r.Proof))
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if _, err := api.VerifyProofBundle(p, rfc6962.DefaultHasher.HashLeaf(entry), testOrigin, tt.verifier); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if seen[r.Index] || r.Index >= n {
			t.Fatalf("reply %d: index %d", i, r.Index)
		}
		seen[r.Index] = true
	}
	// Both mirrors reach Trillian's tree, and its root.
	root := waitMirrors(t, tt, n, a, b)
	// Each took the other's entries by their admission tags, without
	// checking their signatures again.
	for _, fe := range []*frontEnd{a, b} {
		c := fe.counters(t, "candor_log_trillian_mirrored_entries_total")
		own, tagged, full := c["admitted"], c["tagged"], c["full"]
		if own+tagged != n || tagged == 0 || full != 0 {
			t.Errorf("a front end mirrored %v entries it admitted, %v by their tags and %v checked in full; want the %d entries by the first two, some by tags", own, tagged, full, n)
		}
	}
	// A duplicate, sent to the other front end: the first entry's index.
	code, r, msg := b.submit(bodies[0])
	if code != http.StatusOK || r.Index != replies[0].Index {
		t.Fatalf("duplicate: %d %s, index %d; want 200 and index %d", code, msg, r.Index, replies[0].Index)
	}
	// Restarted, a front end goes on from its mirror; one whose mirror
	// is gone rebuilds it from Trillian.
	a.stop()
	b.stop()
	var err error
	if a, err = tt.start(t, a.dir); err != nil {
		t.Fatal(err)
	}
	if b, err = tt.start(t, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if code, r, msg := a.submit(s.Submission("after-restart", fmt.Sprintf("%064x", n))); code != http.StatusCreated || r.Index != n {
		t.Fatalf("after restart: %d %s, index %d; want 201 and index %d", code, msg, r.Index, n)
	}
	if got := waitMirrors(t, tt, n+1, a, b); got.TreeSize != n+1 || root.TreeSize != n {
		t.Fatalf("roots %d, %d", root.TreeSize, got.TreeSize)
	}
}

// waitMirrors waits until the front ends mirror Trillian's tree of at
// least size entries, checks that their checkpoints are its root, and
// returns it.
func waitMirrors(t *testing.T, tt *trillianTree, size uint64, fes ...*frontEnd) trillianRoot {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		root, err := trillian.LatestRoot(ctx, tt.client, tt.treeID)
		if err != nil {
			t.Fatal(err)
		}
		done := root.TreeSize >= size
		for _, fe := range fes {
			if cp, _ := fe.log.Checkpoint(); cp == nil {
				// Nothing published yet: a front end started on a new
				// mirror publishes once it reaches the shared record's
				// checkpoint.
				done = false
			} else if c := fe.checkpoint(tt); c.Size != root.TreeSize {
				done = false
			} else if !bytes.Equal(c.Hash[:], root.RootHash) {
				t.Fatalf("front end %s: root %x at size %d, Trillian's %x", fe.dir, c.Hash, c.Size, root.RootHash)
			}
		}
		if done {
			return trillianRoot{TreeSize: root.TreeSize, RootHash: root.RootHash}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the front ends did not mirror Trillian's tree of %d entries", root.TreeSize)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counters returns the front end's counters of the given name, by the
// value of their one label.
func (fe *frontEnd) counters(t testing.TB, name string) map[string]float64 {
	t.Helper()
	families, err := fe.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				c[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	if len(c) == 0 {
		t.Fatalf("no counter %s", name)
	}
	return c
}

// TestMirrorForgedTag: an entry whose signature does not verify, put in
// the tree with an admission tag under another key than the log's front
// ends', stops the mirror before it, as an entry without a tag does.
func TestMirrorForgedTag(t *testing.T) {
	tt, fe, s := startWithOneEntry(t)
	entry, _, err := api.AdmitEntry(s.Submission("second", strings.Repeat("02", 32)))
	if err != nil {
		t.Fatal(err)
	}
	// Another signature: the entry reads as one (api.StoredEntryTerms
	// takes it), but does not verify.
	i := bytes.Index(entry, []byte(`"sig":"`)) + len(`"sig":"`)
	forged := bytes.Clone(entry)
	forged[i] = map[bool]byte{true: 'B', false: 'A'}[forged[i] == 'A']
	if _, err := api.StoredEntryTerms(forged); err != nil {
		t.Fatalf("the forged entry does not even read as one: %v", err)
	}
	if _, err := api.ParseEntry(forged); err == nil {
		t.Fatal("the forged entry verifies")
	}
	h := rfc6962.DefaultHasher.HashLeaf(forged)
	queueStopping(t, tt, fe, &tpb.LogLeaf{
		LeafValue: forged, LeafIdentityHash: h, ExtraData: trillian.AdmissionTag(trillian.AdmissionKey("PRIVATE+KEY+another+log"), h),
	}, "signature")
}

// startWithOneEntry starts a tree and a front end of it, which takes an
// entry of the signer it returns.
func startWithOneEntry(t *testing.T) (*trillianTree, *frontEnd, *apitest.BuildSigner) {
	t.Helper()
	tt := newTrillianTree(t)
	fe, err := tt.start(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := apitest.NewBuildSigner()
	if code, _, msg := fe.submit(s.Submission("first", strings.Repeat("01", 32))); code != http.StatusCreated {
		t.Fatalf("%d %s", code, msg)
	}
	return tt, fe, s
}

// queueStopping queues leaf in the tree of startWithOneEntry, behind its
// one entry, and checks that the front end's mirror stops there, saying
// why (the error holds each of reasons), and publishes nothing past it.
func queueStopping(t *testing.T, tt *trillianTree, fe *frontEnd, leaf *tpb.LogLeaf, reasons ...string) {
	t.Helper()
	if _, err := tt.client.QueueLeaf(context.Background(), &tpb.QueueLeafRequest{LogId: tt.treeID, Leaf: leaf}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fe.ran:
		fe.ran <- err // for stop
		if err == nil || !strings.Contains(err.Error(), "entry 1 of Trillian's tree") {
			t.Fatalf("the mirror stopped with %v", err)
		}
		for _, r := range reasons {
			if !strings.Contains(err.Error(), r) {
				t.Fatalf("the mirror stopped with %v, which does not say %q", err, r)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the mirror went on past the entry")
	}
	if c := fe.checkpoint(tt); c.Size != 1 {
		t.Errorf("the log published size %d", c.Size)
	}
}

type trillianRoot struct {
	TreeSize uint64
	RootHash []byte
}

// TestMirrorForeignEntry: an entry put in the tree by something other than
// the log stops the mirror before it, and submissions get 503 saying why.
func TestMirrorForeignEntry(t *testing.T) {
	tt, fe, s := startWithOneEntry(t)
	junk := []byte("not a candor entry")
	queueStopping(t, tt, fe, &tpb.LogLeaf{LeafValue: junk, LeafIdentityHash: rfc6962.DefaultHasher.HashLeaf(junk)})
	code, _, msg := fe.submit(s.Submission("second", strings.Repeat("02", 32)))
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "stopped following") {
		t.Errorf("a submission after the mirror stopped: %d %s", code, msg)
	}
	resp, err := http.Get(fe.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "not one the log takes") {
		t.Errorf("/readyz after the mirror stopped: %d %s", resp.StatusCode, b)
	}
}
