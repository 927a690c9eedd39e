package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
)

// startBinary runs bin with args, its output kept, and makes sure it is
// killed when the test ends (its output logged if the test failed).
func startBinary(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p, err := launch(t, filepath.Base(bin), append([]string{bin}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jsonRecords parses out as one JSON object per line and fails the test
// for any line that is not one.
func jsonRecords(t *testing.T, what, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("%s: a line that is not JSON: %q", what, sc.Text())
			continue
		}
		recs = append(recs, rec)
	}
	return recs
}

// waitJSONListening waits for p's JSON record "listening" on stdout and
// returns its url.
func waitJSONListening(t *testing.T, p *process) string {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		for line := range strings.Lines(p.stdout.String()) {
			var rec struct{ Msg, URL string }
			if strings.HasSuffix(line, "\n") && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" && rec.URL != "" {
				return rec.URL
			}
		}
		if ok, err := p.wait(10 * time.Millisecond); ok {
			t.Fatalf("%s exited before listening: %v", p.name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed no JSON listening record within %s", p.name, startTimeout)
		}
	}
}

// TestJSONLogs: with --log-format json every line both servers print, on
// stdout and stderr, from start-up to shutdown, debug lines and a
// refused request included, is a JSON object, and "listening" is said
// once.
func TestJSONLogs(t *testing.T) {
	requireBinaries(t)
	witnessBin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logProc := startBinary(t, candorLog, "--data", filepath.Join(dir, "log"), "--listen", "127.0.0.1:0",
		"--origin", "example.com/json-log", "--log-format", "json", "--log-level", "debug")
	logURL := waitJSONListening(t, logProc)

	key, err := os.ReadFile(filepath.Join(dir, "log", "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := api.VerifierKey(strings.TrimSpace(string(key)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "witness.yaml")
	yaml := fmt.Sprintf("name: witness.example/json\ngossip:\n  listen: 127.0.0.1:0\nlogs:\n  - origin: example.com/json-log\n    key: %s\n    url: %s\n", vkey, logURL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	witnessProc := startBinary(t, witnessBin, "--data", filepath.Join(dir, "witness"), "--listen", "127.0.0.1:0",
		"--config", cfg, "--log-format", "json", "--log-level", "debug", "--poll-interval", "100ms")
	witnessURL := waitJSONListening(t, witnessProc)

	client := newClient()
	defer client.CloseIdleConnections()
	for _, u := range []string{logURL + "/tile/0/x1", logURL + "/v1/entries/7", witnessURL + "/0000/checkpoint"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("GET %s: %s, want a 4xx", u, resp.Status)
		}
	}
	resp, err := client.Post(witnessURL+"/add-checkpoint", "text/plain", strings.NewReader("nonsense"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for _, p := range []*process{witnessProc, logProc} {
		p.stopping.Store(true)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if ok, err := p.wait(stopTimeout); !ok || err != nil {
			t.Fatalf("%s after SIGTERM: exited %v, %v", p.name, ok, err)
		}
	}
	for _, p := range []*process{logProc, witnessProc} {
		stdout := jsonRecords(t, p.name+" stdout", p.stdout.String())
		stderr := jsonRecords(t, p.name+" stderr", p.stderr.String())
		listening, refused := 0, 0
		for _, rec := range append(stdout, stderr...) {
			msg, _ := rec["msg"].(string)
			if strings.Contains(msg, "listening") || msg == "serving" {
				listening++
			}
			if msg == "request refused" && rec["level"] == "DEBUG" && rec["reason"] != nil {
				refused++
			}
		}
		if listening != 1 {
			t.Errorf("%s said it listens %d times, want once", p.name, listening)
		}
		if refused == 0 {
			t.Errorf("%s logged no refused request at debug level with its reason", p.name)
		}
		if len(stderr) == 0 {
			t.Errorf("%s logged nothing on stderr", p.name)
		}
	}

	// A refused start says why in JSON too.
	refused := startBinary(t, candorLog, "--data", filepath.Join(dir, "log"), "--listen", "127.0.0.1:0",
		"--log-format", "json", "--policy", filepath.Join(dir, "no-such-policy"))
	if ok, err := refused.wait(startTimeout); !ok || err == nil {
		t.Fatalf("a start with a missing policy: exited %v, %v; want an exit with an error", ok, err)
	}
	recs := jsonRecords(t, "refused start stderr", refused.stderr.String())
	if len(recs) == 0 || recs[len(recs)-1]["level"] != "ERROR" || !strings.Contains(fmt.Sprint(recs[len(recs)-1]["error"]), "no-such-policy") {
		t.Errorf("a refused start logged %v, want a JSON error naming the policy", recs)
	}
}

// TestHelpAndVersionFlags: on the built binaries, --help lists the
// subcommands and exits 0, and --version prints the build and exits 0.
func TestHelpAndVersionFlags(t *testing.T) {
	requireBinaries(t)
	witnessBin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ bin, sub string }{{candorLog, "fsck"}, {witnessBin, "clear-evidence"}} {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		out, err := exec.CommandContext(ctx, tc.bin, "--help").CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), tc.sub) {
			t.Errorf("%s --help: %v, want exit 0 and the subcommand %s in:\n%s", tc.bin, err, tc.sub, out)
		}
		for _, args := range [][]string{{"--version"}, {tc.sub, "--version"}} {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			out, err := exec.CommandContext(ctx, tc.bin, args...).Output()
			cancel()
			if err != nil || !strings.Contains(string(out), "(revision ") {
				t.Errorf("%s %q: %v, %q; want exit 0 and the version", tc.bin, args, err, out)
			}
		}
	}
}
