// Package httpmetrics counts a server's HTTP requests by handler and
// status code and observes their latency, for the log and the witness
// alike.
package httpmetrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instrument returns f counting its requests in requests, labelled by
// handler name and status code, and observing their durations in
// duration. requests must have the labels "handler" and "code", in that
// order.
func Instrument(requests *prometheus.CounterVec, duration prometheus.Observer, name string, f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		f(sw, r)
		duration.Observe(time.Since(start).Seconds())
		requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
	}
}

// statusWriter is a ResponseWriter that remembers the status code.
type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written && code >= 200 {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
