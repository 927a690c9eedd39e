package pebble

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/candorlog/candor/api"
)

func TestFullBundle(t *testing.T) {
	bundle := func(n int) []byte {
		var b []byte
		for i := range n {
			e := bytes.Repeat([]byte{byte(i)}, i%7)
			b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
			b = append(b, e...)
		}
		return b
	}
	full := bundle(api.TileWidth)
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"full", full, true},
		{"one short", bundle(api.TileWidth - 1), false},
		{"one more", bundle(api.TileWidth + 1), false},
		{"last entry cut", full[:len(full)-1], false},
		{"half a length", append(bundle(api.TileWidth-1), 0), false},
		{"empty", nil, false},
	} {
		if got := fullBundle(tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
