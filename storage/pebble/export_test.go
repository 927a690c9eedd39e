package pebble

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DB returns the underlying database, for tests that look at the key
// layout.
func (s *Storage) DB() *pebble.DB { return s.h.db }

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

// WriteProbe is the name of the file a reopen after a write error writes
// first, to see whether the disk takes writes again.
const WriteProbe = writeProbe
