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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
)

// maxAddCheckpointBody bounds an add-checkpoint request: 63 proof lines and
// a checkpoint with a few dozen signatures fit many times over.
const maxAddCheckpointBody = 64 << 10

// HandlerOptions configures NewHandler. The zero value is valid.
type HandlerOptions struct {
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the handler's metrics:
	// candor_witness_add_checkpoint_requests_total by status code.
	Registerer prometheus.Registerer
}

// NewHandler returns the witness's HTTP API:
//
//	POST /add-checkpoint                        c2sp.org/tlog-witness
//	GET  /<hex SHA-256 of origin>/checkpoint    the latest cosigned checkpoint
//	GET  /v1/evidence                           evidence the witness holds (JSON)
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
	h := &handler{
		w:       w,
		logger:  o.Logger,
		origins: make(map[string]string),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_add_checkpoint_requests_total",
			Help: "add-checkpoint requests answered, by HTTP status code.",
		}, []string{"code"}),
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(h.requests); err != nil {
			return nil, fmt.Errorf("couldn't register the witness metrics: %w", err)
		}
	}
	for _, origin := range w.Origins() {
		sum := sha256.Sum256([]byte(origin))
		h.origins[hex.EncodeToString(sum[:])] = origin
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", h.addCheckpoint)
	mux.HandleFunc("GET /{originHash}/checkpoint", h.checkpoint)
	mux.HandleFunc("GET /v1/evidence", h.listEvidence)
	mux.HandleFunc("POST /v1/gossip/checkpoint", h.gossipCheckpoint)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "ok\n") })
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		if err := w.Ready(); err != nil {
			h.fail(rw, r, err)
			return
		}
		io.WriteString(rw, "ready\n")
	})
	return mux, nil
}

type handler struct {
	w        *Witness
	logger   *slog.Logger
	origins  map[string]string // lowercase hex SHA-256 of origin -> origin
	requests *prometheus.CounterVec
}

// status maps every error of the witness to its HTTP status code.
func status(err error) int {
	var conflict *ConflictError
	var tooBig *http.MaxBytesError
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
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNoSpace):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// fail writes the reply for err and returns its status code.
func (h *handler) fail(rw http.ResponseWriter, r *http.Request, err error) int {
	code := status(err)
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
		h.logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", code, "error", err)
	}
	http.Error(rw, msg, code)
	return code
}

func (h *handler) addCheckpoint(rw http.ResponseWriter, r *http.Request) {
	code := h.serveAddCheckpoint(rw, r)
	h.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// serveAddCheckpoint decodes the request, hands it to the witness and
// writes the reply; it returns the status code.
func (h *handler) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) int {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxAddCheckpointBody))
	if err != nil {
		return h.fail(rw, r, fmt.Errorf("couldn't read the body: %w", err))
	}
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
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxAddCheckpointBody))
	if err != nil {
		h.fail(rw, r, fmt.Errorf("couldn't read the body: %w", err))
		return
	}
	o, err := h.w.Observe(r.Context(), body, false)
	if err != nil {
		h.fail(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, GossipReply{Result: o.Result, Detail: o.Detail, Evidence: o.Evidence})
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
