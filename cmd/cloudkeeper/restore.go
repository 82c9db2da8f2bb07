package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/restore"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "download the backup into a folder, checking every file against its BLAKE3",
		Description: "Downloads the objects under the prefix (with --path, those of one file or folder) into\n" +
			"--to DIR, --concurrency at once. Each file is written to a temporary file next to its place,\n" +
			"hashed with BLAKE3 as it arrives and compared with the object's x-amz-meta-blake3, then given\n" +
			"its mtime and mode and renamed into place: a file with wrong bytes is never left behind,\n" +
			"and an object without a valid x-amz-meta-blake3 is not restored.\n" +
			"It needs neither the manifest nor the source folder: the bucket describes itself.\n\n" +
			"Keys are untrusted: one that does not map back to a path inside DIR (a '..' or empty\n" +
			"component, an absolute path, a NUL byte, a key outside the prefix or one that does not\n" +
			"unescape) is refused, and nothing is written through a symlink. An object sync --links\n" +
			"wrote is made a symlink again, its target as it was. An existing file is not\n" +
			"replaced unless --overwrite; one that already has the object's content is left as it is,\n" +
			"so a restore can be run again to finish. Zero-byte keys ending in '/' (folder markers made\n" +
			"by S3 consoles) are ignored.\n\n" +
			"With --at TIME or --run N it restores from the history instead (a bucket with versioning,\n" +
			"or history copies): the tree as the last run that ended at or before TIME (or run N) left\n" +
			"it, as the manifest records it, one GET per file by its version, no listing. TIME is RFC 3339\n" +
			"(2026-11-20T14:00:00Z) or local time: 2026-11-20 (its midnight), \"2026-11-20 14:00\".\n" +
			"cloudkeeper runs lists the runs, cloudkeeper history PATH the versions of a file.\n\n" +
			"An object in an archive storage class (GLACIER, DEEP_ARCHIVE) is read only once S3 restored a\n" +
			"copy of it: it is logged with the command that asks for one, or with --thaw DAYS asked for\n" +
			"(RestoreObject); run the restore again once S3 has made them (hours).\n\n" +
			"One line per restored file on stdout, then a summary; problems go to stderr.\n\n" +
			"Exit status: 0 everything restored; 3 some objects failed or were refused (listed on\n" +
			"stderr), a version the bucket no longer has or an archived object among them; 1 fatal error, nothing to restore\n" +
			"(--at before the first run, no run N, no file under --path then); 2 usage error (--at\n" +
			"with --run, a TIME that does not parse).",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.StringFlag{Name: "to", Usage: "restore into `DIR` (created if needed, and removed again if a failed restore left it empty)"},
			&cli.StringFlag{Name: "path", Usage: "restore only `PATH`, a file or a folder with what is under it, relative to the source"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace files that exist in DIR (without it they are left and reported)"},
			&cli.StringFlag{Name: "at", Usage: "restore the tree as the last run that ended at or before `TIME` left it (from the manifest's history)"},
			&cli.Int64Flag{Name: "run", Usage: "restore the tree as run `N` left it (cloudkeeper runs lists them)"},
			&cli.IntFlag{Name: "thaw", Usage: "ask S3 to restore each object in an archive storage class (GLACIER, DEEP_ARCHIVE) into a copy readable for `DAYS` days (RestoreObject, standard retrieval: hours), to run the restore again once it is made"},
		),
		Action: command(sourceOptional, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			to := c.String("to")
			if to == "" {
				return usageError{errors.New("no folder to restore into: set --to")}
			}
			only, err := restore.OnlyPath(c.String("path"))
			if err != nil {
				return usageError{fmt.Errorf("--path: %w", err)}
			}
			job, err := restoreJobOf(ctx, c, t, only)
			if err != nil {
				return err
			}
			if job.thaw = c.Int("thaw"); job.thaw < 0 || job.thaw > maxThawDays {
				return usageError{fmt.Errorf("--thaw %d: want the days (1 to %d) the restored copy of an archived object stays", job.thaw, maxThawDays)}
			}
			s3, err := uploader.NewS3(ctx, t.s3Config())
			if err != nil {
				return err
			}
			root, removeCreated, err := restore.OpenRoot(to)
			if err != nil {
				return err
			}
			err = restoreInto(ctx, p, s3, root, t, job, c.Bool("overwrite"))
			root.Close()
			if err != nil {
				removeCreated() // a failed restore leaves no empty folder behind
			}
			return err
		}),
	}
}

