// Package rebuild writes a lost or damaged manifest again from the
// bucket, which describes itself: the listing gives each object's key
// and size, its metadata (x-amz-meta-blake3, -mtime, -mode) the rest. The
// next sync then reads each file once, finds the content the bucket has,
// and uploads nothing that is already there. In a bucket with versioning
// the history is rebuilt too, from a listing of the prefix's versions and
// one HeadObject per version that is not current (see history.go): each
// version describes itself, and DB.History and DB.TreeAt read it as they
// read what the runs recorded.
//
//	res, err := rebuild.Run(ctx, s3, rebuild.Options{
//		Manifest: path, Identity: id, Prefix: "laptop/",
//		LeftOut:  func(key, path string, why error) { log.Print(key, why) },
//	})
//
// Run holds the manifest's lock (manifest.Lock) throughout, builds the new
// manifest beside the old path, and only once it is complete moves the
// old one aside (manifest.MoveAside) and puts the new one in its place: a
// rebuild that fails changes nothing.
package rebuild

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
)

// Options says which manifest to rebuild from which objects, and where
// to report. Callbacks may be nil, and per-object ones are called from
// several goroutines at once.
type Options struct {
	Manifest    string            // path of the manifest
	Identity    manifest.Identity // what it describes (manifest.Open)
	Prefix      string            // the backup's key prefix
	Concurrency int               // HeadObject requests at once (default 1)
	// Force rebuilds a manifest that opens fine, moving it aside; without
	// it only a missing or damaged one is rebuilt.
	Force bool

	// Damaged is called when the manifest is damaged, before rebuilding.
	Damaged func()
	// MovedAside is called with the path the old manifest was moved to.
	MovedAside func(old string)
	// LeftOut is called for an object left out of the manifest: a key
	// that names no path (path ""), or an object without a valid
	// x-amz-meta-blake3. The next sync uploads its file again.
	LeftOut func(key, path string, reason error)
	// Kept is called for an object kept whose mtime or mode metadata is
	// not valid: the next sync refreshes it.
	Kept func(path string, reason error)
	// Failed is called for an object whose metadata could not be read,
	// or a version of it.
	Failed func(path string, err error)
	// VersionLeftOut is called for a version that is not current, left
	// out of the history: its key names no path (path ""), or it has no
	// valid x-amz-meta-blake3.
	VersionLeftOut func(key, versionID, path string, reason error)
}

// Result counts what Run did.
type Result struct {
	Objects, Bytes int64 // rows written, and their objects' bytes
	LeftOut        int64 // objects left out (Options.LeftOut)
	Failed         int64 // objects or versions that could not be read (Options.Failed)
	// Versioning is the bucket's, as the rebuild found it ("" : not
	// asked, the Reader knows no versions).
	Versioning manifest.VersioningStatus
	// VersionsListed are the versions and delete markers a listing of
	// versions showed (with versioning); Versions those that are not
	// current recorded in the history, VersionsLeftOut those left out
	// (Options.VersionLeftOut).
	VersionsListed, Versions, VersionsLeftOut int64
}

// Run rebuilds the manifest at opts.Manifest from the objects under
// opts.Prefix.
func Run(ctx context.Context, bucket uploader.Reader, opts Options) (Result, error) {
	if err := os.MkdirAll(filepath.Dir(opts.Manifest), 0o700); err != nil {
		return Result{}, fmt.Errorf("manifest folder: %w", err)
	}
	lock, err := manifest.Lock(opts.Manifest)
	if err != nil {
		return Result{}, err
	}
	defer lock.Close()
	replace, err := oldManifest(opts)
	if err != nil {
		return Result{}, err
	}
	tmp := opts.Manifest + ".rebuild"
	manifest.Remove(tmp) // left by a rebuild that was killed
	res, err := fill(ctx, bucket, tmp, opts)
	if err != nil {
		manifest.Remove(tmp)
		return res, err
	}
	if replace {
		old, err := manifest.MoveAside(opts.Manifest, time.Now())
		if err != nil {
			manifest.Remove(tmp)
			return res, err
		}
		if opts.MovedAside != nil {
			opts.MovedAside(old)
		}
	}
	if err := manifest.Rename(tmp, opts.Manifest); err != nil {
		return res, err
	}
	os.Remove(tmp + ".lock")
	return res, nil
}

// oldManifest decides what to do with the manifest at opts.Manifest:
// nothing if there is none; replace it if it is damaged or Force is set;
// and otherwise refuse, since it is fine.
func oldManifest(opts Options) (replace bool, err error) {
	if _, err := os.Lstat(opts.Manifest); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	db, err := manifest.OpenReadOnly(opts.Manifest, opts.Identity)
	switch {
	case err == nil:
		db.Close()
		if !opts.Force {
			return false, fmt.Errorf("manifest %s exists and opens fine: nothing to rebuild (--force rebuilds it anyway, moving this one aside)", opts.Manifest)
		}
	case errors.Is(err, manifest.ErrDamaged):
		if opts.Damaged != nil {
			opts.Damaged()
		}
	case !opts.Force:
		return false, fmt.Errorf("%w (--force moves it aside and rebuilds it)", err)
	}
	return true, nil
}

