package mirror

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
)

// settle asks S3 about the keys an interrupted run left in doubt, before
// the diff trusts the manifest's rows for them, and returns how many could
// not be settled: their rows may be wrong this run, which is then
// incomplete (exit 3); the next run asks again.
func (r *run) settle(ctx context.Context) (int, error) {
	if err := r.abortStaleUploads(ctx); err != nil {
		return 0, err
	}
	n, err := uploader.Settle(ctx, r.db, r.s3, r.o.Identity.Prefix, r.o.concurrency(), func(path string, err error) {
		if r.o.Unsettled != nil {
			r.o.Unsettled(path, err)
		}
	})
	if n.Found+n.Gone+n.Aborted+n.Kept+n.Failed > 0 {
		r.o.Log.Info("keys were in doubt (an interrupted run, or an object found missing): settled them from what S3 holds",
			"objects_found", n.Found, "objects_gone", n.Gone, "multipart_uploads_aborted", n.Aborted,
			"multipart_uploads_kept", n.Kept, "unsettled", n.Failed)
	}
	if n.History+n.HistoryDeleted > 0 {
		r.o.Log.Info("history copies of an interrupted run were in doubt: recorded those that keep a version, deleted the others",
			"history_copies_recorded", n.History, "history_copies_deleted", n.HistoryDeleted)
	}
	if n.Rechecked > 0 {
		r.o.Log.Info(fmt.Sprintf("re-checking %s of a run interrupted at %s (a request sent just before the interruption may still land)",
			keys(n.Rechecked), watchWindow(n.RecheckedSince, ", until ")))
	}
	return n.Failed, err
}

// abortStaleUploads aborts, before this run writes anything, the
// multipart uploads an interrupted run left that cannot be continued: the
// file at the key's path is gone or another, or would not be sent in the
// same parts. (Those that can wait for the diff, which checks the content
// too; the rest are aborted at the run's end.) One that cannot be aborted
// now stays recorded for abortLeftUploads.
func (r *run) abortStaleUploads(ctx context.Context) error {
	recorded, err := r.db.PartialUploads(ctx)
	if err != nil {
		return err
	}
	fsys := scanner.OS{FollowSymlinks: r.o.FollowSymlinks, Links: r.o.Links}
	aborted := 0
	for _, u := range recorded {
		var st scanner.Stat
		ok := false
		if path, err := manifest.PathOfKey(r.o.Identity.Prefix, u.Key, 1); err == nil {
			e, err := fsys.Lstat(filepath.Join(r.o.Identity.Source, filepath.FromSlash(path)))
			st, ok = e.Stat, err == nil && e.Type == scanner.TypeFile
		}
		done, err := r.s3.AbortStaleUpload(ctx, r.db, u, st, ok)
		if err != nil {
			if uploader.IsFatal(err) || ctx.Err() != nil {
				return err
			}
			r.o.Log.Warn("could not abort a multipart upload an interrupted run left; the run's end tries again", "key", u.Key, "error", err.Error())
			continue
		}
		if done {
			aborted++
		}
	}
	if aborted > 0 {
		r.o.Log.Info("aborted multipart uploads an interrupted run left, for files changed since", "multipart_uploads_aborted", aborted)
	}
	return nil
}

// abortLeftUploads aborts the multipart uploads an interrupted run left
// that this run did not continue, and returns how many it could not: they
// stay recorded, and the next run tries again (exit 3).
func (r *run) abortLeftUploads(ctx context.Context) (int, error) {
	failed := 0
	n, err := uploader.AbortLeftUploads(ctx, r.db, r.s3, func(key string, err error) {
		failed++
		r.o.Log.Error("could not abort a multipart upload an interrupted run left; the next run tries again", "key", key, "error", err.Error())
	})
	if n > 0 {
		r.o.Log.Info("aborted multipart uploads an interrupted run left that this run did not continue", "multipart_uploads_aborted", n)
	}
	return failed, err
}

// keys is "1 key" or "n keys".
func keys(n int) string {
	if n == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", n)
}

// watchWindow is "09:35:41<sep>09:50:41": the last intent of an
// interrupted run and the end of the watch of its keys
// (uploader.SettleWatch), in local time.
func watchWindow(since time.Time, sep string) string {
	const clock = "15:04:05"
	return since.Local().Format(clock) + sep + since.Add(uploader.SettleWatch).Local().Format(clock)
}

// concurrency is Options.Concurrency or its default.
func (o Options) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return uploader.AutoConcurrency
}

