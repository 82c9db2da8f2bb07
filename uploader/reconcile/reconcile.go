// Package reconcile heals the manifest from the bucket. The manifest is a
// cache of what the bucket holds, and a sync trusts it: an object deleted
// or replaced behind cloudkeeper's back, or planted there, would stay so
// for good. A reconcile lists the prefix once, finds where the manifest
// and the listing disagree, and edits the manifest to say what the bucket
// holds (a manifest.Repair) before the diff runs; the diff then repairs
// the bucket with the changes it always makes. It sends one ListObjectsV2
// per 1,000 keys, and a HeadObject only for objects the manifest does not
// know and for those whose ETag is not the one recorded; and one
// GetBucketVersioning, whose answer it records (with versioning on, the
// objects recorded without their version id get it: one
// ListObjectVersions per 1,000 keys, only while some lack one).
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// Bucket is what a reconcile reads of the bucket.
type Bucket interface {
	// List calls fn for every object under prefix (uploader.S3.List).
	List(ctx context.Context, prefix string, fn func(uploader.ObjectInfo) error) error
	// Head returns an object's size and metadata; a missing key is an
	// error wrapping uploader.ErrNotFound (uploader.S3.Head).
	Head(ctx context.Context, key string) (uploader.ObjectMeta, error)
	// Versioning and the versions of the prefix: see CheckVersioning.
	uploader.Versions
}

var _ Bucket = (*uploader.S3)(nil)

// Kind is what a reconcile found of one object.
type Kind uint8

const (
	// Missing: the manifest has it, the bucket does not. Its file is
	// uploaded again.
	Missing Kind = iota + 1
	// Differs: its size, or its ETag and then its x-amz-meta-blake3,
	// are not those the manifest recorded. Its file is uploaded again (or
	// the object deleted if the file is gone).
	Differs
	// Adopted: the manifest did not know it, the tree has its path. It
	// is kept if its x-amz-meta-blake3 is the file's hash, else uploaded
	// again.
	Adopted
	// Extra: the manifest did not know it, the tree does not have its
	// path. It is deleted (counted under --max-delete).
	Extra
	// BadKey: its key is not one cloudkeeper writes for a path. It is
	// left alone.
	BadKey
	// Unreadable: its metadata could not be read. It is left alone
	// until the next reconcile.
	Unreadable
)

