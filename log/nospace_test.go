package log_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
)

// errLow is what the injected CheckSpace says while the disk is "full".
var errLow = errors.New("3.0 MiB free in /data, below the reserve of 8.0 MiB (minFreeBytes)")

// TestHTTPNoSpace checks that while Config.CheckSpace fails, submissions
// of new entries get 503 with Retry-After and the reason, /readyz says so,
// and reads and duplicates are still served; and that the log takes
// entries again as soon as CheckSpace passes, without a restart.
func TestHTTPNoSpace(t *testing.T) {
	var low atomic.Bool
	h := newHTTPLog(t, log.Config{CheckSpace: func() error {
		if low.Load() {
			return errLow
		}
		return nil
	}}, log.HandlerOptions{})
	signer := apitest.NewBuildSignerFromSeed([]byte("TestHTTPNoSpace"))
	entry := func(i int) []byte {
		d := sha256.Sum256([]byte{byte(i)})
		return signer.Submission(fmt.Sprint("artifact-", i), hex.EncodeToString(d[:]))
	}
	get := func(path string) (int, http.Header, []byte) {
		t.Helper()
		resp, err := h.srv.Client().Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, b
	}
	post := func(body []byte) (int, http.Header, []byte) {
		t.Helper()
		resp, err := h.srv.Client().Post(h.srv.URL+"/v1/entries", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, b
	}
	checkNoSpace := func(what string, code int, hdr http.Header, body []byte) {
		t.Helper()
		if code != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d, want 503: %s", what, code, body)
		}
		if hdr.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", what)
		}
		var e api.ErrorResponse
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("%s: body %q: %v", what, body, err)
		}
		if !strings.Contains(e.Error, "out of disk space") || !strings.Contains(e.Error, errLow.Error()) {
			t.Errorf("%s: reason %q does not say that the disk is full and why", what, e.Error)
		}
	}

	for i := range 3 {
		if code, _, body := post(entry(i)); code != http.StatusCreated {
			t.Fatalf("entry %d: status %d: %s", i, code, body)
		}
	}
	if code, _, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	before, c := h.checkpoint(t)

	low.Store(true)
	code, hdr, body := post(entry(3))
	checkNoSpace("new entry", code, hdr, body)
	code, hdr, body = get("/readyz")
	checkNoSpace("/readyz", code, hdr, body)
	if _, err := h.log.Add(context.Background(), []byte("engine entry")); !errors.Is(err, log.ErrNoSpace) || !errors.Is(err, errLow) {
		t.Fatalf("Add: %v, want ErrNoSpace wrapping the reason", err)
	}
	// Reads and duplicates need no space.
	if code, _, body := post(entry(1)); code != http.StatusOK {
		t.Fatalf("duplicate: status %d, want 200: %s", code, body)
	}
	if code, _, body := get("/v1/entries/2"); code != http.StatusOK {
		t.Fatalf("entry 2: status %d: %s", code, body)
	}
	if code, _, body := get("/v1/proof/inclusion?index=0"); code != http.StatusOK {
		t.Fatalf("inclusion proof: status %d: %s", code, body)
	}
	if code, _, body := get("/tile/entries/000.p/3"); code != http.StatusOK {
		t.Fatalf("entry bundle: status %d: %s", code, body)
	}
	if now, _ := h.checkpoint(t); !bytes.Equal(now, before) {
		t.Fatalf("the checkpoint changed while the disk was full: %q, was %q", now, before)
	}

	low.Store(false)
	if code, _, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after space was freed: %d %s", code, body)
	}
	if code, _, body := post(entry(3)); code != http.StatusCreated {
		t.Fatalf("entry 3 after space was freed: status %d: %s", code, body)
	}
	if _, c2 := h.checkpoint(t); c2.Size != c.Size+1 {
		t.Fatalf("size %d after one more entry, want %d", c2.Size, c.Size+1)
	}
}
