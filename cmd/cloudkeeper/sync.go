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
		Flags: append(flags,
			&cli.StringSliceFlag{Name: "exclude", Usage: "leave out paths matching `GLOB` (repeatable): \"*.tmp\" matches names at any depth, \"build/out\" is anchored at the source; excluded objects already in the bucket are left alone"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would change; touch neither the bucket nor the manifest"},
			&cli.BoolFlag{Name: "json", Usage: "print changes and the summary as JSON lines"},
			&cli.BoolFlag{Name: "rehash", Usage: "read and hash every file, trusting no stat"},
			&cli.DurationFlag{Name: "every", EnvVars: []string{"CLOUDKEEPER_EVERY"}, Usage: "stay in the foreground and sync once every `INTERVAL` (e.g. 24h), never two at once, until SIGINT or SIGTERM"},
		),
		Action: func(c *cli.Context) error {
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			t, err := loadTarget(c)
			if err != nil {
				return p.fail(err)
			}
			filter, err := scanner.NewFilter(c.StringSlice("exclude"))
			if err != nil {
				return p.fail(usageError{err})
			}
			after, err := loadAfterRun(c, p.log, t)
			if err != nil {
				return p.fail(err)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			opts := syncOptions{target: t, filter: filter, dryRun: c.Bool("dry-run"), rehash: c.Bool("rehash")}
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
	filter *scanner.Filter
	dryRun bool
	rehash bool
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
	var (
		db      *manifest.DB
		bucket  uploader.Bucket
		journal manifest.Journal
	)
	if o.dryRun {
		// A dry run reads the manifest through a connection SQLite keeps
		// read-only, and applies to a bucket that does nothing.
		db, res.err = manifest.OpenReadOnly(o.Manifest, o.identity())
		bucket, journal = uploader.DryRun{}, manifest.Discard{}
	} else {
		db, res.err = manifest.Open(o.Manifest, o.identity())
	}
	if res.err != nil {
		return res
	}
	defer db.Close()
	if !o.dryRun {
		if res.runID, res.err = db.StartRun(ctx, res.started); res.err != nil {
			return res
		}
		defer func() { res = p.record(db, res) }()
		s3, err := uploader.NewS3(ctx, o.s3Config())
		if err != nil {
			res.err = err
			return res
		}
		w := db.Writer()
		defer w.Close()
		bucket, journal = s3, w
	}
	res.sum, res.st, res.err = pipeline(ctx, o, db, bucket, journal, p)
	res.firstErrors = p.takeErrors()
	return res
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
	for _, suffix := range []string{"", "-wal", "-shm", "-journal", ".lock"} {
		skip[o.Manifest+suffix] = true
	}

	g, gctx := errgroup.WithContext(ctx)
	entries := make(chan scanner.Entry, 1024)
	changes := make(chan manifest.Change, 256)
	g.Go(func() error {
		defer close(entries)
		return scanner.Walk(gctx, scanner.OS{}, o.Source, scanner.WalkOptions{Filter: o.filter, Skip: skip}, func(e scanner.Entry) error {
			p.progress.scanned(e)
			select {
			case entries <- e:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	diff := &manifest.Diff{
		DB: db, FS: scanner.OS{}, Root: o.Source, Prefix: o.Prefix,
		Filter: o.filter, Rehash: o.rehash, Problems: p.diffProblem, Hashed: p.progress.hashed,
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
		Concurrency: concurrency, Report: p.result, Queued: p.progress.queuedChange,
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
