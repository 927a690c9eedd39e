package log_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	cpebble "github.com/cockroachdb/pebble/v2"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// buildEntries returns n canonical "build" entries.
func buildEntries(t *testing.T, n int) [][]byte {
	t.Helper()
	signer := apitest.NewBuildSignerFromSeed([]byte("fsck test"))
	es := make([][]byte, n)
	for i := range es {
		digest := sha256.Sum256(fmt.Appendf(nil, "artifact %d", i))
		e, err := api.CanonicalEntry(signer.Submission(fmt.Sprintf("artifact-%d.tar.gz", i), hex.EncodeToString(digest[:])))
		if err != nil {
			t.Fatal(err)
		}
		es[i] = e
	}
	return es
}

// Keys of storage/pebble's layout, documented in storage/pebble/pebble.go.
func tileKey(level uint8, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'t', level}, index)
}

func bundleKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'e'}, index)
}

func tileRowsKey(level uint8, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'r', level}, index)
}

func leafKey(hash []byte) []byte { return append([]byte{'h'}, hash...) }

var checkpointKey = []byte{'c'}

type pebbleQuiet struct{}

func (pebbleQuiet) Infof(string, ...any)  {}
func (pebbleQuiet) Errorf(string, ...any) {}
func (pebbleQuiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// rawUpdate opens the pebble database in dir directly and replaces the
// value at key with what update returns (deleting it for nil). It returns
// the old value, nil if there was none. Tile and bundle keys name their
// whole content, which pebble stores in chunks (key ‖ u32 BE offset): it is
// read joined and written back as one chunk.
func rawUpdate(t *testing.T, dir string, key []byte, update func(old []byte) []byte) []byte {
	t.Helper()
	db, err := cpebble.Open(dir, &cpebble.Options{Logger: pebbleQuiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	chunked := key[0] == 't' || key[0] == 'e'
	lo, hi := key, append(bytes.Clone(key), 0)
	if chunked {
		lo, hi = binary.BigEndian.AppendUint32(bytes.Clone(key), 0), append(bytes.Clone(key), 0xff, 0xff, 0xff, 0xff, 0xff)
	}
	it, err := db.NewIter(&cpebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	var old []byte
	for ok := it.First(); ok; ok = it.Next() {
		old = append(old, it.Value()...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		t.Fatalf("reading key %q: %v", key, err)
	}
	b := db.NewBatch()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		t.Fatal(err)
	}
	if nv := update(bytes.Clone(old)); nv != nil {
		if err := b.Set(lo, nv, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(cpebble.Sync); err != nil {
		t.Fatal(err)
	}
	return old
}

func flip(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		b[i] ^= 0x01
		return b
	}
}

// fsckDir runs Fsck over the pebble database in dir.
func fsckDir(t *testing.T, dir string) (uint64, []uint64, error) {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, verifier := testKeys()
	var progress []uint64
	size, err := log.Fsck(context.Background(), s, verifier, func(n uint64) { progress = append(progress, n) })
	return size, progress, err
}

// opens reports whether log.New accepts the storage in dir.
func opens(t *testing.T, dir string) error {
	t.Helper()
	s, err := pebble.Open(dir, pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	signer, verifier := testKeys()
	l, err := log.New(context.Background(), log.Config{Storage: s, Signer: signer, Verifier: verifier, Logger: quiet})
	if err == nil {
		l.Close()
	}
	return err
}

func TestFsck(t *testing.T) {
	const n = 600 // two full bundles and tiles, a partial third; tile 1/0 has 2 hashes
	entries := buildEntries(t, n)
	h := newHarness(t, nil)
	h.mustAdd(entries, 64)
	h.verify()
	h.close()
	dir := h.dir
	at := func(i uint64) []byte { return h.entries[i] }

	size, progress, err := fsckDir(t, dir)
	if err != nil || size != n {
		t.Fatalf("Fsck of a good log = %d, %v; want %d, nil", size, err, n)
	}
	if want := []uint64{256, 512, 600}; !slices.Equal(progress, want) {
		t.Errorf("Fsck progress: %v, want %v", progress, want)
	}

	signer, _ := testKeys()
	badRoot, err := api.SignCheckpoint(api.Checkpoint{Origin: testOrigin, Size: n}, signer)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		key    []byte
		update func([]byte) []byte
		what   string // the FsckError's What
		reason string // in its Reason
		// newFails: log.New must refuse the storage too, as the damage is
		// in what it reads to rebuild the tree's right edge.
		newFails bool
	}{
		{name: "level-0 tile hash", key: tileKey(0, 1), update: flip(5*api.HashSize + 3), what: "tile 0/1", reason: "hash 5"},
		{name: "level-0 edge tile hash", key: tileKey(0, 2), update: flip(80*api.HashSize + 31), what: "tile 0/2", reason: "hash 80", newFails: true},
		{name: "level-0 tile's stored rows", key: tileRowsKey(0, 1), update: flip(17*api.HashSize + 9), what: "tile 0/1", reason: "stored rows"},
		{name: "level-0 tile's stored rows cut", key: tileRowsKey(0, 0), update: func(b []byte) []byte { return b[:len(b)-1] }, what: "tile 0/0", reason: "stored rows"},
		{name: "level-1 tile hash", key: tileKey(1, 0), update: flip(1*api.HashSize + 0), what: "tile 1/0", reason: "hash 1", newFails: true},
		{name: "level-1 tile missing", key: tileKey(1, 0), update: func([]byte) []byte { return nil }, what: "tile 1/0", newFails: true},
		{name: "entry byte", key: bundleKey(1), update: func(b []byte) []byte {
			es, _ := api.ParseEntryBundle(b)
			off := 0
			for _, e := range es[:10] {
				off += 2 + len(e)
			}
			b[off+2+len(es[10])/2] ^= 0x01
			return b
		}, what: "entry 266"},
		{name: "entry replaced", key: bundleKey(0), update: func(b []byte) []byte {
			// A valid entry, but not the one the tree and the leaf index
			// were built from.
			es, _ := api.ParseEntryBundle(b)
			other := apitest.NewBuildSignerFromSeed([]byte("another builder"))
			es[3] = other.Submission("other.tar.gz", strings.Repeat("ab", 32))
			var nb []byte
			for _, e := range es {
				nb, _ = api.AppendBundleEntry(nb, e)
			}
			return nb
		}, what: "entry 3", reason: "not in the leaf index"},
		{name: "entry bundle truncated", key: bundleKey(0), update: func(b []byte) []byte { return b[:len(b)-1] }, what: "entry bundle 0"},
		{name: "entry bundle missing", key: bundleKey(1), update: func([]byte) []byte { return nil }, what: "entry bundle 1"},
		{name: "leaf index value", key: leafKey(hasher.HashLeaf(at(300))), update: func([]byte) []byte { return binary.AppendUvarint(nil, 301) }, what: "entry 300", reason: "leaf index says"},
		{name: "leaf index missing", key: leafKey(hasher.HashLeaf(at(42))), update: func([]byte) []byte { return nil }, what: "entry 42", reason: "not in the leaf index"},
		{name: "checkpoint signature", key: checkpointKey, update: func(b []byte) []byte {
			b[len(b)-5] ^= 0x01 // inside the base64 signature
			return b
		}, what: "checkpoint", newFails: true},
		{name: "checkpoint text", key: checkpointKey, update: flip(8 + len(testOrigin) + 2), what: "checkpoint", newFails: true},
		{name: "checkpoint stored size", key: checkpointKey, update: func(b []byte) []byte {
			binary.BigEndian.PutUint64(b, n-1)
			return b
		}, what: "checkpoint", reason: "size", newFails: true},
		{name: "checkpoint root", key: checkpointKey, update: func(b []byte) []byte {
			return append(b[:8], badRoot...)
		}, what: "checkpoint", reason: "root", newFails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := rawUpdate(t, dir, tc.key, tc.update)
			defer rawUpdate(t, dir, tc.key, func([]byte) []byte { return old })
			_, _, err := fsckDir(t, dir)
			var fe *log.FsckError
			if !errors.As(err, &fe) {
				t.Fatalf("Fsck: got %v, want a *FsckError", err)
			}
			if fe.What != tc.what || !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("Fsck: got %v, want an error about %q saying %q", fe, tc.what, tc.reason)
			}
			if tc.newFails {
				if err := opens(t, dir); err == nil {
					t.Fatal("log.New accepted the damaged storage")
				}
			}
		})
	}

	// Every damage was undone.
	if err := opens(t, dir); err != nil {
		t.Fatalf("log.New after repairs: %v", err)
	}
}

func TestFsckEmpty(t *testing.T) {
	dir := t.TempDir()
	_, _, err := fsckDir(t, dir)
	var fe *log.FsckError
	if !errors.As(err, &fe) || fe.What != "checkpoint" {
		t.Fatalf("Fsck of an empty storage: got %v, want a *FsckError about the checkpoint", err)
	}

	// A log with no entries is fine.
	h := newHarness(t, nil)
	h.close()
	if size, _, err := fsckDir(t, h.dir); err != nil || size != 0 {
		t.Fatalf("Fsck of an empty log = %d, %v; want 0, nil", size, err)
	}
}
