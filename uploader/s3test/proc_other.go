//go:build !linux

package s3test

import "syscall"

// sysProcAttr returns nil: only Linux has a parent-death signal, so elsewhere
// a gateway whose parent is killed outlives it.
func sysProcAttr() *syscall.SysProcAttr { return nil }
