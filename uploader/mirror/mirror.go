// Package mirror makes a bucket prefix mirror a source folder: one sync run
// (scan → diff → apply, as a pipeline) and watch's loop of pushes.
//
// A run opens the manifest (or uses Options.DB), fails at once if the source
// folder is not there (a SourceError), proves the bucket is there
// with one HeadBucket (beside the walk when nothing has to be asked of S3
// before it; no write goes out before its answer), refuses a first run into a prefix that already holds
// objects (unless AllowExisting), settles the keys an interrupted run left in
// doubt, reconciles the manifest with a listing when asked or due, then runs
// the walk (scanner), the diff (manifest) and the apply (uploader) at once,
// and records the run in the manifest:
//
//	res := mirror.Run(ctx, mirror.Options{
//		Identity: manifest.Identity{Source: dir, Bucket: "b", Prefix: "laptop/"},
//		Manifest: path, S3: uploader.S3Config{Bucket: "b", Endpoint: url},
//		Report:   func(r uploader.Result) { ... }, // each change, applied or failed
//		Problem:  func(p manifest.Problem) { ... }, // each path the scan could not back up
//	})
//	switch res.ExitCode() { ... }
//
// Per-path problems and progress come through the callbacks of Options;
// what the run did comes back as a Result, whose Counts is the one type of
// a run's counts. Nothing here prints: what a run says about itself goes to
// Options.Log.
//
// Watch pushes the paths a file system watch marks dirty through the same
// Run, on a schedule, until its context ends; each push is announced with
// why it is a full sync, if it is (a typed Reason), and followed by its
// Result:
//
//	err := mirror.Watch(ctx, mirror.WatchOptions{Options: opts,
//		Persist: 10 * time.Minute, Push: time.Hour, Rescan: 24 * time.Hour,
//		Pushing: func(p mirror.Push) { ... }, // p.Full, p.Why(), p.Scopes
//		Pushed:  func(p mirror.Push, res mirror.Result) { ... },
//	})
//
// Event is the machine-readable form of a watch's life (watching, push,
// pushed, stopped), as `cloudkeeper watch --json` prints it and the bench
// reads it. Every runs a function on a schedule, never twice at once, as
// `sync --every` does.
package mirror

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/cost"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/prune"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
)

