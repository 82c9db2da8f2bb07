package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
)

// defaultReconcileEvery is how old the last reconcile may be before a run
// reconciles by itself.
const defaultReconcileEvery = 7 * 24 * time.Hour

// reconcileDue reports whether this run reconciles the manifest with the
// bucket before its diff: when asked (--reconcile), or when the last
// reconcile is older than --reconcile-every. Only full runs do (a watch's
// push of dirty paths would not upload what a reconcile forgets outside
// them), and a dry run only when asked: without, it sends no request. A
// manifest that is empty has nothing to reconcile: its first run counts as
// one.
func reconcileDue(ctx context.Context, o syncOptions, db *manifest.DB, now time.Time) (bool, error) {
	switch {
	case o.scopes != nil:
		return false, nil
	case o.reconcile:
		return true, nil
	case o.dryRun || o.reconcileEvery <= 0:
		return false, nil
	}
	last, ok, err := db.LastReconciled(ctx)
	if err != nil || ok {
		return ok && now.Sub(last.At) >= o.reconcileEvery, err
	}
	empty, err := db.Empty(ctx)
	return !empty, err
}

// reconcileManifest runs the reconcile and logs what it found, each object
// on a line of its own.
func reconcileManifest(ctx context.Context, o syncOptions, db *manifest.DB, s3 *uploader.S3, p *printer) (reconcile.Result, error) {
	res, err := reconcile.Run(ctx, reconcile.Options{
		DB: db, Bucket: s3, Prefix: o.Prefix, Root: o.Source, FollowSymlinks: o.follow, Filter: o.filter,
		Concurrency: o.Concurrency, Report: func(f reconcile.Finding) { logFinding(p, f) },
	})
	if err != nil {
		return res, fmt.Errorf("reconcile with s3://%s/%s: %w", o.Bucket, o.Prefix, err)
	}
	msg := "reconciled the manifest with the bucket"
	if o.dryRun {
		msg += " (dry run: on a copy of the manifest)"
	}
	p.log.Info(msg, "listed", res.Listed, "missing", res.Missing, "differ", res.Differ, "adopted", res.Adopted, "extra", res.Extra,
		"head_requests", res.Heads, "new_etags", res.Retagged+res.ETagsRecorded, "bad_keys", res.BadKeys, "unreadable", res.Unreadable)
	return res, nil
}

// logFinding logs one object a reconcile or verify --repair found out of
// line: a warning, but for an adopted object, which is no loss.
func logFinding(p *printer, f reconcile.Finding) {
	attrs := []any{"key", showKey(f.Key)}
	if f.Path != "" {
		attrs = []any{"path", display(f.Path)}
	}
	if f.Kind == reconcile.Adopted {
		p.log.Info(f.Detail, attrs...)
		return
	}
	p.log.Warn(f.Detail, attrs...)
}

// findings are the counts of what a reconcile, or verify --repair, found
// for the next run to repair, as status --json and verify --json show them.
type findings struct {
	Missing int64 `json:"missing"` // uploaded again
	Differ  int64 `json:"differ"`  // uploaded again
	Adopted int64 `json:"adopted"` // kept, or uploaded again if the file differs
	Extra   int64 `json:"extra"`   // deleted
}

func findingsOf(r manifest.Reconciled) findings {
	return findings{Missing: r.Missing, Differ: r.Differ, Adopted: r.Adopted, Extra: r.Extra}
}

// String is "1 missing, 2 differing", or "nothing to repair".
func (f findings) String() string {
	var found []string
	for _, c := range []struct {
		n    int64
		what string
	}{{f.Missing, "missing"}, {f.Differ, "differing"}, {f.Adopted, "adopted"}, {f.Extra, "extra"}} {
		if c.n > 0 {
			found = append(found, thousands(c.n)+" "+c.what)
		}
	}
	if len(found) == 0 {
		return "nothing to repair"
	}
	return strings.Join(found, ", ")
}
