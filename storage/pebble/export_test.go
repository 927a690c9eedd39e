package pebble

import "github.com/cockroachdb/pebble/v2"

// DB returns the underlying database, for tests that look at the key
// layout.
func (s *Storage) DB() *pebble.DB { return s.db }
