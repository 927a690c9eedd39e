package api

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestTilePath(t *testing.T) {
	tests := []struct {
		tile Tile
		path string
	}{
		{Tile{Level: 0, Index: 0, Width: 256}, "tile/0/000"},
		{Tile{Level: 0, Index: 1234067, Width: 256}, "tile/0/x001/x234/067"},
		{Tile{Level: 0, Index: 1234067, Width: 5}, "tile/0/x001/x234/067.p/5"},
		{Tile{Level: 2, Index: 1, Width: 256}, "tile/2/001"},
		{Tile{Level: 63, Index: 999, Width: 255}, "tile/63/999.p/255"},
		{Tile{Level: 1, Index: 1000, Width: 1}, "tile/1/x001/000.p/1"},
		{Tile{Level: 0, Index: 1000000, Width: 256}, "tile/0/x001/x000/000"},
		{Tile{Level: EntriesLevel, Index: 0, Width: 256}, "tile/entries/000"},
		{Tile{Level: EntriesLevel, Index: 273, Width: 112}, "tile/entries/273.p/112"},
		{Tile{Level: EntriesLevel, Index: 1<<64 - 1, Width: 256}, "tile/entries/x018/x446/x744/x073/x709/x551/615"},
	}
	for _, tt := range tests {
		if got := tt.tile.Path(); got != tt.path {
			t.Errorf("%+v.Path() = %q, want %q", tt.tile, got, tt.path)
		}
		for _, p := range []string{tt.path, "/" + tt.path} {
			got, err := ParseTilePath(p)
			if err != nil {
				t.Errorf("ParseTilePath(%q): %v", p, err)
				continue
			}
			if got != tt.tile {
				t.Errorf("ParseTilePath(%q) = %+v, want %+v", p, got, tt.tile)
			}
		}
	}
}

func TestParseTilePathRejects(t *testing.T) {
	bad := []string{
		"",
		"/",
		"tile",
		"tile/",
		"tile/0",
		"tile/0/",
		"//tile/0/000",
		"tiles/0/000",
		"Tile/0/000",
		"tile/64/000",   // level out of range
		"tile/00/000",   // leading zero in level
		"tile/01/000",   // leading zero in level
		"tile/-1/000",   // negative level
		"tile/+1/000",   // sign
		"tile/1000/000", // level out of range
		"tile/data/000", // x/mod's name for entries
		"tile/8/0/000",  // x/mod's height element
		"tile/Entries/000",
		"tile/0/00",      // short group
		"tile/0/0000",    // long group
		"tile/0/1",       // short group
		"tile/0/abc",     // not digits
		"tile/0/x000",    // x on the last element
		"tile/0/x001",    // x on the last element
		"tile/0/001/234", // missing x
		"tile/0/X001/234",
		"tile/0/x1/234",
		"tile/0/x0001/234",
		"tile/0/x000/001",        // non-canonical leading zero group
		"tile/0/x000/x001/002",   // non-canonical leading zero group
		"tile/0/xx01/234",        // double x
		"tile/0/x001//234",       // empty element
		"tile/0/000/",            // trailing slash
		"tile/0/000.p",           // no width
		"tile/0/000.p/",          // empty width
		"tile/0/000.p/0",         // zero width
		"tile/0/000.p/256",       // full width spelled as partial
		"tile/0/000.p/1000",      // width out of range
		"tile/0/000.p/05",        // leading zero in width
		"tile/0/000.p/5/",        // trailing slash
		"tile/0/000.p/5x",        // trailing junk
		"tile/0/000.p/-5",        // sign
		"tile/0/000.q/5",         // wrong suffix
		"tile/0/000p/5",          // wrong suffix
		"tile/0/000.p/5.p/5",     // doubled suffix
		"tile/0/000 ",            // trailing space
		"tile/0/x001.p/5/234",    // suffix on a non-final element
		"tile/entries/000.p/256", // full width spelled as partial
		"tile/entries/x018/x446/x744/x073/x709/x551/616",      // 2^64
		"tile/entries/x999/x999/x999/x999/x999/x999/x999/999", // overflow
		"tile/0/x001/x000/x000/x000/x000/x000/x000/000",       // overflow
	}
	for _, p := range bad {
		tile, err := ParseTilePath(p)
		if err == nil {
			t.Errorf("ParseTilePath(%q) = %+v, want error", p, tile)
			continue
		}
		if !errors.Is(err, ErrInvalidTilePath) {
			t.Errorf("ParseTilePath(%q) error %v does not wrap ErrInvalidTilePath", p, err)
		}
	}
}

