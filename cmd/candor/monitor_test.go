package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
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

// TestMonitorKill9 kills candor monitor (a process of its own) with
// SIGKILL three times while it delivers alerts to a slow webhook, then
// lets it finish: every alert reaches stderr and the webhook, none is
// skipped, and an alert is delivered again only if the kill cut its own
// delivery (at most one per kill; the webhook can drop it by its id).
func TestMonitorKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	logURL, vkey := newTestLog(t, nil)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy", []byte("log "+vkey+"\nquorum none\n"))
	c := logclient.New(logURL, nil)
	watched := apitest.NewBuildSignerFromSeed([]byte("kill9 watched"))
	other := apitest.NewBuildSignerFromSeed([]byte("kill9 other"))
	const n = 800
	var wg sync.WaitGroup
	errs := make([]error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		s := other
		if i%8 == 0 {
			s = watched
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, errs[i] = c.Submit(context.Background(), s.Submission(fmt.Sprintf("artifact-%d", i), fmt.Sprintf("%064x", i)))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for i := range uint64(n) {
		e, err := c.Tile(context.Background(), api.Tile{Level: api.EntriesLevel, Index: i / api.TileWidth, Width: int(min(api.TileWidth, n-i/api.TileWidth*api.TileWidth))})
		if err != nil {
			t.Fatal(err)
		}
		entries, err := api.ParseEntryBundle(e)
		if err != nil {
			t.Fatal(err)
		}
		st, err := api.ParseEntry(entries[i%api.TileWidth])
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(st.KeyFingerprints(), watched.KeyFingerprint()) {
			want[fmt.Sprintf("example.com/bench-test/%d/key %s", i, watched.KeyFingerprint())] = true
		}
	}
	hook := &slowWebhook{delay: 15 * time.Millisecond}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	watch := writeFile(t, dir, "watch", []byte("key "+watched.KeyFingerprint()+"\n"))
	state := filepath.Join(dir, "state")
	args := []string{"monitor", "--log", logURL, "--policy", policy, "--state", state, "--watch", watch, "--webhook", hookSrv.URL, "--interval", "100ms"}
	var stderrs []string
	start := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(os.Args[0], append(args, extra...)...)
		cmd.Env = append(os.Environ(), "CANDOR_TEST_RUN_AS_CANDOR=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stderr
	}
	kills := 0
	for range 3 {
		cmd, stderr := start()
		// Kill it while it delivers: after a few more alerts.
		before := hook.count()
		deadline := time.Now().Add(20 * time.Second)
		for hook.count() < before+5+kills*3 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		kills++
		stderrs = append(stderrs, stderr.String())
	}
	cmd, stderr := start("--once")
	err := cmd.Wait()
	stderrs = append(stderrs, stderr.String())
	// 0 if the earlier runs delivered every alert, 3 if it found some.
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != exitAlerts) {
		t.Fatalf("the last run: %v, want exit 0 or %d\n%s", err, exitAlerts, stderr)
	}
	if len(alertLines(stderrs[0])) == 0 || len(alertLines(stderrs[len(stderrs)-1])) >= len(want) {
		t.Fatalf("the kills did not cut the delivery: %d alerts before the first, %d in the last run of %d",
			len(alertLines(stderrs[0])), len(alertLines(stderrs[len(stderrs)-1])), len(want))
	}
	// stderr: every alert, repeats only of cut deliveries.
	printed := map[string]int{}
	for _, s := range stderrs {
		for _, l := range alertLines(s) {
			printed[l]++
		}
	}
	if len(printed) != len(want) {
		t.Fatalf("%d distinct alert lines, want %d", len(printed), len(want))
	}
	repeats := 0
	for _, k := range printed {
		repeats += k - 1
	}
	if repeats > kills {
		t.Fatalf("%d alerts printed again after %d kills", repeats, kills)
	}
	// The webhook: every alert, by id.
	sent := map[string]int{}
	for _, id := range hook.ids() {
		sent[id]++
	}
	for id := range want {
		if sent[id] == 0 {
			t.Fatalf("alert %s never reached the webhook", id)
		}
	}
	if len(sent) != len(want) {
		t.Fatalf("the webhook got %d distinct alerts, want %d", len(sent), len(want))
	}
	repeats = 0
	for _, k := range sent {
		repeats += k - 1
	}
	if repeats > kills {
		t.Fatalf("the webhook got %d repeats after %d kills", repeats, kills)
	}
}

// slowWebhook records alerts, taking delay over each.
type slowWebhook struct {
	webhookRecorder
	delay time.Duration
}

func (w *slowWebhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	time.Sleep(w.delay)
	w.webhookRecorder.ServeHTTP(rw, r)
}

func (w *slowWebhook) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.alerts)
}

// TestMonitorWebhookDown checks that alerts a webhook refused for a whole
// run are kept in the state, and sent (not printed again) by the next
// run once the webhook is back.
func TestMonitorWebhookDown(t *testing.T) {
	logURL, vkey := newTestLog(t, nil)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy", []byte("log "+vkey+"\nquorum none\n"))
	c := logclient.New(logURL, nil)
	s := apitest.NewBuildSigner()
	for i := range 20 {
		if _, err := c.Submit(context.Background(), s.Submission(fmt.Sprintf("a%d", i), fmt.Sprintf("%064x", i))); err != nil {
			t.Fatal(err)
		}
	}
	hook := &webhookRecorder{fail: 1 << 30}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	watch := writeFile(t, dir, "watch", []byte("key "+s.KeyFingerprint()+"\n"))
	args := []string{"monitor", "--log", logURL, "--policy", policy, "--state", filepath.Join(dir, "state"), "--watch", watch, "--webhook", hookSrv.URL, "--once"}
	code, _, stderr := runCandor(t, args...)
	if code != exitAlerts || len(alertLines(stderr)) != 20 || !strings.Contains(stderr, "couldn't send alert") {
		t.Fatalf("with the webhook down: exit %d\n%s", code, stderr)
	}
	hook.mu.Lock()
	hook.fail = 0
	hook.mu.Unlock()
	code, _, stderr = runCandor(t, args...)
	if code != 0 || len(alertLines(stderr)) != 0 {
		t.Fatalf("with the webhook back: exit %d\n%s", code, stderr)
	}
	if got := len(hook.ids()); got != 20 {
		t.Fatalf("the webhook got %d alerts, want 20", got)
	}
}
