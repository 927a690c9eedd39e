package main

import (
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

const (
	// queuedEntryBytes is what an entry waiting in the queue or a
	// submission being handled is taken to hold: entries are about a
	// kilobyte (at most 64 KiB).
	queuedEntryBytes = 1 << 10
	// baseMemoryBytes is the rest: HTTP, metrics, the runtime's own.
	baseMemoryBytes = 64 << 20
)

// memoryLimit is the Go memory limit candor-log runs with: what its
// configuration lets it hold. Pebble's block cache and memtables, the
// tile caches, the queues (maxPending admitted entries and maxInFlight
// submissions), the entry bundle reads in progress, and the rest. The
// leaf filter is outside the Go heap, on top of it.
func memoryLimit(c Config) int64 {
	return pebble.MemoryBytes(c.CacheMiB<<20) + log.TileCacheBytes +
		int64(c.MaxPending+c.MaxInFlight)*queuedEntryBytes + log.BundleReadBytes + baseMemoryBytes
}

// setMemoryLimit sets the Go memory limit to memoryLimit(c), unless the
// GOMEMLIMIT environment variable set one, so that the collector keeps
// the heap within what the configuration says rather than letting it grow
// to twice what is live. In a binary built with cgo, pebble's block cache
// and memtables are allocated with the C library's malloc, outside the
// limit, where freed memory is often not given back.
func setMemoryLimit(c Config, logger *slog.Logger) {
	from := "GOMEMLIMIT"
	if os.Getenv("GOMEMLIMIT") == "" {
		from = "the configuration"
		debug.SetMemoryLimit(memoryLimit(c))
	}
	limit := debug.SetMemoryLimit(-1)
	if builtWithCgo() {
		logger.Info("built with cgo: pebble's block cache and memtables are outside the memory limit (CGO_ENABLED=0 keeps them in it; make build does)", "memory_limit_bytes", limit)
		return
	}
	logger.Info("memory limit", "bytes", limit, "from", from)
}

func builtWithCgo() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}
