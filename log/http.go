package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/bundlezstd"
	"github.com/candorlog/candor/internal/exactpath"
	"github.com/candorlog/candor/internal/httplimit"
	"github.com/candorlog/candor/internal/httpmetrics"
)

var (
	errBadRequest          = errors.New("bad request")
	errUnsupportedEncoding = errors.New("unsupported Content-Encoding: send the body uncompressed")
	errTooManyRequests     = errors.New("too many submissions in flight")
	errMethodNotAllowed    = errors.New("method not allowed")
)

// HandlerOptions configures the HTTP API.
type HandlerOptions struct {
	// MaxBodyBytes is the largest POST /v1/entries body accepted.
	// Default: 2 × api.MaxEntrySize.
	MaxBodyBytes int64
	// MaxInFlight is the most submissions handled at once, once their
	// bodies are read; more get 429. Default: 4096.
	MaxInFlight int
	// MaxInFlightPerClient is the most submissions from one client
	// address (an IPv6 /64) handled at once, their body reads included;
	// more get 429. Behind a reverse proxy, all clients have its address.
	// Default: 64.
	MaxInFlightPerClient int
	// BodyTimeout bounds the reading of a submission's body, from when
	// its handling starts; a slower body gets 408. Default: 10s.
	BodyTimeout time.Duration
	// Logger receives request errors. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives HTTP metrics. Optional.
	Registerer prometheus.Registerer
	// WitnessWait is how long a submission to a log with a Witnessing
	// waits for a cosigned checkpoint that includes the entry; after it
	// the reply is 202 Accepted (an api.PendingEntryResponse). Zero: reply at
	// once. Unused without a Witnessing.
	WitnessWait time.Duration
	// TrustedRoot, if set, is the Sigstore trusted root whose certificate
	// authorities must have issued the certificates that sign entries,
	// valid when the log takes them: an entry signed under any other
	// certificate is refused (400). Entries signed with plain keys are
	// not concerned. Optional.
	TrustedRoot *api.TrustedRoot
	// Adder, if set, takes the admitted submissions in the log's stead: a
	// log whose entries another system stores and sequences (a Trillian
	// tree, which the log mirrors: storage/trillian) adds them there and
	// answers once the log has them. Default: the log.
	Adder Adder
}

// Adder adds an admitted entry to a log, under the rules of
// Log.AddWithTerms, and returns its receipt once the log has committed it
// (with a Witnessing the handler then waits for a cosigned checkpoint, as
// for the log's own). An Adder
// that also has a method Ready() error takes part in /readyz; one with a
// method Sync(context.Context) error is called before /checkpoint is
// served, to bring the log up to date with the system that sequences its
// entries (several front ends of one log then never serve a checkpoint
// older than one another served before).
type Adder interface {
	AddWithTerms(ctx context.Context, entry []byte, terms []api.SearchTerm) (Receipt, error)
}

// adderReady returns what the Adder's Ready says, if it has one.
func (h *handler) adderReady() error {
	if r, ok := h.adder.(interface{ Ready() error }); ok && h.adder != Adder(h.log) {
		return r.Ready()
	}
	return nil
}

type handler struct {
	log         *Log
	adder       Adder
	maxBody     int64
	bodyTimeout time.Duration
	inFlight    chan struct{}
	perClient   *httplimit.Limiter
	logger      *slog.Logger
	witnessWait time.Duration
	trustedRoot *api.TrustedRoot
	rejected    *prometheus.CounterVec // candor_http_client_errors_total
}

