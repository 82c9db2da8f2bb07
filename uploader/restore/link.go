package restore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// Symlinks: an object sync --links wrote (x-amz-meta-symlink) is made a
// symlink again, its target written as it was, wherever it leads: it is
// data, and it is never followed. Nothing is written through a symlink
// either: a path with one among the folders above it is refused, be the
// link restored or found there, since os.Root follows links that stay
// inside it.

// tempName is a new temporary name in the folder dir.
func tempName(dir string) string {
	return path.Join(dir, ".cloudkeeper-restore-"+strings.ToLower(rand.Text()[:16]))
}

// parentsNotLinks checks that no folder above rel is a symlink.
func (r *restorer) parentsNotLinks(rel string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		fi, err := r.root.Lstat(dir[:i])
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // nor anything under it
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink: not written through it", manifest.EscapePath(dir[:i]))
		}
	}
	return nil
}

// mkdirs makes the folders above rel, checking again, while no link is
// being made, that none of them is a symlink.
func (r *restorer) mkdirs(rel string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	r.links.RLock()
	defer r.links.RUnlock()
	if err := r.parentsNotLinks(rel); err != nil {
		return err
	}
	return r.root.MkdirAll(dir, 0o755)
}

// link makes rel a symlink to the target meta carries, once checked
// against its x-amz-meta-blake3. Without Overwrite, a path that exists is
// left (ErrExists); with it, a file or link there is replaced.
func (r *restorer) link(rel string, meta uploader.ObjectMeta) error {
	switch {
	case meta.LinkErr != nil:
		return fmt.Errorf("not restored: %w", meta.LinkErr)
	case meta.Size != 0:
		return fmt.Errorf("a link's object holds %d bytes, where a link has none: not restored", meta.Size)
	case scanner.LinkDigest(meta.Link) != meta.Hash:
		return fmt.Errorf("its target %s hashes to %s, not to its x-amz-meta-blake3 %s: not restored",
			manifest.EscapePath(meta.Link), scanner.LinkDigest(meta.Link), meta.Hash)
	}
	r.links.Lock()
	defer r.links.Unlock()
	if err := r.parentsNotLinks(rel); err != nil {
		return err
	}
	if err := r.makeLink(meta.Link, rel); err != nil {
		return err
	}
	r.restored.Add(1)
	if r.o.Linked != nil {
		r.o.Linked(rel)
	}
	return nil
}

// makeLink makes the symlink rel to target (see link).
func (r *restorer) makeLink(target, rel string) error {
	if !r.o.Overwrite {
		err := r.root.Symlink(target, rel)
		if errors.Is(err, fs.ErrExist) {
			return ErrExists
		}
		return err
	}
	tmp := tempName(path.Dir(rel))
	if err := r.root.Symlink(target, tmp); err != nil {
		return err
	}
	if err := r.root.Rename(tmp, rel); err != nil {
		r.root.Remove(tmp)
		return err
	}
	return nil
}
