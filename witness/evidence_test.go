package witness_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// evidenceWitness is a Witness on pebble state, served over HTTP, with
// its metrics and what it announces.
type evidenceWitness struct {
	w     *witness.Witness
	url   string
	reg   *prometheus.Registry
	ann   *announcer
	state *pebble.WitnessState
	close func()
}

func openEvidenceWitness(t *testing.T, dir string, logger *slog.Logger, logs ...witness.Log) *evidenceWitness {
	t.Helper()
	state, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: state, Evidence: state, Logger: logger, Logs: logs, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ann := &announcer{}
	w.SetAnnouncer(ann)
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	var once sync.Once
	ew := &evidenceWitness{w: w, url: srv.URL, reg: reg, ann: ann, state: state, close: func() {
		once.Do(func() {
			srv.Close()
			if err := state.Close(); err != nil {
				t.Error(err)
			}
		})
	}}
	t.Cleanup(ew.close)
	return ew
}

// served returns the evidence served at GET /v1/evidence.
func (ew *evidenceWitness) served(t *testing.T) [][]byte {
	t.Helper()
	r := get(t, ew.url+"/v1/evidence")
	var list witness.EvidenceList
	if err := json.Unmarshal(r.body, &list); r.code != 200 || err != nil {
		t.Fatalf("GET /v1/evidence = %v: %v", r, err)
	}
	out := make([][]byte, len(list.Evidence))
	for i, e := range list.Evidence {
		out[i] = e
	}
	return out
}

// stored returns how many pieces of evidence the store holds.
func (ew *evidenceWitness) stored(t *testing.T) int {
	t.Helper()
	origins, _, err := ew.state.ListEvidence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(origins)
}

// metric returns the value of the counter name with the given labels.
func (ew *evidenceWitness) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := ew.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, lp := range m.GetLabel() {
				got = append(got, lp.GetName(), lp.GetValue())
			}
			if slices.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

type announcer struct {
	mu       sync.Mutex
	evidence [][]byte
}

func (a *announcer) AnnounceCheckpoint(string, []byte, bool) {}

func (a *announcer) AnnounceEvidence(_ string, e []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evidence = append(a.evidence, bytes.Clone(e))
}

func (a *announcer) announced() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.evidence)
}

func (l *testLog) witnessLog() witness.Log {
	return witness.Log{Origin: l.origin, Verifier: l.verifier}
}

// equivocation returns canonical evidence that l signed two trees of
// size.
func (l *testLog) equivocation(t *testing.T, size uint64) api.Evidence {
	t.Helper()
	root := func(view string) [api.HashSize]byte { return sha256.Sum256(fmt.Appendf(nil, "%s %d", view, size)) }
	e := api.NewEquivocation(l.origin, l.sign(t, api.Checkpoint{Origin: l.origin, Size: size, Hash: root("a")}),
		l.sign(t, api.Checkpoint{Origin: l.origin, Size: size, Hash: root("b")}))
	if _, err := e.VerifyCanonical(l.verifier); err != nil {
		t.Fatal(err)
	}
	return e
}

// inconsistency returns canonical evidence that l signed a tree of 600
// leaves and another of size 10 that is not its prefix.
func (l *testLog) inconsistency(t *testing.T) (api.Evidence, *tree) {
	t.Helper()
	tr := newTree(t, 600, 600, "")
	small := l.sign(t, api.Checkpoint{Origin: l.origin, Size: 10, Hash: sha256.Sum256([]byte("rewritten"))})
	e := api.NewInconsistency(l.origin, small, l.checkpoint(t, tr, 600),
		[]api.EvidenceTile{tr.tile(t, 0, 0, 256), tr.tile(t, 0, 2, 88), tr.tile(t, 1, 0, 2)})
	if _, err := e.VerifyCanonical(l.verifier); err != nil {
		t.Fatal(err)
	}
	return e, tr
}

func (tr *tree) tile(t *testing.T, l int, n int64, w int) api.EvidenceTile {
	data, err := tlog.ReadTileData(tlog.Tile{H: api.TileHeight, L: l, N: n, W: w}, tr)
	if err != nil {
		t.Fatal(err)
	}
	return api.EvidenceTile{Level: l, Index: uint64(n), Width: w, Hashes: data}
}

