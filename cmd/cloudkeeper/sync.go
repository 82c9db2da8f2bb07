package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

func syncCommand() *cli.Command {
	flags := append(configFlags(), logFlags()...)
	flags = append(flags, afterRunFlags()...)
	return &cli.Command{
		Name:  "sync",
		Usage: "make the bucket prefix mirror the source folder (one run, or one every --every)",
		Description: "A run scans the source (hashing only files whose stat changed), diffs the scan with the\n" +
			"manifest, and applies the difference: uploads, server-side copies for renames and copies,\n" +
			"and batched deletes. Each change is recorded in the manifest only after S3 confirmed it,\n" +
			"so a run killed at any point loses nothing and the next run finishes the job.\n\n" +
			"Changes go to stdout, one line each, then a summary; problems go to stderr as log lines.\n" +
			"Each run is recorded in the manifest (see `cloudkeeper status`).\n\n" +
			"Exit status: 0 all applied; 3 completed, but some paths failed (listed on stderr);\n" +
			"1 fatal error (nothing or only part applied); 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(flags, runFlags()...),
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would change; touch neither the bucket nor the manifest"},
			&cli.BoolFlag{Name: "json", Usage: "print changes and the summary as JSON lines"},
			&cli.BoolFlag{Name: "rehash", Usage: "read and hash every file, trusting no stat"},
			&cli.BoolFlag{Name: "reconcile", Usage: "list the prefix first and repair what changed behind cloudkeeper's back: upload again what is missing or differs, adopt objects the manifest does not know, delete those the tree does not have (with --dry-run: say what it would repair)"},
			&cli.DurationFlag{Name: "every", EnvVars: []string{"CLOUDKEEPER_EVERY"}, Usage: "stay in the foreground and sync once every `INTERVAL` (e.g. 24h), never two at once, until SIGINT or SIGTERM"},
		),
		Action: func(c *cli.Context) error {
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			opts, after, err := loadSyncOptions(c, p)
			if err != nil {
				return p.fail(err)
			}
			opts.dryRun, opts.rehash, opts.reconcile = c.Bool("dry-run"), c.Bool("rehash"), c.Bool("reconcile")
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			every := c.Duration("every")
			if every <= 0 {
				res := runSync(ctx, opts, p)
				after.done(ctx, res)
				return p.exit(res)
			}
			return syncEvery(ctx, every, opts, p, after)
		},
	}
}

// runFlags are the settings of a run that sync and watch share.
func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "exclude", Usage: "leave out paths matching `GLOB` (repeatable): \"*.tmp\" matches names at any depth, \"build/out\" is anchored at the source; excluded objects already in the bucket are left alone"},
		&cli.BoolFlag{Name: "follow-symlinks", Aliases: []string{"L"}, Usage: "back up what symlinks point to, as if it were at the link's path (loops are detected and skipped); by default a symlink is reported and skipped"},
		&cli.StringFlag{Name: "max-delete", EnvVars: []string{"CLOUDKEEPER_MAX_DELETE"}, Value: "50%", Usage: "refuse a run that would delete more than `LIMIT` of the objects, a percentage (50%) or a count (1000): a missing or unmounted source must not empty the bucket; 0 allows no delete, 100% turns it off"},
		&cli.IntFlag{Name: "retries", EnvVars: []string{"CLOUDKEEPER_RETRIES"}, Value: 5, Usage: "attempts per S3 request before its key is reported as failed (exponential backoff with jitter between them)"},
		&cli.DurationFlag{Name: "retry-max-wait", EnvVars: []string{"CLOUDKEEPER_RETRY_MAX_WAIT"}, Value: 20 * time.Second, Usage: "longest `WAIT` between two attempts"},
		&cli.DurationFlag{Name: "reconcile-every", EnvVars: []string{"CLOUDKEEPER_RECONCILE_EVERY"}, Value: defaultReconcileEvery, Usage: "a full run whose last reconcile (see --reconcile) is older than `AGE` reconciles by itself; 0 never"},
		&cli.BoolFlag{Name: "allow-existing", Usage: "let a first run (a new manifest) back up into a prefix that already holds objects; without it such a run stops and suggests `cloudkeeper manifest rebuild`"},
	}
}

