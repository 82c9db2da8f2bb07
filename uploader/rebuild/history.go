package rebuild

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// The history of a bucket with versioning is in the bucket too: a
// listing of the prefix's versions (ListObjectVersions, 1,000 a request)
// gives each key's versions and delete markers, newest first; each
// version that is not current describes itself (HeadObject with its
// VersionId: one a version). A version was current from when it was
// written until the next version or delete marker of its key was (see
// spans), so that DB.TreeAt gives the tree as it was at any time, to the
// precision of the server's LastModified.

// historyBatch is how many versions one transaction records.
const historyBatch = 1000

// history writes the versions that are not current into db, if the
// bucket has versioning, and records the bucket's versioning.
type history struct {
	f      *filler
	bucket uploader.Versions
	db     *manifest.DB

	mu    sync.Mutex // guards batch
	batch []manifest.Version
}

// fillHistory records the bucket's versioning and, unless it never had
// versioning on, the versions of the prefix that are not current.
func (f *filler) fillHistory(ctx context.Context, db *manifest.DB, checked time.Time) error {
	bucket, ok := f.bucket.(uploader.Versions)
	if !ok {
		return nil // a Reader that knows no versions
	}
	status, err := bucket.Versioning(ctx)
	if err != nil {
		return err
	}
	f.versioning = status
	if err := db.SetVersioning(ctx, manifest.Versioning{Status: status, Checked: checked}); err != nil {
		return err
	}
	if status == manifest.VersioningNever {
		return nil
	}
	h := &history{f: f, bucket: bucket, db: db}
	if err := h.list(ctx); err != nil {
		return err
	}
	return h.flush(ctx)
}

// list lists the versions and reads those that are not current, with
// Concurrency HEADs at once, a key's versions once all are listed.
func (h *history) list(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(h.f.o.Concurrency, 1))
	var group []uploader.ObjectVersion // the versions of one key, newest first
	read := func() {
		for _, sp := range spans(group) {
			g.Go(func() error { return h.version(gctx, sp) })
		}
		group = nil
	}
	err := h.bucket.ListVersions(gctx, h.f.o.Prefix, func(v uploader.ObjectVersion) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		h.f.listedVersions.Add(1)
		if len(group) > 0 && group[0].Key != v.Key {
			read()
		}
		group = append(group, v)
		return nil
	})
	if err == nil {
		read()
	}
	if gerr := g.Wait(); gerr != nil {
		return gerr
	}
	return err
}

// span is a version that is not current, and when it was.
type span struct {
	uploader.ObjectVersion
	written, ended time.Time
	// sinceMtime: when it was written is not known; the file's mtime
	// (x-amz-meta-mtime) is the nearest time before it.
	sinceMtime bool
}

// spans are the versions of one key (newest first) that are not current,
// each current from when it was written until the next version or delete
// marker was. S3 gives a version's LastModified as when it was written,
// but some servers (Versity S3 Gateway 1.8.0) as when it was replaced,
// which the version just below the newest entry tells: replaced within
// the second the newest entry was written, or after it (that server's
// delete marker has the LastModified of the object it hid), in whole
// seconds (S3's have milliseconds: two writes of a key within a second
// are not taken for it). Then each version ended at its
// LastModified and began when the one below it ended; the oldest began
// at its file's mtime at the latest.
func spans(group []uploader.ObjectVersion) []span {
	replacedTimes := len(group) > 1 && !group[1].DeleteMarker && group[1].LastModified.Nanosecond() == 0 &&
		!group[1].LastModified.Before(group[0].LastModified.Truncate(time.Second))
	var out []span
	for i := 1; i < len(group); i++ {
		v := group[i]
		if v.DeleteMarker {
			continue
		}
		sp := span{ObjectVersion: v, written: v.LastModified, ended: group[i-1].LastModified}
		if replacedTimes {
			sp.ended = v.LastModified
			if i+1 < len(group) {
				sp.written = group[i+1].LastModified
			} else {
				sp.sinceMtime = true
			}
		}
		out = append(out, sp)
	}
	return out
}

// version reads one version that is not current and records it. It
// returns an error only to end the rebuild.
func (h *history) version(ctx context.Context, sp span) error {
	v := sp.ObjectVersion
	head := func(ctx context.Context) (uploader.ObjectMeta, error) {
		return h.bucket.HeadVersion(ctx, v.Key, v.VersionID)
	}
	rel, meta, ok, err := h.f.described(ctx, v.Key, v.Size, head, func(path string, reason error) { h.f.leaveOutVersion(v, path, reason) })
	if !ok {
		return err
	}
	e := meta.Entry(rel)
	if sp.sinceMtime {
		sp.written = sp.ended
		if meta.MtimeErr == nil && meta.MtimeNs < sp.ended.UnixNano() {
			sp.written = time.Unix(0, meta.MtimeNs)
		}
	}
	return h.add(ctx, manifest.Version{Path: rel, Written: sp.written, Ended: sp.ended, Size: v.Size, Hash: e.Hash,
		MtimeNs: e.Stat.MtimeNs, Mode: e.Stat.Mode, ETag: v.ETag, VersionID: v.VersionID})
}

// add queues one version, and records the batch once it is full.
func (h *history) add(ctx context.Context, v manifest.Version) error {
	h.mu.Lock()
	h.batch = append(h.batch, v)
	full := len(h.batch) >= historyBatch
	h.mu.Unlock()
	if full {
		return h.flush(ctx)
	}
	return nil
}

// flush records the versions queued.
func (h *history) flush(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.batch) == 0 {
		return nil
	}
	if err := h.db.AddVersions(ctx, h.batch); err != nil {
		return err
	}
	h.f.versions.Add(int64(len(h.batch)))
	h.batch = h.batch[:0]
	return nil
}
