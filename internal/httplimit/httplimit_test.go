package httplimit_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/internal/httplimit"
)

// result is what the test handler saw.
type result struct {
	body   []byte
	err    error
	ctxErr error // the request context's error after the body was read
}

// bodyServer serves POST requests whose bodies it reads with ReadBody
// (limit 100 bytes), sending each result on the returned channel and
// answering 204. After a body is read, it waits for the client's signal
// on hold, if the request has the header Hold.
func bodyServer(t *testing.T, timeout time.Duration, hold <-chan struct{}) (*httptest.Server, <-chan result) {
	t.Helper()
	results := make(chan result, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := httplimit.ReadBody(w, r, 100, timeout)
		if err == nil && r.Header.Get("Hold") != "" {
			<-hold
		}
		results <- result{body, err, r.Context().Err()}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, results
}

// send opens a connection to srv, sends a POST with the headers and the
// body as given, and returns the connection.
func send(t *testing.T, srv *httptest.Server, header, body string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: test\r\n%s\r\n%s", header, body); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadBody(t *testing.T) {
	srv, results := bodyServer(t, time.Minute, nil)
	for _, tc := range []struct {
		name, header, body string
		want               error
		close              bool // the client closes after sending
	}{
		{"exact", "Content-Length: 5\r\n", "hello", nil, false},
		{"empty", "Content-Length: 0\r\n", "", nil, false},
		{"limit", "Content-Length: 100\r\n", strings.Repeat("a", 100), nil, false},
		{"chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n", nil, false},
		{"over the limit", "Content-Length: 101\r\n", strings.Repeat("a", 101), httplimit.ErrTooLarge, false},
		{"chunked over the limit", "Transfer-Encoding: chunked\r\n", "65\r\n" + strings.Repeat("a", 101) + "\r\n0\r\n\r\n", httplimit.ErrTooLarge, false},
		{"truncated", "Content-Length: 10\r\n", "hello", httplimit.ErrIncomplete, true},
		{"truncated chunked", "Transfer-Encoding: chunked\r\n", "5\r\nhel", httplimit.ErrIncomplete, true},
		{"bad chunk", "Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n", httplimit.ErrIncomplete, false},
	} {
		c := send(t, srv, tc.header, tc.body)
		if tc.close {
			c.(*net.TCPConn).CloseWrite()
		}
		r := <-results
		if !errors.Is(r.err, tc.want) || tc.want == nil && string(r.body) != strings.TrimSuffix(strings.TrimPrefix(tc.body, "5\r\n"), "\r\n0\r\n\r\n") {
			t.Errorf("%s: %q, %v; want error %v", tc.name, r.body, r.err, tc.want)
		}
	}
}

// TestReadBodySlow checks that a body that does not come within the
// timeout is ErrTooSlow, and that the timeout does not outlive the body:
// a handler that works longer than it after reading the body keeps its
// request's context.
func TestReadBodySlow(t *testing.T) {
	const timeout = 50 * time.Millisecond
	hold := make(chan struct{})
	srv, results := bodyServer(t, timeout, hold)

	send(t, srv, "Content-Length: 10\r\n", "h")
	if r := <-results; !errors.Is(r.err, httplimit.ErrTooSlow) {
		t.Errorf("one byte of ten: %q, %v; want ErrTooSlow", r.body, r.err)
	}

	c := send(t, srv, "Content-Length: 5\r\nHold: 1\r\n", "hello")
	time.Sleep(4 * timeout) // past the body's deadline, after the body is read
	close(hold)
	if r := <-results; r.err != nil || r.ctxErr != nil {
		t.Errorf("a handler that outlived the body's timeout: %v, context %v", r.err, r.ctxErr)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Errorf("reply after a held body: %v, %v", resp, err)
	}
}

// TestLimiter checks that a client address has max places at once, that
// another address has its own, that a refused request is answered at once
// though its body is still coming, and that a released place is free
// again.
func TestLimiter(t *testing.T) {
	l := httplimit.NewLimiter(2)
	entered, released, hold := make(chan struct{}, 8), make(chan struct{}, 8), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := l.Acquire(w, r)
		if err != nil {
			if !errors.Is(err, httplimit.ErrTooManyFromClient) {
				t.Errorf("Acquire: %v", err)
			}
			http.Error(w, err.Error(), http.StatusTooManyRequests)
			return
		}
		defer func() {
			release()
			released <- struct{}{}
		}()
		entered <- struct{}{}
		<-hold
	}))
	t.Cleanup(srv.Close) // after the connections close
	// A request from address from, with one byte of its body of 1000.
	slow := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\nx")
		return c
	}
	status := func(c net.Conn) int {
		t.Helper()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	slow("127.0.0.1")
	slow("127.0.0.1")
	<-entered
	<-entered
	if code := status(slow("127.0.0.1")); code != http.StatusTooManyRequests {
		t.Fatalf("third request from one address: %d, want 429", code)
	}
	slow("127.0.0.2")
	<-entered
	close(hold)
	for range 3 {
		<-released
	}
	slow("127.0.0.1")
	<-entered
}
