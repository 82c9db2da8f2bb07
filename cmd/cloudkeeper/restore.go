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
			"unescape) is refused, and no symlink is followed out of DIR. An existing file is not\n" +
			"replaced unless --overwrite; one that already has the object's content is left as it is,\n" +
			"so a restore can be run again to finish. Zero-byte keys ending in '/' (folder markers made\n" +
			"by S3 consoles) are ignored.\n\n" +
			"One line per restored file on stdout, then a summary; problems go to stderr.\n\n" +
			"Exit status: 0 everything restored; 3 some objects failed or were refused (listed on\n" +
			"stderr); 1 fatal error; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.StringFlag{Name: "to", Usage: "restore into `DIR` (created if needed, and removed again if a failed restore left it empty)"},
			&cli.StringFlag{Name: "path", Usage: "restore only `PATH`, a file or a folder with what is under it, relative to the source"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace files that exist in DIR (without it they are left and reported)"},
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
			s3, err := uploader.NewS3(ctx, t.s3Config())
			if err != nil {
				return err
			}
			root, removeCreated, err := restore.OpenRoot(to)
			if err != nil {
				return err
			}
			err = restoreInto(ctx, p, s3, root, t, only, c.Bool("overwrite"))
			root.Close()
			if err != nil {
				removeCreated() // a failed restore leaves no empty folder behind
			}
			return err
		}),
	}
}

// restoreInto restores t's objects (only, if set) into root and says how
// it went.
func restoreInto(ctx context.Context, p *printer, s3 *uploader.S3, root *os.Root, t target, only string, overwrite bool) error {
	p.log.Info("restoring", "from", fmt.Sprintf("s3://%s/%s", t.Bucket, manifest.Key(t.Prefix, only)), "to", root.Name())
	res, err := restore.Run(ctx, s3, root, restoreOptions(p, t, only, overwrite))
	if errors.Is(err, restore.ErrNothing) {
		return nothingToRestore(t, only)
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
	case res.Failed > 0:
		p.log.Error("restore incomplete", "errors", res.Failed, "hint", "the objects are logged above")
		return reportedError{exitIncomplete}
	}
	return nil
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
		Same: func(path string) { p.log.Debug("already restored", "path", display(path)) },
		Refused: func(key string, reason error) {
			p.log.Error("refused", "key", human.Key(key), "reason", reason.Error())
		},
		Failed: func(path string, err error) {
			p.log.Error("cannot restore", "path", display(path), "error", err.Error())
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