// loadSyncOptions reads the settings of configFlags, runFlags and
// afterRunFlags.
func loadSyncOptions(c *cli.Context, p *printer) (syncOptions, afterRun, error) {
	t, err := loadTarget(c)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	filter, err := scanner.NewFilter(c.StringSlice("exclude"))
	if err != nil {
		return syncOptions{}, afterRun{}, usageError{err}
	}
	after, err := loadAfterRun(c, p.log, t)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	limit, err := manifest.ParseDeleteLimit(c.String("max-delete"))
	if err != nil {
		return syncOptions{}, afterRun{}, usageError{err}
	}
	if c.Int("retries") < 1 {
		return syncOptions{}, afterRun{}, usageError{fmt.Errorf("--retries %d: want at least 1", c.Int("retries"))}
	}
	return syncOptions{target: t, filter: filter, follow: c.Bool("follow-symlinks"), allowExisting: c.Bool("allow-existing"),
		maxDelete: limit, retries: c.Int("retries"), retryWait: c.Duration("retry-max-wait"), reconcileEvery: c.Duration("reconcile-every")}, after, nil
}

// syncEvery syncs now and then once every interval, until ctx ends. A run
// that takes longer than the interval is followed by the next at once:
// never two at a time.
func syncEvery(ctx context.Context, every time.Duration, o syncOptions, p *printer, after afterRun) error {
	p.log.Info("syncing on a schedule", "every", every.String(), "source", o.Source)
	for {
		next := time.Now().Add(every)
		res := runSync(ctx, o, p)
		after.done(ctx, res)
		p.exit(res) // logs what failed; the schedule goes on
		if ctx.Err() != nil {
			p.log.Info("stopped by signal")
			return nil
		}
		p.log.Info("next run", "at", next.Format(time.RFC3339))
		select {
		case <-time.After(time.Until(next)):
		case <-ctx.Done():
			p.log.Info("stopped by signal")
			return nil
		}
	}
}

type syncOptions struct {
	target
	db        *manifest.DB // an open manifest to use (watch); nil: open it
	scopes    []string     // scan only these (watch's dirty paths); nil: all
	filter    *scanner.Filter
	dryRun    bool
	rehash    bool
	follow    bool // --follow-symlinks
	maxDelete manifest.DeleteLimit
	retries   int
	retryWait time.Duration
	// allowExisting lets a first run back up into a prefix that holds
	// objects already.
	allowExisting  bool
	reconcile      bool          // --reconcile: reconcile before the diff
	reconcileEvery time.Duration // reconcile when the last one is older; 0 never
}

// outcome is what a run did and how it ended.
type outcome struct {
	dryRun         bool
	started, ended time.Time
	sum            uploader.Summary
	st             manifest.Stats
	err            error     // fatal
	objects, bytes int64     // what the manifest holds after the run
	lastSuccess    time.Time // the last run that exited 0, this one included
	runID          int64
	firstErrors    []string // the first paths that failed, with why
}

// exitCode is the run's exit status: 0 all applied, 3 some paths failed, 1
// fatal, 2 usage.
func (o outcome) exitCode() int {
	var ue usageError
	switch {
	case errors.As(o.err, &ue):
		return exitUsage
	case o.err != nil:
		return exitFatal
	case o.errors() > 0:
		return exitIncomplete
	default:
		return exitOK
	}
}

func (o outcome) errors() int64 { return o.sum.Errors + o.st.Errors }

