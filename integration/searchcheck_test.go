package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"

	"github.com/candorlog/candor/api"
)

// searchAll asks srv's GET /v1/search for query, following the cursor to
// the end, and returns every hit.
func searchAll(ctx context.Context, srv *server, query url.Values) ([]api.SearchHit, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("limit", strconv.Itoa(api.MaxSearchLimit))
	var hits []api.SearchHit
	for {
		var resp api.SearchResponse
		if err := srv.getJSON(ctx, "/v1/search?"+q.Encode(), &resp); err != nil {
			return nil, err
		}
		for _, h := range resp.Hits {
			if n := len(hits); n > 0 && h.Index <= hits[n-1].Index {
				return nil, fmt.Errorf("GET /v1/search?%s: hit %d after hit %d", q.Encode(), h.Index, hits[n-1].Index)
			}
			hits = append(hits, h)
		}
		if resp.Cursor == "" {
			return hits, nil
		}
		q.Set("cursor", resp.Cursor)
	}
}

// searchEntry searches srv for every term of entry at once.
func searchEntry(ctx context.Context, srv *server, entry []byte) ([]api.SearchHit, error) {
	st, err := api.ParseEntry(entry)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, t := range api.SearchTerms(st) {
		q.Add(t.Param, t.Value)
	}
	return searchAll(ctx, srv, q)
}

func hitList(hits []api.SearchHit) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, h := range hits {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%x", h.Index, h.LeafHash[:min(4, len(h.LeafHash))])
	}
	b.WriteByte(']')
	return b.String()
}

// checkKeySearch checks that a search by the key that signed every entry
// finds the entries 0 to size-1 of srv's tree, each with the leaf hash of
// the entry acknowledged at its index.
func (h *history) checkKeySearch(t *testing.T, srv *server, size uint64, cycle int) {
	t.Helper()
	hits, err := searchAll(context.Background(), srv, url.Values{api.SearchKey: {h.signer.KeyFingerprint()}})
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	if uint64(len(hits)) != size {
		t.Fatalf("cycle %d: the key of every entry finds %d entries in a tree of %d", cycle, len(hits), size)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, hit := range hits {
		if hit.Index != uint64(i) {
			t.Fatalf("cycle %d: the key of every entry finds entry %d in place %d", cycle, hit.Index, i)
		}
		if a, ok := h.acks[hit.Index]; ok && !bytes.Equal(a.leafHash, hit.LeafHash) {
			t.Fatalf("cycle %d: search gives entry %d the leaf hash %x, acknowledged with %x", cycle, hit.Index, hit.LeafHash, a.leafHash)
		}
	}
}
