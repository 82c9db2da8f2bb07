//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package scanner

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatatName is fstatat(2) with the name given as a pointer to its
// NUL-terminated bytes, as they lie in a getdents buffer: unlike
// unix.Fstatat it copies nothing, which matters a million times a run.
func fstatatName(dirfd int, name *byte, st *unix.Stat_t, flags int) error {
	_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
