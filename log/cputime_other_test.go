//go:build !unix

package log_test

import "time"

// processCPUTime returns the user and system CPU time the process has used,
// or 0 if the system doesn't say.
func processCPUTime() time.Duration { return 0 }