// variant returns the i-th variant of canonical evidence e that a hostile
// peer can make: checkpoints swapped, a witness's cosignature and junk
// signature lines added, signatures re-encoded, a tile too many and tiles
// out of order, in every combination. Variant 0 is e; variants from 32 on
// carry random junk lines, so that 150 variants are 150 byte strings.
func variant(t *testing.T, e api.Evidence, i int, cosigner note.Signer, tr *tree) []byte {
	t.Helper()
	v := e
	if i%2 == 1 {
		v.Checkpoints[0], v.Checkpoints[1] = v.Checkpoints[1], v.Checkpoints[0]
	}
	for j := range v.Checkpoints {
		cp := []byte(v.Checkpoints[j])
		if i/2%2 == 1 {
			cp = apitest.AddSignatures(cp, cosigner)
		}
		junk := i / 4 % 4
		if i >= 32 {
			junk++
		}
		cp = apitest.AddJunkSignatures(cp, junk, rand.Reader)
		if i/16%2 == 1 {
			cp = apitest.ReencodeSignatures(cp)
		}
		v.Checkpoints[j] = string(cp)
	}
	if len(e.Tiles) > 0 {
		v.Tiles = slices.Clone(e.Tiles)
		if i/32%2 == 1 {
			v.Tiles = append(v.Tiles, tr.tile(t, 0, 1, 256))
		}
		if i/64%2 == 1 {
			slices.Reverse(v.Tiles)
		}
	}
	b, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEvidenceVariantsStoredOnce: a hostile peer gossips 150 variants of
// one piece of evidence; the witness stores, announces and serves one,
// canonical.
func TestEvidenceVariantsStoredOnce(t *testing.T) {
	l := newTestLog("example.com/log")
	cosigner, _, _ := apitest.NewNoteKey("witness.example/peer", rand.Reader)
	eq := l.equivocation(t, 20)
	inc, tr := l.inconsistency(t)
	for _, e := range []api.Evidence{eq, inc} {
		t.Run(e.Kind, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			ew := openEvidenceWitness(t, dir, quiet, l.witnessLog())
			want, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			distinct := map[string]bool{}
			added := 0
			for i := 149; i >= 0; i-- { // the canonical form last
				b := variant(t, e, i, cosigner, tr)
				distinct[string(b)] = true
				ok, err := ew.w.AddEvidence(ctx, b)
				if err != nil {
					t.Fatalf("AddEvidence(variant %d) = %v", i, err)
				}
				if ok {
					added++
				}
			}
			if len(distinct) != 150 {
				t.Fatalf("%d distinct variants, want 150", len(distinct))
			}
			if added != 1 {
				t.Errorf("AddEvidence reported %d variants as new, want 1", added)
			}
			if got := ew.w.Evidence()[l.origin]; len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Fatalf("the witness holds %d pieces of evidence:\n%s\nwant the canonical one:\n%s", len(got), got, want)
			}
			if got := ew.served(t); len(got) != 1 || !sameJSON(t, got[0], want) {
				t.Fatalf("served %d pieces of evidence, want the canonical one", len(got))
			}
			if n := ew.stored(t); n != 1 {
				t.Errorf("%d pieces of evidence stored, want 1", n)
			}
			if n := ew.ann.announced(); n != 1 || !bytes.Equal(ew.ann.evidence[0], want) {
				t.Errorf("%d pieces of evidence announced, want the canonical one", n)
			}
			if n := ew.metric(t, "candor_witness_evidence_total", "kind", e.Kind, "origin", l.origin); n != 1 {
				t.Errorf("candor_witness_evidence_total = %v, want 1", n)
			}
			ew.close()
			ew = openEvidenceWitness(t, dir, quiet, l.witnessLog())
			if got := ew.w.Evidence()[l.origin]; len(got) != 1 || !bytes.Equal(got[0], want) {
				t.Fatalf("after a restart, the witness holds %d pieces of evidence, want the canonical one", len(got))
			}
		})
	}
}

