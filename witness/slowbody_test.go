package witness_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// watchedServer serves h over HTTP, and reports on reading when a
// handler first reads a request body and on done when a handler returns.
type watchedServer struct {
	*httptest.Server
	reading, done chan struct{}
}

func newWatchedServer(t *testing.T, h http.Handler) *watchedServer {
	t.Helper()
	s := &watchedServer{reading: make(chan struct{}, 64), done: make(chan struct{}, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { s.done <- struct{}{} }()
		r2 := r.WithContext(r.Context())
		r2.Body = &watchedBody{ReadCloser: r.Body, reading: s.reading}
		h.ServeHTTP(w, r2)
	}))
	t.Cleanup(s.Close)
	return s
}

type watchedBody struct {
	io.ReadCloser
	once    sync.Once
	reading chan<- struct{}
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.once.Do(func() { b.reading <- struct{}{} })
	return b.ReadCloser.Read(p)
}

// slowPost connects to s from the address from, and sends the headers of
// a POST to path of 1000 bytes and its first byte.
func slowPost(t *testing.T, s *httptest.Server, from, path string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: witness\r\nContent-Length: 1000\r\n\r\no", path); err != nil {
		t.Fatal(err)
	}
	return c
}

func readReply(t *testing.T, c net.Conn) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestHTTPSlowBodies: on add-checkpoint and gossip, clients that send
// headers and one byte of a body get 400 when they hang up and 408 when
// the body does not come in time, and more of them from one address than
// its limit get 429 at once while other addresses are served. None of it
// is logged as an error: each is a debug line.
func TestHTTPSlowBodies(t *testing.T) {
	logs := new(syncBuffer)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := newTestLog("example.com/log")
	state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { state.Close() })
	cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier}}, State: state, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(o witness.HandlerOptions) *watchedServer {
		t.Helper()
		o.Logger = logger
		h, err := witness.NewHandler(w, o)
		if err != nil {
			t.Fatal(err)
		}
		return newWatchedServer(t, h)
	}
	paths := []string{"/add-checkpoint", "/v1/gossip/checkpoint"}

	s := serve(witness.HandlerOptions{BodyTimeout: time.Minute})
	for _, path := range paths {
		c := slowPost(t, s.Server, "127.0.0.1", path)
		<-s.reading
		c.Close()
		<-s.done
	}
	if got := strings.Count(logs.String(), "code=400"); got != len(paths) {
		t.Errorf("%d debug lines with code=400 for the bodies cut short, want %d:\n%s", got, len(paths), logs)
	}

	s = serve(witness.HandlerOptions{BodyTimeout: 100 * time.Millisecond})
	for _, path := range paths {
		if resp, body := readReply(t, slowPost(t, s.Server, "127.0.0.1", path)); resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("a slow body to %s: %d %q, want 408", path, resp.StatusCode, body)
		}
	}

	s = serve(witness.HandlerOptions{MaxInFlightPerClient: 2, BodyTimeout: time.Minute})
	for _, path := range paths {
		slowPost(t, s.Server, "127.0.0.2", path)
	}
	<-s.reading
	<-s.reading
	for _, path := range paths {
		if resp, body := readReply(t, slowPost(t, s.Server, "127.0.0.2", path)); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("a third slow client from one address to %s: %d %q, want 429", path, resp.StatusCode, body)
		}
	}
	tr := newTree(t, 10, 10, "")
	cp := l.checkpoint(t, tr, 10)
	tw := &testWitness{url: s.URL, vkey: cosigner.VerifierKey(), verifier: cosigner.Verifier()}
	checkCosigned(t, tw, l, cp, post(t, s.URL, addBody(0, nil, cp)))

	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
	for _, want := range []string{"code=408", "code=429"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no debug line with %s:\n%s", want, logs)
		}
	}
}
