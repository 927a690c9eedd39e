package integration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// TestWitnessNetworkRestartStartOrder runs four candor-witness processes
// that never met and cosign two forks of a log (two each), kills them all
// with SIGKILL, and starts them again configured to join the first one,
// which starts last. The cluster must form by itself and every witness
// hold verified evidence: a witness gossips what it stored, not only what
// it cosigns after it starts, and retries its join address until the
// witness there is up.
func TestWitnessNetworkRestartStartOrder(t *testing.T) {
	requireBinaries(t)
	bin, err := build(t.TempDir(), "github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	const origin = "example.com/byzantine-log"
	logSigner, logVerifier, logVkey := apitest.NewNoteKey(origin, rand.Reader)

	members := newWitnessMembers(t, n, "restart")
	secret := make([]byte, 32)
	rand.Read(secret)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seed := l.Addr().String()
	l.Close()
	config := func(i int, listen string, join []string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "logs:\n  - origin: %s\n    key: %s\n", origin, logVkey)
		fmt.Fprintf(&b, "gossip:\n  listen: %s\n  secret: %s\n", listen, base64.StdEncoding.EncodeToString(secret))
		if len(join) > 0 {
			fmt.Fprintf(&b, "  join: [%q]\n", join[0])
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
	viewA, viewB := forkedView(t, logSigner, "A"), forkedView(t, logSigner, "B")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Apart: each gossips alone, and cosigns one of the two forks.
	for i, m := range members {
		w, err := startWitnessServer(t, bin, m.dir, "--config", config(i, "127.0.0.1:0", nil))
		if err != nil {
			t.Fatal(err)
		}
		cp := viewA
		if i >= n/2 {
			cp = viewB
		}
		if code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp}); err != nil || code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint: %d %s, %v", i, code, body, err)
		}
		w.kill9(t)
	}

	// Together: the others start first and join the first, which is down.
	ws := make([]*witnessServer, n)
	for i := 1; i < n; i++ {
		if ws[i], err = startWitnessServer(t, bin, members[i].dir, "--config", config(i, "127.0.0.1:0", []string{seed})); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	start := time.Now()
	if ws[0], err = startWitnessServer(t, bin, members[0].dir, "--config", config(0, seed, nil)); err != nil {
		t.Fatal(err)
	}
	waitForEvidence(t, ctx, ws, origin, logVerifier, start, evidenceLimit(), "the last witness started")
	t.Logf("all %d witnesses hold verified evidence %s after the witness they join started", n, time.Since(start).Round(time.Millisecond))
}
