// Package restore writes the objects of a backup back into a folder,
// from the bucket alone: every object carries its BLAKE3, mtime and mode.
//
// Each file is downloaded into a temporary file next to its place, hashed
// as it arrives and compared with the object's x-amz-meta-blake3, given
// its mode and mtime, and only then put in place: a file with wrong bytes
// is never left behind. Keys are untrusted: one that does not map back to
// a path inside the folder (manifest.PathOfKey) is refused, and every file
// operation goes through an os.Root, which no ".." and no symlink leads
// out of.
//
//	root, removeCreated, _ := restore.OpenRoot(dir) // created if needed
//	res, err := restore.Run(ctx, s3, root, restore.Options{
//		Prefix:   "laptop/",
//		Failed:   func(path string, err error) { log.Print(path, err) },
//		Restored: func(path string, size int64) { fmt.Println("restore", path) },
//	})
//	root.Close()
//	if err != nil {
//		removeCreated() // the folder it made, if still empty
//	}
//
// Per-object problems go to the callbacks and are counted in the Result;
// Run returns an error only for what ends the whole restore (a fatal S3
// error, ctx's).
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// Options says what to restore and where to report. Every callback may be
// nil, and may be called from several goroutines at once.
type Options struct {
	Prefix string // the backup's key prefix (manifest.NormalizePrefix)
	// Only restores one path, a file or a folder with what is under it,
	// relative to the source (see OnlyPath); "" restores everything.
	Only string
	// Overwrite replaces files that exist; without it they are left, and
	// reported with ErrExists unless they hold the object's content.
	Overwrite bool
	// Concurrency is how many objects are restored at once (default 1).
	Concurrency int

	// Restored is called for each file put in place; Linked for each
	// symlink made (an object sync --links wrote), counted as restored.
	Restored func(path string, size int64)
	Linked   func(path string)
	// Same is called for a file left as it is, since it already holds
	// the object's content (a restore run again).
	Same func(path string)
	// Refused is called for a key that names no path inside the folder,
	// with the reason (from manifest.PathOfKey).
	Refused func(key string, reason error)
	// Failed is called for an object that could not be restored.
	Failed func(path string, err error)
	// Archived is called, instead of Failed, for an object that S3 gives
	// only once restored from its archive storage class
	// (uploader.ErrArchived), with that object (a version of the
	// history's, for Versions).
	Archived func(path string, obj uploader.VersionRef)
	// Warn is called for a file restored without part of what it should
	// have had, of the kind w.
	Warn func(path string, w Warning, err error)
	// Progress, if set, is called every ProgressEvery (default 10 s)
	// while Run goes on, with the counts so far.
	Progress      func(Result)
	ProgressEvery time.Duration
}

// Warning is something a restored file lacks.
type Warning uint8

const (
	// DefaultMode: the object has no valid x-amz-meta-mode; the file has
	// mode 0644.
	DefaultMode Warning = iota + 1
	// NoMtime: the object has no valid x-amz-meta-mtime; the file has the
	// time of restoring as its mtime.
	NoMtime
	// TempLeft: the file is in place, but its temporary file (path)
	// could not be removed.
	TempLeft
)

// Result counts what Run did.
type Result struct {
	Restored int64 // files put in place
	Bytes    int64 // their bytes
	Same     int64 // files already there with the object's content
	Failed   int64 // objects not restored, refused keys included
	// Gone are the versions of Versions the bucket no longer has
	// (ErrVersionGone), counted in Failed too.
	Gone int64
	// Archived are the objects to restore from their archive storage
	// class first (uploader.ErrArchived), counted in Failed too.
	Archived int64
}

// ErrExists is a file in the way, which only Options.Overwrite replaces.
var ErrExists = errors.New("already exists, with other content: not overwritten (--overwrite replaces it)")

// ErrNothing is Run's error when no object is under the prefix (and
// Options.Only): nothing to restore is not a success, the prefix or the
// path is most likely mistyped.
var ErrNothing = errors.New("no object to restore")

// restorer is one Run or Versions.
type restorer struct {
	bucket   uploader.Reader // Run's
	versions VersionReader   // Versions'
	root     *os.Root
	o        Options
	// links is held to make a symlink, and read-held by a file from
	// checking that no folder above it is one until its folders exist
	// (see parentsNotLinks).
	links sync.RWMutex

	restored, bytes, same, failed, gone, archived atomic.Int64
}

// file is one file to restore: its path, the object that holds it, and,
// for Versions, the version of the history it is.
type file struct {
	rel, key string
	size     int64
	v        *manifest.Version
}