// Options are the settings and the callbacks of a run. The callbacks may be
// nil; each is called from one goroutine at a time.
type Options struct {
	// Identity is the backup: source folder, endpoint, bucket and
	// normalized key prefix. The manifest is opened for it.
	Identity manifest.Identity
	// Manifest is the manifest's path. DB, when set, is an open manifest
	// to use instead (watch keeps it open between pushes): the run neither
	// opens, closes nor abandons it.
	Manifest string
	DB       *manifest.DB
	// S3 is the client's configuration (bucket, endpoint, credentials,
	// retries).
	S3 uploader.S3Config
	// Concurrency is the number of changes applied at once, and of the
	// HEADs of settle and reconcile; 0: uploader.AutoConcurrency, the
	// applier's default. A dry run applies one at a time, in diff order.
	Concurrency int
	// Scopes, when not nil, restricts the run to these paths (watch's
	// dirty paths); nil: the whole source.
	Scopes []string
	// Filter leaves paths out of the backup (patterns, and folders that
	// hold a marker file); what it excludes stays in the bucket unless
	// DeleteExcluded, which deletes it (within MaxDelete).
	Filter         *scanner.Filter
	DeleteExcluded bool
	// DryRun applies to a bucket that does nothing and records nothing;
	// it still proves the bucket is there.
	DryRun bool
	// Rehash reads and hashes every file, trusting no stat.
	Rehash bool
	// FollowSymlinks backs up what symlinks point to.
	FollowSymlinks bool
	// Links keeps symlinks as links, never followed (scanner.OS.Links);
	// it excludes FollowSymlinks.
	Links bool
	// MaxDelete bounds the deletes of the run (see manifest.Diff).
	MaxDelete manifest.DeleteLimit
	// AllowExisting lets a first run (a new manifest) back up into a
	// prefix that already holds objects.
	AllowExisting bool
	// Reconcile lists the prefix and repairs the manifest before the
	// diff; ReconcileEvery does so when the last reconcile is older (0:
	// never), on full runs only.
	Reconcile      bool
	ReconcileEvery time.Duration
	// Keep is the history's retention: what prune removes. In a bucket
	// with versioning the history is recorded whatever it says; without,
	// a run keeps old versions (copies) only when Keep is on.
	Keep manifest.Keep
	// PruneEvery: a real full run whose last prune is older (or that
	// finds none) prunes at its end, by Keep (see package prune); 0
	// never.
	PruneEvery time.Duration

	// Log receives what the run says about itself (settled keys, the
	// reconcile's figures, a record that could not be written); nil:
	// nothing.
	Log *slog.Logger
	// Report is told of every change, applied or failed.
	Report func(uploader.Result)
	// Problem is told of each path the scan or the diff could not handle.
	Problem func(manifest.Problem)
	// Unsettled is told of each key left in doubt by an interrupted run
	// that S3 could not be asked about: its row may be wrong this run.
	Unsettled func(path string, err error)
	// Finding is told of each object a reconcile found out of line.
	Finding func(reconcile.Finding)
	// ReconcileFailed is told when a reconcile that was only due (not
	// Reconcile) failed: the run goes on without it and is incomplete.
	ReconcileFailed func(error)
	// Progress: Scanned each file the walk emits, Hashed the size of each
	// file hashed, Queued each change handed to the applier.
	Scanned func(scanner.Entry)
	Hashed  func(size int64)
	Queued  func(manifest.Change)
}

// Exit statuses of a run, as Result.ExitCode gives them.
const (
	ExitOK         = 0 // everything applied
	ExitFatal      = 1 // nothing or only part applied
	ExitIncomplete = 3 // completed, but some paths failed
)

// Result is what a run did and how it ended.
type Result struct {
	DryRun         bool
	Started, Ended time.Time
	// Counts is what the run applied, the files left unchanged and every
	// error: paths and changes that failed, keys that could not be
	// settled, a reconcile that failed.
	manifest.Counts
	// Hashed and HashedBytes are what the scan read.
	Hashed, HashedBytes int64
	// Excluded is how many folders the scan left out by a marker file.
	Excluded int64
	// Err is why the run failed (fatal), nil if it completed.
	Err   error
	RunID int64 // its record in the manifest; 0 for a dry run
	// Objects and ObjectBytes are what the manifest holds after a real
	// run, LastSuccess the end of the last run that exited 0, this one
	// included.
	Objects, ObjectBytes int64
	LastSuccess          time.Time
	// Requests are the S3 requests of the run, by operation, retries
	// included; a dry run's are those the real run would send, and
	// Approximated says what they leave out or guess.
	Requests     manifest.Requests
	Approximated []string
	// Replaced are the objects the run overwrote or deleted, by age, for
	// the charge of a minimum storage duration (see Estimate).
	Replaced cost.Replaced
	// Pruned is what the prune at the run's end freed (PruneEvery); nil
	// if none was due.
	Pruned *prune.Result
}

// Interrupted reports whether the run was stopped by the end of its
// context (a signal): its Err is ErrInterrupted.
func (r Result) Interrupted() bool { return errors.Is(r.Err, ErrInterrupted) }

// Outcome is how the run ended: success, incomplete, failure or
// interrupted.
func (r Result) Outcome() manifest.Outcome { return manifest.OutcomeOf(r.ExitCode(), r.Interrupted()) }

// ExitCode is the run's exit status: ExitOK, ExitIncomplete or ExitFatal.
func (r Result) ExitCode() int {
	switch {
	case r.Err != nil:
		return ExitFatal
	case r.Errors > 0:
		return ExitIncomplete
	default:
		return ExitOK
	}
}

