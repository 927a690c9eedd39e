package integration

import "syscall"

// procAttr makes a server die with the test binary, so that a test that
// times out or panics leaves no log server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