// reconcile reconciles the manifest with the bucket when the run must (see
// due). failed is set when a reconcile that was only due failed: it must
// not hold the backup back, the manifest is as it was and the next run
// tries again.
func (r *run) reconcile(ctx context.Context) (due, failed bool, err error) {
	due, err = r.due(ctx)
	if err != nil || !due {
		return due, false, err
	}
	err = r.reconcileManifest(ctx)
	if err != nil && !r.o.Reconcile && !uploader.IsFatal(err) && ctx.Err() == nil {
		if r.o.ReconcileFailed != nil {
			r.o.ReconcileFailed(err)
		}
		return true, true, nil
	}
	return true, false, err
}

// due reports whether this run reconciles the manifest with the bucket
// before its diff: when asked (Reconcile), or when the last reconcile is
// older than ReconcileEvery. Only full runs do (a watch's push of dirty
// paths would not upload what a reconcile forgets outside them), and a dry
// run only when asked: without, it sends no request. A manifest that is
// empty has nothing to reconcile: its first run counts as one.
func (r *run) due(ctx context.Context) (bool, error) {
	if r.o.DryRun && !r.o.Reconcile {
		return false, nil
	}
	return r.dueForRealRun(ctx)
}

// dueForRealRun is due for the same run, not dry.
func (r *run) dueForRealRun(ctx context.Context) (bool, error) {
	switch o := r.o; {
	case o.Scopes != nil:
		return false, nil
	case o.Reconcile:
		return true, nil
	case o.ReconcileEvery <= 0:
		return false, nil
	}
	last, ok, err := r.db.LastReconciled(ctx)
	if err != nil || ok {
		return ok && r.res.Started.Sub(last.At) >= r.o.ReconcileEvery, err
	}
	empty, err := r.db.Empty(ctx)
	return !empty, err
}

