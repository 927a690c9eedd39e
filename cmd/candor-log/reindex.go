package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// reindex is "candor-log reindex --data DIR": it deletes the search index
// of the stopped log in DIR and rebuilds it from the stored entries
// (log.Reindex). While it runs, and if it fails, the index is marked
// incomplete and the log answers searches with 503.
func reindex(ctx context.Context, args []string, stdout io.Writer) error {
	dir, logger, err := stoppedLogDB("reindex", args)
	if err != nil {
		return err
	}
	// Rebuilding looks up no leaf: no leaf filter.
	store, err := pebble.Open(dir, pebble.Options{Logger: logger, LeafFilterBytes: -1})
	if err != nil {
		return stopFirst("reindex", err)
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
