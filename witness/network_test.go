package witness_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// startURLWitness starts a witness on pebble state following l, whose
// tiles are at url (may be empty).
func startURLWitness(t *testing.T, dir string, l *testLog, url string) *testWitness {
	t.Helper()
	state, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: state, Evidence: state, Logger: quiet,
		Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier, URL: url}}})
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
	return tw
}

func postGossip(t *testing.T, url string, body []byte) (int, witness.GossipReply) {
	t.Helper()
	resp, err := http.Post(url+"/v1/gossip/checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r witness.GossipReply
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, r
}

func checkEvidence(t *testing.T, l *testLog, raw []byte, kind string) {
	t.Helper()
	e, err := api.ParseEvidence(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Verify(l.verifier); err != nil || e.Kind != kind {
		t.Fatalf("evidence %s: Verify = %v, want a verified %s", e.Kind, err, kind)
	}
}

// TestClientGossipEquivocation: a client posts the checkpoint it was
// served, a split view at the witness's size.
func TestClientGossipEquivocation(t *testing.T) {
	l := newTestLog("example.com/split")
	tr, fork := newTree(t, 20, 20, ""), newTree(t, 20, 10, "victim")
	dir := t.TempDir()
	w := startURLWitness(t, dir, l, "")
	cp := l.checkpoint(t, tr, 20)
	checkCosigned(t, w, l, cp, post(t, w.url, addBody(0, nil, cp)))

	// Consistent: the same checkpoint, and an older one it cannot check
	// without a URL.
	if code, r := postGossip(t, w.url, cp); code != 200 || r.Result != witness.ObservedConsistent {
		t.Fatalf("posting the cosigned checkpoint = %d %+v", code, r)
	}
	if code, r := postGossip(t, w.url, l.checkpoint(t, tr, 15)); code != 200 || r.Result != witness.ObservedUnchecked {
		t.Fatalf("posting an older checkpoint = %d %+v, want unchecked", code, r)
	}
	// Refused: not signed by the log, unknown log, too large.
	if code, _ := postGossip(t, w.url, newTestLog(l.origin).checkpoint(t, fork, 20)); code != http.StatusForbidden {
		t.Fatalf("posting a checkpoint not signed by the log = %d, want 403", code)
	}
	if code, _ := postGossip(t, w.url, newTestLog("example.com/other").checkpoint(t, fork, 20)); code != http.StatusNotFound {
		t.Fatalf("posting a checkpoint of an unknown log = %d, want 404", code)
	}
	if code, _ := postGossip(t, w.url, bytes.Repeat([]byte("a"), 65<<10)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("posting 65 KiB = %d, want 413", code)
	}
	if len(get(t, w.url+"/v1/evidence").body) == 0 {
		t.Fatal("empty /v1/evidence")
	}

	// The split view.
	split := l.checkpoint(t, fork, 20)
	code, r := postGossip(t, w.url, split)
	if code != 200 || r.Result != witness.ObservedEvidence || r.Evidence == nil {
		t.Fatalf("posting a split view = %d %+v, want evidence", code, r)
	}
	checkEvidence(t, l, r.Evidence, api.EvidenceEquivocation)
	var list witness.EvidenceList
	if err := json.Unmarshal(get(t, w.url+"/v1/evidence").body, &list); err != nil || len(list.Evidence) != 1 {
		t.Fatalf("GET /v1/evidence: %v, %d pieces", err, len(list.Evidence))
	}
	e, err := api.ParseEvidence(list.Evidence[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]byte{cp, split} {
		if e.Checkpoints[0] != string(want) && e.Checkpoints[1] != string(want) {
			t.Fatalf("the evidence does not carry the signed checkpoint verbatim:\n%s", want)
		}
	}
	// From now on, add-checkpoint is refused (422), also after a restart.
	next := l.checkpoint(t, tr, 20)
	if r := post(t, w.url, addBody(20, nil, next)); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("add-checkpoint after evidence = %v, want 422", r)
	}
	w.close(t)
	w = startURLWitness(t, dir, l, "")
	if r := post(t, w.url, addBody(20, nil, next)); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("add-checkpoint after evidence and a restart = %v, want 422", r)
	}
}

// TestClientGossipInconsistency: a client posts a smaller checkpoint of a
// fork; the witness reads the log's tiles and proves the inconsistency.
func TestClientGossipInconsistency(t *testing.T) {
	l := newTestLog("example.com/rewrite")
	const size = 700
	tr := newTree(t, size, size, "")
	fork := newTree(t, 600, 300, "rewritten")
	_, url := newTilesServer(t, l, tr, size)
	w := startURLWitness(t, t.TempDir(), l, url)
	cp := l.checkpoint(t, tr, size)
	checkCosigned(t, w, l, cp, post(t, w.url, addBody(0, nil, cp)))

	// An older checkpoint of the real tree is consistent.
	if code, r := postGossip(t, w.url, l.checkpoint(t, tr, 400)); code != 200 || r.Result != witness.ObservedConsistent {
		t.Fatalf("posting an older consistent checkpoint = %d %+v", code, r)
	}
	if len(get(t, w.url+"/v1/evidence").body) > len("{\n  \"evidence\": []\n}\n") {
		t.Fatal("evidence after a consistent checkpoint")
	}
	code, r := postGossip(t, w.url, l.checkpoint(t, fork, 600))
	if code != 200 || r.Result != witness.ObservedEvidence {
		t.Fatalf("posting a rewritten checkpoint = %d %+v, want evidence", code, r)
	}
	checkEvidence(t, l, r.Evidence, api.EvidenceInconsistency)
	// Tampering with a tile breaks the proof.
	e, _ := api.ParseEvidence(r.Evidence)
	e.Tiles[0].Hashes[0] ^= 1
	if _, err := e.Verify(l.verifier); err == nil {
		t.Fatal("evidence with a tampered tile verifies")
	}
}