// NewHandler returns the log's HTTP API: c2sp.org/tlog-tiles reads
// (/checkpoint, /tile/...), submissions and the JSON /v1 reads.
func NewHandler(l *Log, o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 2 * api.MaxEntrySize
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4096
	}
	if o.MaxInFlightPerClient <= 0 {
		o.MaxInFlightPerClient = 64
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Adder == nil {
		o.Adder = l
	}
	h := &handler{log: l, adder: o.Adder, maxBody: o.MaxBodyBytes, bodyTimeout: o.BodyTimeout, inFlight: make(chan struct{}, o.MaxInFlight),
		perClient: httplimit.NewLimiter(o.MaxInFlightPerClient), logger: o.Logger, witnessWait: o.WitnessWait, trustedRoot: o.TrustedRoot,
		rejected: newClientErrors()}

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "candor_http_requests_total",
		Help: "HTTP requests by handler and status code.",
	}, []string{"handler", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "candor_http_request_duration_seconds",
		Help:    "HTTP request latency by handler.",
		Buckets: durationBuckets(o.WitnessWait),
	}, []string{"handler"})
	if o.Registerer != nil {
		o.Registerer.MustRegister(requests, duration, h.rejected)
	}
	// The patterns have no method, so that a path served with another
	// method gets 405 with Allow, in JSON like every error, rather than
	// the catch-all's 404.
	mux := http.NewServeMux()
	get, post := []string{http.MethodGet, http.MethodHead}, []string{http.MethodPost}
	route := func(pattern, name string, methods []string, f http.HandlerFunc) {
		// Present from the start at zero, so that a rate of errors is
		// defined before the first one.
		requests.WithLabelValues(name, "200")
		requests.WithLabelValues(name, "500")
		mux.Handle(pattern, httpmetrics.Instrument(requests, duration.WithLabelValues(name), name, h.allow(methods, f)))
	}
	route("/checkpoint", "checkpoint", get, h.checkpoint)
	route("/tile/", "tile", get, h.tile)
	route("/v1/entries", "add-entry", post, h.addEntry)
	route("/v1/entries/{index}", "entry", get, h.entry)
	route("/v1/proof/inclusion", "inclusion-proof", get, h.inclusionProof)
	route("/v1/proof/consistency", "consistency-proof", get, h.consistencyProof)
	route("/v1/search", "search", get, h.search)
	route("/healthz", "healthz", get, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	route("/readyz", "readyz", get, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("verbose") {
			s := l.ReadyStatus()
			if err := h.adderReady(); s.Ready && err != nil {
				s.Ready, s.Error = false, err.Error()
			}
			writeJSON(w, map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[s.Ready], s)
			return
		}
		if err := errors.Join(l.Ready(), h.adderReady()); err != nil {
			h.fail(w, r, err)
			return
		}
		io.WriteString(w, "ready\n")
	})
	unknown := httpmetrics.Instrument(requests, duration.WithLabelValues("unknown"), "unknown", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, fmt.Errorf("%w: no endpoint %s %s", ErrNotFound, r.Method, r.URL.EscapedPath()))
	})
	mux.Handle("/", unknown)
	// Each path has one spelling (tiles are cached by path): any other,
	// escaped or unclean, is not found.
	return exactpath.Handler(mux, unknown)
}

// allow serves f the requests whose method is one of methods, and refuses
// the others with 405 and an Allow header.
func (h *handler) allow(methods []string, f http.HandlerFunc) http.HandlerFunc {
	allowed := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allowed)
			h.fail(w, r, fmt.Errorf("%w: %s %s (allowed: %s)", errMethodNotAllowed, r.Method, r.URL.Path, allowed))
			return
		}
		f(w, r)
	}
}