// runSync is one run: scan → diff → apply, as a pipeline, so that uploads
// start while the walk goes on. A real run is recorded in the manifest.
func runSync(ctx context.Context, o syncOptions, p *printer) (res outcome) {
	res = outcome{dryRun: o.dryRun, started: time.Now()}
	p.progress.start()
	defer func() {
		res.ended = time.Now()
		if res.err != nil && ctx.Err() != nil {
			res.err = fmt.Errorf("interrupted; what was confirmed is recorded, the next run finishes the job")
		}
	}()
	var db *manifest.DB
	switch {
	case o.db != nil: // watch keeps it open between pushes
		db = o.db
	case o.dryRun && o.reconcile:
		// The reconcile edits the manifest: a dry run edits a private
		// copy, and the diff shows what the real run would do.
		db, res.err = manifest.OpenCopy(o.Manifest, o.identity())
	case o.dryRun:
		// A dry run reads the manifest through a connection SQLite keeps
		// read-only.
		db, res.err = manifest.OpenReadOnly(o.Manifest, o.identity())
	default:
		db, res.err = manifest.Open(o.Manifest, o.identity())
	}
	if res.err != nil {
		return res
	}
	if o.db == nil {
		defer func() {
			if db != nil {
				db.Close()
			}
		}()
	}
	// A new manifest is removed again if the run fails before it wrote
	// anything (a refused first run, a bucket that does not answer, a
	// setting missing): such a run leaves nothing behind, and the next
	// one is a first run again, with its checks.
	abandon := func() {
		if o.db != nil || o.dryRun || !db.Created() {
			return
		}
		if err := db.Abandon(); err != nil {
			p.log.Warn("could not remove the new manifest", "error", err.Error())
		}
		db = nil
	}
	first, err := db.Empty(ctx)
	if err != nil {
		res.err = err
		abandon()
		return res
	}
	cfg := o.s3Config()
	cfg.MaxAttempts, cfg.MaxBackoff = o.retries, o.retryWait
	s3, err := uploader.NewS3(ctx, cfg)
	if err != nil {
		res.err = err
		abandon()
		return res
	}
	// Every run, a dry run too, proves with one cheap request that the
	// bucket is there and these credentials work: a run with nothing to
	// do must not say "ok" when the backup target is gone.
	check := func() error {
		if err := s3.Check(ctx); err != nil || o.dryRun || o.allowExisting {
			return err
		}
		return checkNewManifest(ctx, db, s3, o, res.runID)
	}
	if o.db == nil && !o.dryRun && db.Created() {
		// A new manifest that the checks refuse is removed again: a
		// refused run leaves nothing behind.
		if res.err = check(); res.err != nil {
			abandon()
			return res
		}
		check = func() error { return nil }
	}
	var (
		bucket    uploader.Bucket  = uploader.DryRun{}
		journal   manifest.Journal = manifest.Discard{}
		unsettled int              // keys left in doubt: the run is incomplete
	)
	if o.dryRun {
		// A dry run applies to a bucket that does nothing and records
		// nothing.
		if res.err = check(); res.err != nil {
			return res
		}
		if doubts, err := db.Doubts(ctx); err == nil && len(doubts) > 0 {
			p.log.Info("an interrupted run left keys in doubt: the next real run asks S3 about them first", "keys", len(doubts))
		}
	} else {
		if res.runID, res.err = db.StartRun(ctx, res.started); res.err != nil {
			return res
		}
		defer func() { res = p.record(db, res) }()
		if res.err = check(); res.err != nil {
			return res
		}
		if unsettled, res.err = settle(ctx, db, s3, o, p); res.err != nil {
			return res
		}
		w := db.Writer()
		defer w.Close()
		bucket, journal = s3, w
	}
	due, err := reconcileDue(ctx, o, db, res.started)
	reconcileFailed := false
	if err == nil && due {
		_, err = reconcileManifest(ctx, o, db, s3, p)
		if err != nil && !o.reconcile && !uploader.IsFatal(err) && ctx.Err() == nil {
			// A reconcile that was only due must not hold the backup
			// back: the manifest is as it was, the next run tries again.
			p.keepError(err.Error())
			p.log.Error("the reconcile failed; the run goes on without it and the next one tries again", "error", err.Error())
			reconcileFailed, err = true, nil
		}
	}
	if err != nil {
		res.err = err
		return res
	}
	res.sum, res.st, res.err = pipeline(ctx, o, db, bucket, journal, p)
	if reconcileFailed {
		res.st.Errors++ // exit 3: the run completed, but not all of it
	}
	res.st.Errors += int64(unsettled)
	if res.err == nil && res.st.Refused != nil {
		res.err = res.st.Refused // everything else was applied
	}
	if first && !due && res.err == nil && !o.dryRun && o.scopes == nil && !o.allowExisting {
		// The bucket now holds what the manifest says, from the start
		// of this run on: as good as a reconcile.
		if err := db.SetReconciled(context.WithoutCancel(ctx), manifest.Reconciled{At: res.started}); err != nil {
			p.log.Warn("could not record the first run as a reconcile", "error", err.Error())
		}
	}
	res.firstErrors = p.takeErrors()
	return res
}

