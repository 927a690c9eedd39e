package witnessing_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/log/witnessing"
)

// TestReadyzReportsLateWitnesses: the log's /readyz fails while no
// cosigned checkpoint is published within ReadyWait of the newest commit,
// names the failing witnesses, and /readyz?verbose shows each witness;
// once the witnesses are back it is ready again.
func TestReadyzReportsLateWitnesses(t *testing.T) {
	lk := newLogKey()
	w1, w2, w3 := newCandorWitness(t, "w1.test/witness", lk), newCandorWitness(t, "w2.test/witness", lk), newCandorWitness(t, "w3.test/witness", lk)
	tl := newTestLog(t, lk, policyText(lk, w1, w2, w3), func(c *witnessing.Config) {
		c.Timeout = 300 * time.Millisecond
		c.ReadyWait = 200 * time.Millisecond
	})
	tl.waitPublished(0)
	if code, _, body := tl.get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with every witness up: %d %s", code, body)
	}

	// Two of three down: the quorum can't be met.
	w2.mode.Store(down)
	w3.mode.Store(refuse)
	if r := tl.submitPending(); r.code != http.StatusAccepted {
		t.Fatalf("submission with two witnesses down: %d, want 202", r.code)
	}
	var body []byte
	waitFor(t, "/readyz fails", func() bool {
		var code int
		code, _, body = tl.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(string(body), w3.name)
	})
	for _, want := range []string{"no cosigned checkpoint published", w2.name, w3.name} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/readyz body %s does not say %q", body, want)
		}
	}
	if strings.Contains(string(body), w1.name) {
		t.Errorf("/readyz body %s names the witness that works", body)
	}
	code, hdr, vbody := tl.get("/readyz?verbose")
	var s struct {
		Ready      bool
		Error      string
		Witnessing witnessing.Status
	}
	if err := json.Unmarshal(vbody, &s); err != nil || code != http.StatusServiceUnavailable || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/readyz?verbose: %d %s %v", code, vbody, err)
	}
	failing := map[string]bool{}
	for _, w := range s.Witnessing.Witnesses {
		failing[w.Name] = w.Failing
		if w.Failing && (w.LastError == "" || w.Failures == 0) {
			t.Errorf("failing witness %+v says no error", w)
		}
	}
	if s.Ready || s.Error == "" || len(failing) != 3 || failing[w1.name] || !failing[w2.name] || !failing[w3.name] ||
		s.Witnessing.CommittedSize != 1 || s.Witnessing.PublishedSize != 0 || s.Witnessing.LagSeconds <= 0.2 {
		t.Errorf("/readyz?verbose = %+v, want not ready, w2 and w3 failing, size 1 committed and 0 published", s)
	}

	w2.mode.Store(up)
	w3.mode.Store(up)
	tl.waitPublished(1)
	waitFor(t, "/readyz is 200 again", func() bool {
		code, _, _ := tl.get("/readyz")
		return code == http.StatusOK
	})
	code, _, vbody = tl.get("/readyz?verbose")
	if err := json.Unmarshal(vbody, &s); err != nil || code != http.StatusOK || !s.Ready {
		t.Errorf("/readyz?verbose once published: %d %s", code, vbody)
	}
}
