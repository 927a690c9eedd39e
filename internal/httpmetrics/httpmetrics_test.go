package httpmetrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// count returns the value of the counter c.
func count(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestInstrument(t *testing.T) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total"}, []string{"handler", "code"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "duration_seconds"})
	handlers := map[string]http.HandlerFunc{
		"implicit": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
		"explicit": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) },
		// An informational header before the reply is not the reply's code.
		"early": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			http.Error(w, "no", http.StatusServiceUnavailable)
		},
		// Only the first final code counts.
		"twice": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			w.WriteHeader(http.StatusOK)
		},
	}
	for name, f := range handlers {
		h := Instrument(requests, duration, name, f)
		h(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	for _, want := range []struct{ handler, code string }{
		{"implicit", "200"}, {"explicit", "418"}, {"early", "503"}, {"twice", "404"},
	} {
		if got := count(t, requests.WithLabelValues(want.handler, want.code)); got != 1 {
			t.Errorf("requests{%s,%s} = %v, want 1", want.handler, want.code, got)
		}
	}
	var m dto.Metric
	if err := duration.Write(&m); err != nil || m.GetHistogram().GetSampleCount() != 4 {
		t.Errorf("duration: %d samples (%v), want 4", m.GetHistogram().GetSampleCount(), err)
	}
}
