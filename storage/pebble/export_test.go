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

// TileFilesHold reports whether the tile files hold every full tile of a
// tree of size entries, readable.
func (s *Storage) TileFilesHold(size uint64) bool {
	for level := range tileLevels {
		full := fullTiles(level, size)
		if full == 0 {
			return true
		}
		f := s.tiles.files[level].Load()
		if f == nil || f.n.Load() < full {
			return false
		}
	}
	return true
}

// TileFileBadReads is how many reads found a record of the tile files
// unusable.
func (s *Storage) TileFileBadReads() uint64 { return s.tiles.badReads.Load() }

// TileRecordSize is the size of a record of the tile files.
const TileRecordSize = tileRecordSize

// WithTileTailCheck returns o with the start checking the last n records
// of each tile file instead of thousands.
func WithTileTailCheck(o Options, n uint64) Options {
	o.tileTailCheck = n
	return o
}

// TileRecord returns the record of the tile files for a tile.
func TileRecord(level uint8, index uint64, hashes, rows []byte) []byte {
	return tileRecord(level, index, hashes, rows)
}

// SavedFilterName is the name of the saved leaf filter's file in the
// database's directory.
const SavedFilterName = savedFilterName

// LeafFilterLoads is how many leaf filters were filled from the saved
// one rather than by a scan.
func (s *Storage) LeafFilterLoads() uint64 { return s.filter.loaded.Load() }

// BundleFilesHold is how many full bundles the bundle files hold (0
// without them).
func (s *Storage) BundleFilesHold() uint64 {
	if s.bundles == nil {
		return 0
	}
	return s.bundles.n.Load()
}

// WithBeforeBundleRecord returns o with hook called by the bundle files'
// mover between its sync of the files and its record of the move in
// pebble: an error fails the move there.
func WithBeforeBundleRecord(o Options, hook func() error) Options {
	o.beforeBundleRecord = hook
	return o
}

// WithS2Bundles returns o with the bundle files' mover compressing
// bundles with S2, as versions before zstd did.
func WithS2Bundles(o Options) Options {
	o.s2Bundles = true
	return o
}

// BundleFilesDir is the bundle files' directory in the database's.
const BundleFilesDir = bundleFilesDir
