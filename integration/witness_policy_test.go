package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// TestWitnessPolicy runs a real candor-log with --policy (2 of 3) and three
// real candor-witness processes it pushes to: the log publishes only
// checkpoints cosigned by two witnesses or more; with two witnesses killed
// it keeps accepting entries (202, not witnessed) and its checkpoint stays
// put; with the witnesses restarted it catches up.
func TestWitnessPolicy(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const origin = "example.com/policy-log"

	// The log's key first: the witnesses' configurations need it.
	logData := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(logData, "log.key"), []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logVerifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}

	type wit struct {
		name, data, config, listen string
		srv                        *witnessServer
	}
	ws := make([]*wit, 3)
	var policy strings.Builder
	for i := range ws {
		w := &wit{name: fmt.Sprintf("witness.example/p%d", i+1), data: t.TempDir()}
		w.config = filepath.Join(t.TempDir(), "witness.yaml")
		yaml := fmt.Sprintf("name: %s\nlogs:\n  - origin: %s\n    key: %s\n", w.name, origin, vkey)
		if err := os.WriteFile(w.config, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if w.srv, err = startWitnessServer(t, bin, w.data, "--config", w.config); err != nil {
			t.Fatal(err)
		}
		w.listen = strings.TrimPrefix(w.srv.url, "http://")
		fmt.Fprintf(&policy, "witness w%d %s %s\n", i+1, w.srv.vkey, w.srv.url)
		ws[i] = w
	}
	fmt.Fprintf(&policy, "group two 2 w1 w2 w3\nquorum two\n")
	policyFile := filepath.Join(t.TempDir(), "policy.txt")
	if err := os.WriteFile(policyFile, []byte(policy.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := api.ParsePolicy([]byte("log " + vkey + "\n" + policy.String()))
	if err != nil {
		t.Fatal(err)
	}

	logSrv := mustStartServer(t, "candor-log", logData, "--policy", policyFile,
		"--witness-wait", "1s", "--witness-timeout", "1s", "--witness-retry-max", "200ms")
	if logSrv.vkey != vkey {
		t.Fatalf("the log prints verifier key %s, want %s", logSrv.vkey, vkey)
	}
	if !strings.Contains(logSrv.stdout.String(), "candor-log: witness policy "+policyFile+": 3 witnesses, quorum two\n") {
		t.Errorf("the log does not print its policy:\n%s", logSrv.stdout)
	}

	// published returns the log's checkpoint, which must satisfy the
	// policy, and its number of cosignatures; code is not 200 before the
	// first one.
	published := func() (int, api.Checkpoint, int) {
		t.Helper()
		code, _, body, err := logSrv.do(ctx, http.MethodGet, "/checkpoint", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusOK {
			return code, api.Checkpoint{}, 0
		}
		c, n, err := p.Open(body)
		if err != nil {
			t.Fatalf("the log publishes a checkpoint that does not satisfy its policy: %v\n%s", err, body)
		}
		return code, c, len(n.Sigs) - 1
	}
	waitPublished := func(size uint64) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, c, cosigs := published()
			if code == http.StatusOK && c.Size == size {
				return cosigs
			}
			if c.Size > size {
				t.Fatalf("the log published size %d, beyond %d", c.Size, size)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the log did not publish size %d within 30s (code %d, size %d)", size, code, c.Size)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	metrics := func() string {
		t.Helper()
		_, _, body, err := logSrv.do(ctx, http.MethodGet, "/metrics", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}

	builder := apitest.NewBuildSigner()
	submitted := 0
	submit := func(want int) map[string]any {
		t.Helper()
		submitted++
		digest := sha256.Sum256(fmt.Append(nil, "policy artifact ", submitted))
		code, _, body, err := logSrv.do(ctx, http.MethodPost, "/v1/entries", builder.Submission(fmt.Sprint("policy/", submitted), hex.EncodeToString(digest[:])), nil)
		if err != nil || code != want {
			t.Fatalf("submission %d: %d %s %v, want %d", submitted, code, body, err, want)
		}
		var reply map[string]any
		if err := json.Unmarshal(body, &reply); err != nil {
			t.Fatal(err)
		}
		if code == http.StatusCreated {
			var r api.AddEntryResponse
			json.Unmarshal(body, &r)
			bundle, err := api.ParseProofBundle([]byte(r.Proof))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := api.VerifyProofBundle(bundle, r.LeafHash, origin, logVerifier); err != nil {
				t.Fatal(err)
			}
			if _, _, err := p.Open(bundle.Checkpoint); err != nil {
				t.Fatalf("the reply's proof bundle carries a checkpoint below the policy: %v", err)
			}
		}
		return reply
	}

	waitPublished(0)
	for range 5 {
		submit(http.StatusCreated)
	}
	if cosigs := waitPublished(5); cosigs < 2 {
		t.Fatalf("%d cosignatures", cosigs)
	}

	// Two witnesses killed: the log keeps accepting entries.
	ws[1].srv.kill9(t)
	ws[2].srv.kill9(t)
	for range 3 {
		r := submit(http.StatusAccepted)
		if r["witnessed"] != false || r["status"] != "sequenced" {
			t.Errorf("202 reply %v: want witnessed false, status sequenced", r)
		}
	}
	if _, c, _ := published(); c.Size != 5 {
		t.Errorf("with two witnesses down the log publishes size %d, want 5", c.Size)
	}
	m := metrics()
	for _, want := range []string{"candor_log_witnessed_size 5\n", "candor_log_tree_size 8\n", `candor_log_witness_requests_total{result="error",witness="w2"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Restarted on their ports, with their state: the log catches up.
	for _, w := range ws[1:] {
		if w.srv, err = startWitnessServer(t, bin, w.data, "--config", w.config, "--listen", w.listen); err != nil {
			t.Fatal(err)
		}
	}
	waitPublished(8)
	if !strings.Contains(metrics(), "candor_log_witnessed_size 8\n") {
		t.Errorf("candor_log_witnessed_size is not 8")
	}
	submit(http.StatusCreated)

	// A clean stop, with the witnesses still pushed to.
	logSrv.stop(t)
	for _, w := range ws {
		w.srv.stop(t)
	}
	if b, err := os.ReadFile(filepath.Join(logData, "witnessed-checkpoint")); err != nil {
		t.Error(err)
	} else if _, _, err := p.Open(b); err != nil || !bytes.Contains(b, []byte("\n9\n")) {
		t.Errorf("the saved cosigned checkpoint: %v\n%s", err, b)
	}
}