func randomTile(r *rand.Rand) Tile {
	tile := Tile{Level: r.IntN(65) - 1, Width: 1 + r.IntN(TileWidth)}
	if r.IntN(2) == 0 {
		tile.Width = TileWidth
	}
	switch r.IntN(4) {
	case 0:
		tile.Index = r.Uint64N(1000)
	case 1:
		tile.Index = r.Uint64N(1 << 32)
	default:
		tile.Index = r.Uint64() >> r.UintN(64)
	}
	return tile
}

func TestTilePathRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		tile := randomTile(r)
		p := tile.Path()
		got, err := ParseTilePath(p)
		if err != nil {
			t.Fatalf("ParseTilePath(%q) for %+v: %v", p, tile, err)
		}
		if got != tile {
			t.Fatalf("ParseTilePath(%q) = %+v, want %+v", p, got, tile)
		}
	}
}

// TestTilePathMatchesTlog checks our paths against x/mod's sumdb/tlog, whose
// paths carry an extra height element and call entry bundles "data".
func TestTilePathMatchesTlog(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		tile := randomTile(r)
		tile.Index >>= 1 // tlog.Tile.N is an int64
		theirs := tlog.Tile{H: TileHeight, L: tile.Level, N: int64(tile.Index), W: tile.Width}.Path()
		var want string
		if after, ok := strings.CutPrefix(theirs, "tile/8/data/"); ok {
			want = "tile/entries/" + after
		} else if after, ok := strings.CutPrefix(theirs, "tile/8/"); ok {
			want = "tile/" + after
		} else {
			t.Fatalf("unexpected tlog path %q", theirs)
		}
		if got := tile.Path(); got != want {
			t.Fatalf("%+v.Path() = %q, tlog says %q", tile, got, want)
		}
	}
}

