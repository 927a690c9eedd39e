package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
)

const (
	// startTimeout bounds how long a server may take to print its address.
	startTimeout = 30 * time.Second
	// stopTimeout bounds how long a server may take to exit after SIGTERM.
	stopTimeout = 20 * time.Second
	// requestTimeout bounds every HTTP request of the tests.
	requestTimeout = 15 * time.Second
	// stderrTail is how much of a server's stderr is kept for the test log.
	stderrTail = 64 << 10
)

// tailBuffer is an io.Writer, safe for concurrent use, that keeps the last
// max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	b       []byte
	dropped int
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.dropped += over
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dropped > 0 {
		return fmt.Sprintf("[... %d bytes dropped ...]\n%s", w.dropped, w.b)
	}
	return string(w.b)
}

// process is a candor-log run: a server or a one-shot command.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *tailBuffer
	stderr *tailBuffer
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's result, set before exited is closed
	// stopping is set before the test stops the process on purpose.
	stopping atomic.Bool
	// quiet keeps its output out of the log of a failed test.
	quiet atomic.Bool
}

// startProcess runs candor-log with args and makes sure it is killed, and
// its stderr logged if the test failed, when the test ends.
func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p, err := launch(t, name, append([]string{candorLog}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// launch runs argv, its output kept, as the process name, and makes sure
// it is killed when the test ends, its output logged if the test failed.
func launch(t *testing.T, name string, argv []string) (*process, error) {
	t.Helper()
	p := &process{
		name:   name,
		cmd:    exec.Command(argv[0], argv[1:]...),
		stdout: &tailBuffer{max: stderrTail},
		stderr: &tailBuffer{max: stderrTail},
		exited: make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.SysProcAttr = p.stdout, p.stderr, procAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("couldn't start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.done() {
			p.stopping.Store(true)
			p.cmd.Process.Kill()
			<-p.exited
		}
		p.checkRace(t)
		if t.Failed() && !p.quiet.Load() {
			t.Logf("%s %s\nstdout:\n%s\nstderr:\n%s", name, strings.Join(argv[1:], " "), p.stdout, p.stderr)
		}
	})
	return p, nil
}

func (p *process) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to exit and returns whether it did
// and its exit error.
func (p *process) wait(d time.Duration) (bool, error) {
	select {
	case <-p.exited:
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// checkRace fails the test if the (race-enabled) binary reported a race.
func (p *process) checkRace(t *testing.T) {
	t.Helper()
	if s := p.stderr.String(); strings.Contains(s, "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race:\n%s", p.name, s)
	}
}

// server is a running candor-log server.
type server struct {
	*process
	url      string // "http://127.0.0.1:port"
	vkey     string
	verifier note.Verifier
	client   *http.Client
	upAfter  time.Duration // from exec to the "listening" line
}

// startServer runs `candor-log --data data --listen 127.0.0.1:0 args...`
// and waits until it prints its address. It returns an error, with the
// server's stderr, if the server exits or stays silent instead.
func startServer(t *testing.T, name, data string, args ...string) (*server, error) {
	t.Helper()
	return startServerQuiet(t, name, data, false, args...)
}

// startServerQuiet is startServer, keeping the server's output out of the
// log of a failed test if quiet.
func startServerQuiet(t *testing.T, name, data string, quiet bool, args ...string) (*server, error) {
	t.Helper()
	args = append(append([]string{"--data", data, "--listen", "127.0.0.1:0"}, storageArgs(t, data)...), args...)
	start := time.Now()
	p := startProcess(t, name, args...)
	p.quiet.Store(quiet)
	deadline := start.Add(startTimeout)
	for {
		out := p.stdout.String()
		vkey, okKey := lineValue(out, "candor-log: verifier key ")
		addr, okAddr := lineValue(out, "candor-log: listening on ")
		if okKey && okAddr {
			v, err := note.NewVerifier(vkey)
			if err != nil {
				return nil, fmt.Errorf("%s printed a bad verifier key %q: %v", name, vkey, err)
			}
			s := &server{process: p, url: addr, vkey: vkey, verifier: v, client: newClient(), upAfter: time.Since(start)}
			t.Cleanup(s.client.CloseIdleConnections)
			return s, nil
		}
		if ok, err := p.wait(10 * time.Millisecond); ok {
			return nil, fmt.Errorf("%s exited before listening (%v); stderr:\n%s", name, err, p.stderr)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s printed no address within %s; stdout:\n%s\nstderr:\n%s", name, startTimeout, out, p.stderr)
		}
	}
}

func mustStartServer(t *testing.T, name, data string, args ...string) *server {
	t.Helper()
	s, err := startServer(t, name, data, args...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lineValue returns the rest of the first complete line of out that starts
// with prefix.
func lineValue(out, prefix string) (string, bool) {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(line, prefix); ok && strings.HasSuffix(v, "\n") {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func newClient() *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// kill9 sends SIGKILL and waits for the process to die.
func (s *server) kill9(t *testing.T) {
	t.Helper()
	s.stopping.Store(true)
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil && !s.done() {
		t.Fatalf("couldn't kill %s: %v", s.name, err)
	}
	if ok, _ := s.wait(stopTimeout); !ok {
		t.Fatalf("%s still running %s after SIGKILL", s.name, stopTimeout)
	}
	s.client.CloseIdleConnections()
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.stopping.Store(true)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !s.done() {
		t.Fatalf("couldn't stop %s: %v", s.name, err)
	}
	ok, err := s.wait(stopTimeout)
	if !ok {
		t.Fatalf("%s still running %s after SIGTERM", s.name, stopTimeout)
	}
	if err != nil {
		t.Errorf("%s exited with %v after SIGTERM; stderr:\n%s", s.name, err, s.stderr)
	}
	s.client.CloseIdleConnections()
	s.checkRace(t)
}

// do sends a request and returns the status and the whole body.
func (s *server) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, nil, fmt.Errorf("couldn't read the body of %s %s: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// getJSON GETs path, expects 200 and decodes the JSON body into v.
func (s *server) getJSON(ctx context.Context, path string, v any) error {
	code, _, b, err := s.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: couldn't decode %q: %w", path, b, err)
	}
	return nil
}

// submit POSTs a submission to /v1/entries. For 200 and 201 it decodes the
// reply into resp; for other codes body holds the raw reply.
func (s *server) submit(ctx context.Context, sub []byte) (code int, resp api.AddEntryResponse, body []byte, err error) {
	code, _, body, err = s.do(ctx, http.MethodPost, "/v1/entries", sub, nil)
	if err != nil {
		return code, resp, body, err
	}
	if code == http.StatusOK || code == http.StatusCreated {
		if err := json.Unmarshal(body, &resp); err != nil {
			return code, resp, body, fmt.Errorf("POST /v1/entries: %d with undecodable body %q: %w", code, body, err)
		}
	}
	return code, resp, body, nil
}

// checkpoint GETs /checkpoint and opens it with the server's verifier key.
func (s *server) checkpoint(ctx context.Context, origin string) ([]byte, api.Checkpoint, error) {
	code, _, b, err := s.do(ctx, http.MethodGet, "/checkpoint", nil, nil)
	if err != nil {
		return nil, api.Checkpoint{}, err
	}
	if code != http.StatusOK {
		return nil, api.Checkpoint{}, fmt.Errorf("GET /checkpoint: %d %s", code, bytes.TrimSpace(b))
	}
	c, _, err := api.OpenCheckpoint(b, origin, s.verifier)
	if err != nil {
		return b, api.Checkpoint{}, fmt.Errorf("GET /checkpoint: %w\n%s", err, b)
	}
	return b, c, nil
}

func (s *server) mustCheckpoint(t *testing.T, origin string) ([]byte, api.Checkpoint) {
	t.Helper()
	b, c, err := s.checkpoint(context.Background(), origin)
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}

// runFsck runs `candor-log fsck --data data` to completion and returns its
// stdout and stderr and its exit error.
func runFsck(t *testing.T, data string) (stdout, stderr string, err error) {
	t.Helper()
	p := startProcess(t, "candor-log fsck", "fsck", "--data", data)
	ok, err := p.wait(2 * time.Minute)
	if !ok {
		t.Fatalf("candor-log fsck --data %s did not finish within 2m", data)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("candor-log fsck: %v", err)
	}
	return p.stdout.String(), p.stderr.String(), err
}
