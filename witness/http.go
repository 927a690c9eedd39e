package witness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/exactpath"
	"github.com/candorlog/candor/internal/httplimit"
)

// maxAddCheckpointBody bounds an add-checkpoint request: 63 proof lines and
// a checkpoint with a few dozen signatures fit many times over.
const maxAddCheckpointBody = 64 << 10

// HandlerOptions configures NewHandler. The zero value is valid.
type HandlerOptions struct {
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the handler's metrics:
	// candor_witness_add_checkpoint_requests_total by status code, and
	// candor_witness_http_requests_total, _request_duration_seconds and
	// _client_errors_total (httpmetrics.go).
	Registerer prometheus.Registerer
	// MaxInFlightPerClient is the most POST requests (add-checkpoint and
	// gossip) from one client address (an IPv6 /64) handled at once,
	// their body reads included; more get 429. Behind a reverse proxy,
	// all clients have its address. Default: 64.
	MaxInFlightPerClient int
	// BodyTimeout bounds the reading of a POST request's body, from when
	// its handling starts; a slower body gets 408. Default: 10s.
	BodyTimeout time.Duration
}

// NewHandler returns the witness's HTTP API:
//
//	POST /add-checkpoint                        c2sp.org/tlog-witness
//	GET  /<hex SHA-256 of origin>/checkpoint    the latest cosigned checkpoint
//	GET  /v1/evidence                           evidence the witness holds (JSON)
//	POST /v1/evidence                           a client gives evidence it made (JSON reply)
//	POST /v1/gossip/checkpoint                  a client shows a checkpoint (JSON reply)
//	GET  /healthz                               "ok"
//	GET  /readyz                                "ready", or 503 and why not
//
// The submission and monitoring prefixes of c2sp.org/tlog-witness are both
// the handler's root.
func NewHandler(w *Witness, o HandlerOptions) (http.Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxInFlightPerClient <= 0 {
		o.MaxInFlightPerClient = 64
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 10 * time.Second
	}
	h := &handler{
		w:           w,
		logger:      o.Logger,
		perClient:   httplimit.NewLimiter(o.MaxInFlightPerClient),
		bodyTimeout: o.BodyTimeout,
		origins:     make(map[string]string),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_add_checkpoint_requests_total",
			Help: "add-checkpoint requests answered, by HTTP status code.",
		}, []string{"code"}),
		metrics: newHTTPMetrics(),
	}
	for _, code := range []int{200, 400, 403, 404, 409, 413, 422, 500} {
		h.requests.WithLabelValues(strconv.Itoa(code))
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(h.requests); err != nil {
			return nil, fmt.Errorf("couldn't register the witness metrics: %w", err)
		}
		if err := h.metrics.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("couldn't register the witness metrics: %w", err)
		}
	}
	for _, origin := range w.Origins() {
		sum := sha256.Sum256([]byte(origin))
		h.origins[hex.EncodeToString(sum[:])] = origin
	}
	mux := http.NewServeMux()
	route := func(pattern, name string, f http.HandlerFunc) { mux.HandleFunc(pattern, h.metrics.instrument(name, f)) }
	route("POST /add-checkpoint", "add-checkpoint", h.addCheckpoint)
	route("GET /{originHash}/checkpoint", "checkpoint", h.checkpoint)
	route("GET /v1/evidence", "evidence", h.listEvidence)
	route("POST /v1/evidence", "add-evidence", h.addEvidence)
	route("POST /v1/gossip/checkpoint", "gossip", h.gossipCheckpoint)
	route("GET /healthz", "healthz", func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "ok\n") })
	route("GET /readyz", "readyz", h.readyz)
	// Each path has one spelling: any other, escaped or unclean, is not
	// found. (The mux answers a known path with another method 405, with
	// Allow.)
	return exactpath.Handler(mux, nil), nil
}

type handler struct {
	w           *Witness
	logger      *slog.Logger
	perClient   *httplimit.Limiter
	bodyTimeout time.Duration
	origins     map[string]string // lowercase hex SHA-256 of origin -> origin
	requests    *prometheus.CounterVec
	metrics     *httpMetrics
}

