//go:build unix

package log_test

import (
	"syscall"
	"time"
)

// processCPUTime returns the user and system CPU time the process has used,
// or 0 if the system doesn't say.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