// filler writes the rows of one rebuild.
type filler struct {
	bucket uploader.Reader
	o      Options
	w      *manifest.Writer

	objects, bytes, leftOut, failed           atomic.Int64
	listedVersions, versions, versionsLeftOut atomic.Int64
	versioning                                manifest.VersioningStatus
	copies                                    copies
	mu                                        sync.Mutex
	recordErr                                 error
}

// fill writes a manifest at path with a row for every object under the
// prefix that describes itself, from the listing and HeadObject. Rows
// have no inode, device or ctime, and a hash time of 0: the next sync
// hashes each file once, finds the same content, and records its stat.
func fill(ctx context.Context, bucket uploader.Reader, path string, opts Options) (Result, error) {
	db, err := manifest.Open(path, opts.Identity)
	if err != nil {
		return Result{}, err
	}
	listed := time.Now()
	f := &filler{bucket: bucket, o: opts, w: db.Writer()}
	err = uploader.EachObject(ctx, bucket, opts.Prefix, opts.Concurrency, f.object)
	f.w.Close()
	if err == nil {
		err = f.recordErr
	}
	if err == nil {
		err = f.fillHistory(ctx, db, listed)
	}
	if err == nil {
		err = f.copies.record(ctx, f, db)
	}
	if err == nil {
		// Made from a listing: as good as a reconcile at its start.
		err = db.SetReconciled(ctx, manifest.Reconciled{At: listed})
	}
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("manifest %s: %w", path, cerr)
	}
	res := Result{Objects: f.objects.Load(), Bytes: f.bytes.Load(), LeftOut: f.leftOut.Load(), Failed: f.failed.Load(),
		Versioning: f.versioning, VersionsListed: f.listedVersions.Load(), Versions: f.versions.Load(), VersionsLeftOut: f.versionsLeftOut.Load()}
	return res, err
}

// object writes the row of one listed object, or reports why not. It
// returns an error only to end the rebuild.
func (f *filler) object(ctx context.Context, o uploader.ObjectInfo) error {
	if manifest.IsHistoryKey(f.o.Prefix, o.Key) {
		return f.copies.read(ctx, f, o)
	}
	head := func(ctx context.Context) (uploader.ObjectMeta, error) { return f.bucket.Head(ctx, o.Key) }
	rel, meta, ok, err := f.described(ctx, o.Key, o.Size, head, func(path string, reason error) { f.leaveOut(o.Key, path, reason) })
	if !ok {
		return err
	}
	if meta.Err() != nil && f.o.Kept != nil {
		f.o.Kept(rel, meta.Err())
	}
	e := reconcile.Adopt(rel, o, meta) // without a LastModified, uploaded at the Writer's now
	return f.w.Put(ctx, e, func(err error) {
		if err != nil {
			f.mu.Lock()
			if f.recordErr == nil {
				f.recordErr = err
			}
			f.mu.Unlock()
			return
		}
		f.objects.Add(1)
		f.bytes.Add(e.Stat.Size)
	})
}

// described reads, with head, what the object at key (of size bytes)
// says of itself: ok is false for a folder marker, and for an object left
// out (told to leaveOut) or that could not be read (Failed); err is set
// only to end the rebuild.
func (f *filler) described(ctx context.Context, key string, size int64, head func(context.Context) (uploader.ObjectMeta, error),
	leaveOut func(path string, reason error)) (rel string, meta uploader.ObjectMeta, ok bool, err error) {
	rel, err = manifest.PathOfKey(f.o.Prefix, key, size)
	if errors.Is(err, manifest.ErrFolderMarker) || errors.Is(err, manifest.ErrHistoryKey) {
		return "", meta, false, nil // the history area holds no file's object
	}
	if err != nil {
		leaveOut("", err)
		return "", meta, false, nil
	}
	meta, err = head(ctx)
	switch {
	case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
		return rel, meta, false, err
	case errors.Is(err, uploader.ErrNotFound):
		return rel, meta, false, nil // deleted since the listing
	case err != nil:
		f.fail(rel, err)
		return rel, meta, false, nil
	case meta.HashErr != nil:
		leaveOut(rel, meta.HashErr)
		return rel, meta, false, nil
	}
	return rel, meta, true, nil
}

func (f *filler) leaveOut(key, path string, reason error) {
	f.leftOut.Add(1)
	if f.o.LeftOut != nil {
		f.o.LeftOut(key, path, reason)
	}
}

func (f *filler) fail(path string, err error) {
	f.failed.Add(1)
	if f.o.Failed != nil {
		f.o.Failed(path, err)
	}
}

func (f *filler) leaveOutVersion(v uploader.ObjectVersion, path string, reason error) {
	f.versionsLeftOut.Add(1)
	if f.o.VersionLeftOut != nil {
		f.o.VersionLeftOut(v.Key, v.VersionID, path, reason)
	}
}
