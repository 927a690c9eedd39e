package log

import (
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
)

// The reasons of candor_http_client_errors_total: why a request got a 4xx
// reply.
const (
	reasonTooLarge      = "too-large"
	reasonEncoding      = "encoding"
	reasonBadEntry      = "bad-entry"
	reasonUnknownKind   = "unknown-kind"
	reasonBadTilePath   = "bad-tile-path"
	reasonBadRequest    = "bad-request"
	reasonBadSearch     = "bad-search"
	reasonOutOfRange    = "out-of-range"
	reasonNotWitnessed  = "not-witnessed"
	reasonNotFound      = "not-found"
	reasonTooMany       = "too-many-requests"
	reasonOtherRejected = "other"
)

var clientErrorReasons = []string{reasonTooLarge, reasonEncoding, reasonBadEntry, reasonUnknownKind, reasonBadTilePath,
	reasonBadRequest, reasonBadSearch, reasonOutOfRange, reasonNotWitnessed, reasonNotFound, reasonTooMany, reasonOtherRejected}

// clientErrorReason names why err, whose status is a 4xx, was refused.
func clientErrorReason(err error) string {
	var tooBig *http.MaxBytesError
	var bad *api.EntryError
	switch {
	case errors.As(err, &tooBig), errors.Is(err, api.ErrEntryTooLarge):
		return reasonTooLarge
	case errors.Is(err, errUnsupportedEncoding):
		return reasonEncoding
	case errors.As(err, &bad):
		return reasonBadEntry
	case errors.Is(err, api.ErrUnknownKind):
		return reasonUnknownKind
	case errors.Is(err, api.ErrInvalidTilePath):
		return reasonBadTilePath
	case errors.Is(err, errBadRequest):
		return reasonBadRequest
	case errors.Is(err, api.ErrInvalidSearch):
		return reasonBadSearch
	case errors.Is(err, ErrOutOfRange):
		return reasonOutOfRange
	case errors.Is(err, ErrNotWitnessed):
		return reasonNotWitnessed
	case errors.Is(err, ErrNotFound):
		return reasonNotFound
	case errors.Is(err, errTooManyRequests):
		return reasonTooMany
	default:
		return reasonOtherRejected
	}
}

// newClientErrors returns candor_http_client_errors_total with every
// reason present at zero.
func newClientErrors() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "candor_http_client_errors_total",
		Help: "HTTP requests refused with a 4xx status, by reason.",
	}, []string{"reason"})
	for _, r := range clientErrorReasons {
		c.WithLabelValues(r)
	}
	return c
}

// durationBuckets returns the buckets of candor_http_request_duration_seconds:
// from 100µs, doubling, up to at least twice witnessWait (a submission may
// wait that long for a cosigned checkpoint) and at least 30s.
func durationBuckets(witnessWait time.Duration) []float64 {
	top := max(2*witnessWait.Seconds(), 30)
	b := []float64{0.0001}
	for b[len(b)-1] < top {
		b = append(b, b[len(b)-1]*2)
	}
	return b
}
