//go:build linux && !(amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package scanner

import (
	"golang.org/x/sys/unix"
)

// statxName is statx(2) on the NUL-terminated name at name.
func statxName(dirfd int, name *byte, flags, mask int, st *unix.Statx_t) error {
	return unix.Statx(dirfd, unix.BytePtrToString(name), flags, mask, st)
}

// fstatatName is fstatat(2) on the NUL-terminated name at name, for
// kernels without statx.
func fstatatName(dirfd int, name *byte, st *unix.Stat_t, flags int) error {
	return unix.Fstatat(dirfd, unix.BytePtrToString(name), st, flags)
}
