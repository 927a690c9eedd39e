package witness_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// rawRequest sends method and target on a new connection to addr, as they
// are (a client would clean and escape them), with body, and returns the
// reply and its body.
func rawRequest(t testing.TB, addr, method, target, body string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, target, addr, len(body), body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp, b
}

// TestHTTPExactPaths checks that the witness serves each path under one
// spelling only: an escaped or unclean spelling of a path is not found
// (and not redirected), and a known path with another method gets 405
// with Allow.
func TestHTTPExactPaths(t *testing.T) {
	l := newTestLog("example.com/log")
	w := startWitness(t, t.TempDir(), newCosignerKey(t), l)
	tr := newTree(t, 10, 10, "")
	cp := l.checkpoint(t, tr, 10)
	checkCosigned(t, w, l, cp, post(t, w.url, addBody(0, nil, cp)))
	u, err := url.Parse(w.url)
	if err != nil {
		t.Fatal(err)
	}
	addr := u.Host
	cpPath := originPath(l.origin)
	hash := strings.TrimSuffix(strings.TrimPrefix(cpPath, "/"), "/checkpoint")

	for _, target := range []string{cpPath, "/v1/evidence", "/healthz"} {
		if resp, body := rawRequest(t, addr, "GET", target, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %q", target, resp.StatusCode, body)
		}
	}
	escaped := fmt.Sprintf("%%%02x", hash[0]) + hash[1:]
	for _, target := range []string{
		"/" + escaped + "/checkpoint", "/" + hash + "/%63heckpoint", "/" + hash + "%2Fcheckpoint",
		"//" + hash + "/checkpoint", "/" + hash + "//checkpoint", "/./" + hash + "/checkpoint",
		"/x/../" + hash + "/checkpoint", "/v1/%65vidence", "/v1/./evidence", "/%68ealthz",
	} {
		if resp, body := rawRequest(t, addr, "GET", target, ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %q, want 404", target, resp.StatusCode, body)
		}
	}
	add := string(addBody(0, nil, cp))
	for _, target := range []string{"/%61dd-checkpoint", "//add-checkpoint", "/./add-checkpoint", "/v1/gossip/%63heckpoint", "/v1//gossip/checkpoint", "/v1/%65vidence"} {
		if resp, body := rawRequest(t, addr, "POST", target, add); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d %q, want 404", target, resp.StatusCode, body)
		}
	}

	for _, tc := range []struct{ method, target, allow string }{
		{"GET", "/add-checkpoint", "POST"},
		{"PUT", "/add-checkpoint", "POST"},
		{"GET", "/v1/gossip/checkpoint", "POST"},
		{"POST", cpPath, "GET, HEAD"},
		{"DELETE", "/v1/evidence", "GET, HEAD, POST"},
		{"POST", "/healthz", "GET, HEAD"},
	} {
		resp, body := rawRequest(t, addr, tc.method, tc.target, "")
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q, want 405 with Allow %q: %q", tc.method, tc.target, resp.StatusCode, resp.Header.Get("Allow"), tc.allow, body)
		}
	}
}
