package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/candorlog/candor/api"
)

// maxRetryAfter bounds the delay taken from a Retry-After header, so that
// a wrong clock or a hostile log cannot make a client wait for days.
const maxRetryAfter = time.Hour

// Submitted is the log's answer to a submission.
type Submitted struct {
	// StatusCode is 201 for a new entry, 200 for a duplicate, 202 for an
	// entry that is sequenced and durable but not yet in a checkpoint
	// cosigned by the log's witnesses.
	StatusCode int
	// Index and LeafHash are the entry's, as the log says.
	Index    uint64
	LeafHash []byte
	// Duplicate is true when the statement was already in the log.
	Duplicate bool
	// Bundle is the c2sp.org/tlog-proof@v1 bundle of the entry, unverified;
	// nil when Pending.
	Bundle []byte
	// Witnessed is set by a log with a witness policy: the checkpoint in
	// Bundle is cosigned by enough of its witnesses.
	Witnessed *bool
	// Pending is true for a 202 reply: InclusionProof serves the proof
	// once a cosigned checkpoint includes the entry.
	Pending bool
}

// Submit sends a POST /v1/entries body once and returns the log's answer
// to a 200, 201 or 202 reply. Any other status is returned as a
// *StatusError, with the log's reason and its Retry-After. Submitting the
// same statement again is safe: the log answers a duplicate with the index
// it already has.
func (c *Client) Submit(ctx context.Context, body []byte) (Submitted, error) {
	u := c.base + "/v1/entries"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Submitted{}, fmt.Errorf("couldn't make the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return Submitted{}, fmt.Errorf("couldn't submit the entry: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted:
	default:
		return Submitted{}, statusError(req, resp)
	}
	b, err := readAll(resp.Body, maxResponseSize)
	if err != nil {
		return Submitted{}, fmt.Errorf("couldn't read the reply to POST %s: %w", u, err)
	}
	s := Submitted{StatusCode: resp.StatusCode}
	if resp.StatusCode == http.StatusAccepted {
		var r api.PendingEntryResponse
		if err := json.Unmarshal(b, &r); err != nil {
			return Submitted{}, fmt.Errorf("couldn't parse the reply to POST %s: %w", u, err)
		}
		s.Index, s.LeafHash, s.Duplicate, s.Pending = r.Index, r.LeafHash, r.Duplicate, true
	} else {
		var r api.AddEntryResponse
		if err := json.Unmarshal(b, &r); err != nil {
			return Submitted{}, fmt.Errorf("couldn't parse the reply to POST %s: %w", u, err)
		}
		if r.Proof == "" {
			return Submitted{}, fmt.Errorf("the %d reply to POST %s has no proof", resp.StatusCode, u)
		}
		s.Index, s.LeafHash, s.Bundle, s.Witnessed = r.Index, r.LeafHash, []byte(r.Proof), r.Witnessed
		s.Duplicate = resp.StatusCode == http.StatusOK
	}
	if len(s.LeafHash) != api.HashSize {
		return Submitted{}, fmt.Errorf("the reply to POST %s has a leaf hash of %d bytes, want %d", u, len(s.LeafHash), api.HashSize)
	}
	return s, nil
}

// InclusionProof returns the inclusion proof of the entry at index in the
// log's latest published checkpoint, with that checkpoint, unverified. A
// log with a witness policy answers 404 with Retry-After (a *StatusError)
// while no cosigned checkpoint includes the entry.
func (c *Client) InclusionProof(ctx context.Context, index uint64) (api.InclusionProofResponse, error) {
	path := "v1/proof/inclusion?index=" + strconv.FormatUint(index, 10)
	b, err := c.get(ctx, path, maxResponseSize)
	if err != nil {
		return api.InclusionProofResponse{}, err
	}
	var r api.InclusionProofResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return api.InclusionProofResponse{}, fmt.Errorf("couldn't parse the reply to GET %s: %w", path, err)
	}
	if r.Index != index {
		return api.InclusionProofResponse{}, fmt.Errorf("GET %s answered the proof of index %d", path, r.Index)
	}
	if r.Checkpoint == "" {
		return api.InclusionProofResponse{}, fmt.Errorf("GET %s answered no checkpoint", path)
	}
	return r, nil
}

// IndexOf returns the index of the entry with leafHash in the log's
// latest published checkpoint, as GET /v1/proof/inclusion?leafHash= says
// it, unverified: prove it from tiles (Verifier.ProveInclusion).
func (c *Client) IndexOf(ctx context.Context, leafHash []byte) (uint64, error) {
	path := "v1/proof/inclusion?leafHash=" + hex.EncodeToString(leafHash)
	b, err := c.get(ctx, path, maxResponseSize)
	if err != nil {
		return 0, err
	}
	var r api.InclusionProofResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("couldn't parse the reply to GET %s: %w", path, err)
	}
	if !bytes.Equal(r.LeafHash, leafHash) {
		return 0, fmt.Errorf("GET %s answered the proof of leaf hash %x", path, r.LeafHash)
	}
	return r.Index, nil
}

// retryAfter parses a Retry-After header value, delay-seconds or an
// HTTP-date, into a delay from now, at most maxRetryAfter. It returns zero
// for an empty, malformed or past value.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}
