package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// reindex is "candor-log reindex --data DIR": it deletes the search index
// of the stopped log in DIR and rebuilds it from the stored entries
// (log.Reindex). While it runs, and if it fails, the index is marked
// incomplete and the log answers searches with 503.
func reindex(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("candor-log reindex", flag.ContinueOnError)
	data := fs.String("data", "", "`directory` of the log to reindex (required; the log must be stopped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return errors.New("reindex: --data is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("reindex: unexpected arguments %q", fs.Args())
	}
	dir := filepath.Join(*data, "db")
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("reindex: no log in %s: %w", *data, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Rebuilding looks up no leaf: no leaf filter.
	store, err := pebble.Open(dir, pebble.Options{Logger: logger, LeafFilterBytes: -1})
	if err != nil {
		if errors.Is(err, pebble.ErrLocked) {
			return fmt.Errorf("reindex: %w: stop the log first", err)
		}
		return err
	}
	defer store.Close()
	start := time.Now()
	last := start
	stats, err := log.Reindex(ctx, store, func(n uint64) {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stdout, "reindex: %d entries indexed\n", n)
		}
	})
	if err != nil {
		return fmt.Errorf("reindex: %w (the index is left incomplete: searches get 503 until a reindex succeeds)", err)
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "reindex: ok: %d entries, %d search terms indexed in %s (%.0f entries/s)\n",
		stats.Entries, stats.Terms, elapsed.Round(time.Millisecond), float64(stats.Entries)/elapsed.Seconds())
	return nil
}
