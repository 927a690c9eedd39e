package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// TestSearchReindex runs candor-log on a log of entries by two signers
// about shared digests, records the answers of a few searches, then stops
// it and checks that `candor-log reindex` (refused while the log runs)
// rebuilds an index that gives the same answers after a restart, and
// answers what a scan of the entries gives.
func TestSearchReindex(t *testing.T) {
	requireBinaries(t)
	ctx := context.Background()
	data := t.TempDir()
	srv := mustStartServer(t, "candor-log", data, "--origin", "example.com/search")
	signers := []*apitest.BuildSigner{apitest.NewBuildSignerFromSeed([]byte("it search 0")), apitest.NewBuildSignerFromSeed([]byte("it search 1"))}
	digest := func(k int) string {
		d := sha256.Sum256(fmt.Appendf(nil, "digest %d", k))
		return hex.EncodeToString(d[:])
	}
	const n = 700
	type sub struct{ signer, digest int }
	subs := make([]sub, n)
	indexOf := make([]uint64, n)
	parallelN(t, 16, n, func(i int) error {
		subs[i] = sub{i % 2, i % 11}
		code, resp, body, err := srv.submit(ctx, signers[i%2].Submission(fmt.Sprintf("it-%d", i), digest(i%11)))
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("submission %d: %d %s %v", i, code, body, err)
		}
		indexOf[i] = resp.Index
		return nil
	})
	if t.Failed() {
		return
	}
	// What a scan of the submissions says each query must find.
	scan := func(signer, d int) []uint64 {
		var idx []uint64
		for i, s := range subs {
			if (signer < 0 || s.signer == signer) && (d < 0 || s.digest == d) {
				idx = append(idx, indexOf[i])
			}
		}
		slices.Sort(idx)
		return idx
	}
	queries := []struct {
		q    url.Values
		want []uint64
	}{
		{url.Values{"key": {signers[0].KeyFingerprint()}}, scan(0, -1)},
		{url.Values{"digest": {"sha256:" + digest(3)}}, scan(-1, 3)},
		{url.Values{"digest": {"sha256:" + strings.ToUpper(digest(4))}, "key": {signers[1].KeyFingerprint()}}, scan(1, 4)},
		{url.Values{"digest": {"sha256:" + digest(99)}}, nil},
	}
	answers := func() [][]api.SearchHit {
		t.Helper()
		var all [][]api.SearchHit
		for _, q := range queries {
			hits, err := searchAll(ctx, srv, q.q)
			if err != nil {
				t.Fatal(err)
			}
			var idx []uint64
			for _, h := range hits {
				idx = append(idx, h.Index)
			}
			if !slices.Equal(idx, q.want) {
				t.Fatalf("GET /v1/search?%s found %v, the scan %v", q.q.Encode(), idx, q.want)
			}
			all = append(all, hits)
		}
		return all
	}
	before := answers()

	// Not while the log runs.
	p := startProcess(t, "candor-log reindex", "reindex", "--data", data)
	if ok, err := p.wait(time.Minute); !ok || err == nil || !strings.Contains(p.stderr.String(), "stop the log first") {
		t.Fatalf("candor-log reindex while the log runs: %v\n%s%s", err, p.stdout.String(), p.stderr.String())
	}
	srv.stop(t)
	p = startProcess(t, "candor-log reindex", "reindex", "--data", data)
	if ok, err := p.wait(time.Minute); !ok || err != nil {
		t.Fatalf("candor-log reindex: %v\n%s%s", err, p.stdout.String(), p.stderr.String())
	}
	if want := fmt.Sprintf("reindex: ok: %d entries, %d search terms indexed in ", n, 2*n); !strings.Contains(p.stdout.String(), want) {
		t.Fatalf("candor-log reindex printed %q, want %q", p.stdout.String(), want)
	}
	srv = mustStartServer(t, "candor-log (after reindex)", data, "--origin", "example.com/search")
	after := answers()
	for i := range before {
		if !slices.EqualFunc(before[i], after[i], func(a, b api.SearchHit) bool { return a.Index == b.Index && string(a.LeafHash) == string(b.LeafHash) }) {
			t.Errorf("GET /v1/search?%s: %s before the reindex, %s after", queries[i].q.Encode(), hitList(before[i]), hitList(after[i]))
		}
	}
	srv.stop(t)
}
