package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/client"
)

// TestSubmitReplies checks what Submit and InclusionProof make of each
// kind of reply, well-formed or not.
func TestSubmitReplies(t *testing.T) {
	ctx := context.Background()
	leaf := bytes.Repeat([]byte{1}, api.HashSize)
	reply := func(code int, v any, header ...string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(v)
		}
	}
	yes := true
	for _, tc := range []struct {
		name  string
		reply func(http.ResponseWriter, *http.Request)
		want  client.Submitted
		err   string
	}{
		{"201", reply(http.StatusCreated, api.AddEntryResponse{Index: 7, LeafHash: leaf, TreeSize: 8, Proof: "bundle", Witnessed: &yes}),
			client.Submitted{StatusCode: 201, Index: 7, LeafHash: leaf, Bundle: []byte("bundle"), Witnessed: &yes}, ""},
		{"200", reply(http.StatusOK, api.AddEntryResponse{Index: 7, LeafHash: leaf, TreeSize: 9, Proof: "bundle"}),
			client.Submitted{StatusCode: 200, Index: 7, LeafHash: leaf, Duplicate: true, Bundle: []byte("bundle")}, ""},
		{"202", reply(http.StatusAccepted, api.PendingEntryResponse{Index: 7, LeafHash: leaf, Status: api.PendingStatus, ProofURL: "/v1/proof/inclusion?index=7"}),
			client.Submitted{StatusCode: 202, Index: 7, LeafHash: leaf, Pending: true}, ""},
		{"202 duplicate", reply(http.StatusAccepted, api.PendingEntryResponse{Index: 7, LeafHash: leaf, Duplicate: true, Status: api.PendingStatus}),
			client.Submitted{StatusCode: 202, Index: 7, LeafHash: leaf, Duplicate: true, Pending: true}, ""},
		{"201 without a proof", reply(http.StatusCreated, api.AddEntryResponse{Index: 7, LeafHash: leaf}), client.Submitted{}, "has no proof"},
		{"201 with a short leaf hash", reply(http.StatusCreated, api.AddEntryResponse{Index: 7, LeafHash: leaf[:31], Proof: "bundle"}), client.Submitted{}, "leaf hash of 31 bytes"},
		{"202 not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "ok")
		}, client.Submitted{}, "couldn't parse the reply"},
		{"400", reply(http.StatusBadRequest, api.ErrorResponse{Error: "invalid entry: no"}), client.Submitted{}, "400 Bad Request: invalid entry: no"},
	} {
		_, c := newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){"/v1/entries": tc.reply})
		got, err := c.Submit(ctx, []byte("{}"))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: Submit = %+v, %v; want an error with %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.StatusCode != tc.want.StatusCode || got.Index != tc.want.Index || !bytes.Equal(got.LeafHash, tc.want.LeafHash) ||
			!bytes.Equal(got.Bundle, tc.want.Bundle) || got.Pending != tc.want.Pending || got.Duplicate != tc.want.Duplicate || (got.Witnessed == nil) != (tc.want.Witnessed == nil) {
			t.Errorf("%s: Submit = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}

	// Retry-After is kept with the reason.
	_, c := newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){
		"/v1/entries":         reply(http.StatusServiceUnavailable, api.ErrorResponse{Error: "overloaded"}, "Retry-After", "3"),
		"/v1/proof/inclusion": reply(http.StatusNotFound, api.ErrorResponse{Error: "not yet witnessed"}, "Retry-After", "1"),
	})
	_, err := c.Submit(ctx, []byte("{}"))
	var se *client.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusServiceUnavailable || se.RetryAfter != 3*time.Second || se.Message != "overloaded" {
		t.Errorf("Submit of a 503: %#v", err)
	}
	_, err = c.InclusionProof(ctx, 7)
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || se.RetryAfter != time.Second || se.Message != "not yet witnessed" {
		t.Errorf("InclusionProof of a 404: %#v", err)
	}

	// An inclusion proof of another index, or without a checkpoint.
	for name, r := range map[string]api.InclusionProofResponse{
		"another index":   {Index: 8, TreeSize: 9, LeafHash: leaf, Checkpoint: "cp"},
		"no checkpoint":   {Index: 7, TreeSize: 9, LeafHash: leaf},
		"the right proof": {Index: 7, TreeSize: 9, LeafHash: leaf, Hashes: [][]byte{leaf}, Checkpoint: "cp"},
	} {
		_, c := newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){"/v1/proof/inclusion": reply(http.StatusOK, r)})
		got, err := c.InclusionProof(ctx, 7)
		if ok := name == "the right proof"; (err == nil) != ok || ok && (got.TreeSize != 9 || len(got.Hashes) != 1 || got.Checkpoint != "cp") {
			t.Errorf("InclusionProof with %s = %+v, %v", name, got, err)
		}
	}
}