// ErrInterrupted replaces the error of a run whose context ended.
var ErrInterrupted = errors.New("interrupted; what was confirmed is recorded, the next run finishes the job")

// interruption is err, or ErrInterrupted if err ended the run because ctx
// ended.
func interruption(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ErrInterrupted
	}
	return err
}

// Run is one run: scan → diff → apply, as a pipeline, so that uploads start
// while the walk goes on. A real run is recorded in the manifest.
func Run(ctx context.Context, o Options) (res Result) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	res = Result{DryRun: o.DryRun, Started: time.Now()}
	defer func() {
		res.Ended = time.Now()
		res.Err = interruption(ctx, res.Err)
	}()
	r := &run{o: o, res: &res}
	if o.DryRun {
		// Nothing to record: say what is wrong, not that the manifest is
		// not there.
		if res.Err = CheckSource(o.Identity.Source); res.Err != nil {
			return res
		}
	}
	if res.Err = r.open(); res.Err != nil {
		return res
	}
	defer r.close()
	r.execute(ctx)
	return res
}

// run is the state of one Run.
type run struct {
	o   Options
	res *Result
	db  *manifest.DB
	s3  *uploader.S3
	// recording: the run has a record in the manifest, which its end
	// completes.
	recording bool
	writer    *manifest.Writer // a real run's journal, closed at its end
	// predicted are the requests a dry run predicts for the steps it
	// skips (see predictSkipped).
	predicted manifest.Requests
	// checkLater: the bucket check goes out beside the walk, and every
	// write waits for its answer (see checkedBucket).
	checkLater bool
}

// open opens the manifest the run uses.
func (r *run) open() error {
	var err error
	switch o := r.o; {
	case o.DB != nil:
		r.db = o.DB
	case o.DryRun && o.Reconcile:
		// The reconcile edits the manifest: a dry run edits a private
		// copy, and the diff shows what the real run would do.
		r.db, err = manifest.OpenCopy(o.Manifest, o.Identity)
	case o.DryRun:
		// A dry run reads the manifest through a connection SQLite keeps
		// read-only.
		r.db, err = manifest.OpenReadOnly(o.Manifest, o.Identity)
	default:
		r.db, err = manifest.Open(o.Manifest, o.Identity)
	}
	return err
}

func (r *run) close() {
	if r.o.DB == nil && r.db != nil {
		r.db.Close()
	}
}

// abandon removes a new manifest again if the run fails before it wrote
// anything (a refused first run, a bucket that does not answer, a setting
// missing): such a run leaves nothing behind, and the next one is a first
// run again, with its checks.
func (r *run) abandon() {
	if !r.fresh() {
		return
	}
	if err := r.db.Abandon(); err != nil {
		r.o.Log.Warn("could not remove the new manifest", "error", err.Error())
	}
	r.db = nil
}

// fresh reports whether the run created its manifest: the checks of a
// first run come before anything is written to it.
func (r *run) fresh() bool { return r.o.DB == nil && !r.o.DryRun && r.db.Created() }

