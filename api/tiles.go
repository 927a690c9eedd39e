package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

const (
	// TileHeight is the height of a tile: each tile covers 2^TileHeight
	// hashes of the level below it.
	TileHeight = 8
	// TileWidth is the number of hashes in a full tile, and of entries in a
	// full entry bundle.
	TileWidth = 1 << TileHeight
	// HashSize is the size of a SHA-256 Merkle tree hash.
	HashSize = 32
)

// EntriesLevel is the Level of an entry bundle in a Tile. Entry bundles are
// indexed like level 0 tiles.
const EntriesLevel = -1

// maxTileLevel is the highest level a tile path may name.
const maxTileLevel = 63

// maxBundleEntrySize is the largest entry a bundle can hold, set by its
// uint16 length prefix.
const maxBundleEntrySize = 1<<16 - 1

// ErrInvalidTilePath is wrapped by the errors of ParseTilePath.
var ErrInvalidTilePath = errors.New("invalid tile path")

// ErrInvalidBundle is wrapped by the errors of ParseEntryBundle and
// AppendBundleEntry.
var ErrInvalidBundle = errors.New("invalid entry bundle")

// Tile names one tile of Merkle tree hashes, or one entry bundle when Level
// is EntriesLevel.
//
// Level is EntriesLevel or 0..63. Index is the tile's position in its level.
// Width is the number of hashes (or entries) in it, 1..TileWidth; TileWidth
// means a full tile, anything less a partial one.
type Tile struct {
	Level int
	Index uint64
	Width int
}

// Path returns the tile's path relative to the log's prefix, without a
// leading slash, such as "tile/0/x001/x234/067.p/5", "tile/entries/000" or
// "tile/2/001".
//
// Path does not check t: for a Tile with a Level or Width out of range the
// result is a path that ParseTilePath rejects.
func (t Tile) Path() string {
	b := make([]byte, 0, 40)
	b = append(b, "tile/"...)
	if t.Level == EntriesLevel {
		b = append(b, "entries"...)
	} else {
		b = strconv.AppendInt(b, int64(t.Level), 10)
	}
	b = append(b, '/')
	b = appendTileIndex(b, t.Index)
	if t.Width != TileWidth {
		b = append(b, ".p/"...)
		b = strconv.AppendInt(b, int64(t.Width), 10)
	}
	return string(b)
}

// appendTileIndex appends n as zero-padded 3-digit path elements, all but
// the last prefixed with "x".
func appendTileIndex(b []byte, n uint64) []byte {
	var groups [7]uint16 // 2^64-1 has 20 digits: 7 groups
	i := len(groups)
	for {
		i--
		groups[i] = uint16(n % 1000)
		n /= 1000
		if n == 0 {
			break
		}
	}
	for j := i; j < len(groups); j++ {
		if j > i {
			b = append(b, '/')
		}
		if j < len(groups)-1 {
			b = append(b, 'x')
		}
		g := groups[j]
		b = append(b, byte('0'+g/100), byte('0'+g/10%10), byte('0'+g%10))
	}
	return b
}

// ParseTilePath parses a path as produced by Tile.Path, with or without one
// leading "/". It rejects every other spelling, so that a tile has exactly
// one path: levels outside 0..63, leading zeroes in the level or width,
// widths outside 1..255 after ".p/", index elements that are not three
// digits, missing or extra "x" prefixes, a leading "x000" element, an index
// that overflows uint64, and anything after the width.
//
// Every error wraps ErrInvalidTilePath.
func ParseTilePath(path string) (Tile, error) {
	t, ok := parseTilePath(path)
	if !ok {
		return Tile{}, fmt.Errorf("%w: %q", ErrInvalidTilePath, path)
	}
	return t, nil
}

