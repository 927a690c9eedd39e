package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// newStoppedLog builds a log of n build entries, entry i of the digest
// digest(i), in the data directory data, with the storage options o, and
// closes the log. It returns the storage, still open (as by a running
// log), and the entries' signer.
func newStoppedLog(t *testing.T, data string, o pebble.Options, n int, digest func(i int) string) (*pebble.Storage, *apitest.BuildSigner) {
	t.Helper()
	ctx := context.Background()
	o.Logger = slog.New(slog.DiscardHandler)
	store, err := pebble.Open(filepath.Join(data, "db"), o)
	if err != nil {
		t.Fatal(err)
	}
	signer, verifier, _ := apitest.NewNoteKey("example.com/stopped", rand.Reader)
	l, err := log.New(ctx, log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: o.Logger})
	if err != nil {
		t.Fatal(err)
	}
	s := apitest.NewBuildSignerFromSeed([]byte("stopped"))
	for i := range n {
		entry, st, err := api.AdmitEntry(s.Submission(fmt.Sprintf("a%d", i), digest(i)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.AddWithTerms(ctx, entry, api.SearchTerms(st)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return store, s
}

// TestReindex builds a log of build entries in a data directory, deletes
// its search index, and checks that candor-log reindex rebuilds it, and
// refuses while the log runs.
func TestReindex(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	dir := filepath.Join(data, "db")
	store, s := newStoppedLog(t, data, pebble.Options{}, 300, func(i int) string { return strings.Repeat(fmt.Sprintf("%02x", i%7), 32) })
	// While the database is open, as by a running log, reindex refuses.
	var out bytes.Buffer
	if err := reindex(ctx, []string{"--data", data}, &out); err == nil || !strings.Contains(err.Error(), "stop the log first") {
		t.Fatalf("reindex of a log in use: %v", err)
	}
	if err := store.ResetSearchIndex(ctx); err != nil {
		t.Fatal(err)
	}
	store.Close()

	out.Reset()
	if err := reindex(ctx, []string{"--data", data}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "reindex: ok: 300 entries, 600 search terms indexed in ") {
		t.Errorf("reindex printed %q", out.String())
	}
	store, err := pebble.Open(dir, pebble.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	digest := api.SearchTerm{Param: api.SearchDigest, Value: "sha256:" + strings.Repeat("03", 32)}
	hits, err := store.Search(ctx, []api.SearchTerm{digest, {Param: api.SearchKey, Value: s.KeyFingerprint()}}, 0, 300, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 43 || hits[0] != 3 || hits[42] != 297 {
		t.Errorf("after reindex, %v finds %d entries", digest, len(hits))
	}

	for _, args := range [][]string{{}, {"--data", t.TempDir()}, {"--data", data, "extra"}} {
		if err := reindex(ctx, args, &out); err == nil {
			t.Errorf("reindex %q: no error", args)
		}
	}
}
