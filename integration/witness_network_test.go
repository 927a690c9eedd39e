package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// TestWitnessNetworkSplitView runs five candor-witness processes that
// gossip with each other, and a Byzantine log (this test, signing with the
// log's real key) that shows one tree to two of them and another tree of
// the same size to the other three. Every witness must hold evidence that
// verifies offline with the log's key alone, and refuse the log from then
// on.
func TestWitnessNetworkSplitView(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/byzantine-log"
	logSigner, logVerifier, logVkey := apitest.NewNoteKey(origin, rand.Reader)

	ws := startWitnessNetwork(t, bin, 5, func(int) string {
		return fmt.Sprintf("logs:\n  - origin: %s\n    key: %s\n", origin, logVkey)
	}, true)
	n := len(ws)

	// Two views of size 10 with different roots, both signed by the log.
	viewA, viewB := forkedView(t, logSigner, "A"), forkedView(t, logSigner, "B")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i, w := range ws {
		cp := viewA
		if i >= 2 {
			cp = viewB
		}
		wg.Go(func() {
			code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: 0, Checkpoint: cp})
			switch {
			case err == nil && code == http.StatusOK:
			case err == nil && code == http.StatusUnprocessableEntity && bytes.Contains(body, []byte("evidence")):
				// The other view reached it by gossip first, from a
				// witness that cosigned it: it holds the evidence
				// already, and refuses both.
			default:
				t.Errorf("witness %d: add-checkpoint: %d %s, %v", i, code, body, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Every witness must hold verified evidence.
	for i, e := range waitForEvidence(t, ctx, ws, origin, logVerifier, start, evidenceLimit(), "the split view") {
		cps, _ := e.Verify(logVerifier)
		if cps[0].Size != cps[1].Size || cps[0].Hash == cps[1].Hash {
			t.Fatalf("witness %d: evidence of kind %q for checkpoints %+v", i, e.Kind, cps)
		}
	}
	t.Logf("all %d witnesses hold verified evidence %s after the split view", n, time.Since(start).Round(time.Millisecond))

	// From now on every witness refuses the log, even a checkpoint it has
	// cosigned before.
	for i, w := range ws {
		code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{OldSize: 10, Checkpoint: viewA})
		if err != nil || code != http.StatusUnprocessableEntity {
			t.Errorf("witness %d: add-checkpoint after evidence: %d %s, %v; want 422", i, code, body, err)
		}
	}
}

// startWitnessNetwork starts n candor-witness processes from bin that
// gossip on loopback, each trusting all the others as peers (their keys
// are made first, so that each config can list the others). logs returns
// the YAML of witness i's logs; with encrypt, gossip uses a shared secret.
// Witness 0 is the one the others join.
func startWitnessNetwork(t *testing.T, bin string, n int, logs func(i int) string, encrypt bool) []*witnessServer {
	t.Helper()
	members := newWitnessMembers(t, n, "net")
	secret := make([]byte, 32)
	rand.Read(secret)
	ws := make([]*witnessServer, n)
	var seed string
	for i := range ws {
		var b strings.Builder
		b.WriteString(logs(i))
		b.WriteString("gossip:\n  listen: 127.0.0.1:0\n")
		if encrypt {
			fmt.Fprintf(&b, "  secret: %s\n", base64.StdEncoding.EncodeToString(secret))
		}
		if seed != "" {
			fmt.Fprintf(&b, "  join: [%q]\n", seed)
		}
		b.WriteString("peers:\n")
		for j, m := range members {
			if j != i {
				fmt.Fprintf(&b, "  - name: %s\n    key: %s\n", m.name, m.vkey)
			}
		}
		path := filepath.Join(t.TempDir(), "witness.yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := startWitnessServer(t, bin, members[i].dir, "--config", path)
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
		if i == 0 {
			seed = gossipAddr(t, w)
		}
	}
	return ws
}

// witnessMember is a witness's name, verifier key and data directory,
// which holds its key.
type witnessMember struct{ name, vkey, dir string }

// newWitnessMembers makes the keys of n witnesses named
// witness.example/<prefix><i>, each in a data directory of its own.
func newWitnessMembers(t *testing.T, n int, prefix string) []witnessMember {
	t.Helper()
	members := make([]witnessMember, n)
	for i := range members {
		m := &members[i]
		m.name = fmt.Sprintf("witness.example/%s%d", prefix, i)
		skey, vkey, err := api.GenerateCosignerKey(rand.Reader, m.name)
		if err != nil {
			t.Fatal(err)
		}
		m.vkey, m.dir = vkey, t.TempDir()
		if err := os.WriteFile(filepath.Join(m.dir, "witness.key"), []byte(skey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return members
}

// forkedView returns a checkpoint of size 10 signed by the log's signer,
// whose entries are tagged tag: another tag, another tree.
func forkedView(t *testing.T, signer note.Signer, tag string) []byte {
	t.Helper()
	return forkedViewAt(t, signer, tag, 10)
}

// forkedViewAt is forkedView at the given size.
func forkedViewAt(t *testing.T, signer note.Signer, tag string, size int64) []byte {
	t.Helper()
	tr := newTLogTree(t, size, func(i int64) string { return fmt.Sprintf("%s entry %d", tag, i) })
	root, err := tlog.TreeHash(size, tr)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := api.SignCheckpoint(api.Checkpoint{Origin: signer.Name(), Size: uint64(size), Hash: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// gossipAddr waits for the witness to print its gossip address, which it
// does after its HTTP address, and returns it.
func gossipAddr(t *testing.T, w *witnessServer) string {
	t.Helper()
	for deadline := time.Now().Add(startTimeout); ; time.Sleep(10 * time.Millisecond) {
		if line, ok := lineValue(w.stdout.String(), "candor-witness: gossip on "); ok {
			addr, _, _ := strings.Cut(line, ",")
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness printed no gossip address within %s:\n%s", startTimeout, w.stdout)
		}
	}
}

// evidenceLimit is the time within which every witness must hold the
// evidence of a split view: 3 s, or 20 s for the several times slower
// race-built binaries.
func evidenceLimit() time.Duration {
	if binaryRace {
		return 20 * time.Second
	}
	return 3 * time.Second
}

// waitForEvidence waits until every witness of ws serves evidence about
// origin, and fails the test if a witness holds none limit after start
// (after what, says the message), or if its evidence does not verify with
// the log's key v. It returns each witness's evidence.
func waitForEvidence(t *testing.T, ctx context.Context, ws []*witnessServer, origin string, v note.Verifier, start time.Time, limit time.Duration, what string) []*api.Evidence {
	t.Helper()
	out := make([]*api.Evidence, len(ws))
	for i, w := range ws {
		for {
			e, err := evidenceOf(ctx, w, origin)
			if err != nil {
				t.Fatalf("witness %d: %v", i, err)
			}
			if e != nil {
				if _, err := e.Verify(v); err != nil {
					t.Fatalf("witness %d: its evidence does not verify with the log's key: %v", i, err)
				}
				out[i] = e
				break
			}
			if time.Since(start) > limit {
				t.Fatalf("witness %d holds no evidence %s after %s\n%s", i, time.Since(start).Round(time.Millisecond), what, w.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// evidenceOf returns the first evidence about origin that w serves, or
// nil if it has none.
func evidenceOf(ctx context.Context, w *witnessServer, origin string) (*api.Evidence, error) {
	code, body, err := w.get(ctx, "/v1/evidence")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/evidence: status %d: %s", code, body)
	}
	var list struct {
		Evidence []json.RawMessage `json:"evidence"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET /v1/evidence: %v: %s", err, body)
	}
	for _, raw := range list.Evidence {
		e, err := api.ParseEvidence(raw)
		if err != nil {
			return nil, fmt.Errorf("GET /v1/evidence served unparseable evidence: %v", err)
		}
		if e.Origin == origin {
			return &e, nil
		}
	}
	return nil, nil
}

// waitForMembers waits until witness i sees want(i) gossip members, as
// its metrics say, and fails the test after limit (after what, says the
// message).
func waitForMembers(t *testing.T, ctx context.Context, ws []*witnessServer, want func(i int) int, limit time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for i, w := range ws {
		for {
			got, err := gossipMembers(ctx, w)
			if err != nil {
				t.Fatalf("witness %d: %v", i, err)
			}
			if got == want(i) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("witness %d sees %d gossip members %s after %s, want %d\n%s", i, got, limit, what, want(i), w.stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// gossipMembers returns the candor_witness_gossip_members gauge of w.
func gossipMembers(ctx context.Context, w *witnessServer) (int, error) {
	const metric = "candor_witness_gossip_members "
	code, body, err := w.get(ctx, "/metrics")
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d %v", code, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("GET /metrics: no %s", strings.TrimSpace(metric))
}
