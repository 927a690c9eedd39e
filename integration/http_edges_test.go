package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// rawRequest sends the request line and headers as they are on a new
// connection to addr, then body, and closes the connection after it if
// hangUp; unless it hangs up, it returns the reply.
func rawRequest(t *testing.T, addr, method, target, header, body string, hangUp bool) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n%s", method, target, addr, header, body); err != nil {
		t.Fatal(err)
	}
	if hangUp {
		return nil, ""
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestLogHTTPEdges runs candor-log and checks, through the command's own
// server setup, that an escaped or unclean spelling of a path is not
// found (not served, not redirected), that another method gets 405 with
// Allow, and that a submission body cut short gets 400 and one too slow
// 408, logged at debug level and never as errors.
func TestLogHTTPEdges(t *testing.T) {
	requireBinaries(t)
	srv := mustStartServer(t, "candor-log", t.TempDir(), "--origin", "example.com/log", "--log-level", "debug", "--body-timeout", "300ms")
	u, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	addr := u.Host
	if resp, body := rawRequest(t, addr, "GET", "/checkpoint", "", "", false); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /checkpoint: %d %s", resp.StatusCode, body)
	}
	for _, target := range []string{"/%63heckpoint", "//checkpoint", "/./checkpoint", "/tile/0/%30%30%30", "/tile//0/000", "/v1/../checkpoint"} {
		resp, body := rawRequest(t, addr, "GET", target, "", "", false)
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("GET %s: %d %s, want 404 in JSON", target, resp.StatusCode, body)
		}
	}
	if resp, body := rawRequest(t, addr, "POST", "/checkpoint", "Content-Length: 0\r\n", "", false); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /checkpoint: %d, Allow %q: %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}

	submission := "Content-Type: application/json\r\nContent-Length: 1000\r\n"
	rawRequest(t, addr, "POST", "/v1/entries", submission, "{", true)
	resp, body := rawRequest(t, addr, "POST", "/v1/entries", submission, "{", false)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a slow submission: %d %s, want 408", resp.StatusCode, body)
	}
	// The reply may reach the test before the server's log line is written.
	deadline := time.Now().Add(requestTimeout)
	for s := srv.stderr.String(); !strings.Contains(s, "code=400") || !strings.Contains(s, "code=408"); s = srv.stderr.String() {
		if time.Now().After(deadline) {
			t.Fatalf("no debug lines for the submissions cut short and too slow:\n%s", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := srv.stderr.String(); strings.Contains(s, "level=ERROR") {
		t.Errorf("a refused request was logged as an error:\n%s", s)
	}
}
