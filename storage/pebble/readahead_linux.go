package pebble

import (
	"os"

	"golang.org/x/sys/unix"
)

// readAheadChunk is how much one request to read ahead asks for: Linux
// reads at most the device's read-ahead window per request (its
// read_ahead_kb, 128 KiB by default), so a file is asked for in pieces.
const readAheadChunk = 128 << 10

// readAhead asks the system to read the first size bytes of f into the
// page cache, without waiting for the reads, if they are at most
// readAheadShare of its memory (more would only push out one another and
// what else the page cache holds), until stop closes. It reports whether
// it asked.
func readAhead(f *os.File, size int64, stop <-chan struct{}) (bool, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return false, err
	}
	if size <= 0 || uint64(size) > uint64(si.Totalram)*uint64(si.Unit)/readAheadShare {
		return false, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var adviseErr error
	err = rc.Control(func(fd uintptr) {
		for off := int64(0); off < size; off += readAheadChunk {
			select {
			case <-stop:
				return
			default:
			}
			if adviseErr = unix.Fadvise(int(fd), off, min(readAheadChunk, size-off), unix.FADV_WILLNEED); adviseErr != nil {
				return
			}
		}
	})
	if err == nil {
		err = adviseErr
	}
	return err == nil, err
}
