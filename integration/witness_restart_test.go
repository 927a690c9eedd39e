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
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	const origin = "example.com/byzantine-log"
	logSigner, logVerifier, logVkey := apitest.NewNoteKey(origin, rand.Reader)

	members := newWitnessMembers(t, n, "restart")
	secret := make([]byte, 32)
	rand.Read(secret)
	seed := freeAddr(t)
	config := func(i int, listen string, join []string) string {
		return writeWitnessConfig(t, members, i, logsYAML(origin, logVkey), secret, listen, join)
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

// writeWitnessConfig writes the config of witness i of members: it
// follows logs (YAML, see logsYAML), gossips on listen with secret (none
// if nil), joins join, and trusts the other members as peers. It returns
// the file's path.
func writeWitnessConfig(t *testing.T, members []witnessMember, i int, logs string, secret []byte, listen string, join []string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(logs)
	fmt.Fprintf(&b, "gossip:\n  listen: %s\n", listen)
	if secret != nil {
		fmt.Fprintf(&b, "  secret: %s\n", base64.StdEncoding.EncodeToString(secret))
	}
	if len(join) > 0 {
		b.WriteString("  join:\n")
		for _, a := range join {
			fmt.Fprintf(&b, "    - %q\n", a)
		}
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

// logsYAML is the logs section of a witness config that follows the
// logs with the given origins and verifier keys, in pairs.
func logsYAML(originKeys ...string) string {
	var b strings.Builder
	b.WriteString("logs:\n")
	for i := 0; i+1 < len(originKeys); i += 2 {
		fmt.Fprintf(&b, "  - origin: %s\n    key: %s\n", originKeys[i], originKeys[i+1])
	}
	return b.String()
}

// freeAddr returns a loopback TCP address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestWitnessNetworkRollingRestart runs four candor-witness processes
// apart (no join address), two cosigning one fork of a log and two the
// other, and restarts them one by one, as an operator rolls out a config,
// each joining the first: every witness the restarts have brought
// together must hold verified evidence within 3 s of the restart that
// put both forks in one cluster, and the last one within 3 s of its own.
func TestWitnessNetworkRollingRestart(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	const origin = "example.com/byzantine-log"
	logSigner, logVerifier, logVkey := apitest.NewNoteKey(origin, rand.Reader)
	members := newWitnessMembers(t, n, "rolling")
	secret := make([]byte, 32)
	rand.Read(secret)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = freeAddr(t)
	}
	viewA, viewB := forkedView(t, logSigner, "A"), forkedView(t, logSigner, "B")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	ws := make([]*witnessServer, n)
	for i, m := range members {
		if ws[i], err = startWitnessServer(t, bin, m.dir, "--config", writeWitnessConfig(t, members, i, logsYAML(origin, logVkey), secret, addrs[i], nil)); err != nil {
			t.Fatal(err)
		}
		cp := viewA
		if i >= n/2 {
			cp = viewB
		}
		if code, _, body, err := ws[i].addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp}); err != nil || code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint: %d %s, %v", i, code, body, err)
		}
	}
	for i, m := range members {
		ws[i].stop(t)
		var join []string
		if i > 0 {
			join = addrs[:1]
		}
		start := time.Now()
		if ws[i], err = startWitnessServer(t, bin, m.dir, "--config", writeWitnessConfig(t, members, i, logsYAML(origin, logVkey), secret, addrs[i], join)); err != nil {
			t.Fatal(err)
		}
		if i < n/2 {
			continue // one fork only among the restarted witnesses so far
		}
		waitForEvidence(t, ctx, ws[:i+1], origin, logVerifier, start, evidenceLimit(), fmt.Sprintf("witness %d restarted", i))
		t.Logf("witnesses 0 to %d hold verified evidence %s after witness %d restarted", i, time.Since(start).Round(time.Millisecond), i)
	}
}
