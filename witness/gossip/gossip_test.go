package gossip_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
	"github.com/candorlog/candor/witness/gossip"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type testLog struct {
	origin   string
	signer   note.Signer
	verifier note.Verifier
}

func newTestLog(origin string) *testLog {
	s, v, _ := apitest.NewNoteKey(origin, rand.Reader)
	return &testLog{origin: origin, signer: s, verifier: v}
}

// sign signs a checkpoint of the log at size whose root is derived from
// view: a Byzantine log signs whatever it likes.
func (l *testLog) sign(t testing.TB, size uint64, view string) []byte {
	t.Helper()
	b, err := api.SignCheckpoint(api.Checkpoint{Origin: l.origin, Size: size, Hash: sha256.Sum256([]byte(view))}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *testLog) signRoot(t testing.TB, size uint64, root tlog.Hash) []byte {
	t.Helper()
	b, err := api.SignCheckpoint(api.Checkpoint{Origin: l.origin, Size: size, Hash: root}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tree is an in-memory RFC 6962 tree of n leaves, built with tlog.
type tree []tlog.Hash

func newTree(t testing.TB, n int) tree {
	var tr tree
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), fmt.Appendf(nil, "leaf %d", i), tr)
		if err != nil {
			t.Fatal(err)
		}
		tr = append(tr, hs...)
	}
	return tr
}

func (tr tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(tr)) {
			return nil, fmt.Errorf("hash %d not stored", x)
		}
		out[i] = tr[x]
	}
	return out, nil
}

