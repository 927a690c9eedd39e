// Package httplimittest has the test helpers of slow and abandoned
// request bodies that the log's and the witness's tests share.
package httplimittest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WatchedServer serves a handler over HTTP and reports on Reading when a
// handler first reads a request body and on Done when a handler returns.
type WatchedServer struct {
	*httptest.Server
	Reading, Done chan struct{}
}

// NewWatchedServer starts a WatchedServer of h, closed when t ends.
func NewWatchedServer(t *testing.T, h http.Handler) *WatchedServer {
	t.Helper()
	s := &WatchedServer{Reading: make(chan struct{}, 64), Done: make(chan struct{}, 64)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { s.Done <- struct{}{} }()
		r2 := r.WithContext(r.Context())
		r2.Body = &watchedBody{ReadCloser: r.Body, reading: s.Reading}
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

// SlowPost connects to s from the loopback address from and sends the
// headers of a POST to path with a body of 1000 bytes, and only the body's
// first byte, first. The connection is closed when t ends.
func SlowPost(t *testing.T, s *httptest.Server, from, path string, first byte) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: candor\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n%c", path, first); err != nil {
		t.Fatal(err)
	}
	return c
}

// ReadReply reads the reply on c and its body.
func ReadReply(t *testing.T, c net.Conn) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