// status maps every error of the witness to its HTTP status code.
func status(err error) int {
	var conflict *ConflictError
	switch {
	case errors.As(err, &conflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnknownLog):
		return http.StatusNotFound
	case errors.Is(err, ErrNotSigned), errors.Is(err, ErrUntrusted):
		return http.StatusForbidden
	case errors.Is(err, ErrBadRequest), errors.Is(err, api.ErrInvalidAddCheckpoint), errors.Is(err, api.ErrInvalidEvidence):
		return http.StatusBadRequest
	case errors.Is(err, ErrInconsistent), errors.Is(err, ErrMisbehaved):
		return http.StatusUnprocessableEntity
	case errors.Is(err, httplimit.ErrIncomplete):
		return http.StatusBadRequest
	case errors.Is(err, httplimit.ErrTooSlow):
		return http.StatusRequestTimeout
	case errors.Is(err, httplimit.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, httplimit.ErrTooManyFromClient):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrNoSpace), errors.Is(err, ErrNotAudited):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// fail writes the reply for err and returns its status code.
func (h *handler) fail(rw http.ResponseWriter, r *http.Request, err error) int {
	code := status(err)
	if code >= 400 && code < 500 {
		h.metrics.rejected.WithLabelValues(clientErrorReason(err)).Inc()
	}
	var conflict *ConflictError
	if errors.As(err, &conflict) {
		rw.Header().Set("Content-Type", api.TlogSizeContentType)
		rw.WriteHeader(code)
		rw.Write(api.MarshalTlogSize(conflict.Size))
		return code
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		h.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		msg = "internal error"
	} else {
		if code == http.StatusServiceUnavailable {
			rw.Header().Set("Retry-After", "1")
		}
		h.logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", code, "reason", clientErrorReason(err), "error", err)
	}
	http.Error(rw, msg, code)
	return code
}

func (h *handler) readyz(rw http.ResponseWriter, r *http.Request) {
	if err := h.w.Ready(r.Context()); err != nil {
		h.logger.Warn("not ready", "error", err)
		http.Error(rw, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(rw, "ready\n")
}

func (h *handler) addCheckpoint(rw http.ResponseWriter, r *http.Request) {
	code := h.serveAddCheckpoint(rw, r)
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// serveAddCheckpoint decodes the request, hands it to the witness and
// writes the reply; it returns the status code.
func (h *handler) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) int {
	body, release, err := h.readBody(rw, r, maxAddCheckpointBody)
	if err != nil {
		return h.fail(rw, r, err)
	}
	defer release()
	req, err := api.ParseAddCheckpointRequest(body)
	if err != nil {
		return h.fail(rw, r, err)
	}
	cosig, err := h.w.AddCheckpoint(r.Context(), req)
	if err != nil {
		return h.fail(rw, r, err)
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Content-Length", strconv.Itoa(len(cosig)))
	rw.Write(cosig)
	return http.StatusOK
}

// readBody takes a place for the client's address and reads the body of
// r, at most limit bytes, within the body timeout; release gives the place
// back.
func (h *handler) readBody(rw http.ResponseWriter, r *http.Request, limit int64) (body []byte, release func(), err error) {
	release, err = h.perClient.Acquire(rw, r)
	if err != nil {
		return nil, nil, err
	}
	body, err = httplimit.ReadBody(rw, r, limit, h.bodyTimeout)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("couldn't read the body: %w", err)
	}
	return body, release, nil
}

func (h *handler) checkpoint(rw http.ResponseWriter, r *http.Request) {
	origin, ok := h.origins[r.PathValue("originHash")]
	if !ok {
		h.fail(rw, r, fmt.Errorf("%w: no log with origin hash %q", ErrUnknownLog, r.PathValue("originHash")))
		return
	}
	cp, err := h.w.Served(r.Context(), origin)
	if err != nil {
		h.fail(rw, r, err)
		return
	}
	if cp == nil {
		http.Error(rw, "the witness has not cosigned a checkpoint of this log yet", http.StatusNotFound)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Write(cp)
}

// EvidenceList is the JSON reply of GET /v1/evidence.
type EvidenceList struct {
	// Evidence is every piece of evidence the witness holds, as
	// api.Evidence, by origin.
	Evidence []json.RawMessage `json:"evidence"`
}

func (h *handler) listEvidence(rw http.ResponseWriter, r *http.Request) {
	all := h.w.Evidence()
	origins := make([]string, 0, len(all))
	for o := range all {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	list := EvidenceList{Evidence: []json.RawMessage{}}
	for _, o := range origins {
		for _, e := range all[o] {
			list.Evidence = append(list.Evidence, json.RawMessage(e))
		}
	}
	writeJSON(rw, http.StatusOK, list)
}

// GossipReply is the JSON reply of POST /v1/gossip/checkpoint.
type GossipReply struct {
	// Result is consistent, unchecked, unproven or evidence (see the
	// Observed constants).
	Result string `json:"result"`
	// Detail says why.
	Detail string `json:"detail,omitempty"`
	// Evidence is the evidence this checkpoint completed, if any.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// gossipCheckpoint lets any client show the witness a checkpoint it was
// served: the witness compares it with what it holds.
func (h *handler) gossipCheckpoint(rw http.ResponseWriter, r *http.Request) {
	body, release, err := h.readBody(rw, r, maxAddCheckpointBody)
	if err != nil {
		h.fail(rw, r, err)
		return
	}
	defer release()
	o, err := h.w.Observe(r.Context(), body, false)
	if err != nil {
		h.fail(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, GossipReply{Result: o.Result, Detail: o.Detail, Evidence: o.Evidence})
}

// AddEvidenceReply is the JSON reply of POST /v1/evidence.
type AddEvidenceReply struct {
	// ID is the evidence's ID (api.Evidence.ID).
	ID string `json:"id"`
	// Stored is set if the witness stored the evidence, and announces it
	// to its peers; not if it held that piece already, or held as many
	// as it keeps about the log.
	Stored bool `json:"stored"`
}

// addEvidence lets any client give the witness evidence of a log's
// misbehaviour, such as a monitor that caught a fork or a bad entry: the
// witness verifies it with the log's key, stores and gossips it, and
// cosigns nothing more for the log. Evidence that proves nothing is 400.
func (h *handler) addEvidence(rw http.ResponseWriter, r *http.Request) {
	body, release, err := h.readBody(rw, r, api.MaxEvidenceSize)
	if err != nil {
		h.fail(rw, r, err)
		return
	}
	defer release()
	e, err := api.ParseEvidence(body)
	if err != nil {
		h.fail(rw, r, err)
		return
	}
	stored, err := h.w.AddEvidence(r.Context(), body)
	if err != nil {
		h.fail(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, AddEvidenceReply{ID: e.ID(), Stored: stored})
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(code)
	rw.Write(append(b, '\n'))
}
