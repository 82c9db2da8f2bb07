package s3test

import "syscall"

// sysProcAttr makes the kernel kill the gateway when the thread that started
// it dies. Go keeps its threads for the life of the process (unless a
// goroutine exits while locked to one), so in practice the gateway dies with
// the test binary or command that started it, even on SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
