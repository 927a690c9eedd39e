package pebble

import "github.com/cockroachdb/pebble/v2"

// DB returns the underlying database, for tests that look at the key
// layout.
func (s *Storage) DB() *pebble.DB { return s.db }

// WaitLeafFilter waits until the leaf filter's startup scan has ended and
// reports whether the filter is in use.
func (s *Storage) WaitLeafFilter() bool {
	<-s.filled
	return s.filter != nil && s.filter.ready.Load()
}
