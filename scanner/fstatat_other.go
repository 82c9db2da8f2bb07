//go:build linux && !(amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package scanner

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatatName is fstatat(2) on the NUL-terminated name at name.
func fstatatName(dirfd int, name *byte, st *unix.Stat_t, flags int) error {
	return unix.Fstatat(dirfd, unix.BytePtrToString(name), st, flags)
}

var _ = unsafe.Pointer(nil)
