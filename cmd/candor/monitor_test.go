package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/candorlog/candor/api/apitest"
	logclient "github.com/candorlog/candor/api/client"
)

// webhookRecorder is a webhook that refuses its first fail requests, then
// records the alerts it is sent.
type webhookRecorder struct {
	mu     sync.Mutex
	fail   int
	alerts []map[string]any
}

func (w *webhookRecorder) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail > 0 {
		w.fail--
		http.Error(rw, "not now", http.StatusServiceUnavailable)
		return
	}
	var a map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &a); err != nil || r.Header.Get("Content-Type") != "application/json" {
		http.Error(rw, "bad alert", http.StatusBadRequest)
		return
	}
	w.alerts = append(w.alerts, a)
}

func (w *webhookRecorder) ids() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for _, a := range w.alerts {
		ids = append(ids, a["id"].(string))
	}
	return ids
}

// alertLines returns the ALERT and FAULT lines of a monitor's stderr.
func alertLines(stderr string) []string {
	var out []string
	for _, l := range lines(stderr) {
		if strings.HasPrefix(l, "ALERT ") || strings.HasPrefix(l, "FAULT ") {
			out = append(out, l)
		}
	}
	return out
}

// TestMonitor follows a real log with candor monitor --once: it alerts on
// exactly the entries the watch list names (checked against the log's
// own entries), to stderr and to a webhook that fails at first, exits 3,
// and on the next run alerts only on the new entries.
func TestMonitor(t *testing.T) {
	logURL, vkey := newTestLog(t, nil)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy", []byte("log "+vkey+"\nquorum none\n"))
	ctx := context.Background()
	c := logclient.New(logURL, nil)
	var signers []*apitest.BuildSigner
	for i := range 3 {
		signers = append(signers, apitest.NewBuildSignerFromSeed(fmt.Appendf(nil, "monitor %d", i)))
	}
	watched := signers[1]
	digest := strings.Repeat("ab", 32)
	// submit adds n build entries by the signers in turn, each about a
	// digest of its own but every seventh about the watched digest, and
	// returns the index and rule of each entry the watch list names.
	var next int
	submit := func(n int) map[uint64][]string {
		want := map[uint64][]string{}
		for range n {
			i := next
			next++
			s := signers[i%len(signers)]
			d := fmt.Sprintf("%064x", i)
			if i%7 == 0 {
				d = digest
			}
			sub, err := c.Submit(ctx, s.Submission(fmt.Sprintf("artifact-%d", i), d))
			if err != nil {
				t.Fatal(err)
			}
			if s == watched {
				want[sub.Index] = append(want[sub.Index], "key "+watched.KeyFingerprint())
			}
			if d == digest {
				want[sub.Index] = append(want[sub.Index], "digest sha256:"+digest)
			}
		}
		return want
	}
	want := submit(600)
	watch := writeFile(t, dir, "watch", fmt.Appendf(nil, "# the release key\nkey %s\n\ndigest sha256:%s\n", strings.ToUpper(watched.KeyFingerprint()[:1])+watched.KeyFingerprint()[1:], strings.ToUpper(digest)))
	hook := &webhookRecorder{fail: 2}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	state := filepath.Join(dir, "monitor.state")
	args := []string{"--log", logURL, "--policy", policy, "--state", state, "--watch", watch, "--webhook", hookSrv.URL, "--once"}

	check := func(code int, stderr string, want map[uint64][]string) {
		t.Helper()
		if len(want) == 0 {
			if code != 0 {
				t.Fatalf("candor monitor found nothing to alert on: exit %d, want 0\n%s", code, stderr)
			}
		} else if code != exitAlerts {
			t.Fatalf("candor monitor: exit %d, want %d\n%s", code, exitAlerts, stderr)
		}
		got := alertLines(stderr)
		n := 0
		for idx, rules := range want {
			for _, r := range rules {
				n++
				if !slices.ContainsFunc(got, func(l string) bool {
					return strings.Contains(l, fmt.Sprintf(" index %d matches %q:", idx, r))
				}) {
					t.Fatalf("no alert of entry %d by %q in\n%s", idx, r, stderr)
				}
			}
		}
		if len(got) != n {
			t.Fatalf("%d alert lines, want %d:\n%s", len(got), n, strings.Join(got, "\n"))
		}
	}
	code, _, stderr := runCandor(t, append([]string{"monitor"}, args...)...)
	check(code, stderr, want)
	ids := hook.ids()
	if len(ids) != len(alertLines(stderr)) {
		t.Fatalf("the webhook got %d alerts, stderr %d", len(ids), len(alertLines(stderr)))
	}
	if !strings.Contains(ids[0], "example.com/bench-test/") {
		t.Fatalf("alert id %q does not name the log", ids[0])
	}

	// Nothing new: nothing again.
	code, _, stderr = runCandor(t, append([]string{"monitor"}, args...)...)
	check(code, stderr, nil)
	// New entries: only they.
	more := submit(300)
	code, _, stderr = runCandor(t, append([]string{"monitor"}, args...)...)
	check(code, stderr, more)
	if got := len(hook.ids()); got != len(ids)+len(alertLines(stderr)) {
		t.Fatalf("the webhook got %d alerts in all, want %d", got, len(ids)+len(alertLines(stderr)))
	}

	// The state keeps the verified checkpoint where candor checkpoint
	// reads it too.
	if code, out, errOut := runCandor(t, "checkpoint", "--log", logURL, "--policy", policy, "--state", state); code != 0 {
		t.Fatalf("candor checkpoint with the monitor's state: exit %d\n%s%s", code, out, errOut)
	}
	code, _, stderr = runCandor(t, append([]string{"monitor"}, args...)...)
	check(code, stderr, nil)
}

