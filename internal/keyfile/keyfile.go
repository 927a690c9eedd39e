// Package keyfile keeps a signed-note private key in a file that is created
// on first use, durably and atomically (internal/atomicfile), readable only
// by its owner.
package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/candorlog/candor/internal/atomicfile"
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
	if err := atomicfile.Create(path, []byte(key+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("couldn't save the key: %w", err)
	}
	return key, true, nil
}
