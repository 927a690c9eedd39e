//go:build !linux

package pebble

import "os"

// readAhead does nothing: the reads fill the page cache as they go.
func readAhead(*os.File, int64, <-chan struct{}) (bool, error) { return false, nil }