// restoreJob is what a restore restores: the objects under the prefix,
// or the versions of a tree of the history.
type restoreJob struct {
	only     string
	from     string             // where, for the log
	versions []manifest.Version // with history: the tree
	gaps     []manifest.Gap     // and the paths whose version then is not kept
	history  bool
	nothing  func() error // the error when nothing is there to restore
	thaw     int          // --thaw: days; 0 none
}

// restoreJobOf reads what to restore from --at and --run: a tree of the
// history, or the bucket as it is.
func restoreJobOf(ctx context.Context, c *cli.Context, t target, only string) (restoreJob, error) {
	job := restoreJob{only: only, from: fmt.Sprintf("s3://%s/%s", t.Bucket, manifest.Key(t.Prefix, only)),
		nothing: func() error { return nothingToRestore(t, only) }}
	at, run, set, err := pointInTime(c)
	if err != nil || !set {
		return job, err
	}
	r, vs, gaps, err := historyTree(ctx, t, at, run, only)
	if err != nil {
		return job, err
	}
	job.versions, job.gaps, job.history = vs, gaps, true
	tree, from := fmt.Sprintf("the tree run %d left", r.ID), fmt.Sprintf(" as run %d left it (ended %s)", r.ID, r.Ended.Format(time.DateTime))
	if r.ID == 0 { // a rebuilt history, without its runs
		tree, from = "the tree at "+r.Ended.Format(time.DateTime), " as it was at "+r.Ended.Format(time.DateTime)+" (history rebuilt from the bucket)"
	}
	job.from += from
	job.nothing = func() error {
		if only != "" {
			return fmt.Errorf("nothing to restore: no file at or under --path %q in %s (see cloudkeeper history): --path is relative to the source", only, tree)
		}
		return fmt.Errorf("nothing to restore: %s has no file in the history", tree)
	}
	return job, nil
}

// restoreInto restores job into root and says how it went.
func restoreInto(ctx context.Context, p *printer, s3 *uploader.S3, root *os.Root, t target, job restoreJob, overwrite bool) error {
	p.log.Info("restoring", "from", job.from, "to", root.Name())
	opts := restoreOptions(p, t, job.only, overwrite)
	thawed := &thawRequests{}
	if job.thaw > 0 {
		opts.Archived = thawed.ask(ctx, p, s3, t, int32(job.thaw))
	}
	var res restore.Result
	var err error
	if job.history {
		res, err = restore.Versions(ctx, s3, root, job.versions, opts)
	} else {
		res, err = restore.Run(ctx, s3, root, opts)
	}
	if errors.Is(err, restore.ErrNothing) && len(job.gaps) == 0 {
		return job.nothing()
	}
	if errors.Is(err, restore.ErrNothing) {
		err = nil // only files whose version is not kept: said below
	}
	for _, g := range job.gaps {
		why := "it was replaced where the bucket kept no copy (no versioning, no --keep)"
		if g.Pruned {
			why = "it was pruned (past --keep)"
		}
		p.log.Error("not restored: the history no longer holds this file's version of that time", "path", display(g.Path), "why", why)
	}
	if !p.quiet {
		p.println(restoreSummary(res))
	}
	switch {
	case err != nil:
		if ctx.Err() != nil {
			err = errors.New("interrupted: run the same restore again to finish (files already restored are kept)")
		}
		return err
	case res.Gone > 0:
		p.log.Error(goneLine(ctx, s3, res.Gone))
		return reportedError{exitIncomplete}
	case res.Archived > 0:
		p.log.Error(thawed.line(res, job.thaw))
		return reportedError{exitIncomplete}
	case res.Failed > 0:
		p.log.Error("restore incomplete", "errors", res.Failed, "hint", "the objects are logged above")
		return reportedError{exitIncomplete}
	case len(job.gaps) > 0:
		p.log.Error("restore incomplete: files the tree held then are not kept (logged above)", "files", len(job.gaps))
		return reportedError{exitIncomplete}
	}
	return nil
}

