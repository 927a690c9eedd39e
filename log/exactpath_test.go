package log_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/candorlog/candor/log"
)

// rawRequest sends method and target on a new connection to addr, as they
// are (a client would clean and escape them), and returns the reply and
// its body.
func rawRequest(t testing.TB, addr, method, target string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", method, target, addr); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp, body
}

// TestHTTPExactPaths checks that every path is served under one spelling
// only: what exists at a path is not found under an escaped or unclean
// spelling of it (no redirect either), and that a known path with another
// method gets 405 with Allow, in JSON.
func TestHTTPExactPaths(t *testing.T) {
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	var entries [][]byte
	h.grow(t, &entries, 300)
	h.checkpoint(t)
	addr := h.srv.Listener.Addr().String()

	for _, target := range []string{"/checkpoint", "/tile/0/000", "/tile/0/001.p/44", "/tile/entries/000", "/tile/entries/001.p/44",
		"/tile/1/000.p/1", "/v1/entries/1", "/v1/proof/inclusion?index=1", "/healthz"} {
		if resp, body := rawRequest(t, addr, "GET", target); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %q", target, resp.StatusCode, body)
		}
	}
	for _, target := range []string{
		"/tile/0/%30%30%30", "/tile/0/00%30", "/tile/%30/000", "/tile%2F0/000", "/%74ile/0/000",
		"/tile//0/000", "//tile/0/000", "/tile/./0/000", "/tile/0/x000/../000", "/tile/1/../0/000",
		"/tile/0/001.p/%34%34", "/tile/0/001%2Ep/44", "/tile/entries/%30%30%30", "/tile/entries/./000",
		"/%63heckpoint", "/./checkpoint", "/checkpoint/.", "/v1/entries/%31", "/v1//entries/1",
		"/v1/proof/%69nclusion?index=1", "/%68ealthz",
	} {
		resp, body := rawRequest(t, addr, "GET", target)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %q, want 404", target, resp.StatusCode, body)
			continue
		}
		checkError(t, "GET "+target, resp.StatusCode, resp.Header, body)
	}

	for _, tc := range []struct{ method, target, allow string }{
		{"POST", "/checkpoint", "GET, HEAD"},
		{"PUT", "/tile/0/000", "GET, HEAD"},
		{"DELETE", "/tile/entries/000", "GET, HEAD"},
		{"GET", "/v1/entries", "POST"},
		{"PUT", "/v1/entries", "POST"},
		{"POST", "/v1/entries/1", "GET, HEAD"},
		{"POST", "/v1/proof/inclusion?index=1", "GET, HEAD"},
		{"POST", "/v1/proof/consistency?old=1", "GET, HEAD"},
		{"POST", "/healthz", "GET, HEAD"},
		{"OPTIONS", "/readyz", "GET, HEAD"},
	} {
		what := tc.method + " " + tc.target
		resp, body := rawRequest(t, addr, tc.method, tc.target)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s: %d, Allow %q, want 405 with Allow %q: %q", what, resp.StatusCode, resp.Header.Get("Allow"), tc.allow, body)
			continue
		}
		checkError(t, what, resp.StatusCode, resp.Header, body)
	}
	if resp, _ := rawRequest(t, addr, "HEAD", "/tile/0/000"); resp.StatusCode != http.StatusOK || resp.ContentLength != 8192 {
		t.Errorf("HEAD /tile/0/000: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
}
