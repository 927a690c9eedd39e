// Package keyfile keeps a signed-note private key in a file readable only
// by its owner, created durably and atomically (internal/atomicfile).
//
// A command loads the key with Load and, if there is none, generates one
// and stores it with Create only once everything else it needs has
// started, so that a start that is refused leaves no key behind.
package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/candorlog/candor/internal/atomicfile"
)

// maxKeyBytes bounds what Load reads: a signed-note private key is a line
// of about a hundred bytes.
const maxKeyBytes = 64 << 10

// Load returns the key in path, without surrounding space. It refuses a
// file that group or others may read, as ssh does, saying how to fix it,
// and an empty one. If path does not exist the error wraps
// fs.ErrNotExist.
func Load(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("no key at %s: %w", path, err)
		}
		return "", fmt.Errorf("couldn't read the key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("couldn't read the key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("key %s: permissions %#o are too open: a private key must be readable only by its owner; run: chmod 600 %s", path, perm, path)
	}
	if fi.Size() > maxKeyBytes {
		return "", fmt.Errorf("key %s is corrupt: %d bytes, not a private key", path, fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return "", fmt.Errorf("couldn't read the key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("key %s is empty: restore it from a backup", path)
	}
	return key, nil
}

// Create stores key in path, mode 0600, failing if path exists. Missing
// directories are created (mode 0700).
func Create(path, key string) error {
	if err := atomicfile.Create(path, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("couldn't save the key: %w", err)
	}
	return nil
}

// Corrupt returns the error for a key file whose content does not parse:
// parseErr is the parser's error.
func Corrupt(path string, parseErr error) error {
	return fmt.Errorf("key %s is corrupt (%w): restore it from a backup", path, parseErr)
}
