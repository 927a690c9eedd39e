package pebble

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DB returns the underlying database, for tests that look at the key
// layout.
func (s *Storage) DB() *pebble.DB { return s.h.db }

// WaitLeafFilter waits until the leaf filter's startup scan has ended and
// reports whether the filter is in use.
func (s *Storage) WaitLeafFilter() bool {
	<-s.filled
	return s.filter != nil && s.filter.ready.Load()
}

// WithFS returns o with the file system fs instead of the operating
// system's, for tests that inject faults.
func WithFS(o Options, fs vfs.FS) Options {
	o.fs = fs
	return o
}

// WriteProbe is the name of the file a reopen after a write error writes
// first, to see whether the disk takes writes again.
const WriteProbe = writeProbe
