package rebuild

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// A bucket without versioning keeps its history in the history area
// (manifest.HistoryArea), which the listing of the prefix lists with the
// mirror: each copy describes itself (one HeadObject a copy) with the
// content, mtime and mode of the version it keeps, the key it was at and
// when a run replaced it there (uploader.HistoryOf). A path's copies,
// in the order they were replaced, give its old versions: each ended when
// it was replaced, and began when the one before it ended, or at its
// file's mtime if that is later (a file deleted, then made again; without
// an mtime, when it was replaced). The
// copy of a current version that an interrupted run made, and whose
// overwrite never went out, keeps that current version.

// copies gathers the history area's copies, by path, while the listing
// goes on.
type copies struct {
	mu     sync.Mutex
	byPath map[string][]manifest.Version
}

// read reads the copy o and keeps it for record. It returns an error only
// to end the rebuild.
func (c *copies) read(ctx context.Context, f *filler, o uploader.ObjectInfo) error {
	leaveOut := func(path string, reason error) {
		f.leaveOutVersion(uploader.ObjectVersion{Key: o.Key}, path, reason)
	}
	meta, err := f.bucket.Head(ctx, o.Key)
	switch {
	case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
		return err
	case errors.Is(err, uploader.ErrNotFound):
		return nil // pruned since the listing
	case err != nil:
		f.fail(o.Key, err)
		return nil
	}
	key, replaced, err := uploader.HistoryOf(meta)
	if err != nil {
		leaveOut("", err)
		return nil
	}
	rel, err := manifest.PathOfKey(f.o.Prefix, key, o.Size)
	if err == nil && meta.HashErr != nil {
		err = meta.HashErr
	}
	if err != nil {
		leaveOut(rel, err)
		return nil
	}
	e := meta.Entry(rel)
	v := manifest.Version{Path: rel, Ended: replaced, Size: o.Size, Hash: e.Hash, MtimeNs: e.Stat.MtimeNs, Mode: e.Stat.Mode,
		ETag: o.ETag, HistoryKey: o.Key}
	// When it was written is not known; its file's mtime is the nearest
	// time before (spans), and without one, when it was replaced.
	v.Written = replaced
	if meta.MtimeErr == nil {
		v.Written = time.Unix(0, meta.MtimeNs)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byPath == nil {
		c.byPath = map[string][]manifest.Version{}
	}
	c.byPath[rel] = append(c.byPath[rel], v)
	return nil
}

// record records the copies read as the old versions of their paths,
// once the current versions are in db.
func (c *copies) record(ctx context.Context, f *filler, db *manifest.DB) error {
	paths := make([]string, 0, len(c.byPath))
	for p := range c.byPath {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var batch []manifest.Version
	for _, p := range paths {
		vs, err := c.spans(ctx, db, p, c.byPath[p])
		if err != nil {
			return err
		}
		batch = append(batch, vs...)
		if len(batch) >= historyBatch {
			if err := db.AddVersions(ctx, batch); err != nil {
				return err
			}
			f.versions.Add(int64(len(batch)))
			batch = batch[:0]
		}
	}
	if err := db.AddVersions(ctx, batch); err != nil {
		return err
	}
	f.versions.Add(int64(len(batch)))
	return nil
}

// spans gives the copies of path their times (see above), and attaches
// to the current version the copy that keeps it.
func (c *copies) spans(ctx context.Context, db *manifest.DB, path string, vs []manifest.Version) ([]manifest.Version, error) {
	slices.SortFunc(vs, func(a, b manifest.Version) int { return a.Ended.Compare(b.Ended) })
	h, err := db.History(ctx, path)
	if err != nil {
		return nil, err
	}
	var cur *manifest.Version
	if len(h) > 0 && h[len(h)-1].Current() {
		cur = &h[len(h)-1]
	}
	if last := vs[len(vs)-1]; cur != nil && last.Hash == cur.Hash && !last.Ended.Before(cur.Written) {
		// Copied, and not replaced: the run was interrupted.
		if _, err := db.SettleHistory(ctx, manifest.HistoryCopy{Key: last.HistoryKey, Of: manifest.Entry{Path: path, Hash: last.Hash}}, true); err != nil {
			return nil, err
		}
		vs = vs[:len(vs)-1]
	}
	var prevEnded time.Time
	for i := range vs {
		v := &vs[i]
		if cur != nil && v.Ended.After(cur.Written) {
			v.Ended = cur.Written // the server's LastModified has whole seconds
		}
		if v.Written.Before(prevEnded) {
			v.Written = prevEnded
		}
		if v.Written.After(v.Ended) {
			v.Written = v.Ended
		}
		prevEnded = v.Ended
	}
	return besideVersions(ctx, db, h, vs)
}

// besideVersions fits the copies of a path among the S3 versions of it
// that the listing of versions gave (a bucket whose versioning was turned
// on, or suspended, after --keep made copies): a copy of S3's "null"
// version is that version, recorded on it; an S3 version that the
// listing has end later than a copy's version began (a null version
// written after it, since replaced, is not listed) ends there, and a
// copy's version ends where a later S3 version begins. No two versions of
// the path are current at once.
func besideVersions(ctx context.Context, db *manifest.DB, h []manifest.Version, vs []manifest.Version) ([]manifest.Version, error) {
	out := vs[:0]
	for _, v := range vs {
		null := false
		for _, s := range h {
			if s.VersionID == "" || s.Current() {
				continue
			}
			switch {
			case s.VersionID == "null" && s.Hash == v.Hash:
				null = true
			case s.Written.Before(v.Written) && s.Ended.After(v.Written):
				if err := db.EndVersion(ctx, v.Path, s.VersionID, v.Written); err != nil {
					return nil, err
				}
			case !s.Written.Before(v.Written) && s.Written.Before(v.Ended):
				v.Ended = s.Written
			}
		}
		if null {
			if err := db.KeepNullVersion(ctx, v.Path, v.HistoryKey); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, v)
	}
	return out, nil
}
