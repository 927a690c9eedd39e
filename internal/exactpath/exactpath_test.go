package exactpath_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/candorlog/candor/internal/exactpath"
)

// TestExact reads request lines as a server does and checks which paths
// are exact.
func TestExact(t *testing.T) {
	for _, tc := range []struct {
		target string
		exact  bool
	}{
		{"/", true},
		{"/checkpoint", true},
		{"/tile/0/000", true},
		{"/tile/0/x001/234.p/5", true},
		{"/tile/0/000/", true}, // a final slash is another path, not another spelling
		{"/tile/0/000?a=%30", true},
		{"http://log.example/tile/0/000", true},
		{"/tile/0/%30%30%30", false},
		{"/tile/0/00%30", false},
		{"/tile%2F0/000", false},
		{"/%63heckpoint", false},
		{"/a%20b", false},
		{"/a%25b", false},
		{"//checkpoint", false},
		{"/tile//0/000", false},
		{"/tile/./0/000", false},
		{"/tile/0/x000/../000", false},
		{"/checkpoint/.", false},
		{"*", false},
	} {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + tc.target + " HTTP/1.1\r\nHost: log.example\r\n\r\n")))
		if err != nil {
			t.Fatalf("%s: %v", tc.target, err)
		}
		if got := exactpath.Exact(req); got != tc.exact {
			t.Errorf("Exact(%s) = %v, want %v", tc.target, got, tc.exact)
		}
	}
}

// TestHandler checks that Handler serves an http.ServeMux the exact paths
// only: an escaped spelling is not served as the path, and an unclean one
// is not redirected.
func TestHandler(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tile/0/000", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("tile")) })
	srv := httptest.NewServer(exactpath.Handler(mux, nil))
	defer srv.Close()
	for target, want := range map[string]int{
		"/tile/0/000":         http.StatusOK,
		"/tile/0/%30%30%30":   http.StatusNotFound,
		"/tile//0/000":        http.StatusNotFound,
		"/tile/0/x000/../000": http.StatusNotFound,
	} {
		req, err := http.NewRequest("GET", srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = target // sent as it is
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", target, resp.StatusCode, want)
		}
	}
}
