//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package scanner

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// statxName is statx(2) with the name given as a pointer to its
// NUL-terminated bytes, as they lie in a getdents buffer: unlike
// unix.Statx it copies nothing, which matters a million times a run.
func statxName(dirfd int, name *byte, flags, mask int, st *unix.Statx_t) error {
	_, _, errno := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(flags), uintptr(mask), uintptr(unsafe.Pointer(st)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// fstatatName is fstatat(2) on the NUL-terminated name at name, for
// kernels without statx.
func fstatatName(dirfd int, name *byte, st *unix.Stat_t, flags int) error {
	_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
