package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock takes the lock of the manifest at path, an exclusive flock on
// PATH.lock, without waiting: Open takes it, and so does anything that
// replaces the manifest's files (manifest rebuild), so that no run uses
// them meanwhile. A lock held by another process is an error wrapping
// ErrLocked. Closing the returned file releases the lock.
func Lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("manifest lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("manifest %s: %w (wait for it to finish)", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock manifest %s: %w", path, err)
	}
	return f, nil
}

// MoveAside renames the manifest at path and its -wal, -shm and -journal
// files to PATH.old-<unix time of now> (with a further ".N" if that is
// taken), and returns the new path. The caller holds the lock (Lock).
func MoveAside(path string, now time.Time) (string, error) {
	old := fmt.Sprintf("%s.old-%d", path, now.Unix())
	for i := 1; ; i++ {
		if _, err := os.Lstat(old); errors.Is(err, fs.ErrNotExist) {
			break
		}
		old = fmt.Sprintf("%s.old-%d.%d", path, now.Unix(), i)
	}
	if err := rename(path, old, false); err != nil {
		return old, fmt.Errorf("move the manifest aside: %w", err)
	}
	return old, nil
}

// Rename renames the manifest at from, which must exist, with its -wal,
// -shm and -journal files, to to (a rebuilt manifest put in place). Side
// files left at to with no manifest (a killed run's -wal, the manifest
// then deleted by hand) go first: SQLite would replay that WAL into the
// new manifest. The lock file stays. The caller holds both paths' locks.
func Rename(from, to string) error {
	for _, f := range Files(to)[1:] {
		if strings.HasSuffix(f, ".lock") {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("manifest %s: remove what a deleted manifest left: %w", to, err)
		}
	}
	if err := rename(from, to, true); err != nil {
		return fmt.Errorf("manifest %s: put the rebuilt one in place: %w", to, err)
	}
	return nil
}

// rename renames the manifest's files but the lock from one path to
// another; a missing file is no error, but for the manifest itself if
// needed.
func rename(from, to string, needed bool) error {
	for _, f := range Files(from) {
		suffix := f[len(from):]
		if suffix == ".lock" {
			continue // the lock stays, held
		}
		if err := os.Rename(f, to+suffix); err != nil && (needed && suffix == "" || !errors.Is(err, fs.ErrNotExist)) {
			return err
		}
	}
	return nil
}

// Remove removes the manifest at path with its side files (Files); it
// must not be in use. Files that do not exist are no error.
func Remove(path string) { removeFiles(path) }

// removeFiles removes the manifest's files in the order of Files, the
// lock last (a holder of the lock removes it while still holding it, so
// that no other run opens a half-removed manifest), and returns the first
// error other than a file that does not exist.
func removeFiles(path string) error {
	var first error
	for _, f := range Files(path) {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = fmt.Errorf("manifest %s: %w", path, err)
		}
	}
	return first
}

// missingDirs returns dir and those of its parents that do not exist,
// deepest first: the folders os.MkdirAll(dir) makes.
func missingDirs(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			return out
		}
		out = append(out, d)
		if filepath.Dir(d) == d {
			return out
		}
	}
}

// removeDirs removes the folders dirs, deepest first, as long as they are
// empty: what another process put in one meanwhile stays.
func removeDirs(dirs []string) {
	for _, d := range dirs {
		if os.Remove(d) != nil {
			return
		}
	}
}
