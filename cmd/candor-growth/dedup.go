package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// dedupChecks is how many leaf hashes measureDedup looks up.
const dedupChecks = 1_000_000

// measureDedup opens the log's storage as candor-log does, waits for its
// leaf filter and times the lookup of leaf hashes that are not in the
// log, as the check of every new entry for a duplicate does.
func measureDedup(c config) (dedupFigures, error) {
	var d dedupFigures
	start := time.Now()
	store, err := pebble.Open(filepath.Join(c.dir, "db"), pebble.Options{CacheBytes: int64(c.cacheMiB) << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return d, err
	}
	defer store.Close()
	if !store.WaitLeafFilter() {
		return d, errors.New("the leaf filter did not fill")
	}
	d.filterFill = time.Since(start)
	d.filterBytes = store.LeafFilterBytes()
	hashes := make([]byte, 32*dedupChecks)
	rand.Read(hashes)
	ctx := context.Background()
	_, fp0 := store.LeafLookups()
	start = time.Now()
	for i := range dedupChecks {
		if _, err := store.LookupLeaf(ctx, hashes[32*i:32*i+32]); !errors.Is(err, log.ErrNotFound) {
			return d, fmt.Errorf("lookup of a random leaf hash: %v, want not found", err)
		}
	}
	d.perCheck = time.Since(start) / dedupChecks
	_, fp1 := store.LeafLookups()
	d.falsePositive = float64(fp1-fp0) / dedupChecks
	return d, nil
}
