package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// TestWitnessPull runs a real candor-log and a real candor-witness
// configured with the log's url and no one pushing to it: as entries are
// submitted, the witness must poll the log, prove consistency from its
// tiles and serve a cosigned checkpoint of each new size at its
// monitoring path.
func TestWitnessPull(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const origin = "example.com/pulled-log"
	logSrv := mustStartServer(t, "candor-log", t.TempDir(), "--origin", origin)
	builder := apitest.NewBuildSigner()
	submitted := 0
	grow := func(n int) api.Checkpoint {
		t.Helper()
		for ; submitted < n; submitted++ {
			digest := sha256.Sum256(fmt.Append(nil, "pulled artifact ", submitted))
			code, _, body, err := logSrv.submit(ctx, builder.Submission(fmt.Sprint("pulled/", submitted), hex.EncodeToString(digest[:])))
			if err != nil || code != http.StatusCreated {
				t.Fatalf("submitting entry %d: %d %s %v", submitted, code, body, err)
			}
		}
		_, c := logSrv.mustCheckpoint(t, origin)
		if c.Size != uint64(n) {
			t.Fatalf("the log's checkpoint has size %d after %d entries", c.Size, n)
		}
		return c
	}
	grow(3)

	config := filepath.Join(t.TempDir(), "witness.yaml")
	yaml := fmt.Sprintf("name: %s\npollInterval: 100ms\nlogs:\n  - origin: %s\n    key: %s\n    url: %s\n",
		witnessName, origin, logSrv.vkey, logSrv.url)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := startWitnessServer(t, bin, t.TempDir(), "--config", config)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(origin))
	served := "/" + hex.EncodeToString(sum[:]) + "/checkpoint"
	// waitCosigned waits until the witness serves want, cosigned.
	waitCosigned := func(want api.Checkpoint) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var last string
		for {
			code, body, err := w.get(ctx, served)
			if err != nil {
				t.Fatalf("GET %s: %v", served, err)
			}
			last = fmt.Sprintf("%d %q", code, body)
			if code == http.StatusOK {
				n, err := note.Open(body, note.VerifierList(logSrv.verifier, w.verifier))
				if err != nil || len(n.Sigs) != 2 {
					t.Fatalf("GET %s: the served checkpoint does not carry the log's signature and the witness's cosignature (%v):\n%s", served, err, body)
				}
				c, err := api.ParseCheckpoint([]byte(n.Text))
				if err != nil {
					t.Fatal(err)
				}
				if c.Size == want.Size && c.Hash == want.Hash {
					return
				}
				if c.Size >= want.Size {
					t.Fatalf("the witness serves size %d root %x, want size %d root %x", c.Size, c.Hash, want.Size, want.Hash)
				}
			} else if code != http.StatusNotFound {
				t.Fatalf("GET %s: %s", served, last)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the witness did not cosign size %d within 30s; it serves %s", want.Size, last)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Sizes across the first tile boundary, so that the proofs need
	// partial and full tiles at levels 0 and 1.
	for _, n := range []int{3, 10, 260} {
		waitCosigned(grow(n))
	}

	// Pulled and pushed checkpoints share one state: a push from size 0
	// learns the size the witness pulled.
	cp, c := logSrv.mustCheckpoint(t, origin)
	code, ctype, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp})
	if err != nil || code != http.StatusConflict || ctype != api.TlogSizeContentType || !bytes.Equal(body, api.MarshalTlogSize(c.Size)) {
		t.Errorf("add-checkpoint with old 0 after pulls: %d %q %q %v, want 409 with size %d", code, ctype, body, err, c.Size)
	}
	metric := fmt.Sprintf("candor_witness_pull_total{origin=%q,result=\"cosigned\"}", origin)
	if code, body, err := w.get(ctx, "/metrics"); err != nil || code != http.StatusOK || !bytes.Contains(body, []byte(metric)) {
		t.Errorf("GET /metrics: %d %v, want %s", code, err, metric)
	}
	// SIGTERM stops the poller and the server cleanly.
	w.stop(t)
}
