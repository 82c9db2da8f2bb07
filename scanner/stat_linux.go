package scanner

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// statxMask asks statx for what Stat holds: the basic stat and the birth
// time.
const statxMask = unix.STATX_BASIC_STATS | unix.STATX_BTIME

// statAt stats the NUL-terminated name in the folder dirfd, with its birth
// time where the file system keeps one, and returns the raw st_mode too.
// Kernels before 4.11, and sandboxes that filter it, have no statx: fstatat
// then, without birth time (the diff then trusts no inode match, see
// Stat.BtimeNs).
func statAt(dirfd int, name *byte, flags int) (Stat, uint32, error) {
	var stx unix.Statx_t
	// fstatat never triggers an automount (since Linux 4.14); statx
	// does unless told not to.
	err := statxName(dirfd, name, flags|unix.AT_NO_AUTOMOUNT, statxMask, &stx)
	if err == nil {
		return statFromStatx(&stx), uint32(stx.Mode), nil
	}
	if err != unix.ENOSYS {
		return Stat{}, 0, err
	}
	var st unix.Stat_t
	if err := fstatatName(dirfd, name, &st, flags); err != nil {
		return Stat{}, 0, err
	}
	return statFromUnix(&st), st.Mode, nil
}

// statPath is statAt for a path (relative to dirfd, or "" with
// AT_EMPTY_PATH for dirfd itself), where a copy of the name costs nothing
// that matters.
func statPath(dirfd int, path string, flags int) (Stat, uint32, error) {
	name, err := unix.BytePtrFromString(path)
	if err != nil {
		return Stat{}, 0, err
	}
	return statAt(dirfd, name, flags)
}

// statFromStatx converts a statx result into a Stat. The birth time is
// kept only if the file system gave it (stx_mask says so); else it is 0.
// st_dev is encoded as stat(2) encodes it, so that manifests recorded from
// stat(2) still match.
func statFromStatx(st *unix.Statx_t) Stat {
	s := Stat{
		Size:    int64(st.Size),
		MtimeNs: st.Mtime.Sec*1e9 + int64(st.Mtime.Nsec),
		CtimeNs: st.Ctime.Sec*1e9 + int64(st.Ctime.Nsec),
		Inode:   st.Ino,
		Dev:     unix.Mkdev(st.Dev_major, st.Dev_minor),
		Mode:    modeFromUnix(uint32(st.Mode)),
	}
	if st.Mask&unix.STATX_BTIME != 0 {
		s.BtimeNs = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return s
}

// statFromUnix converts a raw stat into a Stat, which then has no birth
// time.
func statFromUnix(st *unix.Stat_t) Stat {
	return Stat{
		Size:    st.Size,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
		Inode:   st.Ino,
		Dev:     st.Dev,
		Mode:    modeFromUnix(st.Mode),
	}
}

// modeFromUnix maps st_mode to an fs.FileMode.
func modeFromUnix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