// OpenRoot opens the folder to restore into, creating it (and its missing
// parents) if needed, as an os.Root: no file operation can reach outside
// it, through ".." or through a symlink. removeCreated removes again the
// folders it created, those still empty: a restore that failed calls it
// and leaves no empty folder behind; a folder that was there, or that
// holds anything, is never removed.
func OpenRoot(dir string) (root *os.Root, removeCreated func(), err error) {
	created := missingFolders(dir)
	removeCreated = func() {
		for _, d := range created { // deepest first; os.Remove keeps a folder that is not empty
			if os.Remove(d) != nil {
				return
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		removeCreated()
		return nil, nil, fmt.Errorf("restore folder: %w", err)
	}
	root, err = os.OpenRoot(dir)
	if err != nil {
		removeCreated()
		return nil, nil, fmt.Errorf("restore folder: %w", err)
	}
	return root, removeCreated, nil
}

// missingFolders are dir and its parents that are not there, deepest
// first: those os.MkdirAll(dir) creates.
func missingFolders(dir string) []string {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			return missing
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			return missing
		}
	}
}

// OnlyPath checks a path to restore alone, as Options.Only takes it: one
// relative to the source that cannot leave it (manifest.CheckPath);
// leading and trailing slashes are dropped ("/docs/" is "docs"), and ""
// means everything.
func OnlyPath(s string) (string, error) {
	s = strings.Trim(s, "/")
	if s == "" {
		return "", nil
	}
	if err := manifest.CheckPath(s); err != nil {
		return "", fmt.Errorf("path to restore %q: %w", s, err)
	}
	return s, nil
}

// Run restores the objects under opts.Prefix (and opts.Only) from bucket
// into root.
func Run(ctx context.Context, bucket uploader.Reader, root *os.Root, opts Options) (Result, error) {
	only, err := OnlyPath(opts.Only)
	if err != nil {
		return Result{}, err
	}
	opts.Only = only
	r := &restorer{bucket: bucket, root: root, o: opts}
	list := opts.Prefix
	if opts.Only != "" && utf8.ValidString(opts.Only) {
		// Keys of paths under Only start with its key (escaping valid
		// UTF-8 is the same piece by piece); others are filtered below.
		list = manifest.Key(opts.Prefix, opts.Only)
	}
	return r.run(func() error { return uploader.EachObject(ctx, bucket, list, opts.Concurrency, r.object) })
}

// run runs walk, which restores the files, with the progress reports
// around it, and says how it went.
func (r *restorer) run(walk func() error) (Result, error) {
	if r.o.Progress != nil {
		every := r.o.ProgressEvery
		if every <= 0 {
			every = 10 * time.Second // a line a while in a log, not a flood
		}
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-tick.C:
					r.o.Progress(r.result())
				case <-done:
					return
				}
			}
		}()
	}
	err := walk()
	res := r.result()
	if err == nil && res.Restored+res.Same+res.Failed == 0 {
		err = ErrNothing
	}
	return res, err
}

func (r *restorer) result() Result {
	return Result{Restored: r.restored.Load(), Bytes: r.bytes.Load(), Same: r.same.Load(), Failed: r.failed.Load(), Gone: r.gone.Load(), Archived: r.archived.Load()}
}

// object restores one listed object, or reports why not. It returns an
// error only to end the restore: a fatal one, or ctx's.
func (r *restorer) object(ctx context.Context, o uploader.ObjectInfo) error {
	rel, err := manifest.PathOfKey(r.o.Prefix, o.Key, o.Size)
	switch {
	case errors.Is(err, manifest.ErrFolderMarker), errors.Is(err, manifest.ErrHistoryKey):
		return nil
	case err != nil:
		r.refused(o.Key, err)
		return nil
	case !isUnder(rel, r.o.Only):
		return nil
	}
	return r.file(ctx, file{rel: rel, key: o.Key, size: o.Size})
}

// isUnder reports whether rel is only or under it ("": everything is).
func isUnder(rel, only string) bool {
	return only == "" || rel == only || strings.HasPrefix(rel, only+"/")
}

func (r *restorer) refused(key string, err error) {
	r.failed.Add(1)
	if r.o.Refused != nil {
		r.o.Refused(key, err)
	}
}

// file restores f, or reports why not; it returns an error only to end
// the restore.
func (r *restorer) file(ctx context.Context, f file) error {
	if err := r.restore(ctx, f); err != nil {
		if uploader.IsFatal(err) || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, ErrVersionGone) {
			r.gone.Add(1)
		}
		r.failed.Add(1)
		archived := errors.Is(err, uploader.ErrArchived)
		if archived {
			r.archived.Add(1)
		}
		switch {
		case archived && r.o.Archived != nil:
			r.o.Archived(f.rel, f.object())
		case r.o.Failed != nil:
			r.o.Failed(f.rel, err)
		}
	}
	return nil
}

func (r *restorer) warn(path string, w Warning, err error) {
	if r.o.Warn != nil {
		r.o.Warn(path, w, err)
	}
}