func TestTileForSize(t *testing.T) {
	type tileAt struct {
		level int
		index uint64
	}
	tests := []struct {
		size uint64
		at   tileAt
		want Tile
		ok   bool
	}{
		{0, tileAt{0, 0}, Tile{}, false},
		{0, tileAt{EntriesLevel, 0}, Tile{}, false},
		{1, tileAt{0, 0}, Tile{0, 0, 1}, true},
		{1, tileAt{EntriesLevel, 0}, Tile{EntriesLevel, 0, 1}, true},
		{1, tileAt{0, 1}, Tile{}, false},
		{1, tileAt{1, 0}, Tile{}, false},
		{255, tileAt{0, 0}, Tile{0, 0, 255}, true},
		{255, tileAt{1, 0}, Tile{}, false},
		{256, tileAt{0, 0}, Tile{0, 0, 256}, true},
		{256, tileAt{EntriesLevel, 0}, Tile{EntriesLevel, 0, 256}, true},
		{256, tileAt{0, 1}, Tile{}, false},
		{256, tileAt{1, 0}, Tile{1, 0, 1}, true},
		{257, tileAt{0, 0}, Tile{0, 0, 256}, true},
		{257, tileAt{0, 1}, Tile{0, 1, 1}, true},
		{257, tileAt{1, 0}, Tile{1, 0, 1}, true},
		{65536, tileAt{0, 255}, Tile{0, 255, 256}, true},
		{65536, tileAt{0, 256}, Tile{}, false},
		{65536, tileAt{1, 0}, Tile{1, 0, 256}, true},
		{65536, tileAt{1, 1}, Tile{}, false},
		{65536, tileAt{2, 0}, Tile{2, 0, 1}, true},
		{65537, tileAt{0, 256}, Tile{0, 256, 1}, true},
		{65537, tileAt{EntriesLevel, 256}, Tile{EntriesLevel, 256, 1}, true},
		{65537, tileAt{1, 0}, Tile{1, 0, 256}, true},
		{65537, tileAt{1, 1}, Tile{}, false},
		{65537, tileAt{2, 0}, Tile{2, 0, 1}, true},
		{70000, tileAt{0, 272}, Tile{0, 272, 256}, true},
		{70000, tileAt{0, 273}, Tile{0, 273, 112}, true},
		{70000, tileAt{EntriesLevel, 273}, Tile{EntriesLevel, 273, 112}, true},
		{70000, tileAt{0, 274}, Tile{}, false},
		{70000, tileAt{1, 0}, Tile{1, 0, 256}, true},
		{70000, tileAt{1, 1}, Tile{1, 1, 17}, true},
		{70000, tileAt{1, 2}, Tile{}, false},
		{70000, tileAt{2, 0}, Tile{2, 0, 1}, true},
		{70000, tileAt{3, 0}, Tile{}, false},
		{1<<64 - 1, tileAt{6, 254}, Tile{6, 254, 256}, true},
		{1<<64 - 1, tileAt{6, 255}, Tile{6, 255, 255}, true},
		{1<<64 - 1, tileAt{7, 0}, Tile{7, 0, 255}, true},
		{1<<64 - 1, tileAt{7, 1}, Tile{}, false},
		{1<<64 - 1, tileAt{8, 0}, Tile{}, false},
		{1<<64 - 1, tileAt{0, 1<<56 - 1}, Tile{0, 1<<56 - 1, 255}, true},
		{1<<64 - 1, tileAt{0, 1 << 56}, Tile{}, false},
		{1<<64 - 1, tileAt{63, 0}, Tile{}, false},
		{1<<64 - 1, tileAt{64, 0}, Tile{}, false},
		{1<<64 - 1, tileAt{-2, 0}, Tile{}, false},
	}
	for _, tt := range tests {
		got, ok := TileForSize(tt.at.level, tt.at.index, tt.size)
		if got != tt.want || ok != tt.ok {
			t.Errorf("TileForSize(%d, %d, %d) = %+v, %v; want %+v, %v", tt.at.level, tt.at.index, tt.size, got, ok, tt.want, tt.ok)
		}
	}
}

// TestTileForSizeCounts checks the tiles of whole trees, including the
// tree of size 70,000 described in c2sp.org/tlog-tiles.
func TestTileForSizeCounts(t *testing.T) {
	type count struct{ full, partialWidth int }
	tests := []struct {
		size uint64
		want map[int]count // by level; levels not listed have no tiles
	}{
		{0, map[int]count{}},
		{1, map[int]count{0: {0, 1}}},
		{256, map[int]count{0: {1, 0}, 1: {0, 1}}},
		{70000, map[int]count{0: {273, 112}, 1: {1, 17}, 2: {0, 1}}},
	}
	for _, tt := range tests {
		for level := EntriesLevel; level <= maxTileLevel; level++ {
			var got count
			var index uint64
			for ; ; index++ {
				tile, ok := TileForSize(level, index, tt.size)
				if !ok {
					break
				}
				if tile.Width == TileWidth {
					if got.partialWidth != 0 {
						t.Errorf("size %d level %d: full tile %d after a partial one", tt.size, level, index)
					}
					got.full++
				} else {
					got.partialWidth = tile.Width
				}
			}
			wantLevel := level
			if level == EntriesLevel {
				wantLevel = 0
			}
			if want := tt.want[wantLevel]; got != want {
				t.Errorf("size %d level %d: got %d full tiles and partial width %d, want %d and %d",
					tt.size, level, got.full, got.partialWidth, want.full, want.partialWidth)
			}
		}
	}
}

