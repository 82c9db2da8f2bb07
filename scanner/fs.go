package scanner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Type is the kind of a directory entry.
type Type uint8

// Entry types. Regular files are backed up, and symlinks with OS.Links;
// directories are walked; everything else is reported and skipped.
const (
	TypeFile Type = iota
	TypeDir
	TypeSymlink
	TypeOther   // fifo, socket, device
	TypeUnknown // an error entry's path that could not be looked up
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	case TypeUnknown:
		return "unknown"
	default:
		return "special file"
	}
}

// DirEntry is one name in a directory listing.
type DirEntry struct {
	Name string
	Type Type
	Stat Stat  // for TypeFile; for TypeSymlink with OS.Links (see KeptLink)
	Err  error // stat failed for this entry (Type is then what readdir said)
}

// KeptLink reports whether d is a symlink kept as a link (OS.Links): its
// Stat is the link's own, with Size 0, the size of its object.
func (d DirEntry) KeptLink() bool {
	return d.Type == TypeSymlink && d.Err == nil && d.Stat.Mode&fs.ModeSymlink != 0
}

// File is an open regular file.
type File interface {
	io.Reader
	Stat() (Stat, error)
	Close() error
}

// FS is the file system the scanner reads. It is small on purpose: tests wrap
// the real one and override a single method to inject a fault.
type FS interface {
	// ReadDir lists the directory at path: every entry with its type, and
	// for regular files their Stat (taken with lstat, never following
	// symlinks). The order is unspecified.
	ReadDir(path string) ([]DirEntry, error)
	// Open opens the regular file at path for reading, refusing to follow
	// a symlink in the last component.
	Open(path string) (File, error)
	// Lstat says what is at path as ReadDir would say it of the entry in
	// its folder's listing (a folder's Stat included); the error is that
	// of looking the path itself up.
	Lstat(path string) (DirEntry, error)
	// Readlink returns the target of the symlink at path.
	Readlink(path string) (string, error)
}

// OS is the FS of the operating system. Paths given to it are absolute or
// relative to the working directory.
type OS struct {
	// FollowSymlinks makes symlinks count as what they point to: a file
	// is read through its link, a folder is walked (Walk stops at loops).
	// ReadDir then also gives folders' Stat (device and inode), for the
	// loop check.
	FollowSymlinks bool
	// Links makes symlinks count as links, never followed: ReadDir and
	// Lstat give their own Stat (lstat's, Size 0), which makes them
	// entries of KindLink. It excludes FollowSymlinks.
	Links bool
}

var _ FS = OS{}

// Readlink returns the target of the symlink at path.
func (OS) Readlink(path string) (string, error) { return os.Readlink(path) }

// ReadDir lists path with getdents into a pooled buffer and an fstatat
// per regular file relative to the open folder: the fewest system calls and
// allocations there are for statting a whole folder.
func (o OS) ReadDir(path string) ([]DirEntry, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if !o.FollowSymlinks {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	bp := direntPool.Get().(*[]byte)
	defer direntPool.Put(bp)
	buf := *bp
	var out []DirEntry
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "readdirent", Path: path, Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		for rec := buf[:n]; len(rec) >= direntNameOff; {
			reclen := int(binary.NativeEndian.Uint16(rec[direntReclenOff:]))
			if reclen < direntNameOff || reclen > len(rec) {
				return nil, &os.PathError{Op: "readdirent", Path: path, Err: unix.EIO}
			}
			name := rec[direntNameOff:reclen]
			i := bytes.IndexByte(name, 0)
			if i < 0 { // the kernel pads names with NULs; never seen without
				return nil, &os.PathError{Op: "readdirent", Path: path, Err: unix.EIO}
			}
			name = name[:i]
			dtype := rec[direntTypeOff]
			rec = rec[reclen:]
			if len(name) == 0 || name[0] == '.' && (len(name) == 1 || len(name) == 2 && name[1] == '.') {
				continue
			}
			e := o.statEntry(fd, path, name, dtype)
			if errors.Is(e.Err, unix.EACCES) && !searchable(fd) {
				return nil, notSearchable(path)
			}
			out = append(out, e)
		}
	}
}

// searchable reports whether the open folder fd may be searched: a folder
// with read but no execute permission (mode 0644) lists its names, and
// then every stat of them fails.
func searchable(fd int) bool {
	return unix.Faccessat(fd, ".", unix.X_OK, unix.AT_EACCESS) == nil
}

// notSearchable is the error of a folder that can be listed but not
// searched: one problem for the folder rather than one per name in it.
func notSearchable(path string) error {
	return &os.PathError{Op: "search", Path: path, Err: fmt.Errorf(
		"%w: the folder can be listed but not searched (its mode lacks x for this user): chmod +x it, or run as a user who may enter it", unix.EACCES)}
}