// restore downloads the object o to rel: into a temporary file, checked
// against the object's BLAKE3, given its mode and mtime, then put in
// place.
func (r *restorer) restore(ctx context.Context, f file) error {
	rel := f.rel
	if err := r.parentsNotLinks(rel); err != nil {
		return err
	}
	if fi, err := r.root.Lstat(rel); err == nil {
		if !r.o.Overwrite {
			if r.sameContent(ctx, fi, f) {
				r.same.Add(1)
				if r.o.Same != nil {
					r.o.Same(rel)
				}
				return nil
			}
			return ErrExists
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := path.Dir(rel)
	if err := r.mkdirs(rel); err != nil {
		return err
	}
	body, meta, err := r.fetch(ctx, f)
	if errors.Is(err, uploader.ErrArchived) && f.size == 0 && f.v == nil {
		// Nothing to thaw: an empty object's content (none, or a
		// link's target) is all in its metadata, which HEAD reads.
		meta, err = r.bucket.Head(ctx, f.key)
		body = io.NopCloser(strings.NewReader(""))
	}
	if err != nil {
		return err
	}
	defer body.Close()
	if meta.HashErr != nil {
		return fmt.Errorf("its bytes cannot be checked, not restored: %w", meta.HashErr)
	}
	if meta.IsLink {
		return r.link(rel, meta)
	}
	tmp := tempName(dir)
	out, err := r.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	placed := false
	defer func() {
		if !placed {
			out.Close()
			r.root.Remove(tmp)
		}
	}()
	if err := r.write(out, tmp, rel, body, f.key, meta); err != nil {
		return err
	}
	if err := r.place(tmp, rel); err != nil {
		return err
	}
	placed = true
	r.restored.Add(1)
	r.bytes.Add(meta.Size)
	if r.o.Restored != nil {
		r.o.Restored(rel, meta.Size)
	}
	return nil
}

// write copies body into the temporary file f at tmp, checks it against
// meta and gives it its mode and mtime; f is closed once it returns nil.
func (r *restorer) write(f *os.File, tmp, rel string, body io.Reader, key string, meta uploader.ObjectMeta) error {
	sum, n, err := scanner.CopyHashed(f, body, meta.Size)
	switch {
	case err != nil:
		return fmt.Errorf("download %s: %w", key, err)
	case n != meta.Size:
		return fmt.Errorf("download %s: got %d bytes of %d, not restored", key, n, meta.Size)
	case sum != meta.Hash:
		return fmt.Errorf("its bytes hash to %s, not to its x-amz-meta-blake3 %s: not restored", sum, meta.Hash)
	}
	mode := meta.Mode
	if meta.ModeErr != nil {
		mode = 0o644
		r.warn(rel, DefaultMode, meta.ModeErr)
	}
	// On the open file: a chmod by name could follow a symlink put there.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if meta.MtimeErr != nil {
		r.warn(rel, NoMtime, meta.MtimeErr)
		return nil
	}
	mtime := time.Unix(0, meta.MtimeNs)
	return r.root.Chtimes(tmp, mtime, mtime)
}

// place renames the checked temporary file to rel. Without Overwrite it
// hard-links instead, which fails where rel exists (a rename would replace
// it): a file that appeared since the check is not overwritten either.
func (r *restorer) place(tmp, rel string) error {
	if r.o.Overwrite {
		return r.root.Rename(tmp, rel)
	}
	err := r.root.Link(tmp, rel)
	if errors.Is(err, fs.ErrExist) {
		return ErrExists
	}
	if err != nil {
		// No hard links on this file system: check, then rename.
		if _, lerr := r.root.Lstat(rel); lerr == nil {
			return ErrExists
		}
		return r.root.Rename(tmp, rel)
	}
	if err := r.root.Remove(tmp); err != nil {
		r.warn(tmp, TempLeft, err)
	}
	return nil
}

// sameContent reports whether the file at rel is a regular file that
// already holds the object's content (a restore run again), or a symlink
// whose target hashes as the object says, to be left as it is.
func (r *restorer) sameContent(ctx context.Context, fi fs.FileInfo, f file) bool {
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := r.root.Readlink(f.rel)
		want, ok := r.hashOf(ctx, f)
		return err == nil && ok && scanner.LinkDigest(target) == want
	}
	if !fi.Mode().IsRegular() || fi.Size() != f.size {
		return false
	}
	want, ok := r.hashOf(ctx, f)
	if !ok {
		return false
	}
	in, err := r.root.Open(f.rel)
	if err != nil {
		return false
	}
	defer in.Close()
	sum, n, err := scanner.CopyHashed(io.Discard, in, f.size)
	return err == nil && n == f.size && sum == want
}
