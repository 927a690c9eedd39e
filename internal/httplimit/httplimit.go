// Package httplimit bounds what one client can hold of a Candor server's
// submission endpoints (the log's POST /v1/entries, the witness's
// /add-checkpoint and /v1/gossip/checkpoint): the requests in flight from
// one client address (Limiter), and the time and the size of a request
// body (ReadBody). A body that is too large, too slow or cut short is the
// client's fault: its errors wrap ErrTooLarge (413), ErrTooSlow (408) or
// ErrIncomplete (400), for the server's status switch, never a 500.
//
// A server takes its own slots for expensive work only once ReadBody has
// returned, so that clients that send a body slowly hold a connection and
// one of their own address's places in the Limiter, but none of the work
// slots that other clients need.
package httplimit

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

var (
	// ErrTooLarge is wrapped by ReadBody's error for a body over its limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrTooSlow is wrapped by ReadBody's error for a body that was not
	// read within its timeout.
	ErrTooSlow = errors.New("request body too slow")
	// ErrIncomplete is wrapped by ReadBody's error for a body that ended
	// before its length, or that is malformed (bad chunked encoding).
	ErrIncomplete = errors.New("request body incomplete")
	// ErrTooManyFromClient is wrapped by Limiter.Acquire's error.
	ErrTooManyFromClient = errors.New("too many requests in flight from this client address")
)

// ReadBody reads r's body, which must be at most limit bytes, within
// timeout from now (no timeout if timeout is 0, or if w cannot set read
// deadlines, as httptest.ResponseRecorder). The deadline is the
// connection's read deadline, set with http.ResponseController, and is
// lifted once the body is read, so that the server does not cancel the
// request's context while its handler works. The error wraps ErrTooLarge,
// ErrTooSlow or ErrIncomplete.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) ([]byte, error) {
	rc := http.NewResponseController(w)
	deadline := false
	if timeout > 0 {
		switch err := rc.SetReadDeadline(time.Now().Add(timeout)); {
		case err == nil:
			deadline = true
		case !errors.Is(err, http.ErrNotSupported):
			return nil, fmt.Errorf("couldn't set the body's read deadline: %w", err)
		}
	}
	body, err := read(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
	case errors.As(err, &tooBig):
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("%w: %d bytes in %v", ErrTooSlow, len(body), timeout)
	default:
		return nil, fmt.Errorf("%w after %d bytes: %v", ErrIncomplete, len(body), err)
	}
	if deadline {
		if err := rc.SetReadDeadline(time.Time{}); err != nil {
			return nil, fmt.Errorf("couldn't lift the body's read deadline: %w", err)
		}
	}
	return body, nil
}

// read reads body, which is at most limit bytes and, if size is not -1,
// size bytes, into one buffer allocated once. It returns what it read with
// its error.
func read(body io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size > limit {
		size = 512
	}
	// One byte more, so that the read that finds the end needs no room.
	b := make([]byte, 0, size+1)
	for {
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = slices.Grow(b, len(b))
		}
	}
}

// Limiter bounds the requests in flight per client address: an IPv4
// address, or the /64 prefix of an IPv6 one (what one host is usually
// given). Behind a reverse proxy every client has the proxy's address.
// It is safe for concurrent use.
type Limiter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Prefix]int
}

// NewLimiter returns a Limiter of max requests per client address.
func NewLimiter(max int) *Limiter {
	return &Limiter{max: max, n: make(map[netip.Prefix]int)}
}

// Acquire takes a place for r's client address, to be given back with
// release once the request is handled. If the address has all its places,
// it returns an error wrapping ErrTooManyFromClient, and marks the reply
// to close the connection without reading the body, which the client may
// still be sending slowly.
func (l *Limiter) Acquire(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	key := clientPrefix(r.RemoteAddr)
	l.mu.Lock()
	if l.n[key] >= l.max {
		l.mu.Unlock()
		w.Header().Set("Connection", "close")
		// The server would read what is left of the body before the
		// connection closes.
		http.NewResponseController(w).SetReadDeadline(time.Now())
		return nil, fmt.Errorf("%w: %d from %s", ErrTooManyFromClient, l.max, key)
	}
	l.n[key]++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.n[key]--; l.n[key] == 0 {
				delete(l.n, key)
			}
		})
	}, nil
}

// clientPrefix returns the address of a request's RemoteAddr, or its /64
// for IPv6; the zero Prefix if it is no IP address.
func clientPrefix(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap().WithZone("")
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