// settle asks S3 about the keys an interrupted run left in doubt, before
// the diff trusts the manifest's rows for them, and returns how many could
// not be settled: their rows may be wrong this run, which is then
// incomplete (exit 3); the next run asks again.
func settle(ctx context.Context, db *manifest.DB, s3 *uploader.S3, o syncOptions, p *printer) (int, error) {
	n, err := uploader.Settle(ctx, db, s3, o.Prefix, o.Concurrency, func(path string, err error) {
		p.keepError(fmt.Sprintf("%s: in doubt since an interrupted run and S3 could not be asked: %v", display(path), err))
		p.log.Error("could not settle a key left in doubt; its row may be wrong this run, the next run asks again", "path", display(path), "error", err.Error())
	})
	if n.Found+n.Gone+n.Aborted+n.Failed > 0 {
		p.log.Info("keys were in doubt (an interrupted run, or an object found missing): settled them from what S3 holds",
			"objects_found", n.Found, "objects_gone", n.Gone, "multipart_uploads_aborted", n.Aborted, "unsettled", n.Failed)
	}
	return n.Failed, err
}

// checkNewManifest refuses a first run (an empty manifest that never ran)
// into a prefix that already holds objects: the manifest was most likely
// deleted, lost with a disk, or is another file than the one used before,
// and trusting it would upload the whole tree again. One request, on the
// first run only. runID is this run's record, if it has one yet.
func checkNewManifest(ctx context.Context, db *manifest.DB, s3 *uploader.S3, o syncOptions, runID int64) error {
	empty, err := db.Empty(ctx)
	if err != nil || !empty {
		return err
	}
	runs, err := db.Runs(ctx, 2)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.ID != runID {
			return nil // it ran before: not new
		}
	}
	has, err := s3.HasObjects(ctx, o.Prefix)
	if err != nil || !has {
		return err
	}
	return fmt.Errorf("the manifest %s is new, but s3://%s/%s already holds objects: if they are this backup's "+
		"(the manifest was deleted or lost), run `cloudkeeper manifest rebuild` first so that nothing is uploaded again; "+
		"to back up over them anyway, pass --allow-existing", o.Manifest, o.Bucket, o.Prefix)
}

// pipeline runs the walk, the diff and the apply at once.
func pipeline(ctx context.Context, o syncOptions, db *manifest.DB, bucket uploader.Bucket, journal manifest.Journal, p *printer) (uploader.Summary, manifest.Stats, error) {
	concurrency := o.Concurrency
	if o.dryRun {
		concurrency = 1 // nothing to wait for; keeps the preview in diff order
	}

	// The manifest may live inside the source (a source of $HOME holds
	// ~/.local/state): never back up its own files.
	skip := map[string]bool{}
	for _, f := range manifest.Files(o.Manifest) {
		skip[f] = true
	}

	fsys := scanner.OS{FollowSymlinks: o.follow}
	g, gctx := errgroup.WithContext(ctx)
	entries := make(chan scanner.Entry, 1024)
	changes := make(chan manifest.Change, 256)
	g.Go(func() error {
		defer close(entries)
		emit := func(e scanner.Entry) error {
			p.progress.scanned(e)
			select {
			case entries <- e:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		opts := scanner.WalkOptions{Filter: o.filter, Skip: skip}
		if o.scopes != nil {
			return scanner.ScanScopes(gctx, fsys, o.Source, o.scopes, opts, emit)
		}
		return scanner.Walk(gctx, fsys, o.Source, opts, emit)
	})
	diff := &manifest.Diff{
		DB: db, FS: fsys, Root: o.Source, Prefix: o.Prefix,
		Filter: o.filter, Rehash: o.rehash, MaxDelete: o.maxDelete, Scopes: o.scopes, Problems: p.diffProblem, Hashed: p.progress.hashed,
	}
	var st manifest.Stats
	g.Go(func() error {
		defer close(changes)
		var err error
		st, err = diff.Run(gctx, entries, changes)
		return err
	})
	applier := &uploader.Applier{
		Bucket: bucket, Journal: journal, Root: o.Source, Prefix: o.Prefix,
		Concurrency: concurrency, FS: fsys, Report: p.result, Queued: p.progress.queuedChange,
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
