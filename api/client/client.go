// Package client talks to a Candor log, or any c2sp.org/tlog-tiles log,
// over HTTP: the tiles reads (/checkpoint, /tile/...), submissions
// (POST /v1/entries) and, on a Candor log, searches (GET /v1/search).
//
// A Client fetches, and checks only the shape of what it fetches. A
// Verifier, over a Client, verifies: each checkpoint's log signature, its
// witness cosignatures against a c2sp.org/tlog-policy (k-of-n, with a
// maximum age), its consistency with the last verified checkpoint, which
// it keeps in a State (MemoryState, FileState); inclusion proofs and
// entries, against the tree's tiles. A checkpoint that goes backwards or
// sideways is a *ForkError, which carries both checkpoints and the proof,
// turns into evidence that `candor verify-evidence` accepts, and can be
// shown to witnesses (ForkError.Offer). Proofs are built and checked with
// golang.org/x/mod/sumdb/tlog over the log's tiles (TileReader). The
// tests try to fool it (verifier_test.go), with real logs served by Candor
// and by a tlog-tiles server made from sumdb/tlog.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/bundlezstd"
	"github.com/candorlog/candor/internal/noredirect"
)

const (
	// maxCheckpointSize bounds a /checkpoint body: origin, size, root and
	// a few dozen cosignatures fit well within it.
	maxCheckpointSize = 1 << 20
	// maxTileSize bounds a tile or entry bundle body: a full hash tile is
	// 8 KiB, a full entry bundle at most 256 × (2 + 65,535) bytes.
	maxTileSize = api.TileWidth * (2 + api.MaxEntrySize)
	// maxResponseSize bounds a JSON reply.
	maxResponseSize = 1 << 20
	// maxErrorSize bounds the part of an error body quoted in an error.
	maxErrorSize = 1 << 10
)

// Client fetches from one log. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
	// maxCheckpoint bounds a /checkpoint reply.
	maxCheckpoint int64
}

// New returns a client of the log served at baseURL (such as
// "https://log.example.com" or "http://127.0.0.1:8080/prefix"; a trailing
// slash is ignored), using httpClient, or http.DefaultClient if nil.
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: httpClient, maxCheckpoint: maxCheckpointSize}
}

// StatusError is returned for a reply with an unexpected status code.
type StatusError struct {
	// Method and URL are those of the request.
	Method, URL string
	// StatusCode is the reply's HTTP status code.
	StatusCode int
	// Message is the server's reason: the "error" field of a JSON error
	// body, or the start of any other body.
	Message string
	// RetryAfter is the delay the reply's Retry-After header asks for,
	// in seconds or until an HTTP date; zero if it has none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s %s: %s", e.Method, e.URL, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Checkpoint returns the log's latest signed checkpoint, unverified.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	if c == nil {
		return nil, ErrOffline
	}
	return c.get(ctx, "checkpoint", c.maxCheckpoint)
}

// WithCheckpointLimit returns a copy of c that refuses a checkpoint of more
// than n bytes (default: 1 MiB), such as one larger than a witness would
// take in a request.
func (c *Client) WithCheckpointLimit(n int64) *Client {
	cc := *c
	cc.maxCheckpoint = n
	return &cc
}

// Tile returns tile t: the hashes of a Merkle tree tile, or an entry
// bundle when t.Level is api.EntriesLevel. It checks that a hash tile has
// t.Width hashes and that an entry bundle parses into t.Width entries; it
// does not check that they belong to the tree.
func (c *Client) Tile(ctx context.Context, t api.Tile) ([]byte, error) {
	if c == nil {
		return nil, ErrOffline
	}
	if t.Level < api.EntriesLevel || t.Width < 1 || t.Width > api.TileWidth {
		return nil, fmt.Errorf("couldn't fetch tile: invalid tile %+v", t)
	}
	// A hash tile is read no further than its size: a log that answers
	// with more costs its clients nothing.
	max := int64(maxTileSize)
	if t.Level != api.EntriesLevel {
		max = int64(t.Width * api.HashSize)
	}
	accept := ""
	if t.Level == api.EntriesLevel && t.Width == api.TileWidth {
		// A full bundle comes compressed from a log that keeps it so,
		// a sixth of its size.
		accept = bundlezstd.Coding
	}
	data, err := c.getEncoded(ctx, t.Path(), max, accept)
	if err != nil {
		return nil, err
	}
	if t.Level == api.EntriesLevel {
		entries, err := api.ParseEntryBundle(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.Path(), err)
		}
		if len(entries) != t.Width {
			return nil, fmt.Errorf("%s: entry bundle has %d entries, want %d", t.Path(), len(entries), t.Width)
		}
		return data, nil
	}
	if len(data) != t.Width*api.HashSize {
		return nil, fmt.Errorf("%s: tile is %d bytes, want %d", t.Path(), len(data), t.Width*api.HashSize)
	}
	return data, nil
}

