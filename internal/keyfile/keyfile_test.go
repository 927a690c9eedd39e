package keyfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/candorlog/candor/internal/keyfile"
)

func TestCreateLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "key")
	if _, err := keyfile.Load(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if err := keyfile.Create(path, "PRIVATE+KEY+example"); err != nil {
		t.Fatal(err)
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
	if key, err := keyfile.Load(path); err != nil || key != "PRIVATE+KEY+example" {
		t.Fatalf("Load = %q, %v", key, err)
	}
	if err := keyfile.Create(path, "PRIVATE+KEY+other"); err == nil {
		t.Error("Create replaced an existing key")
	}
	if key, _ := keyfile.Load(path); key != "PRIVATE+KEY+example" {
		t.Errorf("after a second Create the key is %q", key)
	}
	// No temporary files are left behind.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d files, want only the key", len(ents))
	}
}

// TestLoadRefuses: a key others may read is refused with the command that
// fixes it, an empty one says it is empty, a directory is not a key.
func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		path string
		want []string
	}{
		{"group-readable", write("g.key", "PRIVATE+KEY+x\n", 0o640), []string{"too open", "chmod 600 " + filepath.Join(dir, "g.key")}},
		{"world-readable", write("o.key", "PRIVATE+KEY+x\n", 0o604), []string{"0604", "chmod 600"}},
		{"empty", write("e.key", "", 0o600), []string{"is empty"}},
		{"blank", write("b.key", " \n", 0o600), []string{"is empty"}},
		{"directory", dir, []string{"not a regular file"}},
	} {
		_, err := keyfile.Load(tc.path)
		if err == nil {
			t.Errorf("%s: Load succeeded", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Load: %v, want it to say %q", tc.name, err, w)
			}
		}
	}
}
