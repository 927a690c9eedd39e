package pebble

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DB returns the underlying database, for tests that look at the key
// layout.
func (s *Storage) DB() *pebble.DB { return s.h.db }

// WaitLeafFilter waits until no scan fills a leaf filter and reports
// whether a filter is in use.
func (s *Storage) WaitLeafFilter() bool {
	if s.filter == nil {
		return false
	}
	s.filter.scans.Wait()
	return s.filter.inUse.Load() != nil
}

// LeafFilterBytes returns the size of the leaf filter in use (0 if none).
func (s *Storage) LeafFilterBytes() int64 {
	if s.filter == nil || s.filter.inUse.Load() == nil {
		return 0
	}
	return s.filter.inUse.Load().bytes()
}

// WithFS returns o with the file system fs instead of the operating
// system's, for tests that inject faults.
func WithFS(o Options, fs vfs.FS) Options {
	o.fs = fs
	return o
}

// WithFilterMinEntries returns o with a leaf filter sized for at least n
// entries (instead of about a million) and afterScan called when a scan
// filled a filter, before the filter answers lookups, for tests of a
// filter that grows.
func WithFilterMinEntries(o Options, n uint64, afterScan func()) Options {
	o.filterMinEntries = n
	o.afterFilterScan = afterScan
	return o
}

// LeafLookups returns how many duplicate checks the filter answered
// (absent), and how many it sent to pebble that pebble did not find.
func (s *Storage) LeafLookups() (absent, falsePositive uint64) {
	return s.lookups.absent.Load(), s.lookups.falsePositive.Load()
}

// WriteProbe is the name of the file a reopen after a write error writes
// first, to see whether the disk takes writes again.
const WriteProbe = writeProbe