var kindNames = [...]string{Missing: "missing", Differs: "differs", Adopted: "adopted", Extra: "extra", BadKey: "bad key", Unreadable: "unreadable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Finding is one object a reconcile found out of line.
type Finding struct {
	Kind   Kind
	Path   string // "" for a BadKey
	Key    string
	Detail string // why, for people
}

// Options say what to reconcile.
type Options struct {
	DB     *manifest.DB // writable: a dry run passes a manifest.OpenCopy
	Bucket Bucket
	Prefix string // normalized key prefix
	// Root is the source folder: an object the manifest does not know
	// is Adopted if a file is at its path, Extra if not.
	Root string
	// FollowSymlinks counts a symlink to a file as a file (the scan
	// follows them).
	FollowSymlinks bool
	// Links counts a symlink's object at a symlink's path as in the tree
	// (the scan keeps links as links).
	Links bool
	// Filter: excluded paths are left alone on both sides.
	Filter *scanner.Filter
	// Concurrency is how many HeadObject at once; default 8.
	Concurrency int
	// Report, if set, is told of every finding, one call at a time.
	Report func(Finding)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Result is what a reconcile did.
type Result struct {
	manifest.Reconciled       // when, and the counts of what is repaired
	Listed              int64 // objects listed under the prefix
	Heads               int64 // HeadObject requests
	Retagged            int64 // objects with a new ETag and the recorded content: the ETag is updated
	ETagsRecorded       int64 // rows without an ETag that got the listing's
	BadKeys, Unreadable int64
	// Versioned is the bucket's versioning the reconcile found, and the
	// version ids it filled (CheckVersioning).
	Versioned Versioned
}

// Run reconciles the manifest with the bucket: it lists the prefix, edits
// the manifest to say what the listing shows (see manifest.Repair), and
// records that it ran (manifest.DB.SetReconciled), with the bucket's
// versioning (CheckVersioning). A HEAD that fails is
// reported as Unreadable and the run goes on; it returns an error only for
// the listing, fatal S3 errors (uploader.IsFatal), the manifest, or ctx.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &run{o: o, repair: manifest.Repair{ETags: map[string]string{}}}
	res := &r.res
	res.At = o.Now()
	drift, err := r.list(ctx)
	if err != nil {
		return *res, err
	}
	for _, p := range drift.Missing {
		r.found(Finding{Kind: Missing, Path: p, Key: manifest.Key(o.Prefix, p), Detail: "not in the bucket any more: uploaded again if the tree has it"})
		r.repair.Forget = append(r.repair.Forget, p)
	}
	for _, p := range drift.Resized {
		r.found(Finding{Kind: Differs, Path: p, Key: manifest.Key(o.Prefix, p), Detail: "its size in the bucket is not the manifest's: uploaded again if the tree has it"})
		r.repair.Stale = append(r.repair.Stale, p)
	}
	if err := r.heads(ctx, drift); err != nil {
		return *res, err
	}
	if err := o.DB.Repair(ctx, r.repair); err != nil {
		return *res, err
	}
	if res.Versioned, err = CheckVersioning(ctx, o.DB, o.Bucket, o.Prefix, res.At); err != nil {
		return *res, err
	}
	return *res, o.DB.SetReconciled(ctx, res.Reconciled)
}

type run struct {
	o      Options
	mu     sync.Mutex // guards res and repair while HEADs run
	res    Result
	repair manifest.Repair
}

// found counts f and reports it; the caller holds mu or runs alone.
func (r *run) found(f Finding) {
	switch f.Kind {
	case Missing:
		r.res.Missing++
	case Differs:
		r.res.Differ++
	case Adopted:
		r.res.Adopted++
	case Extra:
		r.res.Extra++
	case BadKey:
		r.res.BadKeys++
	case Unreadable:
		r.res.Unreadable++
	}
	if r.o.Report != nil {
		r.o.Report(f)
	}
}

// list lists the prefix into a manifest.Listing and returns its drift,
// having given the rows without an ETag the listing's.
func (r *run) list(ctx context.Context) (manifest.Drift, error) {
	l, err := r.o.DB.NewListing(ctx)
	if err != nil {
		return manifest.Drift{}, err
	}
	defer l.Close()
	err = r.o.Bucket.List(ctx, r.o.Prefix, func(info uploader.ObjectInfo) error {
		r.res.Listed++
		path, err := manifest.PathOfKey(r.o.Prefix, info.Key, info.Size)
		switch {
		case errors.Is(err, manifest.ErrFolderMarker), errors.Is(err, manifest.ErrHistoryKey):
			return nil // the history area is no file's: never an extra
		case err != nil:
			r.found(Finding{Kind: BadKey, Key: info.Key, Detail: err.Error() + ": left alone"})
			return nil
		}
		return l.Add(ctx, manifest.Listed{Path: path, Key: info.Key, Size: info.Size, ETag: info.ETag})
	})
	if err != nil {
		return manifest.Drift{}, err
	}
	drift, err := l.Drift(ctx, r.o.Filter.Excluded)
	if err != nil {
		return drift, err
	}
	r.res.ETagsRecorded, err = l.RecordETags(ctx)
	return drift, err
}

// heads reads the metadata of the objects whose ETag changed and of those
// the manifest does not know, Concurrency at once.
func (r *run) heads(ctx context.Context, d manifest.Drift) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.Concurrency)
	for _, rt := range d.Retagged {
		g.Go(func() error { return r.retagged(gctx, rt) })
	}
	for _, u := range d.Unknown {
		g.Go(func() error { return r.unknown(gctx, u) })
	}
	return g.Wait()
}

