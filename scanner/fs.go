package scanner

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Type is the kind of a directory entry.
type Type uint8

// Entry types. Only regular files are backed up; directories are walked;
// everything else is reported and skipped.
const (
	TypeFile Type = iota
	TypeDir
	TypeSymlink
	TypeOther // fifo, socket, device
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	default:
		return "special file"
	}
}

// DirEntry is one name in a directory listing.
type DirEntry struct {
	Name string
	Type Type
	Stat Stat  // for TypeFile
	Err  error // lstat failed for this entry (Type is then what readdir said)
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
}

// OS is the FS of the operating system. Paths given to it are absolute or
// relative to the working directory.
type OS struct{}

var _ FS = OS{}

// ReadDir lists path with one getdents pass and an fstatat per regular file
// relative to the open directory, the cheapest way to stat a whole folder.
func (OS) ReadDir(path string) ([]DirEntry, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	dir := os.NewFile(uintptr(fd), path)
	defer dir.Close()
	des, err := dir.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, 0, len(des))
	for _, de := range des {
		e := DirEntry{Name: de.Name()}
		t := de.Type()
		switch {
		case t.IsDir():
			e.Type = TypeDir
		case t&os.ModeSymlink != 0:
			e.Type = TypeSymlink
		case t.IsRegular():
			e.Type = TypeFile
			var st unix.Stat_t
			if err := unix.Fstatat(fd, e.Name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				e.Err = &os.PathError{Op: "lstat", Path: path + "/" + e.Name, Err: err}
				break
			}
			e.Stat = statFromUnix(&st)
			// Replaced by something else since readdir: report what it is now.
			e.Type = typeOfMode(st.Mode)
		default:
			e.Type = TypeOther
		}
		out = append(out, e)
	}
	return out, nil
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

// Open opens path read-only, without following a final symlink and, where
// the kernel allows it, without updating its access time.
func (OS) Open(path string) (File, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) { // O_NOATIME needs ownership of the file
		fd, err = unix.Open(path, flags, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &osFile{File: os.NewFile(uintptr(fd), path)}, nil
}

type osFile struct{ *os.File }

func (f *osFile) Stat() (Stat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Stat{}, fmt.Errorf("fstat %s: %w", f.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Stat{}, fmt.Errorf("%s: not a regular file any more", f.Name())
	}
	return statFromUnix(&st), nil
}
