package client

import (
	"bytes"
	"context"
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
// GET /v1/evidence and gossips it to its peers. It returns each
// witness's answer to the second checkpoint, and the errors joined.
func (e *ForkError) Offer(ctx context.Context, httpClient *http.Client, witnessURLs ...string) ([]GossipReply, error) {
	replies := make([]GossipReply, len(witnessURLs))
	var errs []error
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
	}
	return replies, errors.Join(errs...)
}
