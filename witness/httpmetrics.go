package witness

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/httpmetrics"
)

// The reasons of candor_witness_http_client_errors_total: why a request
// got a 4xx reply.
var clientErrorReasons = []string{"conflict", "unknown-log", "not-signed", "untrusted", "bad-request",
	"inconsistent", "misbehaved", "too-large", "other"}

// clientErrorReason names why err, whose status is a 4xx, was refused.
func clientErrorReason(err error) string {
	var conflict *ConflictError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &conflict):
		return "conflict"
	case errors.Is(err, ErrUnknownLog):
		return "unknown-log"
	case errors.Is(err, ErrNotSigned):
		return "not-signed"
	case errors.Is(err, ErrUntrusted):
		return "untrusted"
	case errors.Is(err, ErrBadRequest), errors.Is(err, api.ErrInvalidAddCheckpoint), errors.Is(err, api.ErrInvalidEvidence):
		return "bad-request"
	case errors.Is(err, ErrInconsistent):
		return "inconsistent"
	case errors.Is(err, ErrMisbehaved):
		return "misbehaved"
	case errors.As(err, &tooBig):
		return "too-large"
	default:
		return "other"
	}
}

// httpMetrics are the witness's HTTP metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec   // by handler and code
	duration *prometheus.HistogramVec // by handler
	rejected *prometheus.CounterVec   // 4xx by reason
}

// The handlers of the witness's HTTP metrics.
var httpHandlers = []string{"add-checkpoint", "add-evidence", "checkpoint", "evidence", "gossip", "healthz", "readyz"}

func newHTTPMetrics() *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_http_requests_total",
			Help: "HTTP requests by handler and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "candor_witness_http_request_duration_seconds",
			Help: "HTTP request latency by handler.",
			// From 100µs to 52s: an add-checkpoint that reads a log's
			// tiles may take seconds.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 20),
		}, []string{"handler"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_http_client_errors_total",
			Help: "HTTP requests refused with a 4xx status, by reason.",
		}, []string{"reason"}),
	}
	for _, h := range httpHandlers {
		m.requests.WithLabelValues(h, "200")
		m.requests.WithLabelValues(h, "500")
		m.duration.WithLabelValues(h)
	}
	for _, r := range clientErrorReasons {
		m.rejected.WithLabelValues(r)
	}
	return m
}

func (m *httpMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.rejected} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// instrument counts f's requests under the handler label name, by status
// code, and observes their durations.
func (m *httpMetrics) instrument(name string, f http.HandlerFunc) http.HandlerFunc {
	return httpmetrics.Instrument(m.requests, m.duration.WithLabelValues(name), name, f)
}