func parseTilePath(path string) (Tile, bool) {
	rest := strings.TrimPrefix(path, "/")
	rest, ok := strings.CutPrefix(rest, "tile/")
	if !ok {
		return Tile{}, false
	}
	var t Tile
	level, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return Tile{}, false
	}
	if level == "entries" {
		t.Level = EntriesLevel
	} else {
		l, ok := parseSmallDecimal(level, maxTileLevel)
		if !ok {
			return Tile{}, false
		}
		t.Level = l
	}

	// The index: "x" elements, then a final element of three digits,
	// optionally followed by ".p/<W>".
	first := true
	for {
		elem, after, more := strings.Cut(rest, "/")
		if strings.HasPrefix(elem, "x") {
			if !more {
				return Tile{}, false
			}
			g, ok := parseGroup(elem[1:])
			if !ok || first && g == 0 {
				return Tile{}, false
			}
			if t.Index, ok = pushGroup(t.Index, g); !ok {
				return Tile{}, false
			}
			first = false
			rest = after
			continue
		}
		if len(elem) < 3 {
			return Tile{}, false
		}
		g, ok := parseGroup(elem[:3])
		if !ok {
			return Tile{}, false
		}
		if t.Index, ok = pushGroup(t.Index, g); !ok {
			return Tile{}, false
		}
		switch {
		case len(elem) == 3 && !more:
			t.Width = TileWidth
			return t, true
		case elem[3:] == ".p" && more:
			w, ok := parseSmallDecimal(after, TileWidth-1)
			if !ok || w == 0 {
				return Tile{}, false
			}
			t.Width = w
			return t, true
		default:
			return Tile{}, false
		}
	}
}

// parseGroup parses exactly three ASCII digits.
func parseGroup(s string) (uint64, bool) {
	if len(s) != 3 {
		return 0, false
	}
	var g uint64
	for i := 0; i < 3; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		g = g*10 + uint64(c-'0')
	}
	return g, true
}

// pushGroup returns n*1000 + g, or false if that overflows uint64.
func pushGroup(n, g uint64) (uint64, bool) {
	const maxUint64 = 1<<64 - 1
	if n > (maxUint64-g)/1000 {
		return 0, false
	}
	return n*1000 + g, true
}

// parseSmallDecimal parses a decimal in 0..max with no leading zeroes.
func parseSmallDecimal(s string, max int) (int, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || len(s) > 3 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > max {
		return 0, false
	}
	return n, true
}

// TileForSize returns the tile at level and index as it is in a tree of the
// given size. Level EntriesLevel names entry bundles, which have the widths
// of level 0 tiles.
//
// The tile's Width is min(TileWidth, count-index*TileWidth), where count =
// size >> (TileHeight*level) is the number of hashes at that level. ok is
// false when that tile is empty or beyond the tree, or level is out of range.
func TileForSize(level int, index, size uint64) (t Tile, ok bool) {
	if level < EntriesLevel || level > maxTileLevel {
		return Tile{}, false
	}
	count := size
	if level > 0 {
		count = size >> (TileHeight * uint(level))
	}
	full := count / TileWidth
	switch {
	case index < full:
		return Tile{Level: level, Index: index, Width: TileWidth}, true
	case index == full && count%TileWidth != 0:
		return Tile{Level: level, Index: index, Width: int(count % TileWidth)}, true
	default:
		return Tile{}, false
	}
}

// AppendBundleEntry appends entry to the entry bundle b, prefixed with its
// length as a big-endian uint16, and returns the extended bundle. It returns
// an error wrapping ErrInvalidBundle, and b unchanged, if entry is longer
// than 65,535 bytes.
func AppendBundleEntry(b []byte, entry []byte) ([]byte, error) {
	if len(entry) > maxBundleEntrySize {
		return b, fmt.Errorf("%w: entry of %d bytes is longer than %d", ErrInvalidBundle, len(entry), maxBundleEntrySize)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(entry)))
	return append(b, entry...), nil
}

// ParseEntryBundle splits an entry bundle into its entries. The entries
// share memory with b (each with its capacity capped at its length, so
// appending to one never overwrites the next). An empty b is a bundle of no
// entries; checking the number of entries against the tile's Width is up to
// the caller.
//
// It returns an error wrapping ErrInvalidBundle if the bundle ends inside a
// length prefix or an entry.
func ParseEntryBundle(b []byte) ([][]byte, error) {
	var entries [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("%w: %d trailing bytes after entry %d", ErrInvalidBundle, len(b)-off, len(entries))
		}
		n := int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if len(b)-off < n {
			return nil, fmt.Errorf("%w: entry %d is truncated: %d bytes of %d", ErrInvalidBundle, len(entries), len(b)-off, n)
		}
		entries = append(entries, b[off:off+n:off+n])
		off += n
	}
	return entries, nil
}
