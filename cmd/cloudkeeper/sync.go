package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "make the bucket prefix mirror the source folder (one run; schedule it with cron)",
		Description: "A run scans the source (hashing only files whose stat changed), diffs the scan with the\n" +
			"manifest, and applies the difference: uploads, server-side copies for renames and copies,\n" +
			"and batched deletes. Each change is recorded in the manifest only after S3 confirmed it,\n" +
			"so a run killed at any point loses nothing and the next run finishes the job.\n\n" +
			"Exit status: 0 all applied; 3 completed, but some paths failed (listed on stderr);\n" +
			"1 fatal error (nothing or only part applied); 2 usage error.",
		Before: applyEnvFile,
		Flags: append(configFlags(),
			&cli.StringSliceFlag{Name: "exclude", Usage: "leave out paths matching `GLOB` (repeatable): \"*.tmp\" matches names at any depth, \"build/out\" is anchored at the source; excluded objects already in the bucket are left alone"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would change; touch neither the bucket nor the manifest"},
			&cli.BoolFlag{Name: "json", Usage: "print changes and the summary as JSON lines"},
			&cli.BoolFlag{Name: "rehash", Usage: "read and hash every file, trusting no stat"},
		),
		Action: func(c *cli.Context) error {
			t, err := loadTarget(c)
			if err != nil {
				return err
			}
			filter, err := scanner.NewFilter(c.StringSlice("exclude"))
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			p := &printer{out: c.App.Writer, errOut: c.App.ErrWriter, json: c.Bool("json")}
			opts := syncOptions{target: t, filter: filter, dryRun: c.Bool("dry-run"), rehash: c.Bool("rehash")}
			sum, st, err := runSync(ctx, opts, p)
			p.summary(sum, st)
			if err != nil {
				return err
			}
			if opts.dryRun {
				fmt.Fprintln(c.App.ErrWriter, "dry run: nothing was changed")
			}
			if n := sum.Errors + st.Errors; n > 0 {
				return incompleteError{n}
			}
			return nil
		},
	}
}

type syncOptions struct {
	target
	filter *scanner.Filter
	dryRun bool
	rehash bool
}

// runSync is one run: scan → diff → apply, as a pipeline, so that uploads
// start while the walk goes on.
func runSync(ctx context.Context, o syncOptions, p *printer) (uploader.Summary, manifest.Stats, error) {
	var (
		db      *manifest.DB
		bucket  uploader.Bucket
		journal manifest.Journal
		err     error
	)
	if o.dryRun {
		// A dry run reads the manifest through a connection SQLite keeps
		// read-only, and applies to a bucket that does nothing.
		db, err = manifest.OpenReadOnly(o.Manifest, o.identity())
		bucket, journal = uploader.DryRun{}, manifest.Discard{}
	} else {
		db, err = manifest.Open(o.Manifest, o.identity())
	}
	if err != nil {
		return uploader.Summary{}, manifest.Stats{}, err
	}
	defer db.Close()
	if !o.dryRun {
		s3, err := uploader.NewS3(ctx, o.s3Config())
		if err != nil {
			return uploader.Summary{}, manifest.Stats{}, err
		}
		w := db.Writer()
		defer w.Close()
		bucket, journal = s3, w
	}
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
		Filter: o.filter, Rehash: o.rehash, Problems: p.diffProblem,
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
		Concurrency: concurrency, Report: p.result,
	}
	var sum uploader.Summary
	g.Go(func() error {
		var err error
		sum, err = applier.Run(gctx, changes)
		return err
	})
	err = g.Wait()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted; what was confirmed is recorded, the next run finishes the job")
	}
	return sum, st, err
}
