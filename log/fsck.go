package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
)

// FsckError reports the first thing in storage that does not match what
// the entries recompute to.
type FsckError struct {
	// What names the value: "checkpoint", "entry 17", "tile 1/0", ...
	What   string
	Reason string
}

func (e *FsckError) Error() string { return fmt.Sprintf("fsck: %s: %s", e.What, e.Reason) }

// Fsck re-verifies the whole log in s from scratch: the checkpoint's
// signature, every entry (parsed and its signatures re-checked), every leaf
// hash and its index, every tile, and the root. It returns the verified
// tree size, or the first mismatch as a *FsckError. progress, if not nil,
// is called after every entry bundle with the number of entries checked.
// The entries' signatures are checked on every core, a bundle ahead of
// the rest, which is in order.
func Fsck(ctx context.Context, s Storage, v note.Verifier, progress func(checked uint64)) (uint64, error) {
	cp, size, err := s.ReadCheckpoint(ctx)
	if err != nil {
		return 0, fmt.Errorf("couldn't read the checkpoint: %w", err)
	}
	if cp == nil {
		return 0, &FsckError{What: "checkpoint", Reason: "storage holds no checkpoint"}
	}
	c, _, err := api.OpenCheckpoint(cp, v.Name(), v)
	if err != nil {
		return 0, &FsckError{What: "checkpoint", Reason: err.Error()}
	}
	if c.Size != size {
		return 0, &FsckError{What: "checkpoint", Reason: fmt.Sprintf("signed for size %d, stored as size %d", c.Size, size)}
	}
	tb := &treeBuilder{rng: rangeFactory.NewEmptyRange(0)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bundles := make(chan checkedBundle, 2)
	go checkBundles(ctx, s, size, bundles)
	for first := uint64(0); first < size; first += api.TileWidth {
		var b checkedBundle
		select {
		case b = <-bundles:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if b.err != nil {
			return 0, b.err
		}
		want := uint64(len(b.entries))
		for i, e := range b.entries {
			idx := first + uint64(i)
			bad := func(reason string) error { return &FsckError{What: fmt.Sprintf("entry %d", idx), Reason: reason} }
			if i == b.badAt {
				return 0, bad(b.badErr.Error())
			}
			h := hasher.HashLeaf(e)
			got, err := s.LookupLeaf(ctx, h)
			if err != nil {
				return 0, bad(fmt.Sprintf("leaf hash %x not in the leaf index: %v", h, err))
			}
			if got != idx {
				return 0, bad(fmt.Sprintf("leaf index says leaf hash %x is at %d", h, got))
			}
			if err := tb.append(e, h); err != nil {
				return 0, bad(err.Error())
			}
		}
		tiles, _, _ := tb.flush()
		for _, t := range tiles {
			last := first+want == size
			if err := checkStoredTile(ctx, s, t, last); err != nil {
				return 0, err
			}
		}
		if progress != nil {
			progress(first + want)
		}
	}
	root, err := tb.root()
	if err != nil {
		return 0, err
	}
	if !bytes.Equal(root, c.Hash[:]) {
		return 0, &FsckError{What: "checkpoint", Reason: fmt.Sprintf("entries give root %x, the checkpoint says %x", root, c.Hash)}
	}
	return size, nil
}

// checkedBundle is an entry bundle whose entries were parsed and their
// signatures checked: badAt is the first that failed (-1 if none), with
// badErr; err is the bundle's own failure.
type checkedBundle struct {
	entries [][]byte
	badAt   int
	badErr  error
	err     error
}

// checkBundles reads the entry bundles of a tree of size entries in order
// and sends them to out with their entries checked by api.ParseEntry (the
// costly part of fsck: every signature) on every core, until the last
// bundle, a failed one, or ctx's end.
func checkBundles(ctx context.Context, s Storage, size uint64, out chan<- checkedBundle) {
	workers := runtime.GOMAXPROCS(0)
	for first := uint64(0); first < size; first += api.TileWidth {
		b := checkedBundle{badAt: -1}
		bi := first / api.TileWidth
		what := fmt.Sprintf("entry bundle %d", bi)
		data, err := s.ReadEntryBundle(ctx, bi)
		if err == nil {
			b.entries, err = api.ParseEntryBundle(data)
		}
		want := min(api.TileWidth, size-first)
		switch {
		case err != nil:
			b.err = &FsckError{What: what, Reason: err.Error()}
		case uint64(len(b.entries)) != want:
			b.err = &FsckError{What: what, Reason: fmt.Sprintf("has %d entries, want %d", len(b.entries), want)}
		default:
			errs := make([]error, len(b.entries))
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; i < len(b.entries); i += workers {
						_, errs[i] = api.ParseEntry(b.entries[i])
					}
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					b.badAt, b.badErr = i, err
					break
				}
			}
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
		if b.err != nil {
			return
		}
	}
}

// checkStoredTile compares a recomputed tile with the stored one, which may
// be wider unless the tile is at the tree's final right edge.
func checkStoredTile(ctx context.Context, s Storage, t TileData, exact bool) error {
	what := fmt.Sprintf("tile %d/%d", t.Level, t.Index)
	stored, err := s.ReadTile(ctx, t.Level, t.Index)
	if err != nil {
		return &FsckError{What: what, Reason: err.Error()}
	}
	if len(stored) < len(t.Hashes) || (exact && len(stored) != len(t.Hashes)) || len(stored)%api.HashSize != 0 {
		return &FsckError{What: what, Reason: fmt.Sprintf("stored tile is %d bytes, recomputed %d", len(stored), len(t.Hashes))}
	}
	for i := 0; i < len(t.Hashes); i += api.HashSize {
		if !bytes.Equal(stored[i:i+api.HashSize], t.Hashes[i:i+api.HashSize]) {
			return &FsckError{What: what, Reason: fmt.Sprintf("hash %d is %x, recomputed %x", i/api.HashSize, stored[i:i+api.HashSize], t.Hashes[i:i+api.HashSize])}
		}
	}
	// The rows stored with a full tile give proofs their hashes: they
	// must be the tile's (a tile filled before they were kept has none).
	if rr, ok := s.(TileRowsReader); ok && t.Rows != nil {
		rows, err := rr.ReadTileRows(ctx, t.Level, t.Index)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return &FsckError{What: what, Reason: err.Error()}
		case !bytes.Equal(rows, t.Rows):
			return &FsckError{What: what, Reason: fmt.Sprintf("the stored rows of the full tile (%d bytes) are not the tile's", len(rows))}
		}
	}
	return nil
}
