package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// engineLog is a log engine served over HTTP in the test, signing with a
// given key: a log the test can make misbehave, by adding entries the
// HTTP API would refuse, or by running two of them with one key.
type engineLog struct {
	log *log.Log
	url string
}

func startEngineLog(t *testing.T, signer note.Signer, verifier note.Verifier) *engineLog {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	store, err := pebble.Open(t.TempDir(), pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(log.NewHandler(l, log.HandlerOptions{Logger: quiet}))
	t.Cleanup(srv.Close)
	return &engineLog{log: l, url: srv.URL}
}

// add adds the entries as they are.
func (e *engineLog) add(t *testing.T, entries ...[]byte) {
	t.Helper()
	for _, b := range entries {
		if _, err := e.log.Add(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// validEntries returns n valid build entries about subjects named after tag.
func validEntries(t *testing.T, tag string, n int) [][]byte {
	t.Helper()
	s := apitest.NewBuildSigner()
	out := make([][]byte, n)
	for i := range out {
		b, err := api.CanonicalEntry(s.Submission(fmt.Sprintf("%s-%d", tag, i), fmt.Sprintf("%064x", i)))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// waitCosigned waits until w serves a cosigned checkpoint of origin of at
// least size.
func waitCosigned(t *testing.T, ctx context.Context, w *witnessServer, origin string, size uint64) {
	t.Helper()
	sum := sha256.Sum256([]byte(origin))
	path := "/" + hex.EncodeToString(sum[:]) + "/checkpoint"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, body, err := w.get(ctx, path); err == nil && code == http.StatusOK {
			if text, err := api.CheckpointBody(body); err == nil {
				if c, err := api.ParseCheckpoint(text); err == nil && c.Size >= size {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not cosign size %d within 30s\n%s", size, w.stderr)
		}
	}
}

// TestWitnessNetworkAudit: one witness of three audits a log (audit: true)
// that comes to hold an entry its admission rules refuse. The auditing
// witness cosigns the log's trees until then, refuses the tree holding
// the entry with bad-entry evidence, and gossip brings the evidence to
// the other two, which refuse the log too.
func TestWitnessNetworkAudit(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/audited-log"
	signer, verifier, vkey := apitest.NewNoteKey(origin, rand.Reader)
	el := startEngineLog(t, signer, verifier)
	el.add(t, validEntries(t, "a", 300)...)
	ws := startWitnessNetwork(t, bin, 3, func(i int) string {
		logs := fmt.Sprintf("pollInterval: 100ms\nlogs:\n  - origin: %s\n    key: %s\n", origin, vkey)
		if i == 0 {
			logs += fmt.Sprintf("    url: %s\n    audit: true\n", el.url)
		}
		return logs
	}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitCosigned(t, ctx, ws[0], origin, 300)
	first, _ := el.log.Checkpoint()
	for i, w := range ws[1:] {
		if code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: first}); err != nil || code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint: %d %s, %v", i+1, code, body, err)
		}
	}

	start := time.Now()
	el.add(t, []byte(`{"kind":"build","v":1,"envelope":{"payloadType":"x"}}`))
	el.add(t, validEntries(t, "b", 10)...)
	evs := waitForEvidence(t, ctx, ws, origin, verifier, start, evidenceLimit()+100*time.Millisecond, "the log took a bad entry")
	for i, e := range evs {
		if e.Kind != api.EvidenceBadEntry || e.Entry.Index != 300 {
			t.Errorf("witness %d holds %s evidence of entry %v, want bad-entry of entry 300", i, e.Kind, e.Entry)
		}
	}
	t.Logf("all %d witnesses hold bad-entry evidence %s after the log took the entry", len(ws), time.Since(start).Round(time.Millisecond))
	latest, _ := el.log.Checkpoint()
	for i, w := range ws[1:] {
		code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: 300, Checkpoint: latest})
		if err != nil || code != http.StatusUnprocessableEntity {
			t.Errorf("witness %d: add-checkpoint after the evidence: %d %s, %v; want 422", i+1, code, body, err)
		}
	}
}

// TestMonitorSplitViewGossip: a log shows candor monitor a tree other than
// the one its witnesses cosigned (two engines signing with one key). The
// monitor, whose policy names one of three gossiping witnesses, catches
// the fork when it compares that witness's checkpoint with its own, gives
// it the evidence, and gossip brings the evidence to the other two.
func TestMonitorSplitViewGossip(t *testing.T) {
	requireBinaries(t)
	witnessBin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	candorBin, err := buildOnce("github.com/candorlog/candor/cmd/candor")
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/split-view-log"
	signer, verifier, vkey := apitest.NewNoteKey(origin, rand.Reader)
	forWitnesses, forMonitor := startEngineLog(t, signer, verifier), startEngineLog(t, signer, verifier)
	forWitnesses.add(t, validEntries(t, "witnessed", 200)...)
	forMonitor.add(t, validEntries(t, "monitored", 300)...)
	ws := startWitnessNetwork(t, witnessBin, 3, func(i int) string {
		logs := fmt.Sprintf("pollInterval: 100ms\nlogs:\n  - origin: %s\n    key: %s\n", origin, vkey)
		if i == 0 {
			logs += fmt.Sprintf("    url: %s\n", forWitnesses.url)
		}
		return logs
	}, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitCosigned(t, ctx, ws[0], origin, 200)

	dir := t.TempDir()
	policy := filepath.Join(dir, "policy")
	if err := os.WriteFile(policy, fmt.Appendf(nil, "log %s\nwitness w0 %s %s\nquorum none\n", vkey, ws[0].vkey, ws[0].url), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, candorBin, "monitor", "--log", forMonitor.url, "--policy", policy,
		"--state", filepath.Join(dir, "state"), "--once", "--audit=false")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 || !strings.Contains(string(out), "FAULT ") {
		t.Fatalf("candor monitor of the monitor's view: %v, want exit 4 and a FAULT line\n%s", err, out)
	}
	evs := waitForEvidence(t, ctx, ws, origin, verifier, start, evidenceLimit()+100*time.Millisecond, "the monitor caught the split view")
	for i, e := range evs {
		if e.Kind != api.EvidenceInconsistency {
			t.Errorf("witness %d holds %s evidence, want an inconsistency", i, e.Kind)
		}
	}
	t.Logf("all %d witnesses hold the evidence %s after the monitor started", len(ws), time.Since(start).Round(time.Millisecond))
}
