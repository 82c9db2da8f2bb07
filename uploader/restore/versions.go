package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// VersionReader reads one version of an object: what Versions needs of
// the bucket (*uploader.S3 implements it).
type VersionReader interface {
	// GetVersion is uploader.Reader's Get of the version ("": the
	// current object at key).
	GetVersion(ctx context.Context, key, version string) (io.ReadCloser, uploader.ObjectMeta, error)
}

// ErrVersionGone is a version the history records that the bucket no
// longer has: deleted since, expired by a lifecycle rule.
var ErrVersionGone = errors.New("the bucket no longer has this version")

// Versions restores the versions vs of the history (a manifest.DB.TreeAt)
// into root: one GET per file, no listing. A version is fetched by its
// VersionID, or as the object at its HistoryKey, or (neither: a current
// version written without versioning) as the object at its path's key;
// its bytes are checked against the version's BLAKE3 and it gets the
// version's mtime and mode. opts.Only keeps one path and what is under
// it; opts.Prefix is the backup's.
func Versions(ctx context.Context, bucket VersionReader, root *os.Root, vs []manifest.Version, opts Options) (Result, error) {
	only, err := OnlyPath(opts.Only)
	if err != nil {
		return Result{}, err
	}
	opts.Only = only
	r := &restorer{versions: bucket, root: root, o: opts}
	return r.run(func() error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(opts.Concurrency, 1))
		for i := range vs {
			v := &vs[i]
			if err := gctx.Err(); err != nil {
				break
			}
			if !isUnder(v.Path, only) {
				continue
			}
			key := manifest.Key(opts.Prefix, v.Path)
			if err := manifest.CheckPath(v.Path); err != nil {
				r.refused(key, err)
				continue
			}
			g.Go(func() error { return r.file(gctx, file{rel: v.Path, key: key, size: v.Size, v: v}) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		return ctx.Err()
	})
}

// fetch GETs f's object: for a version, the one it names, with the
// version's hash, mtime and mode as its metadata.
func (r *restorer) fetch(ctx context.Context, f file) (io.ReadCloser, uploader.ObjectMeta, error) {
	if f.v == nil {
		return r.bucket.Get(ctx, f.key)
	}
	v, obj := f.v, f.object()
	key := obj.Key
	body, meta, err := r.versions.GetVersion(ctx, key, obj.VersionID)
	if err != nil {
		if errors.Is(err, uploader.ErrNotFound) && (v.VersionID != "" || v.HistoryKey != "") {
			return nil, meta, fmt.Errorf("%w (run %d's, written %s; deleted since, or expired by a lifecycle rule): %w",
				ErrVersionGone, v.Run, v.Written.Format("2006-01-02 15:04:05"), err)
		}
		return nil, meta, err
	}
	if meta.Size != v.Size {
		body.Close()
		return nil, meta, fmt.Errorf("%s: the bucket's object has %d bytes, the history's version %d: not restored", key, meta.Size, v.Size)
	}
	meta = uploader.ObjectMeta{Size: v.Size, Hash: v.Hash, MtimeNs: v.MtimeNs, Mode: v.Mode.Perm() | v.Mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky), VersionID: meta.VersionID,
		Link: meta.Link, IsLink: meta.IsLink, LinkErr: meta.LinkErr} // the target is the object's: the history has its hash
	return body, meta, nil
}

// object is the object that holds f: its key, or for a version of the
// history, the version or the history copy.
func (f file) object() uploader.VersionRef {
	switch {
	case f.v == nil:
		return uploader.VersionRef{Key: f.key}
	case f.v.HistoryKey != "":
		return uploader.VersionRef{Key: f.v.HistoryKey}
	}
	return uploader.VersionRef{Key: f.key, VersionID: f.v.VersionID}
}

// hashOf is the BLAKE3 f's object should have: a version's own, or the
// object's x-amz-meta-blake3 (a HEAD). ok is false if it cannot be known.
func (r *restorer) hashOf(ctx context.Context, f file) (scanner.Digest, bool) {
	if f.v != nil {
		return f.v.Hash, true
	}
	meta, err := r.bucket.Head(ctx, f.key)
	if err != nil || meta.HashErr != nil {
		return scanner.Digest{}, false
	}
	return meta.Hash, true
}