// goneLine says why n versions were not in the bucket, with its
// versioning as S3 tells it now (one request).
func goneLine(ctx context.Context, s3 *uploader.S3, n int64) string {
	what := human.Count(n, "version", "versions") + " of the history are no longer in the bucket (logged above)"
	status, err := s3.Versioning(ctx)
	switch {
	case err != nil:
		return what + "; its versioning could not be read: " + err.Error()
	case status == manifest.VersioningNever:
		return what + ": the bucket's versioning is off, turned off since they were written; versions written since are not kept, and those deleted since are gone"
	case status != manifest.VersioningEnabled:
		return fmt.Sprintf("%s: the bucket's versioning is %s, turned off since they were written; versions written since are not kept, and those deleted since are gone", what, status)
	}
	return what + ": deleted since (by hand, by prune, or by a lifecycle rule such as NoncurrentVersionExpiration)"
}

// nothingToRestore says that no object matched, with where restore
// looked.
func nothingToRestore(t target, only string) error {
	prefix := fmt.Sprintf("s3://%s/%s", t.Bucket, t.Prefix)
	if only != "" {
		return fmt.Errorf("nothing to restore: no object for --path %q under %s (looked for %s): --path is relative to the source, check it and --prefix",
			only, prefix, manifest.Key(t.Prefix, only))
	}
	return nothingUnder("restore", t)
}

// nothingUnder says that a command found no object to verb under the
// prefix, and what to check.
func nothingUnder(verb string, t target) error {
	return fmt.Errorf("nothing to %s: no object under s3://%s/%s: check --bucket, --prefix and --endpoint", verb, t.Bucket, t.Prefix)
}

// restoreOptions wires the printer into a restore: a line per file on
// stdout, problems and progress on stderr.
func restoreOptions(p *printer, t target, only string, overwrite bool) restore.Options {
	return restore.Options{
		Prefix: t.Prefix, Only: only, Overwrite: overwrite, Concurrency: t.workers(),
		Restored: func(path string, size int64) {
			if !p.quiet {
				p.println(fmt.Sprintf("restore %s (%s)", display(path), human.Bytes(size)))
			}
		},
		Linked: func(path string) {
			if !p.quiet {
				p.println(fmt.Sprintf("restore %s (symlink)", display(path)))
			}
		},
		Same: func(path string) { p.log.Debug("already restored", "path", display(path)) },
		Refused: func(key string, reason error) {
			p.log.Error("refused", "key", human.Key(key), "reason", reason.Error())
		},
		Failed: func(path string, err error) {
			p.log.Error("cannot restore", "path", display(path), "error", err.Error())
		},
		Archived: func(path string, obj uploader.VersionRef) {
			p.log.Error("cannot restore: in an archive storage class, S3 gives it only once restored", "path", display(path), "ask", thawCommand(t, obj, thawDays))
		},
		Warn: func(path string, w restore.Warning, err error) {
			msg := map[restore.Warning]string{
				restore.DefaultMode: "restored with mode 0644",
				restore.NoMtime:     "restored with the time of restoring as its mtime",
				restore.TempLeft:    "restored, but the temporary file is left",
			}[w]
			p.log.Warn(msg, "path", display(path), "error", err.Error())
		},
		Progress: func(r restore.Result) {
			p.log.Info("restoring", "files", r.Restored, "bytes", human.Bytes(r.Bytes), "failed", r.Failed)
		},
		ProgressEvery: progressEvery,
	}
}

const progressEvery = 10 * time.Second

func restoreSummary(r restore.Result) string {
	s := fmt.Sprintf("%s restored (%s)", human.Count(r.Restored, "file", "files"), human.Bytes(r.Bytes))
	if r.Same > 0 {
		s += fmt.Sprintf("; %s already there with the same content", human.Thousands(r.Same))
	}
	if r.Failed > 0 {
		s += fmt.Sprintf("; %s failed or refused", human.Thousands(r.Failed))
	}
	return s
}
