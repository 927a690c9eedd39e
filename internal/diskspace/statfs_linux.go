package diskspace

import (
	"fmt"
	"syscall"
)

// statfs returns the space available to an unprivileged writer and the
// size of the filesystem that holds path.
func statfs(path string) (avail, total int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("couldn't stat the filesystem of %s: %w", path, err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}
