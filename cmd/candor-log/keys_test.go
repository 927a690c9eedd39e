package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/storage/pebble"
)

// serveArgs are the arguments of a log in dir that would start, listening
// on a free port, with the given ones added.
func serveArgs(dir string, more ...string) []string {
	return append([]string{"--data", filepath.Join(dir, "data"), "--origin", "log.test/log", "--listen", "127.0.0.1:0", "--log-level", "error"}, more...)
}

// TestServeRefusedCreatesNoKey: a start that is refused, whatever the
// reason, leaves no key behind.
func TestServeRefusedCreatesNoKey(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) []string
		want  string
	}{
		{"bad policy", func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, "policy")
			if err := os.WriteFile(p, []byte("quorum\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return serveArgs(dir, "--policy", p)
		}, "policy"},
		{"address in use", func(t *testing.T, dir string) []string {
			return serveArgs(dir, "--listen", busy.Addr().String())
		}, "listen"},
		{"database in use", func(t *testing.T, dir string) []string {
			s, err := pebble.Open(filepath.Join(dir, "data", "db"), pebble.Options{LeafFilterBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return serveArgs(dir)
		}, "is using"},
		{"bad config", func(t *testing.T, dir string) []string {
			return serveArgs(dir, "--max-batch", "0")
		}, "maxBatchSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := tc.setup(t, dir)
			var out bytes.Buffer
			err := serve(context.Background(), args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve: %v, want an error about %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "log.key")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start left a key (stat: %v)", err)
			}
		})
	}
}

// TestServeKeyFaults: a key file others may read, an empty one and a
// corrupt one are refused, each with a message that says what is wrong.
func TestServeKeyFaults(t *testing.T) {
	good, _, err := note.GenerateKey(rand.Reader, "log.test/log")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		text string
		perm os.FileMode
		want string
	}{
		{"readable by others", good + "\n", 0o644, "chmod 600"},
		{"readable by group", good + "\n", 0o640, "too open"},
		{"empty", "", 0o600, "is empty"},
		{"corrupt", "PRIVATE+KEY+log.test/log+0000+AAAA\n", 0o600, "is corrupt"},
		{"a verifier key", "log.test/log+01234567+AQ==\n", 0o600, "is corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "log.key")
			if err := os.WriteFile(key, []byte(tc.text), tc.perm); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(key, tc.perm); err != nil {
				t.Fatal(err)
			}
			err := serve(context.Background(), serveArgs(dir, "--key", key), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), key) {
				t.Fatalf("serve: %v, want an error naming %s and saying %q", err, key, tc.want)
			}
		})
	}
}