func TestEntryBundle(t *testing.T) {
	entries := [][]byte{
		[]byte("hello"),
		{},
		bytes.Repeat([]byte{0xff}, maxBundleEntrySize),
		[]byte("world"),
	}
	var b []byte
	for _, e := range entries {
		var err error
		if b, err = AppendBundleEntry(b, e); err != nil {
			t.Fatal(err)
		}
	}
	if want := 4*2 + 5 + 0 + maxBundleEntrySize + 5; len(b) != want {
		t.Fatalf("bundle is %d bytes, want %d", len(b), want)
	}
	if !bytes.HasPrefix(b, []byte("\x00\x05hello\x00\x00\xff\xff\xff")) {
		t.Errorf("bundle starts %q", b[:12])
	}
	got, err := ParseEntryBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(entries) {
		t.Fatalf("got %d entries, want %d", len(got), len(entries))
	}
	for i := range entries {
		if !bytes.Equal(got[i], entries[i]) {
			t.Errorf("entry %d differs", i)
		}
	}
	// Appending to a parsed entry must not overwrite the next one.
	_ = append(got[0], 'X')
	if !bytes.Equal(got[1], entries[1]) || b[7] != 0 {
		t.Errorf("appending to entry 0 overwrote the bundle")
	}

	if got, err := ParseEntryBundle(nil); err != nil || len(got) != 0 {
		t.Errorf("ParseEntryBundle(nil) = %q, %v; want no entries", got, err)
	}
}

func TestAppendBundleEntryTooLarge(t *testing.T) {
	b := []byte("\x00\x01a")
	got, err := AppendBundleEntry(b, make([]byte, maxBundleEntrySize+1))
	if !errors.Is(err, ErrInvalidBundle) {
		t.Errorf("AppendBundleEntry of %d bytes: err = %v, want ErrInvalidBundle", maxBundleEntrySize+1, err)
	}
	if !bytes.Equal(got, b) {
		t.Errorf("AppendBundleEntry changed the bundle on error")
	}
}

func TestParseEntryBundleRejects(t *testing.T) {
	bad := []string{
		"\x00",              // short length
		"\x00\x01",          // missing entry
		"\x00\x02a",         // truncated entry
		"\x00\x01a\x00",     // trailing byte
		"\x00\x01a\x00\x02", // truncated second entry
		"\xff\xff",          // length with nothing after it
	}
	for _, s := range bad {
		got, err := ParseEntryBundle([]byte(s))
		if err == nil {
			t.Errorf("ParseEntryBundle(%q) = %q, want error", s, got)
			continue
		}
		if !errors.Is(err, ErrInvalidBundle) {
			t.Errorf("ParseEntryBundle(%q) error %v does not wrap ErrInvalidBundle", s, err)
		}
	}
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{
		"tile/0/000",
		"/tile/0/x001/x234/067.p/5",
		"tile/entries/x018/x446/x744/x073/x709/x551/615",
		"tile/entries/273.p/112",
		"tile/63/999.p/255",
		"tile/0/x000/001",
		"tile/0/000.p/256",
		"tile/8/data/000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		tile, err := ParseTilePath(path)
		if err != nil {
			if !errors.Is(err, ErrInvalidTilePath) {
				t.Fatalf("error %v does not wrap ErrInvalidTilePath", err)
			}
			return
		}
		if got, want := tile.Path(), strings.TrimPrefix(path, "/"); got != want {
			t.Fatalf("ParseTilePath(%q) = %+v, whose Path is %q", path, tile, got)
		}
		if tile.Level < EntriesLevel || tile.Level > maxTileLevel || tile.Width < 1 || tile.Width > TileWidth {
			t.Fatalf("ParseTilePath(%q) = %+v, out of range", path, tile)
		}
	})
}

func FuzzParseEntryBundle(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x00\x05hello\x00\x00\x00\x05world"))
	f.Add([]byte("\x00\x02a"))
	f.Add([]byte("\x00\x01a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := ParseEntryBundle(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidBundle) {
				t.Fatalf("error %v does not wrap ErrInvalidBundle", err)
			}
			return
		}
		var out []byte
		for _, e := range entries {
			if out, err = AppendBundleEntry(out, e); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-marshaled bundle %q differs from input %q", out, b)
		}
	})
}
