package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/storage/pebble"
)

// serveArgs are the arguments of a witness in dir following one log, on a
// free port, with the given ones added.
func serveArgs(t *testing.T, dir string, more ...string) []string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "logs:\n  - origin: example.com/log\n    key: "+vkey+"\n")
	return append([]string{"--data", filepath.Join(dir, "data"), "--name", "witness.test/w", "--listen", "127.0.0.1:0",
		"--log-level", "error", "--config", cfg}, more...)
}

// TestServeRefusedCreatesNoKey: a start that is refused leaves no key.
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
		{"address in use", func(t *testing.T, dir string) []string {
			return serveArgs(t, dir, "--listen", busy.Addr().String())
		}, "listen"},
		{"database in use", func(t *testing.T, dir string) []string {
			s, err := pebble.OpenWitnessState(filepath.Join(dir, "data", "db"), pebble.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return serveArgs(t, dir)
		}, "is using"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := serve(context.Background(), tc.setup(t, dir), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve: %v, want an error about %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "witness.key")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused start left a key (stat: %v)", err)
			}
		})
	}
}

// TestServeKeyFaults: a key file others may read, an empty one and a
// corrupt one are refused, each with a message that says what is wrong.
func TestServeKeyFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		perm os.FileMode
		want string
	}{
		{"readable by others", "PRIVATE+KEY+witness.test/w+00000000+BAAA\n", 0o644, "chmod 600"},
		{"empty", "", 0o600, "is empty"},
		{"corrupt", "PRIVATE+KEY+witness.test/w+0000+BAAA\n", 0o600, "is corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "witness.key")
			if err := os.WriteFile(key, []byte(tc.text), tc.perm); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(key, tc.perm); err != nil {
				t.Fatal(err)
			}
			err := serve(context.Background(), serveArgs(t, dir, "--key", key), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), key) {
				t.Fatalf("serve: %v, want an error naming %s and saying %q", err, key, tc.want)
			}
		})
	}
}
