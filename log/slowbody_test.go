package log_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
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
// a submission of 1000 bytes and its first byte.
func slowPost(t *testing.T, s *httptest.Server, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "POST /v1/entries HTTP/1.1\r\nHost: log\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	return c
}

// readReply reads the reply on c.
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

// TestHTTPSlowBodies: clients that send a submission's headers and one
// byte of its body hold no submission slot (real submissions still get
// 201), get 408 when the body does not come in time and 400 when they
// hang up, and more of them from one address than its limit get 429 at
// once, while other addresses are served. None of it is logged as an
// error: each is a debug line.
func TestHTTPSlowBodies(t *testing.T) {
	logs := new(syncBuffer)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	signer := apitest.NewBuildSignerFromSeed([]byte("TestHTTPSlowBodies"))
	n := 0
	submit := func(s *httptest.Server) int {
		t.Helper()
		n++
		d := sha256.Sum256(fmt.Append(nil, "slow ", n))
		resp, err := http.Post(s.URL+"/v1/entries", "application/json", bytes.NewReader(signer.Submission(fmt.Sprint("artifact-", n), hex.EncodeToString(d[:]))))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Logf("submission: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode
	}

	// As many slow clients as submission slots, which would have them all.
	const slots = 3
	s := newWatchedServer(t, log.NewHandler(h.log, log.HandlerOptions{MaxInFlight: slots, BodyTimeout: time.Minute, Logger: logger}))
	var slow []net.Conn
	for range slots {
		slow = append(slow, slowPost(t, s.Server, "127.0.0.1"))
	}
	for range slots {
		<-s.reading
	}
	if code := submit(s.Server); code != http.StatusCreated {
		t.Fatalf("a submission while %d slow clients send their bodies: %d, want 201", slots, code)
	}
	for _, c := range slow {
		c.Close()
	}
	for range slots + 1 {
		<-s.done
	}
	if got := strings.Count(logs.String(), "code=400"); got != slots {
		t.Errorf("%d debug lines with code=400 for the bodies cut short, want %d:\n%s", got, slots, logs)
	}

	// A body that does not come in time.
	s = newWatchedServer(t, log.NewHandler(h.log, log.HandlerOptions{BodyTimeout: 100 * time.Millisecond, Logger: logger}))
	resp, body := readReply(t, slowPost(t, s.Server, "127.0.0.1"))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a slow body: %d %s, want 408", resp.StatusCode, body)
	}
	checkError(t, "slow body", resp.StatusCode, resp.Header, body)

	// Two in flight per address.
	s = newWatchedServer(t, log.NewHandler(h.log, log.HandlerOptions{MaxInFlightPerClient: 2, BodyTimeout: time.Minute, Logger: logger}))
	slowPost(t, s.Server, "127.0.0.2")
	slowPost(t, s.Server, "127.0.0.2")
	<-s.reading
	<-s.reading
	resp, body = readReply(t, slowPost(t, s.Server, "127.0.0.2"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a third slow client from one address: %d %s, want 429 with Retry-After", resp.StatusCode, body)
	}
	checkError(t, "third slow client", resp.StatusCode, resp.Header, body)
	if code := submit(s.Server); code != http.StatusCreated {
		t.Errorf("a submission from another address: %d, want 201", code)
	}

	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
	for _, want := range []string{"code=408", "code=429"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no debug line with %s:\n%s", want, logs)
		}
	}
}