// AddEntry submits a POST /v1/entries body. It returns the reply and its
// status code: 201 for a new entry, 200 for a duplicate. Any other status
// is returned with a *StatusError.
func (c *Client) AddEntry(ctx context.Context, body []byte) (api.AddEntryResponse, int, error) {
	u := c.base + "/v1/entries"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return api.AddEntryResponse{}, 0, fmt.Errorf("couldn't make the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return api.AddEntryResponse{}, 0, fmt.Errorf("couldn't submit the entry: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		return api.AddEntryResponse{}, resp.StatusCode, statusError(req, resp)
	}
	b, err := readAll(resp.Body, maxResponseSize)
	if err != nil {
		return api.AddEntryResponse{}, resp.StatusCode, fmt.Errorf("couldn't read the reply to POST %s: %w", u, err)
	}
	var r api.AddEntryResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return api.AddEntryResponse{}, resp.StatusCode, fmt.Errorf("couldn't parse the reply to POST %s: %w", u, err)
	}
	return r, resp.StatusCode, nil
}

// get fetches the path below the base URL and returns the body of a 200
// reply of at most max bytes.
func (c *Client) get(ctx context.Context, path string, max int64) ([]byte, error) {
	return c.getEncoded(ctx, path, max, "")
}

// getEncoded is get asking for the reply in the content coding accept
// (only bundlezstd.Coding; none if empty), which it decodes: the reply's
// max bytes are its encoded ones.
func (c *Client) getEncoded(ctx context.Context, path string, max int64, accept string) ([]byte, error) {
	u := c.base + "/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't make the request: %w", err)
	}
	if accept != "" {
		req.Header.Set("Accept-Encoding", accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	// With an http.Client that follows no redirects, a 3xx says so.
	if err := noredirect.Check(resp); err != nil {
		return nil, fmt.Errorf("couldn't fetch %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(req, resp)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("couldn't fetch %s: reply of %d bytes is longer than %d bytes", u, resp.ContentLength, max)
	}
	b, err := readAllSized(resp.Body, max, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", u, err)
	}
	switch ce := resp.Header.Get("Content-Encoding"); {
	case ce == "" || strings.EqualFold(ce, "identity"):
	case accept != "" && strings.EqualFold(ce, accept):
		if b, err = bundlezstd.AppendDecoded(nil, b); err != nil {
			return nil, fmt.Errorf("couldn't decode %s: %w", u, err)
		}
	default:
		return nil, fmt.Errorf("couldn't read %s: reply in content coding %q, which was not asked for", u, ce)
	}
	return b, nil
}

// readAllSized is readAll into a buffer of the size the reply announced
// (n, -1 if unknown), so that a large body is not copied as it grows.
func readAllSized(r io.Reader, max, n int64) ([]byte, error) {
	if n < 0 || n > max {
		return readAll(r, max)
	}
	b := make([]byte, n, n+1)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	// Nothing may follow what was announced.
	if k, _ := r.Read(b[n : n+1]); k > 0 {
		return nil, fmt.Errorf("reply is longer than its Content-Length of %d bytes", n)
	}
	return b, nil
}

// readAll reads r to the end, failing if it holds more than max bytes.
func readAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("reply is longer than %d bytes", max)
	}
	return b, nil
}

// statusError turns an unexpected reply into a *StatusError carrying the
// server's reason.
func statusError(req *http.Request, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	e := &StatusError{Method: req.Method, URL: req.URL.String(), StatusCode: resp.StatusCode,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body api.ErrorResponse
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.TrimSpace(string(b[:min(len(b), maxErrorSize)]))
	}
	return e
}

// Search asks GET /v1/search for the entries that carry every one of
// terms, from cursor on ("" for the first page), at most limit of them
// (0: the log's default). Search.Cursor continues the search, or is empty
// at the end. A refusal is a *StatusError with the log's reason.
func (c *Client) Search(ctx context.Context, terms []api.SearchTerm, cursor string, limit int) (api.SearchResponse, error) {
	q := url.Values{}
	for _, t := range terms {
		q.Add(t.Param, t.Value)
	}
	if cursor != "" {
		q.Set(api.SearchCursorParam, cursor)
	}
	if limit != 0 {
		q.Set(api.SearchLimitParam, strconv.Itoa(limit))
	}
	b, err := c.get(ctx, "v1/search?"+q.Encode(), maxResponseSize)
	if err != nil {
		return api.SearchResponse{}, err
	}
	var r api.SearchResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return api.SearchResponse{}, fmt.Errorf("couldn't parse the reply to GET /v1/search: %w", err)
	}
	for i, h := range r.Hits {
		if len(h.LeafHash) != api.HashSize || i > 0 && h.Index <= r.Hits[i-1].Index {
			return api.SearchResponse{}, fmt.Errorf("GET /v1/search: hit %d (index %d) is malformed or out of order", i, h.Index)
		}
	}
	return r, nil
}