// status maps every error the API returns to its HTTP status code.
func status(err error) int {
	var bad *api.EntryError
	switch {
	case errors.Is(err, httplimit.ErrTooLarge), errors.Is(err, api.ErrEntryTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, httplimit.ErrTooSlow):
		return http.StatusRequestTimeout
	case errors.Is(err, errUnsupportedEncoding):
		return http.StatusUnsupportedMediaType
	case errors.As(err, &bad), errors.Is(err, api.ErrUnknownKind),
		errors.Is(err, errBadRequest), errors.Is(err, api.ErrInvalidTilePath), errors.Is(err, httplimit.ErrIncomplete),
		errors.Is(err, api.ErrInvalidSearch):
		return http.StatusBadRequest
	case errors.Is(err, ErrOutOfRange), errors.Is(err, ErrNotFound), errors.Is(err, ErrNotWitnessed):
		return http.StatusNotFound
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, errTooManyRequests), errors.Is(err, httplimit.ErrTooManyFromClient):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed), errors.Is(err, ErrNoCheckpoint),
		errors.Is(err, ErrNoSpace), errors.Is(err, ErrSearchUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := status(err)
	msg := err.Error()
	switch {
	case code == http.StatusInternalServerError:
		h.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		msg = "internal error"
	case code >= 400 && code < 500:
		reason := clientErrorReason(err)
		h.rejected.WithLabelValues(reason).Inc()
		h.logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", code, "reason", reason, "error", err)
	default:
		h.logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", code, "error", err)
	}
	if code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests || errors.Is(err, ErrNotWitnessed) {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, api.ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (h *handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	if s, ok := h.adder.(interface{ Sync(context.Context) error }); ok && h.adder != Adder(h.log) {
		if err := s.Sync(r.Context()); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	cp, _ := h.log.Checkpoint()
	if cp == nil {
		h.fail(w, r, ErrNoCheckpoint)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(cp)
}

func (h *handler) tile(w http.ResponseWriter, r *http.Request) {
	t, err := api.ParseTilePath(r.URL.Path)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var data []byte
	if t.Level == api.EntriesLevel {
		// A full bundle's reply depends on what the client takes.
		w.Header().Set("Vary", "Accept-Encoding")
		var release func()
		encoded := false
		if acceptsCoding(r.Header, bundlezstd.Coding) {
			if data, release, encoded, err = h.log.encodedEntryBundle(r.Context(), t, bundlezstd.Coding); encoded {
				defer release()
				w.Header().Set("Content-Encoding", bundlezstd.Coding)
			}
		}
		if !encoded && err == nil {
			if data, release, err = h.log.entryBundle(r.Context(), t); err == nil {
				defer release()
			}
		}
	} else {
		data, err = h.log.Tile(r.Context(), t)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// Tiles and bundles never change once served at a path.
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	// Not chunked: a client reads the body in one piece.
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

func (h *handler) addEntry(w http.ResponseWriter, r *http.Request) {
	release, err := h.perClient.Acquire(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer release()
	if ce := r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		h.fail(w, r, errUnsupportedEncoding)
		return
	}
	body, err := httplimit.ReadBody(w, r, h.maxBody, h.bodyTimeout)
	if err != nil {
		h.fail(w, r, fmt.Errorf("couldn't read the body: %w", err))
		return
	}
	// A slot only once the body is here: a client sending slowly holds
	// none.
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		h.fail(w, r, errTooManyRequests)
		return
	}
	entry, st, err := api.AdmitEntry(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if h.trustedRoot != nil {
		if cs, ok := st.(api.CertificateStatement); ok && cs.SigningCertificate() != nil {
			if err := h.trustedRoot.VerifyCertificate(cs.SigningCertificate(), time.Now()); err != nil {
				h.fail(w, r, err)
				return
			}
		}
	}
	terms := api.SearchTerms(st)
	rc, err := h.adder.AddWithTerms(r.Context(), entry, terms)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var witnessed *bool
	if h.log.Witnessed() {
		ok, err := h.waitWitnessed(r.Context(), &rc)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if !ok {
			_, size := h.log.Checkpoint()
			writeJSON(w, http.StatusAccepted, api.PendingEntryResponse{
				Index:         rc.Index,
				LeafHash:      rc.LeafHash,
				Duplicate:     rc.Duplicate,
				Witnessed:     false,
				Status:        api.PendingStatus,
				WitnessedSize: size,
				ProofURL:      fmt.Sprintf("/v1/proof/inclusion?index=%d", rc.Index),
			})
			return
		}
		if h.log.Cosigned() {
			witnessed = &ok
		}
	}
	bundle, err := h.proofBundle(r.Context(), rc, entry)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	code := http.StatusCreated
	if rc.Duplicate {
		code = http.StatusOK
	}
	reply := api.AddEntryResponse{
		Index:     rc.Index,
		LeafHash:  rc.LeafHash,
		TreeSize:  rc.Size,
		Proof:     string(bundle),
		Witnessed: witnessed,
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(reply.AppendJSON(nil), '\n'))
}

// waitWitnessed waits up to the handler's WitnessWait for a cosigned
// checkpoint that includes the entry of rc, and sets rc's Size and
// Checkpoint to it. It reports false if none came in time.
func (h *handler) waitWitnessed(ctx context.Context, rc *Receipt) (bool, error) {
	wctx, cancel := context.WithTimeout(ctx, h.witnessWait)
	defer cancel()
	cp, size, err := h.log.WaitWitnessed(wctx, rc.Index)
	switch {
	case err == nil:
		rc.Size, rc.Checkpoint = size, cp
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return false, nil
	default:
		return false, err
	}
}

// proofBundle returns the c2sp.org/tlog-proof bundle of entry, at rc's
// index, in rc's checkpoint. Its extra line is the canonical entry, so
// that the bundle alone is enough to verify what was logged.
func (h *handler) proofBundle(ctx context.Context, rc Receipt, entry []byte) ([]byte, error) {
	hashes, err := h.log.InclusionProof(ctx, rc.Index, rc.Size)
	if err != nil {
		return nil, fmt.Errorf("couldn't prove entry %d at size %d: %w", rc.Index, rc.Size, err)
	}
	return api.ProofBundle{Extra: entry, Index: rc.Index, Hashes: hashes, Checkpoint: rc.Checkpoint}.Marshal(), nil
}

func (h *handler) entry(w http.ResponseWriter, r *http.Request) {
	index, err := parseUint(r.PathValue("index"), "index")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	e, err := h.log.Entry(r.Context(), index)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.EntryResponse{Index: index, LeafHash: hasher.HashLeaf(e), Entry: e})
}

func (h *handler) inclusionProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var resp api.InclusionProofResponse
	var err error
	switch s, lh := q.Get("index"), q.Get("leafHash"); {
	case s != "" && lh != "":
		err = fmt.Errorf("%w: give index or leafHash, not both", errBadRequest)
	case s != "":
		resp.Index, err = parseUint(s, "index")
	case lh != "":
		if resp.LeafHash, err = parseHash(lh); err == nil {
			resp.Index, err = h.log.LookupLeaf(r.Context(), resp.LeafHash)
			if errors.Is(err, ErrNotFound) {
				err = fmt.Errorf("no entry with leaf hash %s: %w", lh, ErrNotFound)
			}
		}
	default:
		err = fmt.Errorf("%w: index or leafHash is required", errBadRequest)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Read the checkpoint after the lookup, which only finds published entries.
	cp, size := h.log.Checkpoint()
	resp.TreeSize = size
	if s := q.Get("size"); s != "" {
		if resp.TreeSize, err = parseUint(s, "size"); err != nil {
			h.fail(w, r, err)
			return
		}
	} else if err := h.log.checkWitnessed(resp.Index); err != nil {
		h.fail(w, r, err)
		return
	}
	if resp.TreeSize == size {
		resp.Checkpoint = string(cp)
	}
	if resp.Index >= resp.TreeSize {
		h.fail(w, r, fmt.Errorf("%w: index %d is not below tree size %d", errBadRequest, resp.Index, resp.TreeSize))
		return
	}
	if resp.TreeSize > size {
		h.fail(w, r, fmt.Errorf("%w: tree size %d is larger than the published size %d", errBadRequest, resp.TreeSize, size))
		return
	}
	if resp.LeafHash == nil {
		if resp.LeafHash, err = h.log.LeafHash(r.Context(), resp.Index); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if resp.Hashes, err = h.log.InclusionProof(r.Context(), resp.Index, resp.TreeSize); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) consistencyProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cp, size := h.log.Checkpoint()
	if cp == nil && q.Get("new") == "" {
		h.fail(w, r, ErrNoCheckpoint)
		return
	}
	resp := api.ConsistencyProofResponse{New: size, Checkpoint: string(cp)}
	var err error
	if resp.Old, err = parseUint(q.Get("old"), "old"); err != nil {
		h.fail(w, r, err)
		return
	}
	if s := q.Get("new"); s != "" {
		if resp.New, err = parseUint(s, "new"); err != nil {
			h.fail(w, r, err)
			return
		}
		if resp.New != size {
			resp.Checkpoint = ""
		}
	}
	if resp.Old > resp.New || resp.New > size {
		h.fail(w, r, fmt.Errorf("%w: need old ≤ new ≤ published size %d, got old %d, new %d", errBadRequest, size, resp.Old, resp.New))
		return
	}
	if resp.Hashes, err = h.log.ConsistencyProof(r.Context(), resp.Old, resp.New); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func parseUint(s, name string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: %s is required", errBadRequest, name)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w: %s %q has a leading zero", errBadRequest, name, s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a decimal number", errBadRequest, name, s)
	}
	return v, nil
}

// parseHash accepts a SHA-256 hash in hex or in standard or URL base64.
// A '+' that the client forgot to escape reaches here as a space.
func parseHash(s string) ([]byte, error) {
	s = strings.ReplaceAll(s, " ", "+")
	b, err := api.ParseHash(s)
	if err != nil {
		return nil, fmt.Errorf("%w: leafHash %q is not a SHA-256 hash in hex or base64", errBadRequest, s)
	}
	return b, nil
}

// search serves GET /v1/search: the published entries that carry every
// term of the query (api.SearchParams), in log order, a page at a time.
func (h *handler) search(w http.ResponseWriter, r *http.Request) {
	terms, start, limit, err := parseSearchQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hits, next, err := h.log.Search(r.Context(), terms, start, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp := api.SearchResponse{Hits: hits}
	if resp.Hits == nil {
		resp.Hits = []api.SearchHit{}
	}
	if next != 0 {
		resp.Cursor = SearchCursor(next)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(resp.AppendJSON(nil), '\n'))
}

// parseSearchQuery reads the terms, the start (from the cursor) and the
// limit of a search query. Every error wraps api.ErrInvalidSearch.
func parseSearchQuery(rawQuery string) (terms []api.SearchTerm, start uint64, limit int, err error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%w: malformed query: %v", api.ErrInvalidSearch, err)
	}
	limit = api.DefaultSearchLimit
	for _, param := range slices.Sorted(maps.Keys(q)) {
		values := q[param]
		switch param {
		case api.SearchLimitParam, api.SearchCursorParam:
			if len(values) != 1 {
				return nil, 0, 0, fmt.Errorf("%w: %s given %d times", api.ErrInvalidSearch, param, len(values))
			}
			if param == api.SearchCursorParam {
				if start, err = parseSearchCursor(values[0]); err != nil {
					return nil, 0, 0, err
				}
				continue
			}
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 1 || n > api.MaxSearchLimit || len(values[0]) > 1 && values[0][0] == '0' {
				return nil, 0, 0, fmt.Errorf("%w: limit %q is not a number from 1 to %d", api.ErrInvalidSearch, truncate(values[0], 40), api.MaxSearchLimit)
			}
			limit = n
		default:
			for _, v := range values {
				t, err := api.ParseSearchTerm(param, v)
				if err != nil {
					return nil, 0, 0, err
				}
				terms = append(terms, t)
			}
		}
	}
	if len(terms) == 0 {
		return nil, 0, 0, fmt.Errorf("%w: give at least one of %s", api.ErrInvalidSearch, strings.Join(api.SearchParams, ", "))
	}
	slices.SortFunc(terms, func(a, b api.SearchTerm) int { return strings.Compare(a.String(), b.String()) })
	terms = slices.Compact(terms)
	if len(terms) > maxSearchTerms {
		return nil, 0, 0, fmt.Errorf("%w: %d terms, at most %d", api.ErrInvalidSearch, len(terms), maxSearchTerms)
	}
	return terms, start, limit, nil
}

// acceptsCoding reports whether the request's Accept-Encoding takes the
// content coding coding (RFC 9110, section 12.5.3): named, or "*", with a
// weight above 0; named with q=0 refuses it whatever "*" says. An
// unparsable weight refuses: the reply is then in no coding, which any
// client takes.
func acceptsCoding(h http.Header, coding string) bool {
	named, star := 0, 0 // 0: not listed, 1: taken, -1: refused
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.TrimSpace(name)
			took := -1
			if weightAboveZero(params) {
				took = 1
			}
			switch {
			case strings.EqualFold(name, coding):
				named = took
			case name == "*":
				star = took
			}
		}
	}
	if named != 0 {
		return named > 0
	}
	return star > 0
}

// weightAboveZero reports whether the parameters of an Accept-Encoding
// element give it a weight above 0 (no weight is 1).
func weightAboveZero(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(k, "q") {
			continue
		}
		q, err := strconv.ParseFloat(v, 64)
		return err == nil && q > 0 && q <= 1
	}
	return true
}
