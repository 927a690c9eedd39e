package keyfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/candorlog/candor/internal/keyfile"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key")
	calls := 0
	gen := func() (string, error) {
		calls++
		return "PRIVATE+KEY+example", nil
	}
	key, created, err := keyfile.LoadOrCreate(path, gen)
	if err != nil || !created || key != "PRIVATE+KEY+example" {
		t.Fatalf("first LoadOrCreate = %q, %v, %v", key, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "PRIVATE+KEY+example\n" {
		t.Errorf("key file holds %q", b)
	}
	key, created, err = keyfile.LoadOrCreate(path, gen)
	if err != nil || created || key != "PRIVATE+KEY+example" || calls != 1 {
		t.Fatalf("second LoadOrCreate = %q, %v, %v after %d generations", key, created, err, calls)
	}
	// No temporary files are left behind.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d files, want only the key", len(ents))
	}
}

func TestLoadOrCreateGenerateFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	boom := errors.New("boom")
	if _, _, err := keyfile.LoadOrCreate(path, func() (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("LoadOrCreate = %v, want the generator's error", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed generation left a key file: %v", err)
	}
}

func TestLoadOrCreateUnreadable(t *testing.T) {
	dir := t.TempDir() // a directory where the key should be: not readable as a file
	if _, _, err := keyfile.LoadOrCreate(dir, func() (string, error) { return "k", nil }); err == nil {
		t.Fatal("LoadOrCreate of a directory succeeded")
	}
}