func (tr tree) root(t testing.TB, n int64) tlog.Hash {
	h, err := tlog.TreeHash(n, tr)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (tr tree) proof(t testing.TB, old, n int64) [][]byte {
	p, err := tlog.ProveTree(n, old, tr)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// forgeLine replaces the signature line of from in signed by one naming
// to, with key ID id and from's signature bytes.
func forgeLine(t testing.TB, signed []byte, from, to string, id uint32) []byte {
	t.Helper()
	prefix := []byte("— " + from + " ")
	i := bytes.Index(signed, prefix)
	if i < 0 {
		t.Fatalf("no line by %s", from)
	}
	end := i + bytes.IndexByte(signed[i:], '\n')
	raw, err := base64.StdEncoding.DecodeString(string(signed[i+len(prefix) : end]))
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(raw, id)
	line := "— " + to + " " + base64.StdEncoding.EncodeToString(raw)
	return append(append(bytes.Clone(signed[:i]), line...), signed[end:]...)
}

// cosign appends s's cosignature to the signed checkpoint.
func cosign(t testing.TB, signed []byte, s note.Signer) []byte {
	t.Helper()
	text, err := api.CheckpointBody(signed)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := api.NoteSignature(s, text)
	if err != nil {
		t.Fatal(err)
	}
	out, err := api.AppendSignatures(signed, api.MarshalCosignatureLines([]note.Signature{sig}))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// node is a witness on pebble state, served over HTTP, with a gossip node.
type node struct {
	name     string
	w        *witness.Witness
	g        *gossip.Node
	url      string
	verifier *api.CosignatureVerifier
	reg      *prometheus.Registry
	stop     func()
}

type cosignerKey struct {
	skey     string
	verifier *api.CosignatureVerifier
}

func newCosignerKeys(t testing.TB, n int, prefix string) []cosignerKey {
	keys := make([]cosignerKey, n)
	for i := range keys {
		skey, vkey, err := api.GenerateCosignerKey(rand.Reader, fmt.Sprintf("%s%02d.example", prefix, i))
		if err != nil {
			t.Fatal(err)
		}
		v, err := api.NewCosignatureVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = cosignerKey{skey, v}
	}
	return keys
}

// fast tunes memberlist for a cluster on loopback.
func fast(c *memberlist.Config) {
	l := memberlist.DefaultLocalConfig()
	c.TCPTimeout = l.TCPTimeout
	c.IndirectChecks = l.IndirectChecks
	c.RetransmitMult = l.RetransmitMult
	c.SuspicionMult = l.SuspicionMult
	c.ProbeTimeout = l.ProbeTimeout
	c.ProbeInterval = l.ProbeInterval
	c.GossipToTheDeadTime = l.GossipToTheDeadTime
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
}

// startNode starts a witness with key k, trusting peers, following logs,
// gossiping on a free loopback port and joining join.
func startNode(t testing.TB, k cosignerKey, peers []cosignerKey, logs []*testLog, join []string, secret []byte) *node {
	t.Helper()
	return startNodeAt(t, t.TempDir(), k, peers, logs, gossip.Config{Listen: "127.0.0.1:0", Join: join, SecretKey: secret})
}

// startNodeAt is startNode with its state in dir and the gossip
// configuration gc (Logger, Registerer and Tune are set here). The node
// stops with the test, or when its stop function is called.
func startNodeAt(t testing.TB, dir string, k cosignerKey, peers []cosignerKey, logs []*testLog, gc gossip.Config) *node {
	t.Helper()
	state, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(k.skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wl []witness.Log
	for _, l := range logs {
		wl = append(wl, witness.Log{Origin: l.origin, Verifier: l.verifier})
	}
	var pv []note.Verifier
	for _, p := range peers {
		if p.verifier.Name() != cosigner.Name() {
			pv = append(pv, p.verifier)
		}
	}
	reg := prometheus.NewRegistry()
	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: wl, State: state, Evidence: state, Peers: pv, Logger: quiet, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	gc.Logger, gc.Registerer, gc.Tune = quiet, reg, fast
	if gc.PacketRate == 0 {
		// fast gossips ten times as often as memberlist's defaults, and
		// the nodes of most tests share the source address 127.0.0.1.
		gc.PacketRate, gc.StreamRate = 10*gossip.DefaultPacketRate, 10*gossip.DefaultStreamRate
	}
	g, err := gossip.Start(w, gc)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := g.Close(100 * time.Millisecond); err != nil {
				t.Logf("closing the gossip node: %v", err)
			}
			srv.Close()
			if err := state.Close(); err != nil {
				t.Errorf("closing the state: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &node{name: cosigner.Name(), w: w, g: g, url: srv.URL, verifier: cosigner.Verifier(), reg: reg, stop: stop}
}

// startCluster starts n witnesses that trust each other and waits until
// each knows all n.
func startCluster(t testing.TB, n int, logs []*testLog, secret []byte) ([]*node, []cosignerKey) {
	t.Helper()
	keys := newCosignerKeys(t, n, "w")
	nodes := make([]*node, n)
	var join []string
	for i := range nodes {
		nodes[i] = startNode(t, keys[i], keys, logs, join, secret)
		if i == 0 {
			join = []string{nodes[0].g.Addr()}
		}
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d members", n), func() bool {
		for _, nd := range nodes {
			if nd.g.Members() != n {
				return false
			}
		}
		return true
	})
	return nodes, keys
}

// waitFor polls cond every 10ms until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("still no %s after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func addCheckpoint(t testing.TB, url string, old uint64, signed []byte) (int, []byte) {
	t.Helper()
	return addCheckpointProof(t, url, old, nil, signed)
}

func addCheckpointProof(t testing.TB, url string, old uint64, proof [][]byte, signed []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(api.AddCheckpointRequest{OldSize: old, Proof: proof, Checkpoint: signed}.Marshal()))
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

// evidence returns the evidence a witness serves at GET /v1/evidence.
func evidence(t testing.TB, url string) []api.Evidence {
	t.Helper()
	resp, err := http.Get(url + "/v1/evidence")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list witness.EvidenceList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/evidence = %d, %v", resp.StatusCode, err)
	}
	var out []api.Evidence
	for _, raw := range list.Evidence {
		e, err := api.ParseEvidence(raw)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// served returns the checkpoint a witness serves on its monitoring path.
func served(t testing.TB, url, origin string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(origin))
	resp, err := http.Get(url + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET checkpoint = %d %q", resp.StatusCode, b)
	}
	return b
}

func TestSplitView5(t *testing.T)  { testSplitView(t, 5) }
func TestSplitView50(t *testing.T) { testSplitView(t, 50) }

// testSplitView has a Byzantine log show view A to half of n witnesses
// and view B to the others: every witness must hold the same verified
// evidence, soon, and refuse to cosign for the log from then on.
func testSplitView(t *testing.T, n int) {
	if n > 5 && (testing.Short() || raceEnabled) {
		t.Skip("50 nodes: not in -short or with -race")
	}
	l := newTestLog("example.com/byzantine")
	nodes, keys := startCluster(t, n, []*testLog{l}, nil)
	a, b := l.sign(t, 1000, "view A"), l.sign(t, 1000, "view B")
	start := time.Now()
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i, nd := range nodes {
		cp := a
		if i >= n/2 {
			cp = b
		}
		wg.Go(func() { codes[i], _ = addCheckpoint(t, nd.url, 0, cp) })
	}
	wg.Wait()
	for i, c := range codes {
		// 422 if the other view reached the witness first.
		if c != http.StatusOK && c != http.StatusUnprocessableEntity {
			t.Fatalf("witness %d: add-checkpoint = %d", i, c)
		}
	}
	elapsed := waitFor(t, 20*time.Second, "evidence at every witness", func() bool {
		for _, nd := range nodes {
			if len(nd.w.Evidence()[l.origin]) == 0 {
				return false
			}
		}
		return true
	})
	elapsed = max(elapsed, time.Since(start))
	t.Logf("%d witnesses: every one holds evidence %v after the split view", n, elapsed)
	if elapsed > 3*time.Second {
		t.Logf("WARNING: slower than the 3 s requirement (a loaded machine?)")
	}
	want := api.NewEquivocation(l.origin, a, b)
	for i, nd := range nodes {
		evs := evidence(t, nd.url)
		if len(evs) != 1 || evs[0].ID() != want.ID() {
			t.Fatalf("witness %d serves %d pieces of evidence, want exactly the equivocation of A and B", i, len(evs))
		}
		if _, err := evs[0].Verify(l.verifier); err != nil {
			t.Fatalf("witness %d: evidence does not verify: %v", i, err)
		}
		// From now on the witness refuses to cosign for the log, even
		// the view it cosigned, and a larger checkpoint.
		for _, cp := range [][]byte{a, l.sign(t, 2000, "view A")} {
			if code, body := addCheckpoint(t, nd.url, 0, cp); code != http.StatusUnprocessableEntity {
				t.Fatalf("witness %d: add-checkpoint after evidence = %d %q, want 422", i, code, body)
			}
		}
	}

	if n > 5 {
		return
	}
	// A witness that joins later gets the evidence in the push/pull
	// state sync.
	late := startNode(t, newCosignerKeys(t, 1, "late")[0], keys, []*testLog{l}, []string{nodes[0].g.Addr()}, nil)
	d := waitFor(t, 20*time.Second, "evidence at the late witness", func() bool { return len(late.w.Evidence()[l.origin]) == 1 })
	t.Logf("a late witness got the evidence after %v", d)
	if code, _ := addCheckpoint(t, late.url, 0, a); code != http.StatusUnprocessableEntity {
		t.Fatalf("late witness: add-checkpoint = %d, want 422", code)
	}
}

// TestMergeCosignatures pushes one checkpoint to every witness: each must
// end up serving it with the cosignatures of all of them.
func TestMergeCosignatures(t *testing.T) {
	const n = 5
	l := newTestLog("example.com/honest")
	nodes, keys := startCluster(t, n, []*testLog{l}, []byte("0123456789abcdef"))
	verifiers := []note.Verifier{l.verifier}
	for _, k := range keys {
		verifiers = append(verifiers, k.verifier)
	}
	cp := l.sign(t, 7, "honest")
	for i, nd := range nodes {
		if code, body := addCheckpoint(t, nd.url, 0, cp); code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint = %d %q", i, code, body)
		}
	}
	d := waitFor(t, 20*time.Second, "every cosignature at every witness", func() bool {
		for _, nd := range nodes {
			got, err := note.Open(served(t, nd.url, l.origin), note.VerifierList(verifiers...))
			if err != nil {
				t.Fatalf("served checkpoint: %v", err)
			}
			if len(got.Sigs) != n+1 || got.Sigs[1].Name != nd.name {
				return false
			}
		}
		return true
	})
	t.Logf("every witness serves %d cosignatures after %v", n, d)
	for i, nd := range nodes {
		if evs := evidence(t, nd.url); len(evs) != 0 {
			t.Fatalf("witness %d holds evidence after consistent gossip", i)
		}
	}
}

// gossipCount returns candor_witness_gossip_messages_total{type, result}.
func gossipCount(t testing.TB, reg *prometheus.Registry, typ, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "candor_witness_gossip_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["type"] == typ && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// rogue is a plain memberlist member with its own witness key, which the
// honest witnesses do not trust.
type rogue struct{ ml *memberlist.Memberlist }

type nopDelegate struct{}

func (nopDelegate) NodeMeta(int) []byte                 { return nil }
func (nopDelegate) NotifyMsg([]byte)                    {}
func (nopDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (nopDelegate) LocalState(bool) []byte              { return nil }
func (nopDelegate) MergeRemoteState(buf []byte, _ bool) {}

// sendAll sends msg over TCP to every other member.
func (r *rogue) sendAll(t testing.TB, msg []byte) {
	t.Helper()
	for _, m := range r.ml.Members() {
		if m.Name == r.ml.LocalNode().Name {
			continue
		}
		if err := r.ml.SendReliable(m, msg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestForgedGossip has a member that is not a trusted witness, and
// replays, try to raise false alarms or change the witnesses' state.
func TestForgedGossip(t *testing.T) {
	const n = 3
	l := newTestLog("example.com/log")
	other := newTestLog("example.com/unknown")
	nodes, _ := startCluster(t, n, []*testLog{l}, nil)

	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "rogue", "127.0.0.1", 0
	mc.Delegate, mc.LogOutput = nopDelegate{}, io.Discard
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer ml.Shutdown()
	if _, err := ml.Join([]string{nodes[0].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	r := &rogue{ml}
	waitFor(t, 20*time.Second, "the rogue member known", func() bool { return ml.NumMembers() == n+1 })

	// The honest history: sizes 5 then 10, cosigned by every witness.
	tr := newTree(t, 10)
	old, cur := l.signRoot(t, 5, tr.root(t, 5)), l.signRoot(t, 10, tr.root(t, 10))
	var oldCosigned []byte
	for i, nd := range nodes {
		code, body := addCheckpoint(t, nd.url, 0, old)
		if code != http.StatusOK {
			t.Fatalf("add-checkpoint = %d %q", code, body)
		}
		if i == 0 {
			if oldCosigned, err = api.AppendSignatures(old, body); err != nil {
				t.Fatal(err)
			}
		}
		if code, body := addCheckpointProof(t, nd.url, 5, tr.proof(t, 5, 10), cur); code != http.StatusOK {
			t.Fatalf("add-checkpoint = %d %q", code, body)
		}
	}
	rogueKey := newCosignerKeys(t, 1, "rogue")[0]
	rogueCosigner, err := api.NewCosigner(rogueKey.skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A fork at the witnesses' size, signed by the log, vouched for only
	// by the untrusted member: untrusted.
	fork := cosign(t, l.sign(t, 10, "b"), rogueCosigner)
	// The same with a forged cosignature line of a trusted witness (its
	// name and key ID, the rogue's signature bytes): untrusted.
	forgedLine := forgeLine(t, fork, rogueCosigner.Name(), nodes[1].name, nodes[1].verifier.KeyHash())
	// A checkpoint with a signature by a key that is not the log's, under
	// the log's name, cosigned by a trusted key it cannot have: invalid.
	impostor := newTestLog(l.origin)
	fakeLog := cosign(t, impostor.sign(t, 10, "b"), rogueCosigner)
	// A log the witnesses do not follow: unknown.
	unknown := cosign(t, other.sign(t, 10, "b"), rogueCosigner)
	// Evidence that does not verify: the "fork" signed by the impostor.
	fakeEvidence, err := api.NewEquivocation(l.origin, cur, impostor.sign(t, 10, "b")).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the honest gossip settled: every witness serves every
	// cosignature.
	waitFor(t, 20*time.Second, "every cosignature at every witness", func() bool {
		for _, nd := range nodes {
			if bytes.Count(served(t, nd.url, l.origin), []byte("\n— ")) != n+1 {
				return false
			}
		}
		return true
	})
	before := make([][]byte, n)
	for i, nd := range nodes {
		before[i] = served(t, nd.url, l.origin)
	}
	for _, m := range [][]byte{fork, forgedLine, fakeLog, unknown, oldCosigned} {
		r.sendAll(t, append([]byte{'c'}, m...))
	}
	r.sendAll(t, append([]byte{'e'}, fakeEvidence...))
	r.sendAll(t, []byte{'x', 1, 2, 3})
	waitFor(t, 20*time.Second, "every forged message handled", func() bool {
		for _, nd := range nodes {
			if gossipCount(t, nd.reg, "checkpoint", "untrusted") < 2 ||
				gossipCount(t, nd.reg, "checkpoint", "invalid") < 1 ||
				gossipCount(t, nd.reg, "checkpoint", "unknown_log") < 1 ||
				gossipCount(t, nd.reg, "evidence", "invalid") < 1 ||
				gossipCount(t, nd.reg, "unknown", "invalid") < 1 {
				return false
			}
		}
		return true
	})
	// The replay of the old, honestly cosigned checkpoint is accepted as
	// gossip (it is consistent) but changes nothing.
	for i, nd := range nodes {
		if evs := evidence(t, nd.url); len(evs) != 0 {
			t.Fatalf("witness %d holds evidence after forged gossip: %+v", i, evs)
		}
		if got := served(t, nd.url, l.origin); !bytes.Equal(got, before[i]) {
			t.Fatalf("witness %d serves\n%s\nafter forged gossip, before\n%s", i, got, before[i])
		}
		if code, body := addCheckpoint(t, nd.url, 10, cur); code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint after forged gossip = %d %q", i, code, body)
		}
	}
}