// TestMonitorTreeOnly checks --audit=false without a watch list: the tree
// is checked, and nothing is alerted.
func TestMonitorTreeOnly(t *testing.T) {
	logURL, vkey := newTestLog(t, nil)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy", []byte("log "+vkey+"\nquorum none\n"))
	c := logclient.New(logURL, nil)
	s := apitest.NewBuildSigner()
	for i := range 300 {
		if _, err := c.Submit(context.Background(), s.Submission(fmt.Sprintf("a%d", i), fmt.Sprintf("%064x", i))); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "state")
	code, _, stderr := runCandor(t, "monitor", "--log", logURL, "--policy", policy, "--state", state, "--once", "--audit=false")
	if code != 0 || len(alertLines(stderr)) != 0 {
		t.Fatalf("candor monitor --audit=false: exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(state)
	var f struct {
		Monitor map[string]monitorState `json:"monitor"`
	}
	if err != nil || json.Unmarshal(b, &f) != nil || f.Monitor["example.com/bench-test"].Next != 300 {
		t.Fatalf("state after the scan: %s, %v", b, err)
	}
}

// TestMonitorUsage checks the refusals of candor monitor's flags.
func TestMonitorUsage(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "watch", []byte("colour blue\n"))
	for _, args := range [][]string{
		{},
		{"--log", "http://127.0.0.1:1", "--policy", "p"},
		{"--log", "http://127.0.0.1:1", "--policy", "p", "--state", "s", "--interval", "0s"},
	} {
		if code, _, _ := runCandor(t, append([]string{"monitor"}, args...)...); code != 2 {
			t.Errorf("candor monitor %q: exit %d, want 2", args, code)
		}
	}
	code, _, stderr := runCandor(t, "monitor", "--log", "http://127.0.0.1:1", "--policy", "p", "--state", filepath.Join(dir, "s"), "--watch", bad)
	if code != 1 || !strings.Contains(stderr, `unknown rule "colour"`) {
		t.Fatalf("a bad watch list: exit %d\n%s", code, stderr)
	}
}
