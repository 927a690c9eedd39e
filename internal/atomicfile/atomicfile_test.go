package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/candorlog/candor/internal/atomicfile"
)

// checkFile checks path's content and mode, and that it is alone in its
// directory: no temporary file is left behind.
func checkFile(t *testing.T, path, want string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Fatalf("%s holds %q, %v; want %q", path, b, err, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), perm)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d files, want only %s", len(ents), filepath.Base(path))
	}
}

func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "file")
	if err := atomicfile.Create(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "first", 0o600)
	if err := atomicfile.Create(path, []byte("second"), 0o600); err == nil {
		t.Fatal("Create over an existing file succeeded")
	}
	checkFile(t, path, "first", 0o600)
}

func TestReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	for _, content := range []string{"first", "second, longer", "3"} {
		if err := atomicfile.Replace(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		checkFile(t, path, content, 0o640)
	}
}
