package log_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/log"
)

// syncBuffer is a bytes.Buffer safe for the handler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// clientErrors returns candor_http_client_errors_total by reason.
func clientErrors(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "candor_http_client_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return got
}

// TestHTTPClientErrorsCounted: requests refused with a 4xx are counted by
// reason, every reason present at zero from the start, and logged at
// debug level with the reason.
func TestHTTPClientErrorsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{Registerer: reg, Logger: logger})
	before := clientErrors(t, reg)
	for _, r := range []string{"too-large", "bad-entry", "unknown-kind", "bad-tile-path", "bad-request", "out-of-range", "not-found", "too-many-requests", "other"} {
		if v, ok := before[r]; !ok || v != 0 {
			t.Errorf("at start candor_http_client_errors_total{reason=%q} is %v (present %v), want 0", r, v, ok)
		}
	}
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/v1/entries", `{"kind": "nosuch"}`},
		{"POST", "/v1/entries", `{`},
		{"GET", "/tile/0/x1", ""},
		{"GET", "/v1/entries/99", ""},
		{"GET", "/nowhere", ""},
	} {
		r, err := http.NewRequest(req.method, h.srv.URL+req.path, strings.NewReader(req.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := h.srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s: %s, want a 4xx", req.method, req.path, resp.Status)
		}
	}
	got := clientErrors(t, reg)
	var total float64
	for _, v := range got {
		total += v
	}
	if total != 5 || got["unknown-kind"] != 1 || got["bad-tile-path"] != 1 || got["out-of-range"]+got["not-found"] != 2 {
		t.Errorf("candor_http_client_errors_total = %v, want 5 refusals by their reasons", got)
	}
	out := logs.String()
	if n := strings.Count(out, `msg="request refused"`); n != 5 || !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "reason=unknown-kind") {
		t.Errorf("%d debug lines for 5 refusals:\n%s", n, out)
	}
}

// TestHTTPDurationBuckets: the latency histogram's buckets reach past
// WitnessWait, which a submission may wait.
func TestHTTPDurationBuckets(t *testing.T) {
	for _, wait := range []time.Duration{0, 5 * time.Second, 2 * time.Minute} {
		reg := prometheus.NewRegistry()
		h := newHTTPLog(t, log.Config{}, log.HandlerOptions{Registerer: reg, WitnessWait: wait})
		resp, err := h.srv.Client().Get(h.srv.URL + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var top float64
		for _, mf := range mfs {
			if mf.GetName() == "candor_http_request_duration_seconds" {
				bs := mf.GetMetric()[0].GetHistogram().GetBucket()
				top = bs[len(bs)-1].GetUpperBound()
			}
		}
		if top < 2*wait.Seconds() || top < 30 {
			t.Errorf("witnessWait %v: the largest bucket is %vs, want at least twice the wait and 30s", wait, top)
		}
	}
}
