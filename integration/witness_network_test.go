package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
)

// TestWitnessNetworkSplitView runs five candor-witness processes that
// gossip with each other, and a Byzantine log (this test, signing with the
// log's real key) that shows one tree to two of them and another tree of
// the same size to the other three. Every witness must hold evidence that
// verifies offline with the log's key alone, and refuse the log from then
// on.
func TestWitnessNetworkSplitView(t *testing.T) {
	requireBinaries(t)
	bin, err := build(t.TempDir(), "github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/byzantine-log"
	logSkey, logVkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	logSigner, err := note.NewSigner(logSkey)
	if err != nil {
		t.Fatal(err)
	}
	logVerifier, err := note.NewVerifier(logVkey)
	if err != nil {
		t.Fatal(err)
	}

	// The witnesses' keys are made first, so that each can list the
	// others as peers.
	const n = 5
	type member struct{ name, skey, vkey, dir string }
	members := make([]member, n)
	for i := range members {
		m := &members[i]
		m.name = fmt.Sprintf("witness.example/net%d", i)
		if m.skey, m.vkey, err = api.GenerateCosignerKey(rand.Reader, m.name); err != nil {
			t.Fatal(err)
		}
		m.dir = t.TempDir()
		if err := os.WriteFile(filepath.Join(m.dir, "witness.key"), []byte(m.skey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	config := func(i int, join string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "logs:\n  - origin: %s\n    key: %s\n", origin, logVkey)
		fmt.Fprintf(&b, "gossip:\n  listen: 127.0.0.1:0\n  secret: %s\n", base64.StdEncoding.EncodeToString(secret))
		if join != "" {
			fmt.Fprintf(&b, "  join: [%q]\n", join)
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
		return path
	}
	ws := make([]*witnessServer, n)
	var seed string
	for i := range ws {
		w, err := startWitnessServer(t, bin, members[i].dir, "--config", config(i, seed))
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
		if i == 0 {
			seed = gossipAddr(t, w)
		}
	}

	// Two views of size 10 with different roots, both signed by the log.
	view := func(tag string) []byte {
		var hashes []tlog.Hash
		for i := range int64(10) {
			stored, err := tlog.StoredHashes(i, fmt.Appendf(nil, "%s entry %d", tag, i), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
				out := make([]tlog.Hash, len(idx))
				for k, x := range idx {
					out[k] = hashes[x]
				}
				return out, nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, stored...)
		}
		root, err := tlog.TreeHash(10, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for k, x := range idx {
				out[k] = hashes[x]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		signed, err := api.SignCheckpoint(api.Checkpoint{Origin: origin, Size: 10, Hash: root}, logSigner)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	viewA, viewB := view("A"), view("B")

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
			if err != nil || code != http.StatusOK {
				t.Errorf("witness %d: add-checkpoint: %d %s, %v", i, code, body, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Every witness must hold verified evidence. The requirement is 3 s;
	// race-built binaries are several times slower.
	limit := 3 * time.Second
	if binaryRace {
		limit = 20 * time.Second
	}
	for i, w := range ws {
		for {
			e, err := evidenceOf(ctx, w, origin)
			if err != nil {
				t.Fatalf("witness %d: %v", i, err)
			}
			if e != nil {
				cps, err := e.Verify(logVerifier)
				if err != nil {
					t.Fatalf("witness %d: its evidence does not verify with the log's key: %v", i, err)
				}
				if cps[0].Size != cps[1].Size || cps[0].Hash == cps[1].Hash {
					t.Fatalf("witness %d: evidence of kind %q for checkpoints %+v", i, e.Kind, cps)
				}
				break
			}
			if time.Since(start) > limit {
				t.Fatalf("witness %d holds no evidence %s after the split view", i, time.Since(start).Round(time.Millisecond))
			}
			time.Sleep(20 * time.Millisecond)
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
