package main

import (
	"debug/buildinfo"
	"fmt"
	"path/filepath"
)

// outsideGoBytes is what a pure-Go candor-log holds besides what the Go
// runtime maps and its leaf filter: its code and data, mostly.
const outsideGoBytes = 48 << 20

// memoryBound is the most memory candor-log may hold (README, "Memory"):
// the Go memory limit it set from its configuration, the leaf filter
// (outside the Go heap), and its code. m is its /metrics.
func memoryBound(m map[string]float64) float64 {
	return m["go_gc_gomemlimit_bytes"] + m["candor_log_leaf_filter_bytes"] + outsideGoBytes
}

// pureGo reports whether the candor-log binary in bin was built without
// cgo: with cgo, pebble's block cache and memtables are outside the Go
// memory limit, and the bound does not hold.
func pureGo(bin string) bool {
	bi, err := buildinfo.ReadFile(filepath.Join(bin, "candor-log"))
	if err != nil {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "0"
		}
	}
	return false
}

// checkMemory returns an error if the server's peak memory at any size was
// over memoryBound.
func checkMemory(c config, rows []row) error {
	if !pureGo(c.bin) {
		return nil
	}
	for _, r := range rows {
		if bound := memoryBound(r.memory); float64(r.peakRSSBytes) > bound {
			return fmt.Errorf("at %d entries candor-log's memory peaked at %d MiB, over the %.0f MiB its configuration allows", r.size, r.peakRSSBytes>>20, mib(bound))
		}
	}
	return nil
}
