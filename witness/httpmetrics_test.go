package witness_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// metricsWitness serves a witness on state with its metrics in a registry.
func metricsWitness(t *testing.T, state witness.State, skey string, l *testLog) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier}},
		State: state, Logger: quiet, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: quiet, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, reg
}

// metricValues returns the values of the metric name by the value of its
// label, or by "" if it has none.
func metricValues(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					key = lp.GetValue()
				}
			}
			switch {
			case m.GetCounter() != nil:
				got[key] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[key] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return got
}

// TestWitnessMetrics: the witness's HTTP counters and client errors are
// present at zero from the start, requests are counted by handler and 4xx
// by reason, and per log the cosigned size and the time of the last
// cosignature come from its stored state, also after a restart.
func TestWitnessMetrics(t *testing.T) {
	l := newTestLog("example.com/log")
	tr := newTree(t, 20, 20, "")
	dir, skey := t.TempDir(), newCosignerKey(t)
	state, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv, reg := metricsWitness(t, state, skey, l)

	reasons := metricValues(t, reg, "candor_witness_http_client_errors_total", "reason")
	for _, r := range []string{"conflict", "unknown-log", "not-signed", "bad-request", "inconsistent", "misbehaved", "too-large"} {
		if v, ok := reasons[r]; !ok || v != 0 {
			t.Errorf("at start client errors %q = %v (present %v), want 0", r, v, ok)
		}
	}
	handlers := metricValues(t, reg, "candor_witness_http_requests_total", "handler")
	for _, h := range []string{"add-checkpoint", "checkpoint", "readyz"} {
		if v, ok := handlers[h]; !ok || v != 0 {
			t.Errorf("at start requests of %s = %v (present %v), want 0", h, v, ok)
		}
	}
	if v, ok := metricValues(t, reg, "candor_witness_cosigned_size", "origin")[l.origin]; !ok || v != 0 {
		t.Errorf("at start cosigned size %v (present %v), want 0", v, ok)
	}

	if r := get(t, srv.URL+"/readyz"); r.code != http.StatusOK {
		t.Errorf("/readyz: %v, want 200", r)
	}
	before := time.Now().Unix()
	cp := l.checkpoint(t, tr, 12)
	if r := post(t, srv.URL, addBody(0, nil, cp)); r.code != http.StatusOK {
		t.Fatalf("add-checkpoint: %v", r)
	}
	after := time.Now().Unix()
	if r := post(t, srv.URL, addBody(0, nil, cp)); r.code != http.StatusConflict {
		t.Fatalf("add-checkpoint again: %v, want 409", r)
	}
	if r := post(t, srv.URL, []byte("nonsense")); r.code != http.StatusBadRequest {
		t.Fatalf("add-checkpoint of nonsense: %v, want 400", r)
	}
	reasons = metricValues(t, reg, "candor_witness_http_client_errors_total", "reason")
	if reasons["conflict"] != 1 || reasons["bad-request"] != 1 {
		t.Errorf("client errors %v, want one conflict and one bad-request", reasons)
	}
	handlers = metricValues(t, reg, "candor_witness_http_requests_total", "handler")
	if handlers["add-checkpoint"] != 3 || handlers["readyz"] != 1 {
		t.Errorf("requests %v, want 3 add-checkpoint and 1 readyz", handlers)
	}
	if got := metricValues(t, reg, "candor_witness_http_request_duration_seconds", "handler"); got["add-checkpoint"] != 3 {
		t.Errorf("latency observations %v, want 3 add-checkpoint", got)
	}
	checkCosignMetrics := func(reg *prometheus.Registry) {
		t.Helper()
		if got := metricValues(t, reg, "candor_witness_cosigned_size", "origin")[l.origin]; got != 12 {
			t.Errorf("cosigned size %v, want 12", got)
		}
		at := metricValues(t, reg, "candor_witness_last_cosigned_timestamp_seconds", "origin")[l.origin]
		if at < float64(before) || at > float64(after) {
			t.Errorf("last cosignature at %v, want the time of the add-checkpoint, in [%d, %d]", at, before, after)
		}
	}
	checkCosignMetrics(reg)

	// A restarted witness reports what it stored.
	srv.Close()
	if err := state.Close(); err != nil {
		t.Fatal(err)
	}
	state, err = pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	_, reg = metricsWitness(t, state, skey, l)
	checkCosignMetrics(reg)
}

// failingState is a State whose reads fail: a fault injected to see
// /readyz say so.
type failingState struct{ witness.State }

func (failingState) Latest(context.Context, string) ([]byte, error) {
	return nil, errors.New("injected read failure")
}

func TestWitnessReadyz(t *testing.T) {
	l := newTestLog("example.com/log")
	state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	srv, _ := metricsWitness(t, failingState{state}, newCosignerKey(t), l)
	if r := get(t, srv.URL+"/readyz"); r.code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a state that can't be read: %v, want 503", r)
	}
	srv, _ = metricsWitness(t, state, newCosignerKey(t), l)
	if r := get(t, srv.URL+"/readyz"); r.code != http.StatusOK || string(r.body) != "ready\n" {
		t.Errorf("/readyz: %v, want 200 ready", r)
	}
}
