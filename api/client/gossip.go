package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// GossipReply is a witness's answer to a checkpoint shown to it at
// POST /v1/gossip/checkpoint.
type GossipReply struct {
	// Result is "consistent", "unchecked", "unproven" or "evidence".
	Result string `json:"result"`
	// Detail says why.
	Detail string `json:"detail,omitempty"`
	// Evidence is the evidence the checkpoint completed, if any, as the
	// witness serves it at GET /v1/evidence.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// ShowWitness shows a signed checkpoint to the witness whose HTTP API is
// at witnessURL (POST <witnessURL>/v1/gossip/checkpoint), which compares
// it with the checkpoints of the log that it holds, records evidence if
// they conflict, and answers. It uses httpClient, or http.DefaultClient if
// nil. A reply other than 200 is a *StatusError.
func ShowWitness(ctx context.Context, httpClient *http.Client, witnessURL string, signed []byte) (GossipReply, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	u := strings.TrimRight(witnessURL, "/") + "/v1/gossip/checkpoint"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(signed))
	if err != nil {
		return GossipReply{}, fmt.Errorf("couldn't make the request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := httpClient.Do(req)
	if err != nil {
		return GossipReply{}, fmt.Errorf("couldn't show the checkpoint to %s: %w", witnessURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return GossipReply{}, statusError(req, resp)
	}
	b, err := readAll(resp.Body, maxResponseSize)
	if err != nil {
		return GossipReply{}, fmt.Errorf("couldn't read the reply to POST %s: %w", u, err)
	}
	var r GossipReply
	if err := json.Unmarshal(b, &r); err != nil {
		return GossipReply{}, fmt.Errorf("couldn't parse the reply to POST %s: %w", u, err)
	}
	return r, nil
}

// Offer shows both checkpoints of the fork to each witness, the last
// verified one first, so that a witness that follows the log sees the
// conflict for itself: it records the evidence (from its own reading of
// the log's tiles, for checkpoints of different sizes), serves it at
// GET /v1/evidence and gossips it to its peers. When the error proves
// the fork, the witness is then given the evidence itself (GiveEvidence),
// in case it could not read the log. It returns each witness's answer to
// the second checkpoint, and the errors joined.
func (e *ForkError) Offer(ctx context.Context, httpClient *http.Client, witnessURLs ...string) ([]GossipReply, error) {
	replies := make([]GossipReply, len(witnessURLs))
	var errs []error
	var evidence []byte
	if ev, err := e.Evidence(); err == nil {
		evidence, _ = ev.Marshal()
	}
	for i, u := range witnessURLs {
		if _, err := ShowWitness(ctx, httpClient, u, e.Old.Signed); err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := ShowWitness(ctx, httpClient, u, e.New.Signed)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		replies[i] = r
		if evidence != nil {
			if _, err := GiveEvidence(ctx, httpClient, u, evidence); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return replies, errors.Join(errs...)
}

// GiveEvidence gives evidence of a log's misbehaviour (encoded
// api.Evidence) to the witness whose HTTP API is at witnessURL
// (POST <witnessURL>/v1/evidence), which verifies it with the log's key,
// stores it, gossips it to its peers and cosigns nothing more for the
// log. It reports whether the witness stored it: not if it held that
// piece of evidence already. A reply other than 200, such as 400 for
// evidence that proves nothing, is a *StatusError.
func GiveEvidence(ctx context.Context, httpClient *http.Client, witnessURL string, evidence []byte) (bool, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	u := strings.TrimRight(witnessURL, "/") + "/v1/evidence"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(evidence))
	if err != nil {
		return false, fmt.Errorf("couldn't make the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("couldn't give the evidence to %s: %w", witnessURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, statusError(req, resp)
	}
	b, err := readAll(resp.Body, maxResponseSize)
	if err != nil {
		return false, fmt.Errorf("couldn't read the reply to POST %s: %w", u, err)
	}
	var r struct {
		Stored bool `json:"stored"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false, fmt.Errorf("couldn't parse the reply to POST %s: %w", u, err)
	}
	return r.Stored, nil
}

// WitnessCheckpoint returns the latest checkpoint of the log of origin
// that the witness whose HTTP API is at witnessURL serves (GET
// <witnessURL>/<hex SHA-256 of origin>/checkpoint, c2sp.org/tlog-witness's
// monitoring path), with its cosignatures; nil if it holds none (404).
// It does not verify it.
func WitnessCheckpoint(ctx context.Context, httpClient *http.Client, witnessURL, origin string) ([]byte, error) {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	sum := sha256.Sum256([]byte(origin))
	u := strings.TrimRight(witnessURL, "/") + "/" + hex.EncodeToString(sum[:]) + "/checkpoint"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("couldn't make the request: %w", err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the checkpoint of %s: %w", witnessURL, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, statusError(req, resp)
	}
	b, err := readAll(resp.Body, maxCheckpointSize)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the reply to GET %s: %w", u, err)
	}
	return b, nil
}
