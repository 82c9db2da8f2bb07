package uploader

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// History keeps, in a bucket without versioning, the objects a run
// overwrites or deletes: each is copied on the server into the history
// area (manifest.HistoryKey) and the copy recorded on its version, before
// the overwrite or the delete goes out. An object whose write S3 answered
// with a VersionId is a version S3 keeps itself, and is not copied.
type History struct {
	Record HistoryRecord // the manifest
	// Run is the run that replaces them, and Started its start: the
	// copies' folder.
	Run     int64
	Started time.Time
}

// HistoryRecord records history copies; *manifest.DB is one.
type HistoryRecord interface {
	IntendHistory(ctx context.Context, copies []manifest.HistoryCopy) ([]manifest.HistoryCopy, error)
	RecordHistory(ctx context.Context, copies []manifest.HistoryCopy) error
	SettleHistory(ctx context.Context, c manifest.HistoryCopy, found bool) (bool, error)
}

var _ HistoryRecord = (*manifest.DB)(nil)

// DryHistory is the HistoryRecord of a dry run: the copies it would make
// (manifest.DB.HistoryToMake) go to its bucket, which counts them;
// nothing is marked or recorded.
type DryHistory struct{ DB *manifest.DB }

func (d DryHistory) IntendHistory(ctx context.Context, copies []manifest.HistoryCopy) ([]manifest.HistoryCopy, error) {
	return d.DB.HistoryToMake(ctx, copies)
}

func (DryHistory) RecordHistory(context.Context, []manifest.HistoryCopy) error { return nil }

func (DryHistory) SettleHistory(context.Context, manifest.HistoryCopy, bool) (bool, error) {
	return false, nil
}

// Metadata of a history copy, beside the blake3, mtime and mode the
// object had: when it was replaced (as MetaMtime writes times), by which
// run, and the key it was at (percent-encoded: metadata is ASCII).
const (
	MetaReplaced = "replaced"
	MetaRun      = "run"
	MetaKey      = "key"
)

// HistoryOf reads what a history copy says of itself beside its content:
// the key its object was at, and when a run replaced it there.
func HistoryOf(m ObjectMeta) (key string, replaced time.Time, err error) {
	key, err = url.PathUnescape(m.Metadata[MetaKey])
	if err == nil && key == "" {
		err = errors.New("no x-amz-meta-" + MetaKey)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("x-amz-meta-%s: %w", MetaKey, err)
	}
	ns, err := ParseMtime(m.Metadata[MetaReplaced])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("x-amz-meta-%s: %w", MetaReplaced, err)
	}
	return key, time.Unix(0, ns), nil
}

// lost reports whether the object of row e goes for good when replaced:
// its write was not answered with a version S3 keeps.
func lost(e *manifest.Entry) bool { return e != nil && (e.VersionID == "" || e.VersionID == "null") }

// keep copies the objects of rows into the history area and records the
// copies; it returns the error of each path whose copy failed, whose
// change must not go out. A row whose object is not in the bucket has
// nothing to keep.
func (a *Applier) keep(ctx context.Context, rows []manifest.Entry) (map[string]error, error) {
	copies := make([]manifest.HistoryCopy, len(rows))
	for i, e := range rows {
		copies[i] = manifest.HistoryCopy{Key: manifest.HistoryKey(a.Prefix, a.History.Run, a.History.Started, e.Path), Of: e}
	}
	need, err := a.History.Record.IntendHistory(ctx, copies)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	failed := map[string]error{}
	var made, missing []manifest.HistoryCopy
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.Concurrency)
	now := FormatMtime(time.Now().UnixNano())
	for _, c := range need {
		g.Go(func() error {
			_, err := a.Bucket.Copy(gctx, a.key(c.Of.Path), historyObject(c, a.History.Run, a.key(c.Of.Path), now))
			if IsFatal(err) || errors.Is(err, context.Canceled) {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrSourceMissing):
				missing = append(missing, c)
			case err != nil:
				failed[c.Of.Path] = err // left in doubt: the next run's settle looks
			default:
				made = append(made, c)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, c := range missing {
		if _, err := a.History.Record.SettleHistory(ctx, c, false); err != nil {
			return nil, err
		}
	}
	return failed, a.History.Record.RecordHistory(ctx, made)
}

// historyObject is the copy c: the object as the row describes it, with
// when and by which run it was replaced, and its key.
func historyObject(c manifest.HistoryCopy, run int64, key, replaced string) Object {
	e := c.Of
	return Object{Key: c.Key, Size: e.Stat.Size, Hash: e.Hash, MtimeNs: e.Stat.MtimeNs, Mode: e.Stat.Mode, Extra: map[string]string{
		MetaReplaced: replaced, MetaRun: strconv.FormatInt(run, 10), MetaKey: (&url.URL{Path: key}).EscapedPath(),
	}}
}

// keepPrev keeps the object p overwrites, if it would be lost, before p's
// write goes out (once: a write tried again after a key conflict has it
// kept). An error of the copy is p's, fatal ones the run's.
func (a *Applier) keepPrev(ctx context.Context, p *pending) error {
	switch {
	case a.History == nil || p.saved || !lost(p.Prev):
		return nil
	case p.Op != manifest.OpModify && p.Op != manifest.OpCopy && p.Op != manifest.OpRename:
		return nil // a touch leaves the content as it is
	}
	failed, err := a.keep(ctx, []manifest.Entry{*p.Prev})
	if err == nil {
		err = failed[p.Prev.Path]
	}
	if err != nil && !IsFatal(err) {
		return fmt.Errorf("keeping the version it replaces in the history: %w", err)
	}
	p.saved = err == nil
	return err
}

// keepGone keeps the objects a batch of deletes (and renames' old keys)
// removes, if they would be lost, and returns the batch without those
// whose copy failed, reported as failed.
func (a *Applier) keepGone(ctx context.Context, batch []pending) ([]pending, error) {
	if a.History == nil {
		return batch, nil
	}
	var rows []manifest.Entry
	for _, p := range batch {
		if row := goneRow(p); lost(row) {
			rows = append(rows, *row)
		}
	}
	if len(rows) == 0 {
		return batch, nil
	}
	failed, err := a.keep(ctx, rows)
	if err != nil {
		return nil, err
	}
	out := batch[:0:0]
	for _, p := range batch {
		if row := goneRow(p); row != nil && failed[row.Path] != nil {
			a.done(Result{Change: p.Change, Err: fmt.Errorf("keeping %s in the history: %w", manifest.EscapePath(row.Path), failed[row.Path])})
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// goneRow is the row whose object a delete, or a rename's delete of its
// old key, removes.
func goneRow(p pending) *manifest.Entry {
	if p.Op == manifest.OpRename {
		return p.Gone
	}
	return &p.Entry
}