// TestEvidenceCap: of more pieces of evidence against a log than
// MaxEvidencePerLog, the witness stores, announces and serves the first
// ones, and counts the rest.
func TestEvidenceCap(t *testing.T) {
	ctx := context.Background()
	l, other := newTestLog("example.com/log"), newTestLog("example.com/other")
	dir := t.TempDir()
	ew := openEvidenceWitness(t, dir, quiet, l.witnessLog(), other.witnessLog())
	const pieces = 8 + 4
	for size := uint64(1); size <= pieces; size++ {
		b, err := l.equivocation(t, size).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		ok, err := ew.w.AddEvidence(ctx, b)
		if err != nil || ok != (size <= 8) {
			t.Fatalf("AddEvidence(piece %d) = %v, %v", size, ok, err)
		}
	}
	// A piece past the cap, again and in another form, is counted again.
	b := variant(t, l.equivocation(t, pieces), 3, other.signer, nil)
	if ok, err := ew.w.AddEvidence(ctx, b); ok || err != nil {
		t.Fatalf("AddEvidence(a variant of a piece past the cap) = %v, %v", ok, err)
	}
	// The cap is per log.
	b, err := other.equivocation(t, 1).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ew.w.AddEvidence(ctx, b); !ok || err != nil {
		t.Fatalf("AddEvidence(a piece against another log) = %v, %v", ok, err)
	}

	check := func(dropped float64) {
		t.Helper()
		var sizes []uint64
		for _, b := range ew.served(t) {
			e, err := api.ParseEvidence(b)
			if err != nil {
				t.Fatal(err)
			}
			if e.Origin == l.origin {
				cps, err := e.VerifyCanonical(l.verifier)
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, cps[0].Size)
			}
		}
		slices.Sort(sizes)
		if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(sizes, want) {
			t.Errorf("served the evidence of sizes %v, want %v", sizes, want)
		}
		if n := ew.stored(t); n != 8+1 {
			t.Errorf("%d pieces of evidence stored, want %d", n, 8+1)
		}
		if n := ew.metric(t, "candor_witness_evidence_dropped_total", "origin", l.origin); n != dropped {
			t.Errorf("candor_witness_evidence_dropped_total = %v, want %v", n, dropped)
		}
	}
	check(5)
	if n := ew.ann.announced(); n != 8+1 {
		t.Errorf("%d pieces of evidence announced, want %d", n, 8+1)
	}
	ew.close()
	ew = openEvidenceWitness(t, dir, quiet, l.witnessLog(), other.witnessLog())
	check(0)
}

