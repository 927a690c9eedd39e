package pebble_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/storagetest"
	"github.com/candorlog/candor/storage/pebble"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestStorage runs the conformance suite on the store, without tile and
// bundle files, with tile files, and with both.
func TestStorage(t *testing.T) {
	for _, files := range []struct{ tiles, bundles bool }{{false, false}, {true, false}, {true, true}} {
		o := pebble.Options{Logger: quiet, CacheBytes: 8 << 20, TileFiles: files.tiles, BundleFiles: files.bundles}
		t.Run(fmt.Sprintf("tileFiles=%v/bundleFiles=%v", files.tiles, files.bundles), func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) log.Storage {
				s, err := pebble.Open(t.TempDir(), o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
				return s
			})
			storagetest.RunDurable(t, func(t *testing.T, dir string) (log.Storage, func() error) {
				s, err := pebble.Open(dir, o)
				if err != nil {
					t.Fatal(err)
				}
				return s, s.Close
			})
		})
	}
}

// TestCorruptRecords checks that values the store can't decode are errors,
// not silently wrong answers.
func TestCorruptRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := cpebble.Open(dir, &cpebble.Options{Logger: discardLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := make([]byte, 32)
	leaf[0] = 1
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Set([]byte{'c'}, []byte{0, 0, 0}, cpebble.Sync))                                           // shorter than the size prefix
	must(db.Set(append([]byte{'h'}, leaf...), []byte{0x80}, cpebble.Sync))                             // truncated uvarint
	must(db.Set(append([]byte{'h'}, make([]byte, 32)...), binary.AppendUvarint(nil, 5), cpebble.Sync)) // fine
	must(db.Close())

	s, err := pebble.Open(dir, pebble.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.ReadCheckpoint(ctx); err == nil {
		t.Error("ReadCheckpoint of a 3-byte record succeeded")
	}
	if err := s.Commit(ctx, &log.Commit{Checkpoint: []byte("x")}); err == nil {
		t.Error("Commit over an unreadable checkpoint succeeded")
	}
	if _, err := s.LookupLeaf(ctx, leaf); err == nil || errors.Is(err, log.ErrNotFound) {
		t.Errorf("LookupLeaf of a truncated index value: got %v, want a corruption error", err)
	}
	if i, err := s.LookupLeaf(ctx, make([]byte, 32)); err != nil || i != 5 {
		t.Errorf("LookupLeaf = %d, %v; want 5, nil", i, err)
	}
}

type discardLogger struct{}

func (discardLogger) Infof(string, ...any)  {}
func (discardLogger) Errorf(string, ...any) {}
func (discardLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
