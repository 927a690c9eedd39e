package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	apiclient "github.com/candorlog/candor/api/client"
)

// TestSearch submits build entries to a real log and checks what candor
// search prints: every hit, in log order, across pages, and the log's
// reason with a non-zero exit when it refuses the query.
func TestSearch(t *testing.T) {
	url, _ := newTestLog(t, nil)
	c := apiclient.New(url, nil)
	ctx := context.Background()
	a := apitest.NewBuildSignerFromSeed([]byte("search a"))
	b := apitest.NewBuildSignerFromSeed([]byte("search b"))
	digest := strings.Repeat("ab", 32)
	var wantA, wantBoth []string
	for i := range 25 {
		s, d := a, strings.Repeat(fmt.Sprintf("%02x", i), 32)
		if i%3 == 0 {
			s = b
		}
		if i%5 == 0 {
			d = digest
		}
		r, _, err := c.AddEntry(ctx, s.Submission(fmt.Sprintf("x%d", i), d))
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%d %s", r.Index, base64.StdEncoding.EncodeToString(r.LeafHash))
		if s == a {
			wantA = append(wantA, line)
			if d == digest {
				wantBoth = append(wantBoth, line)
			}
		}
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--key", a.KeyFingerprint()}, wantA},
		{[]string{"--key", a.KeyFingerprint(), "--limit", "3"}, wantA[:3]},
		{[]string{"--key", strings.ToUpper(a.KeyFingerprint()[:1]) + a.KeyFingerprint()[1:], "--digest", "sha256:" + strings.ToUpper(digest)}, wantBoth},
		{[]string{"--repository", "https://example.com/none.git"}, nil},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append([]string{"search", "--log", url}, tt.args...), &stdout, &stderr); code != 0 {
			t.Fatalf("candor search %q: exit %d: %s", tt.args, code, stderr.String())
		}
		if got := lines(stdout.String()); !slices.Equal(got, tt.want) {
			t.Errorf("candor search %q printed %q, want %q", tt.args, stdout.String(), tt.want)
		}
	}
	// Several pages: the server's own limit, through the client.
	var got []api.SearchHit
	cursor := ""
	for {
		r, err := c.Search(ctx, []api.SearchTerm{{Param: api.SearchKey, Value: a.KeyFingerprint()}}, cursor, 4)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Hits...)
		if cursor = r.Cursor; cursor == "" {
			break
		}
	}
	if len(got) != len(wantA) {
		t.Errorf("paging by 4 found %d hits, want %d", len(got), len(wantA))
	}

	// Refusals.
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--commit", "nothex"}, 1, "refused by the log: invalid search: commit"},
		{[]string{"--key", "sha256:00"}, 1, "want sha256: and 64 hex digits"},
		{[]string{}, 2, "usage"},
		{[]string{"--key", a.KeyFingerprint(), "extra"}, 1, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(ctx, append([]string{"search", "--log", url}, tt.args...), &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) || stdout.Len() != 0 {
			t.Errorf("candor search %q: exit %d, stdout %q, stderr %q; want exit %d saying %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.stderr)
		}
	}
	// The log from the environment.
	t.Setenv("CANDOR_LOG", url)
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"search", "--key", b.KeyFingerprint(), "--limit", "1"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "0 ") {
		t.Errorf("candor search with CANDOR_LOG: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
}

// lines splits s into its lines, none for an empty s.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
