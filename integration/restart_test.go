package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candorlog/candor/api/apitest"
)

// TestRestartKeepsKeyAndOrigin checks that the first start creates the key
// (mode 0600) in the data directory, that later starts reuse it with or
// without --origin and print the same verifier key, and that a start with
// another origin is refused with a clear error.
func TestRestartKeepsKeyAndOrigin(t *testing.T) {
	requireBinaries(t)
	const origin = "example.com/log"
	data := filepath.Join(t.TempDir(), "data") // not created yet: the server makes it
	keyPath := filepath.Join(data, "log.key")

	// Without a key and without --origin there is nothing to start from.
	if _, err := startServer(t, "candor-log (no key, no origin)", data); err == nil {
		t.Fatal("candor-log started without a key and without --origin")
	} else if !strings.Contains(err.Error(), "--origin") {
		t.Errorf("starting without a key or --origin: the error does not mention --origin:\n%v", err)
	}

	srv := mustStartServer(t, "candor-log (first start)", data, "--origin", origin)
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("no key file after the first start: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file %s has mode %v, want 0600", keyPath, perm)
	}
	key1, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.vkey, origin+"+") || srv.verifier.Name() != origin {
		t.Errorf("verifier key %q is not named %q", srv.vkey, origin)
	}
	if skey := strings.TrimSpace(string(key1)); strings.Contains(srv.stdout.String(), skey) || strings.Contains(srv.stderr.String(), skey) {
		t.Errorf("the server printed its private key")
	}
	vkey := srv.vkey

	// Add an entry so that the restarts have something to keep.
	signer := apitest.NewBuildSigner()
	digest := sha256.Sum256([]byte("restart"))
	sub := signer.Submission("restart", hex.EncodeToString(digest[:]))
	code, resp, body, err := srv.submit(context.Background(), sub)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("submission: %d %s %v", code, body, err)
	}
	cp1, c1 := srv.mustCheckpoint(t, origin)
	if c1.Size != 1 {
		t.Fatalf("checkpoint size %d after one entry", c1.Size)
	}
	srv.stop(t)

	// Restart without --origin: the key names the log.
	srv = mustStartServer(t, "candor-log (restart without --origin)", data)
	if srv.vkey != vkey {
		t.Errorf("restart without --origin printed verifier key %s, first start %s", srv.vkey, vkey)
	}
	if cp, _ := srv.mustCheckpoint(t, origin); !bytes.Equal(cp, cp1) {
		t.Errorf("restart without --origin serves checkpoint\n%s\nbefore the restart:\n%s", cp, cp1)
	}
	code, resp2, body, err := srv.submit(context.Background(), sub)
	if err != nil || code != http.StatusOK || resp2.Index != resp.Index {
		t.Errorf("resubmission after restart: %d %s %v, want 200 with index %d", code, body, err, resp.Index)
	}
	srv.stop(t)

	// Restart with a different origin: refused, naming both origins.
	const other = "example.com/other"
	if s, err := startServer(t, "candor-log (restart with another origin)", data, "--origin", other); err == nil {
		s.stop(t)
		t.Errorf("candor-log started on a data directory of %q with --origin %q", origin, other)
	} else {
		msg := err.Error()
		for _, want := range []string{origin, other, "log.key"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the error for another origin does not mention %q:\n%s", want, msg)
			}
		}
	}
	if key, err := os.ReadFile(keyPath); err != nil || !bytes.Equal(key, key1) {
		t.Errorf("the key file changed after a refused start (%v)", err)
	}

	// Restart with the same origin given explicitly.
	srv = mustStartServer(t, "candor-log (restart with the same origin)", data, "--origin", origin)
	if srv.vkey != vkey {
		t.Errorf("restart with --origin printed verifier key %s, first start %s", srv.vkey, vkey)
	}
	if cp, _ := srv.mustCheckpoint(t, origin); !bytes.Equal(cp, cp1) {
		t.Errorf("restart with --origin serves checkpoint\n%s\nbefore:\n%s", cp, cp1)
	}
	srv.stop(t)

	// A config file origin behaves like --origin.
	cfg := filepath.Join(t.TempDir(), "candor-log.yaml")
	if err := os.WriteFile(cfg, []byte("origin: "+other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := startServer(t, "candor-log (config with another origin)", data, "--config", cfg); err == nil {
		s.stop(t)
		t.Errorf("candor-log started with a config naming origin %q on a log of %q", other, origin)
	}

	// An SIGKILL does not lose the key either (it was synced on creation).
	srv = mustStartServer(t, "candor-log (before kill)", data)
	srv.kill9(t)
	srv = mustStartServer(t, "candor-log (after kill)", data)
	if srv.vkey != vkey {
		t.Errorf("after SIGKILL the verifier key is %s, first start %s", srv.vkey, vkey)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := srv.checkpoint(ctx, origin); err != nil {
		t.Error(err)
	}
	srv.stop(t)
}

// TestKill9DuringFirstStart kills candor-log at random moments of its very
// first start, on a fresh data directory each time, and expects the next
// start to succeed: a crash while the log creates its key or its database
// must not leave a data directory that can never start.
func TestKill9DuringFirstStart(t *testing.T) {
	requireBinaries(t)
	const origin = "example.com/log"
	const attempts = 60
	maxDelay := 15 * time.Millisecond
	if binaryRace {
		maxDelay *= 3
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	deadline := time.Now().Add(30 * time.Second)
	var failures []string
	n := 0
	for ; n < attempts && time.Now().Before(deadline) && len(failures) < 3; n++ {
		data := filepath.Join(t.TempDir(), "data")
		p := startProcess(t, "candor-log (first start)", "--data", data, "--listen", "127.0.0.1:0", "--origin", origin)
		p.quiet.Store(true)
		var delay time.Duration
		when := "at random"
		if n%2 == 0 {
			delay = time.Duration(rng.Int64N(int64(maxDelay)))
			time.Sleep(delay)
		} else {
			// Kill it as soon as the key file appears.
			start := time.Now()
			for time.Since(start) < time.Second {
				if _, err := os.Stat(filepath.Join(data, "log.key")); err == nil {
					break
				}
			}
			delay = time.Since(start)
			when = "as soon as log.key appeared"
		}
		p.stopping.Store(true)
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		if ok, _ := p.wait(stopTimeout); !ok {
			t.Fatalf("candor-log still running %s after SIGKILL", stopTimeout)
		}
		s, err := startServerQuiet(t, "candor-log (restart)", data, true, "--origin", origin)
		if err != nil {
			key := "no log.key"
			if fi, err := os.Stat(filepath.Join(data, "log.key")); err == nil {
				key = fmt.Sprintf("a %d-byte log.key (mode %v)", fi.Size(), fi.Mode().Perm())
			}
			failures = append(failures, fmt.Sprintf("SIGKILL %s (after %s) during the first start left %s; the restart fails: %s",
				when, delay.Round(10*time.Microsecond), key, lastLine(err.Error())))
			continue
		}
		s.kill9(t)
	}
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d attempts, %d data directories left unstartable", n, len(failures))
}
