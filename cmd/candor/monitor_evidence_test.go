package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	logclient "github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/witness"
)

// testWitness is a witness in memory served over HTTP.
type testWitness struct {
	w    *witness.Witness
	url  string
	vkey string
}

// startTestWitness starts a witness of the log origin, reading its tiles
// at logURL.
func startTestWitness(t testing.TB, origin string, verifier note.Verifier, logURL string) *testWitness {
	t.Helper()
	skey, vkey, err := api.GenerateCosignerKey(rand.Reader, "witness.example/monitor-test")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: &memState{m: map[string][]byte{}}, Logger: quiet,
		Logs: []witness.Log{{Origin: origin, Verifier: verifier, URL: logURL}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testWitness{w: w, url: srv.URL, vkey: vkey}
}

// cosign has the witness cosign the log's latest checkpoint, its first.
func (tw *testWitness) cosign(t testing.TB, l *log.Log) {
	t.Helper()
	signed, _ := l.Checkpoint()
	if _, err := tw.w.AddCheckpoint(context.Background(), api.AddCheckpointRequest{Checkpoint: signed}); err != nil {
		t.Fatal(err)
	}
}

// evidence returns the evidence the witness holds about origin.
func (tw *testWitness) evidence(t testing.TB, origin string) []api.Evidence {
	t.Helper()
	var out []api.Evidence
	for _, b := range tw.w.Evidence()[origin] {
		e, err := api.ParseEvidence(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// addEntries adds n entries "<tag> i" to the log as they are.
func addEntries(t testing.TB, l *log.Log, tag string, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Add(context.Background(), fmt.Appendf(nil, "%s %d", tag, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// evidenceFile returns the evidence file a FAULT line of stderr names, and
// checks that candor verify-evidence accepts it with the log's key alone.
func evidenceFile(t testing.TB, stderr, vkey, says string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^FAULT .*\(evidence in ([^)]+)\)$`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no FAULT line with evidence in\n%s", stderr)
	}
	code, stdout, errs := runCandor(t, "verify-evidence", m[1], "--log-key", vkey)
	if code != 0 || !strings.Contains(stdout, says) {
		t.Fatalf("candor verify-evidence %s = %d, %q, %q; want 0 and %q", m[1], code, stdout, errs, says)
	}
	return m[1]
}

// TestMonitorBadEntryEvidence: a log holds an entry it should have
// refused. candor monitor reports it as a fault, with evidence that
// candor verify-evidence accepts, and gives the evidence to the policy's
// witness, which then refuses the log.
func TestMonitorBadEntryEvidence(t *testing.T) {
	const origin = "example.com/monitor-evidence"
	signer, verifier, vkey := apitest.NewNoteKey(origin, rand.Reader)
	logURL, lg := newTestLogWithKey(t, signer, verifier, nil)
	c := logclient.New(logURL, nil)
	s := apitest.NewBuildSigner()
	for i := range 20 {
		if _, err := c.Submit(context.Background(), s.Submission(fmt.Sprintf("a%d", i), fmt.Sprintf("%064x", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := lg.Add(context.Background(), []byte(`{"kind":"build","v":1,"envelope":{}}`)); err != nil {
		t.Fatal(err)
	}
	tw := startTestWitness(t, origin, verifier, logURL)
	tw.cosign(t, lg)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy", fmt.Appendf(nil, "log %s\nwitness w %s %s\nquorum none\n", vkey, tw.vkey, tw.url))
	code, _, stderr := runCandor(t, "monitor", "--log", logURL, "--policy", policy, "--state", filepath.Join(dir, "state"), "--once")
	if code != exitFaults {
		t.Fatalf("candor monitor: exit %d, want %d\n%s", code, exitFaults, stderr)
	}
	evidenceFile(t, stderr, vkey, "at index 20 of its tree of size 21 an entry it should have refused")
	if evs := tw.evidence(t, origin); len(evs) != 1 || evs[0].Kind != api.EvidenceBadEntry || evs[0].Entry.Index != 20 {
		t.Fatalf("the witness holds %+v, want the bad entry's evidence", evs)
	}
}

// TestMonitorSplitView: the log shows the monitor another tree than the
// one its witness cosigned (two logs signing with one key). Whether the
// monitor's tree is the larger or the smaller, candor monitor and the
// witness it shows its checkpoint to catch the fork with evidence, which
// the witness then holds.
func TestMonitorSplitView(t *testing.T) {
	for _, tc := range []struct {
		name         string
		witnessSize  int
		monitorSize  int
		evidenceSays string
	}{
		// The monitor proves the fork from its own view's tiles.
		{"monitor ahead", 200, 300, "size 200 is not a prefix of its tree of size 300"},
		// The witness proves it from its own view's tiles.
		{"monitor behind", 300, 100, "size 100 is not a prefix of its tree of size 300"},
		{"same size", 200, 200, "equivocated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := "example.com/split-view"
			signer, verifier, vkey := apitest.NewNoteKey(origin, rand.Reader)
			urlW, lgW := newTestLogWithKey(t, signer, verifier, nil)
			urlM, lgM := newTestLogWithKey(t, signer, verifier, nil)
			addEntries(t, lgW, "seen by the witness", tc.witnessSize)
			addEntries(t, lgM, "seen by the monitor", tc.monitorSize)
			tw := startTestWitness(t, origin, verifier, urlW)
			tw.cosign(t, lgW)
			dir := t.TempDir()
			policy := writeFile(t, dir, "policy", fmt.Appendf(nil, "log %s\nwitness w %s %s\nquorum none\n", vkey, tw.vkey, tw.url))
			code, _, stderr := runCandor(t, "monitor", "--log", urlM, "--policy", policy, "--state", filepath.Join(dir, "state"), "--once", "--audit=false")
			if code != exitFaults {
				t.Fatalf("candor monitor: exit %d, want %d\n%s", code, exitFaults, stderr)
			}
			evidenceFile(t, stderr, vkey, tc.evidenceSays)
			if evs := tw.evidence(t, origin); len(evs) != 1 {
				t.Fatalf("the witness holds %d pieces of evidence, want 1", len(evs))
			}
		})
	}
}
