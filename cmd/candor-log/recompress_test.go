package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
)

// TestRecompressBundles builds a log whose bundles are in its bundle
// files and checks that candor-log recompress-bundles rewrites them into
// the next generation's files, which the log then reads, and refuses
// while the log runs.
func TestRecompressBundles(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	dir := filepath.Join(data, "db")
	store, _ := newStoppedLog(t, data, pebble.Options{BundleFiles: true}, 2*api.TileWidth+5, func(int) string { return strings.Repeat("ab", 32) })
	var err error
	want := make([][]byte, 3)
	for b := range want {
		if want[b], err = store.ReadEntryBundle(ctx, uint64(b)); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := recompressBundles(ctx, []string{"--data", data}, &out); err == nil || !strings.Contains(err.Error(), "stop the log first") {
		t.Fatalf("recompress-bundles of a log in use: %v", err)
	}
	// The mover moves the full bundles within a second of their commit,
	// and the last ones at a graceful close.
	store.Close()
	if err := recompressBundles(ctx, []string{"--data", data}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "recompress-bundles: ok: 2 bundles (0 recompressed), data file from ") {
		t.Errorf("recompress-bundles printed %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "bundles", "data.1")); err != nil {
		t.Errorf("no data file of generation 1: %v", err)
	}
	if store, err = pebble.Open(dir, pebble.Options{Logger: slog.New(slog.DiscardHandler), BundleFiles: true}); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for b := range want {
		if got, err := store.ReadEntryBundle(ctx, uint64(b)); err != nil || !bytes.Equal(got, want[b]) {
			t.Errorf("bundle %d after recompress-bundles: %d bytes, %v", b, len(got), err)
		}
	}

	for _, args := range [][]string{{}, {"--data", t.TempDir()}, {"--data", data, "extra"}} {
		if err := recompressBundles(ctx, args, &out); err == nil {
			t.Errorf("recompress-bundles %q: no error", args)
		}
	}
}
