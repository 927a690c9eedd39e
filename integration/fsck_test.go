package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// Keys of candor-log's pebble database, as documented at the top of
// storage/pebble/pebble.go. They are spelled out here, not imported: these
// tests see the data directory the way an operator's tools would.
func tileKey(level uint8, index uint64) []byte {
	k := []byte{'t', level, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(k[2:], index)
	return k
}

func bundleKey(index uint64) []byte {
	k := []byte{'e', 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func leafKey(hash []byte) []byte { return append([]byte{'h'}, hash...) }

var checkpointKey = []byte{'c'}

// editValue opens the stopped log's database, replaces the value of key
// with edit(value) and returns the old value. Tile and bundle keys name
// their whole content, which the database keeps in chunks (key ‖ u32 BE
// offset): it is read joined and written back as one chunk.
func editValue(t *testing.T, data string, key []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	db, err := pebble.Open(filepath.Join(data, "db"), &pebble.Options{Logger: testLogger{t}})
	if err != nil {
		t.Fatalf("couldn't open the database: %v", err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatalf("couldn't close the database: %v", err)
		}
	}()
	chunked := key[0] == 't' || key[0] == 'e'
	lo, hi := key, append(bytes.Clone(key), 0)
	if chunked {
		lo, hi = binary.BigEndian.AppendUint32(bytes.Clone(key), 0), append(bytes.Clone(key), 0xff, 0xff, 0xff, 0xff, 0xff)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	var old []byte
	for ok := it.First(); ok; ok = it.Next() {
		old = append(old, it.Value()...)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil || old == nil {
		t.Fatalf("couldn't read key %x: %v", key, err)
	}
	b := db.NewBatch()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(lo, edit(bytes.Clone(old)), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatalf("couldn't write key %x: %v", key, err)
	}
	return old
}

// testLogger sends pebble's logs to the test log, where they show only if
// the test fails or runs with -v.
type testLogger struct{ t *testing.T }

func (l testLogger) Infof(format string, args ...any)  {}
func (l testLogger) Errorf(format string, args ...any) { l.t.Logf("pebble: "+format, args...) }
func (l testLogger) Fatalf(format string, args ...any) {
	l.t.Errorf("pebble: "+format, args...)
	panic(fmt.Sprintf(format, args...))
}

func flipByte(i int) func([]byte) []byte {
	return func(v []byte) []byte {
		v[i] ^= 0x01
		return v
	}
}

func setValue(v []byte) func([]byte) []byte {
	return func([]byte) []byte { return v }
}

// TestFsckDetectsCorruption fills a log past two full tiles, stops it
// cleanly, and flips bytes in its database one value at a time: an interior
// tile, a tile on the tree's right edge, an entry bundle, a leaf index
// value and the checkpoint. `candor-log fsck` must fail naming the value
// each time, and pass again once the value is restored; the server must
// refuse to start when the right edge or the checkpoint is corrupt.
func TestFsckDetectsCorruption(t *testing.T) {
	requireBinaries(t)
	const origin = "example.com/log"
	const size = 600 // tiles 0/0, 0/1 full, 0/2 partial, 1/0 with two hashes
	data := t.TempDir()
	srv := mustStartServer(t, "candor-log", data, "--origin", origin)
	signer := apitest.NewBuildSigner()
	entries := make([][]byte, size)
	var mu sync.Mutex
	parallelN(t, 16, size, func(i int) error {
		name := fmt.Sprintf("fsck/%d", i)
		digest := sha256.Sum256([]byte(name))
		sub := signer.Submission(name, hex.EncodeToString(digest[:]))
		code, resp, body, err := srv.submit(context.Background(), sub)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("submission %d: %d %s %v", i, code, body, err)
		}
		entry, err := api.CanonicalEntry(sub)
		if err != nil {
			return err
		}
		mu.Lock()
		entries[resp.Index] = entry
		mu.Unlock()
		return nil
	})
	if t.Failed() {
		return
	}
	_, c := srv.mustCheckpoint(t, origin)
	if c.Size != size {
		t.Fatalf("checkpoint size %d, want %d", c.Size, size)
	}
	srv.stop(t)

	if out, errOut, err := runFsck(t, data); err != nil || !strings.Contains(out, fmt.Sprintf("fsck: ok: %d entries", size)) {
		t.Fatalf("fsck of the intact log: %v\n%s%s", err, out, errOut)
	} else if !strings.Contains(out, "and 2 copies in the tile files") {
		// Tiles 0/0 and 0/1, written by the server once their commits
		// were synced.
		t.Errorf("fsck did not check the tile files' copies of the 2 full tiles:\n%s", out)
	}

	leaf256 := rfc6962.DefaultHasher.HashLeaf(entries[256])
	bundleData := filepath.Join(data, "db", "bundles", "data")
	for _, tc := range []struct {
		name string
		// key is the database's value to edit, or file the file.
		key  []byte
		file string
		edit func([]byte) []byte
		// fsck must fail with an error containing want.
		want string
		// refuse says the server must not start; otherwise it may.
		refuse bool
	}{
		{name: "interior tile", key: tileKey(0, 0), edit: flipByte(5*api.HashSize + 3), want: "tile 0/0"},
		{name: "right-edge tile", key: tileKey(1, 0), edit: flipByte(7), want: "tile 1/0", refuse: true},
		{name: "edge partial tile", key: tileKey(0, 2), edit: flipByte(api.HashSize), want: "tile 0/2", refuse: true},
		// Bundles 0 and 1 are in the bundle files, 2 (partial) in pebble.
		{name: "entry bundle", file: bundleData, edit: func(v []byte) []byte { return flipByte(len(v) - 100)(v) }, want: "entry bundle 1"},
		{name: "partial entry bundle", key: bundleKey(2), edit: flipByte(2 + len(entries[512])/2), want: "entry 512"},
		{name: "leaf index", key: leafKey(leaf256), edit: setValue(binary.AppendUvarint(nil, 300)), want: "entry 256"},
		{name: "checkpoint", key: checkpointKey, edit: func(v []byte) []byte {
			v[len(v)-5] ^= 0x01 // in the base64 of the log's signature
			return v
		}, want: "checkpoint", refuse: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.file != "" {
				old, err := os.ReadFile(tc.file)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tc.file, tc.edit(bytes.Clone(old)), 0o644); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := os.WriteFile(tc.file, old, 0o644); err != nil {
						t.Fatal(err)
					}
				}()
			} else {
				old := editValue(t, data, tc.key, tc.edit)
				defer func() {
					editValue(t, data, tc.key, setValue(old))
				}()
			}
			out, errOut, err := runFsck(t, data)
			if err == nil {
				t.Fatalf("fsck passed with a corrupt %s:\n%s%s", tc.name, out, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("fsck failed without naming %q:\n%s%s", tc.want, out, errOut)
			}
			t.Logf("fsck: %s", strings.TrimSpace(errOut))

			s, err := startServer(t, "candor-log (corrupt "+tc.name+")", data)
			if err != nil {
				t.Logf("the server refuses to start: %s", lastLine(err.Error()))
				return
			}
			if tc.refuse {
				t.Errorf("the server started with a corrupt %s", tc.name)
			} else {
				// It starts (it checks only what it needs to resume: the
				// checkpoint and the tree's right edge), so fsck is what
				// catches this. Show what clients would see.
				describeServed(t, s, origin, tc.name)
			}
			s.stop(t)
		})
	}

	if out, errOut, err := runFsck(t, data); err != nil {
		t.Fatalf("fsck after restoring every value: %v\n%s%s", err, out, errOut)
	}
	srv = mustStartServer(t, "candor-log (restored)", data)
	if _, c2 := srv.mustCheckpoint(t, origin); c2.Size != c.Size || c2.Hash != c.Hash {
		t.Errorf("checkpoint after restoring: %+v, want %+v", c2, c)
	}
	srv.stop(t)
}

// describeServed logs whether the server's proofs still verify for the
// entries near the corruption.
func describeServed(t *testing.T, s *server, origin, what string) {
	t.Helper()
	ctx := context.Background()
	_, c, err := s.checkpoint(ctx, origin)
	if err != nil {
		t.Errorf("the server started with a corrupt %s but serves no valid checkpoint: %v", what, err)
		return
	}
	bad := 0
	for _, i := range []uint64{4, 256, 300} {
		var resp api.InclusionProofResponse
		if err := s.getJSON(ctx, fmt.Sprintf("/v1/proof/inclusion?index=%d", i), &resp); err != nil {
			t.Logf("inclusion proof of %d: %v", i, err)
			bad++
			continue
		}
		var e api.EntryResponse
		if err := s.getJSON(ctx, fmt.Sprintf("/v1/entries/%d", i), &e); err != nil {
			t.Logf("entry %d: %v", i, err)
			bad++
			continue
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(e.Entry)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, c.Size, leaf, resp.Hashes, c.Hash[:]); err != nil {
			t.Logf("entry %d as served does not verify against the served checkpoint: %v", i, err)
			bad++
		}
	}
	t.Logf("the server starts with a corrupt %s; %d of 3 sampled entries fail to verify", what, bad)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
