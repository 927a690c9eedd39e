package client

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
)

// TileReader serves golang.org/x/mod/sumdb/tlog's tile reads from a log,
// so that tlog.TileHashReader can prove and check records and trees
// against a checkpoint using only tiles:
//
//	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, &client.TileReader{Client: c})
//	p, err := tlog.ProveRecord(size, index, hr)
//
// A tlog.Tile of height 8 maps to the c2sp.org/tlog-tiles tile of the
// same level, index and width; level -1 (tlog's record data) maps to the
// entry bundle. TileReader keeps nothing, so SaveTiles does nothing.
type TileReader struct {
	Client *Client
	// Context is used for the requests, since tlog passes none.
	// Default: context.Background().
	Context context.Context
}

var _ tlog.TileReader = (*TileReader)(nil)

// Height implements tlog.TileReader: c2sp.org/tlog-tiles tiles are
// api.TileHeight high.
func (r *TileReader) Height() int { return api.TileHeight }

// ReadTiles implements tlog.TileReader. It fetches the tiles one by one
// and fails on the first error.
func (r *TileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		at, err := apiTile(t)
		if err != nil {
			return nil, err
		}
		if data[i], err = r.Client.Tile(ctx, at); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// SaveTiles implements tlog.TileReader. It does nothing.
func (r *TileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// apiTile converts a tlog tile of height api.TileHeight.
func apiTile(t tlog.Tile) (api.Tile, error) {
	if t.H != api.TileHeight || t.L < -1 || t.N < 0 || t.W < 1 || t.W > api.TileWidth {
		return api.Tile{}, fmt.Errorf("tile %+v is not a c2sp.org/tlog-tiles tile", t)
	}
	level := t.L
	if level == -1 {
		level = api.EntriesLevel
	}
	return api.Tile{Level: level, Index: uint64(t.N), Width: t.W}, nil
}