// reconcileManifest runs the reconcile and logs what it found.
func (r *run) reconcileManifest(ctx context.Context) error {
	o := r.o
	res, err := reconcile.Run(ctx, reconcile.Options{
		DB: r.db, Bucket: r.s3, Prefix: o.Identity.Prefix, Root: o.Identity.Source, FollowSymlinks: o.FollowSymlinks, Links: o.Links, Filter: o.Filter,
		Concurrency: o.concurrency(), Report: func(f reconcile.Finding) {
			if o.Finding != nil {
				o.Finding(f)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("reconcile with s3://%s/%s: %w", o.Identity.Bucket, o.Identity.Prefix, err)
	}
	msg := "reconciled the manifest with the bucket"
	if o.DryRun {
		msg += " (dry run: on a copy of the manifest)"
	}
	o.Log.Info(msg, "listed", res.Listed, "missing", res.Missing, "differ", res.Differ, "adopted", res.Adopted, "extra", res.Extra,
		"head_requests", res.Heads, "new_etags", res.Retagged+res.ETagsRecorded, "bad_keys", res.BadKeys, "unreadable", res.Unreadable)
	r.logVersioning(res.Versioned)
	return nil
}

// logVersioning says what a check of the bucket's versioning found that
// matters: versioning suspended (S3 keeps no history of the writes from
// then on), and the objects whose version ids it recorded.
func (r *run) logVersioning(v reconcile.Versioned) {
	o := r.o
	if v.Status == manifest.VersioningSuspended {
		o.Log.Warn(fmt.Sprintf("versioning of bucket %s is suspended: S3 keeps no old version of what is written from now on, so the history of those writes is lost; "+
			"turn versioning on again (aws s3api put-bucket-versioning --bucket %s --versioning-configuration Status=Enabled), or keep copies with --keep",
			o.Identity.Bucket, o.Identity.Bucket), "versioning_was", v.Before)
	}
	if v.Filled > 0 {
		o.Log.Info("recorded the version ids of objects written before the manifest recorded them: their next write keeps them in the history",
			"objects", v.Filled, "versions_listed", v.Listed)
	}
}

// checkVersioning asks the bucket's versioning on a first run, which
// counts as a reconcile, and records it; a failure is only told: the
// next reconcile asks again.
func (r *run) checkVersioning(ctx context.Context) {
	v, err := reconcile.CheckVersioning(ctx, r.db, r.s3, r.o.Identity.Prefix, r.res.Started)
	if err != nil {
		r.o.Log.Warn("could not check the bucket's versioning; the next reconcile asks again", "error", err.Error())
		return
	}
	r.logVersioning(v)
}

// checkNewManifest refuses a first run (an empty manifest that never ran)
// into a prefix that already holds objects: the manifest was most likely
// deleted, lost with a disk, or is another file than the one used before,
// and trusting it would upload the whole tree again. One request, on the
// first run only. runID is this run's record, if it has one yet.
func checkNewManifest(ctx context.Context, db *manifest.DB, s3 *uploader.S3, o Options, runID int64) error {
	isNew, err := newManifest(ctx, db, runID)
	if err != nil || !isNew {
		return err
	}
	has, err := s3.HasObjects(ctx, o.Identity.Prefix)
	if err != nil || !has {
		return err
	}
	return fmt.Errorf("the manifest %s is new, but s3://%s/%s already holds objects: if they are this backup's "+
		"(the manifest was deleted or lost), run `cloudkeeper manifest rebuild --manifest %s` (with this run's settings) first so that nothing is uploaded again; "+
		"to back up over them anyway, pass --allow-existing", o.Manifest, o.Identity.Bucket, o.Identity.Prefix, o.Manifest)
}

// newManifest reports whether db is empty and never ran (runID is this
// run's record, if it has one yet).
func newManifest(ctx context.Context, db *manifest.DB, runID int64) (bool, error) {
	empty, err := db.Empty(ctx)
	if err != nil || !empty {
		return false, err
	}
	runs, err := db.Runs(ctx, 2)
	if err != nil {
		return false, err
	}
	for _, r := range runs {
		if r.ID != runID {
			return false, nil // it ran before: not new
		}
	}
	return true, nil
}

// pipeline runs the walk, the diff and the apply at once.
func (r *run) pipeline(ctx context.Context, bucket uploader.Bucket, journal manifest.Journal) (manifest.Counts, manifest.Stats, error) {
	o := r.o
	concurrency := o.concurrency()
	if o.DryRun {
		concurrency = 1 // nothing to wait for; keeps the preview in diff order
	}
	// The manifest may live inside the source (a source of $HOME holds
	// ~/.local/state): never back up its own files.
	skip := map[string]bool{}
	for _, f := range manifest.Files(o.Manifest) {
		skip[f] = true
	}
	fsys := scanner.OS{FollowSymlinks: o.FollowSymlinks, Links: o.Links}
	g, gctx := errgroup.WithContext(ctx)
	bucket, journal = r.checkBeside(gctx, g, bucket, journal)
	entries := make(chan scanner.Entry, 1024)
	changes := make(chan manifest.Change, 256)
	g.Go(func() error {
		defer close(entries)
		emit := func(e scanner.Entry) error {
			if o.Scanned != nil {
				o.Scanned(e)
			}
			select {
			case entries <- e:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		opts := scanner.WalkOptions{Filter: o.Filter, Skip: skip}
		if o.Scopes != nil {
			return scanner.ScanScopes(gctx, fsys, o.Identity.Source, o.Scopes, opts, emit)
		}
		return scanner.Walk(gctx, fsys, o.Identity.Source, opts, emit)
	})
	diff := &manifest.Diff{
		DB: r.db, FS: fsys, Root: o.Identity.Source, Prefix: o.Identity.Prefix, Filter: o.Filter, DeleteExcluded: o.DeleteExcluded, Rehash: o.Rehash,
		MaxDelete: o.MaxDelete, Scopes: o.Scopes, Problems: o.Problem, Hashed: o.Hashed,
	}
	var st manifest.Stats
	g.Go(func() error {
		defer close(changes)
		var err error
		st, err = diff.Run(gctx, entries, changes)
		return err
	})
	applier := &uploader.Applier{
		Bucket: bucket, Journal: journal, Root: o.Identity.Source, Prefix: o.Identity.Prefix,
		Concurrency: concurrency, FS: fsys, Report: r.report, Queued: o.Queued,
		// A dry run's bucket only reads the uploads recorded, to count
		// what continuing one sends (and its manifest is read-only).
		Resumes: r.db,
	}
	if o.Keep.On() {
		applier.History = &uploader.History{Record: r.db, Run: r.res.RunID, Started: r.res.Started}
		if o.DryRun {
			applier.History.Record = uploader.DryHistory{DB: r.db}
		}
	}
	var sum uploader.Summary
	g.Go(func() error {
		var err error
		sum, err = applier.Run(gctx, changes)
		return err
	})
	err := g.Wait()
	return sum, st, err
}

// record writes how a real run ended into the manifest, and reads back
// what the result reports about the manifest.
func (r *run) record() {
	ctx := context.Background() // record even an interrupted run
	res := r.res
	run := manifest.Run{ID: res.RunID, Started: res.Started, Ended: time.Now(), ExitCode: res.ExitCode(), Counts: res.Counts,
		Interrupted: res.Interrupted(), Requests: res.Requests}
	if res.Err != nil {
		run.Message = res.Err.Error()
	}
	if err := r.db.EndRun(ctx, run); err != nil {
		r.o.Log.Warn("could not record the run in the manifest", "error", err.Error())
	}
	res.Objects, res.ObjectBytes, _ = r.db.Count(ctx)
	if last, ok, err := r.db.LastSuccess(ctx); err == nil && ok {
		res.LastSuccess = last.Ended
	}
}