// execute is the run once its manifest is open; it sets r.res.
func (r *run) execute(ctx context.Context) {
	o, res := r.o, r.res
	defer func() {
		if r.writer != nil {
			r.writer.Close()
		}
		r.countRequests()
		// Recorded as the terminal shows it: interrupted, not "context
		// canceled".
		res.Err = interruption(ctx, res.Err)
		if r.recording {
			r.record()
		}
	}()
	if res.Err = r.checkSource(ctx); res.Err != nil {
		return
	}
	first, err := r.db.Empty(ctx)
	if err == nil {
		r.s3, err = uploader.NewS3(ctx, o.S3)
	}
	if err != nil {
		res.Err = err
		r.abandon()
		return
	}
	checked := false
	if r.fresh() {
		// A new manifest that the checks refuse is removed again: a
		// refused run leaves nothing behind.
		if res.Err = r.check(ctx); res.Err != nil {
			r.abandon()
			return
		}
		checked = true
	}
	bucket, journal, unsettled, ok := r.prepare(ctx, checked)
	if !ok {
		return
	}
	due, reconcileFailed, err := r.reconcile(ctx)
	if err != nil {
		res.Err = err
		return
	}
	var st manifest.Stats
	res.Counts, st, res.Err = r.pipeline(ctx, bucket, journal)
	res.Unchanged, res.Hashed, res.HashedBytes, res.Excluded = st.Unchanged, st.Hashed, st.HashedBytes, st.Excluded
	res.Errors += st.Errors + int64(unsettled)
	if !o.DryRun {
		left, err := r.abortLeftUploads(context.WithoutCancel(ctx))
		res.Errors += int64(left)
		if res.Err == nil {
			res.Err = err
		}
	}
	if reconcileFailed {
		res.Errors++ // the run completed, but not all of it
	}
	if res.Err == nil && st.Refused != nil {
		res.Err = st.Refused // everything else was applied
	}
	r.pruneIfDue(ctx)
	if first && !due && res.Err == nil && !o.DryRun && o.Scopes == nil && !o.AllowExisting {
		// The bucket now holds what the manifest says, from the start
		// of this run on: as good as a reconcile.
		r.checkVersioning(context.WithoutCancel(ctx))
		if err := r.db.SetReconciled(context.WithoutCancel(ctx), manifest.Reconciled{At: res.Started}); err != nil {
			o.Log.Warn("could not record the first run as a reconcile", "error", err.Error())
		}
	}
}

// check proves, with one cheap request, that the bucket is there and the
// credentials work (a run with nothing to do must not say "ok" when the
// backup target is gone), and refuses a first run into a prefix that holds
// objects.
func (r *run) check(ctx context.Context) error {
	// A dry run looks too (a LIST changes nothing): it must stop where the
	// real run would, not show the whole tree as uploads.
	if err := r.s3.Check(ctx); err != nil || r.o.AllowExisting {
		return err
	}
	return checkNewManifest(ctx, r.db, r.s3, r.o, r.res.RunID)
}

// prepare checks the bucket (unless checked already) and, for a real run,
// starts its record, settles the keys in doubt and opens the journal. ok is
// false when the run must stop; r.res.Err says why.
func (r *run) prepare(ctx context.Context, checked bool) (bucket uploader.Bucket, journal manifest.Journal, unsettled int, ok bool) {
	res := r.res
	check := func() error {
		if checked {
			return nil
		}
		return r.check(ctx)
	}
	if r.o.DryRun {
		if res.Err = check(); res.Err != nil {
			return nil, nil, 0, false
		}
		if res.Err = r.predictSkipped(ctx); res.Err != nil {
			return nil, nil, 0, false
		}
		// A dry run applies to a bucket that does nothing and records
		// nothing.
		return r.s3.DryRun(), manifest.Discard{}, 0, true
	}
	if res.RunID, res.Err = r.db.StartRun(ctx, res.Started); res.Err != nil {
		return nil, nil, 0, false
	}
	r.recording = true
	if !checked {
		// With nothing to settle or reconcile, the check's round trip
		// can overlap the walk: the first write still waits for it.
		if r.checkLater, res.Err = r.nothingBeforeTheWalk(ctx); res.Err != nil {
			return nil, nil, 0, false
		}
	}
	if !r.checkLater {
		if res.Err = check(); res.Err != nil {
			return nil, nil, 0, false
		}
	}
	if unsettled, res.Err = r.settle(ctx); res.Err != nil {
		return nil, nil, 0, false
	}
	r.writer = r.db.RunWriter(res.RunID)
	return r.s3, r.writer, unsettled, true
}
