// Package keyfile keeps a signed-note private key in a file that is created
// on first use, durably and atomically, readable only by its owner.
package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreate returns the key in path. If the file does not exist, it
// calls generate and stores the key it returns (mode 0600) first; created
// tells whether it did.
func LoadOrCreate(path string, generate func() (string, error)) (key string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("couldn't read the key: %w", err)
	}
	key, err = generate()
	if err != nil {
		return "", false, err
	}
	if err := create(path, []byte(key+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("couldn't save the key: %w", err)
	}
	return key, true, nil
}

// create writes path with data, durably and atomically, failing if it
// exists: the data goes to a temporary file that is synced, then linked
// into place, so a crash never leaves a partial key behind.
func create(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
