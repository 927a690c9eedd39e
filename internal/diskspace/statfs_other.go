//go:build !linux

package diskspace

import "errors"

func statfs(path string) (avail, total int64, err error) {
	return 0, 0, errors.New("free space is only watched on Linux")
}