// head reads an object's metadata; a failure other than a fatal one is
// reported and ok is false.
func (r *run) head(ctx context.Context, path, key string) (meta uploader.ObjectMeta, ok bool, err error) {
	meta, err = r.o.Bucket.Head(ctx, key)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Heads++
	switch {
	case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
		return meta, false, err
	case err != nil:
		if !errors.Is(err, uploader.ErrNotFound) {
			r.found(Finding{Kind: Unreadable, Path: path, Key: key, Detail: err.Error() + ": left alone until the next reconcile"})
		}
		return meta, false, err
	}
	return meta, true, nil
}

// retagged looks at a row whose object has another ETag than the one
// recorded: if its metadata still says the row's content, only the ETag
// changes (the object was copied onto itself, say); else it differs.
func (r *run) retagged(ctx context.Context, rt manifest.Retagged) error {
	meta, ok, err := r.head(ctx, rt.Path, rt.Listed.Key)
	if !ok {
		if errors.Is(err, uploader.ErrNotFound) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.found(Finding{Kind: Missing, Path: rt.Path, Key: rt.Listed.Key, Detail: "deleted while listed: uploaded again if the tree has it"})
			r.repair.Forget = append(r.repair.Forget, rt.Path)
			return nil
		}
		return fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if meta.HashErr == nil && meta.Hash == rt.Hash && meta.Size == rt.Stat.Size {
		r.res.Retagged++
		r.repair.ETags[rt.Path] = rt.Listed.ETag
		return nil
	}
	detail := "rewritten in the bucket with other content: uploaded again if the tree has it"
	if meta.HashErr != nil {
		detail = "rewritten in the bucket (" + meta.HashErr.Error() + "): uploaded again if the tree has it"
	}
	r.found(Finding{Kind: Differs, Path: rt.Path, Key: rt.Listed.Key, Detail: detail})
	r.repair.Stale = append(r.repair.Stale, rt.Path)
	return nil
}

// unknown adopts an object the manifest does not know.
func (r *run) unknown(ctx context.Context, u manifest.Listed) error {
	meta, ok, err := r.head(ctx, u.Path, u.Key)
	if !ok {
		if errors.Is(err, uploader.ErrNotFound) {
			return nil // deleted since the listing: nothing to know
		}
		return fatal(err)
	}
	f := Finding{Kind: Adopted, Path: u.Path, Key: u.Key, Detail: "not in the manifest, the tree has it: kept if it has the file's content"}
	if !InTree(r.o.Root, u.Path, r.o.FollowSymlinks) && !(r.o.Links && meta.IsLink && linkInTree(r.o.Root, u.Path)) {
		f.Kind, f.Detail = Extra, "not in the manifest nor in the tree: deleting it"
	}
	e := Adopt(u.Path, uploader.ObjectInfo{Key: u.Key, Size: u.Size, ETag: u.ETag}, meta)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.found(f)
	r.repair.Adopt = append(r.repair.Adopt, e)
	return nil
}

// fatal keeps the errors of head that end the run, and drops those it
// reported.
func fatal(err error) error {
	if uploader.IsFatal(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// InTree reports whether the source folder root has a regular file at
// path (through a symlink if follow): whether an object the manifest does
// not know is Adopted or Extra.
func InTree(root, path string, follow bool) bool {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(filepath.Join(root, filepath.FromSlash(path)))
	return err == nil && fi.Mode().IsRegular()
}

// linkInTree reports whether the source folder root has a symlink at path.
func linkInTree(root, path string) bool {
	fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(path)))
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// Adopt is the manifest row of an object the manifest did not know, as
// its listing and metadata describe it: its hash, mtime and mode where its
// metadata has them (a zero hash otherwise, which no file has: the diff
// uploads the file again), and no stat of a local file, so that the diff
// hashes the file.
func Adopt(path string, o uploader.ObjectInfo, meta uploader.ObjectMeta) manifest.Entry {
	e := meta.Entry(path)
	e.Stat.Size, e.ETag = o.Size, o.ETag
	if !o.LastModified.IsZero() {
		e.UploadedNs = o.LastModified.UnixNano()
	}
	return e
}
