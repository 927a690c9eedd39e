// Package atomicfile writes small files durably and atomically: the data
// goes to a temporary file in the same directory, which is synced and then
// put in place, and the directory is synced, so that a crash leaves either
// the old content or the new, never a part.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Create writes path with data and mode perm, failing if path exists.
// Missing directories are created (mode 0700).
func Create(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.Link)
}

// Replace writes path with data and mode perm, replacing what it held.
// Missing directories are created (mode 0700).
func Replace(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.Rename)
}

// write writes data to a synced temporary file next to path, puts it in
// place with place(tmp, path) and syncs the directory.
func write(path string, data []byte, perm os.FileMode, place func(tmp, path string) error) error {
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
	if err := place(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir syncs the directory dir: the names created in it or removed from
// it before survive a crash of the machine.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