// Lstat says what is at path: its type, and for a regular file or a folder
// its Stat (with the birth time, as ReadDir's); with FollowSymlinks, those
// of what a symlink points to (a symlink whose target cannot be stat'ed
// stays a symlink, with Err saying why, as in ReadDir).
func (o OS) Lstat(path string) (DirEntry, error) {
	e := DirEntry{Name: filepath.Base(path)}
	st, mode, err := statPath(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return e, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if o.FollowSymlinks && mode&unix.S_IFMT == unix.S_IFLNK {
		if st, mode, err = statPath(unix.AT_FDCWD, path, 0); err != nil {
			e.Type, e.Err = TypeSymlink, &os.PathError{Op: "stat", Path: path, Err: err}
			return e, nil
		}
	}
	e.Type = typeOfMode(mode)
	o.setStat(&e, st)
	return e, nil
}

// setStat gives e, whose Type is known, the Stat its listing carries: a
// file's or a folder's, and with Links a symlink's own, of Size 0.
func (o OS) setStat(e *DirEntry, st Stat) {
	switch {
	case e.Type == TypeFile || e.Type == TypeDir:
		e.Stat = st
	case e.Type == TypeSymlink && o.Links:
		st.Size = 0
		e.Stat = st
	}
}

// Offsets in struct linux_dirent64.
const (
	direntReclenOff = 16
	direntTypeOff   = 18
	direntNameOff   = 19
)

var direntPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// statEntry makes the DirEntry of name, NUL-terminated in the getdents
// buffer, in the open folder fd.
func (o OS) statEntry(fd int, dir string, name []byte, dtype byte) DirEntry {
	e := DirEntry{Name: string(name)}
	flags := unix.AT_SYMLINK_NOFOLLOW
	switch dtype {
	case unix.DT_DIR:
		e.Type = TypeDir
		if !o.FollowSymlinks {
			return e
		}
	case unix.DT_LNK:
		e.Type = TypeSymlink
		if !o.FollowSymlinks && !o.Links {
			return e
		}
		if o.FollowSymlinks {
			flags = 0
		}
	case unix.DT_UNKNOWN: // some file systems do not say
		if o.FollowSymlinks {
			flags = 0
		}
	case unix.DT_REG:
	default:
		e.Type = TypeOther
		return e
	}
	// name is NUL-terminated in the getdents buffer.
	st, mode, err := statAt(fd, &name[0], flags)
	if err != nil {
		// The type stays what readdir said: a folder that cannot be
		// stat'ed is still a folder, and a link whose target cannot be
		// reached still a link.
		op := "lstat"
		if flags&unix.AT_SYMLINK_NOFOLLOW == 0 {
			op = "stat"
		}
		e.Err = &os.PathError{Op: op, Path: dir + "/" + e.Name, Err: err}
		return e
	}
	// What it is now, if it was replaced since readdir.
	e.Type = typeOfMode(mode)
	o.setStat(&e, st)
	return e
}

func typeOfMode(m uint32) Type {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return TypeFile
	case unix.S_IFDIR:
		return TypeDir
	case unix.S_IFLNK:
		return TypeSymlink
	default:
		return TypeOther
	}
}

// Open opens path read-only, without following a final symlink (unless
// FollowSymlinks) and, where the kernel allows it, without updating its
// access time. What is not a regular file (any more: replaced since the
// listing) is an error: it is opened without blocking, so a FIFO does not
// hold the open until a writer comes (O_NONBLOCK changes nothing for a
// regular file's reads).
func (o OS) Open(path string) (File, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	if !o.FollowSymlinks {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) { // O_NOATIME needs ownership of the file
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	st, mode, err := statPath(fd, "", unix.AT_EMPTY_PATH)
	if err != nil || mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = errors.New("not a regular file (any more): left alone")
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &osFile{File: os.NewFile(uintptr(fd), path), opened: &st}, nil
}

// osFile is an open regular file; opened is its Stat as Open took it,
// which its first Stat returns (nothing was read since: the one fstat
// serves both).
type osFile struct {
	*os.File
	opened *Stat
}

func (f *osFile) Stat() (Stat, error) {
	if st := f.opened; st != nil {
		f.opened = nil
		return *st, nil
	}
	st, mode, err := statPath(int(f.Fd()), "", unix.AT_EMPTY_PATH)
	if err != nil {
		return Stat{}, fmt.Errorf("fstat %s: %w", f.Name(), err)
	}
	if mode&unix.S_IFMT != unix.S_IFREG {
		return Stat{}, fmt.Errorf("%s: not a regular file any more", f.Name())
	}
	return st, nil
}
