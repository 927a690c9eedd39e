package log_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// captured is a log.Witnessing that hands the test the log's side of the
// seam and runs until the log closes.
type captured struct {
	got     chan log.WitnessedLog
	stopped chan struct{}
}

func (c *captured) Run(ctx context.Context, l log.WitnessedLog) {
	defer close(c.stopped)
	c.got <- l
	<-ctx.Done()
}

// TestWitnessingSeam checks what the engine does with a Witnessing: it
// publishes nothing by itself, tells of each commit, and publishes only
// its own checkpoints of the committed tree, never going back.
func TestWitnessingSeam(t *testing.T) {
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	signer, verifier := testKeys()
	wit := &captured{got: make(chan log.WitnessedLog, 1), stopped: make(chan struct{})}
	reg := prometheus.NewRegistry()
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet, Registerer: reg, Witnessing: wit})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wl := <-wit.got
	ctx := context.Background()

	if cp, size := l.Checkpoint(); cp != nil || size != 0 || !l.Witnessed() {
		t.Fatalf("before any publication: Checkpoint() = %q, %d; Witnessed() = %v", cp, size, l.Witnessed())
	}
	cp0, size0, newer := wl.Committed()
	if size0 != 0 || cp0 == nil {
		t.Fatalf("Committed() = %q, %d, want the empty tree", cp0, size0)
	}
	// Three commits of one entry each, and their checkpoints.
	var cps [][]byte
	for i, e := range makeEntries("seam", 3) {
		r, err := l.Add(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if r.Index != uint64(i) || r.Size != uint64(i+1) {
			t.Fatalf("receipt %+v", r)
		}
		if _, _, err := api.OpenCheckpoint(r.Checkpoint, testOrigin, verifier); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, r.Checkpoint)
	}
	select {
	case <-newer:
	default:
		t.Fatal("the channel of Committed() is not closed after a commit")
	}
	if cp, size, _ := wl.Committed(); size != 3 || !bytes.Equal(cp, cps[2]) {
		t.Fatalf("Committed() = size %d, want 3", size)
	}
	if cp, size := l.Checkpoint(); cp != nil || size != 0 {
		t.Fatalf("the log published size %d by itself", size)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := l.WaitWitnessed(wctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitWitnessed before publication: %v", err)
	}
	// Data is served up to the committed tree, proofs only to the published one.
	if _, err := l.Entry(ctx, 2); err != nil {
		t.Errorf("Entry(2) of the committed tree: %v", err)
	}
	if _, err := l.InclusionProof(ctx, 0, 3); !errors.Is(err, log.ErrOutOfRange) {
		t.Errorf("InclusionProof at the unpublished size 3: %v", err)
	}
	if _, err := l.LookupLeaf(ctx, hasher.HashLeaf(makeEntries("seam", 3)[1])); !errors.Is(err, log.ErrNotWitnessed) {
		t.Errorf("LookupLeaf of an unwitnessed entry: %v, want ErrNotWitnessed", err)
	}

	// What Publish refuses.
	var root [32]byte
	rand.Read(root[:])
	fork, err := api.SignCheckpoint(api.Checkpoint{Origin: testOrigin, Size: 2, Hash: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	beyond, err := api.SignCheckpoint(api.Checkpoint{Origin: testOrigin, Size: 4, Hash: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := note.NewSigner(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := api.SignCheckpoint(api.Checkpoint{Origin: testOrigin, Size: 1, Hash: root}, otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	for name, signed := range map[string][]byte{"a fork": fork, "a size beyond the tree": beyond, "another key's": foreign, "garbage": []byte("x\n")} {
		if err := wl.Publish(ctx, signed); err == nil {
			t.Errorf("Publish accepted %s checkpoint", name)
		}
	}
	if cp, _ := l.Checkpoint(); cp != nil {
		t.Fatal("a refused checkpoint was published")
	}

	// Sizes 2 then 3 are published, then 1 is refused; 3 again (with a
	// cosignature line appended) replaces 3.
	if err := wl.Publish(ctx, cps[1]); err != nil {
		t.Fatalf("Publish(size 2): %v", err)
	}
	if cp, size, err := l.WaitWitnessed(ctx, 1); err != nil || size != 2 || !bytes.Equal(cp, cps[1]) {
		t.Fatalf("WaitWitnessed(1) = size %d, %v", size, err)
	}
	if err := wl.Publish(ctx, cps[2]); err != nil {
		t.Fatalf("Publish(size 3): %v", err)
	}
	if err := wl.Publish(ctx, cps[0]); err == nil {
		t.Error("Publish went back to size 1")
	}
	cosigner, err := newTestCosigner()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := api.CheckpointBody(cps[2])
	sig, err := api.NoteSignature(cosigner, body)
	if err != nil {
		t.Fatal(err)
	}
	withCosig, err := api.AppendSignatures(cps[2], api.MarshalCosignatureLines([]note.Signature{sig}))
	if err != nil {
		t.Fatal(err)
	}
	if err := wl.Publish(ctx, withCosig); err != nil {
		t.Fatalf("Publish(size 3 with a cosignature): %v", err)
	}
	if cp, size := l.Checkpoint(); size != 3 || !bytes.Equal(cp, withCosig) {
		t.Fatalf("Checkpoint() = size %d\n%s", size, cp)
	}
	if got := gaugeValue(t, reg, "candor_log_witnessed_size"); got != 3 {
		t.Errorf("candor_log_witnessed_size = %v, want 3", got)
	}

	l.Close()
	select {
	case <-wit.stopped:
	default:
		t.Fatal("Close returned before the Witnessing's Run")
	}
}

func newTestCosigner() (*api.Cosigner, error) {
	skey, _, err := api.GenerateCosignerKey(rand.Reader, "w.test/witness")
	if err != nil {
		return nil, err
	}
	return api.NewCosigner(skey, nil)
}

// gaugeValue returns the value of the gauge without labels called name.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// TestNoWitnessingMetrics: without a Witnessing the log registers no
// witness metric.
func TestNoWitnessingMetrics(t *testing.T) {
	h := newHarness(t, nil)
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "candor_log_witness") {
			t.Errorf("%s without a Witnessing", mf.GetName())
		}
	}
	if h.log.Witnessed() {
		t.Error("Witnessed() without a Witnessing")
	}
}