// TestEvidenceLoadedCanonical: a store that an older witness filled with
// variants of evidence is served canonical and once per piece, at most
// MaxEvidencePerLog pieces per log. The store is left as it is.
func TestEvidenceLoadedCanonical(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// many: 150 variants of one piece. capped: 10 pieces, 3 variants
	// each. gone: a log the witness no longer follows. rotated: a log
	// whose key changed since.
	many, capped, gone, rotated := newTestLog("example.com/many"), newTestLog("example.com/capped"), newTestLog("example.com/gone"), newTestLog("example.com/rotated")
	cosigner, _, _ := apitest.NewNoteKey("witness.example/peer", rand.Reader)
	state, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	put := func(l *testLog, id string, b []byte) {
		if err := state.AddEvidence(ctx, l.origin, id, b); err != nil {
			t.Fatal(err)
		}
	}
	manyEv := many.equivocation(t, 5)
	for i := range 150 {
		put(many, fmt.Sprintf("old-%03d", i), variant(t, manyEv, i+1, cosigner, nil))
	}
	for size := uint64(1); size <= 10; size++ {
		e := capped.equivocation(t, size)
		for i := range 3 {
			put(capped, fmt.Sprintf("old-%02d-%d", size, i), variant(t, e, 1+i*17, cosigner, nil))
		}
	}
	goneEv, rotatedEv := gone.equivocation(t, 7), rotated.equivocation(t, 7)
	for i := range 5 {
		put(gone, fmt.Sprintf("old-%d", i), variant(t, goneEv, i+1, cosigner, nil))
		put(rotated, fmt.Sprintf("old-%d", i), variant(t, rotatedEv, i+1, cosigner, nil))
	}
	if err := state.Close(); err != nil {
		t.Fatal(err)
	}
	const stored = 150 + 30 + 5 + 5

	newKey := newTestLog(rotated.origin)
	ew := openEvidenceWitness(t, dir, quiet, many.witnessLog(), capped.witnessLog(), newKey.witnessLog())
	byOrigin := map[string][]api.Evidence{}
	for _, b := range ew.served(t) {
		e, err := api.ParseEvidence(b)
		if err != nil {
			t.Fatal(err)
		}
		byOrigin[e.Origin] = append(byOrigin[e.Origin], e)
	}
	if got := byOrigin[many.origin]; len(got) != 1 || !equalEvidence(t, got[0], manyEv) {
		t.Errorf("served %d pieces of evidence against %s, want the one canonical piece", len(got), many.origin)
	}
	var sizes []uint64
	for _, e := range byOrigin[capped.origin] {
		cps, err := e.VerifyCanonical(capped.verifier)
		if err != nil {
			t.Fatalf("served evidence against %s: %v", capped.origin, err)
		}
		sizes = append(sizes, cps[0].Size)
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(sizes, want) {
		t.Errorf("served the evidence against %s of sizes %v, want %v (the first ones stored)", capped.origin, sizes, want)
	}
	if n := ew.metric(t, "candor_witness_evidence_dropped_total", "origin", capped.origin); n != 2 {
		t.Errorf("candor_witness_evidence_dropped_total = %v, want 2", n)
	}
	// Evidence that cannot be verified is held as stored, once.
	for _, tc := range []struct {
		l  *testLog
		ev api.Evidence
	}{{gone, goneEv}, {rotated, rotatedEv}} {
		if got := byOrigin[tc.l.origin]; len(got) != 1 || got[0].ID() != tc.ev.ID() {
			t.Errorf("served %d pieces of evidence against %s, want 1", len(got), tc.l.origin)
		}
	}
	if r := post(t, ew.url, addBody(0, nil, newKey.sign(t, api.Checkpoint{Origin: newKey.origin, Size: 1, Hash: sha256.Sum256(nil)}))); r.code != 422 {
		t.Errorf("add-checkpoint of a log with evidence stored against its old key = %v, want 422", r)
	}
	// The canonical form of stored evidence is not new.
	b, err := manyEv.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ew.w.AddEvidence(ctx, b); ok || err != nil {
		t.Errorf("AddEvidence(stored evidence in canonical form) = %v, %v; want not new", ok, err)
	}
	if n := ew.stored(t); n != stored {
		t.Errorf("the store holds %d pieces of evidence, want the %d stored before", n, stored)
	}
}

// sameJSON reports whether a and b are the same JSON, but for spaces.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var ca, cb bytes.Buffer
	if err := json.Compact(&ca, a); err != nil {
		t.Fatal(err)
	}
	if err := json.Compact(&cb, b); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

func equalEvidence(t *testing.T, a, b api.Evidence) bool {
	t.Helper()
	ab, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bb, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ab, bb)
}

// TestEvidenceLogLines: the log lines of a refused fork and of the
// evidence it makes carry sizes and roots, never a signed note.
func TestEvidenceLogLines(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	l := newTestLog("example.com/log")
	ew := openEvidenceWitness(t, t.TempDir(), slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), l.witnessLog())
	a := api.Checkpoint{Origin: l.origin, Size: 20, Hash: sha256.Sum256([]byte("a"))}
	b := api.Checkpoint{Origin: l.origin, Size: 20, Hash: sha256.Sum256([]byte("b"))}
	if _, err := ew.w.AddCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: l.sign(t, a)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ew.w.AddCheckpoint(ctx, api.AddCheckpointRequest{OldSize: 20, Checkpoint: l.sign(t, b)}); err == nil {
		t.Fatal("the witness cosigned a fork of its checkpoint")
	}
	if len(ew.served(t)) != 1 {
		t.Fatal("no evidence of the fork")
	}
	out := logs.String()
	for _, want := range []string{"refused a checkpoint not consistent", "EVIDENCE THAT THE LOG MISBEHAVED",
		`"root":"` + hex.EncodeToString(b.Hash[:]), `"root0":"`, `"root1":"`, hex.EncodeToString(a.Hash[:])} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("the logs do not carry %q:\n%s", want, out)
		}
	}
	for _, c := range []api.Checkpoint{a, b} {
		for _, notWant := range []string{"—", `\u2014`, base64.StdEncoding.EncodeToString(c.Hash[:])} {
			if bytes.Contains([]byte(out), []byte(notWant)) {
				t.Errorf("the logs carry %q, part of a signed note:\n%s", notWant, out)
			}
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
