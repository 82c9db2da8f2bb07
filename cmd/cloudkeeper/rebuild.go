package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/rebuild"
)

func manifestCommand() *cli.Command {
	return &cli.Command{
		Name:        "manifest",
		Usage:       "work on the local manifest",
		Subcommands: []*cli.Command{rebuildCommand()},
	}
}

func rebuildCommand() *cli.Command {
	return &cli.Command{
		Name:  "rebuild",
		Usage: "rebuild the manifest from the bucket, after it was lost or damaged",
		Description: "Lists the prefix and reads each object's metadata (HeadObject, --concurrency at once) to\n" +
			"write the manifest sync would have: path, size, BLAKE3, mtime and mode of every object. The\n" +
			"next sync then reads each file once, finds the content the bucket has, and uploads nothing\n" +
			"that is already there. Objects without a valid x-amz-meta-blake3, or whose key names no\n" +
			"path, are left out with a warning: the next sync uploads their files again.\n\n" +
			"In a bucket with versioning it rebuilds the history too: it lists the prefix's versions\n" +
			"(ListObjectVersions) and reads each old version's metadata (one HeadObject a version), so\n" +
			"that history and restore as of a date work as before. An old version without metadata is\n" +
			"left out of the history with a warning. Without versioning, the history area's copies (--keep)\n" +
			"are read the same way, from the one listing of the prefix: one HeadObject a copy.\n\n" +
			"It takes the settings of sync; --source is needed, as the manifest records the folder it\n" +
			"describes. The new manifest is written beside the old path and put in place when complete.\n" +
			"An existing manifest that opens fine is left alone unless --force; a damaged one (or any,\n" +
			"with --force) is moved aside to PATH.old-<unix time>, with its -wal and -shm files.\n\n" +
			"Exit status: 0 rebuilt; 3 rebuilt, but some objects could not be read (listed on stderr;\n" +
			"the next sync uploads them again); 1 fatal error, nothing changed; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.BoolFlag{Name: "force", Usage: "rebuild even if the manifest opens fine (the old one is moved aside)"},
		),
		Action: command(sourceRequired, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			s3, err := uploader.NewS3(ctx, t.s3Config())
			if err != nil {
				return err
			}
			res, err := rebuild.Run(ctx, s3, rebuildOptions(p, t, c.Bool("force")))
			if err != nil {
				return err
			}
			if !p.quiet {
				line := fmt.Sprintf("manifest rebuilt from the bucket: %s (%s)", human.Count(res.Objects, "object", "objects"), human.Bytes(res.Bytes))
				if n := res.LeftOut; n > 0 {
					line += fmt.Sprintf("; %s left out", human.Thousands(n))
				}
				if res.Versioning != "" && res.Versioning != manifest.VersioningNever || res.Versions+res.VersionsLeftOut > 0 {
					line += fmt.Sprintf("; history: %s", human.Count(res.Versions, "old version", "old versions"))
					if n := res.VersionsLeftOut; n > 0 {
						line += fmt.Sprintf(" (%s left out)", human.Thousands(n))
					}
				}
				if n := res.Failed; n > 0 {
					line += fmt.Sprintf("; %s could not be read", human.Thousands(n))
				}
				p.println(line)
			}
			if res.Failed > 0 {
				p.log.Error("rebuild incomplete", "errors", res.Failed, "hint", "the next sync uploads those objects again")
				return reportedError{exitIncomplete}
			}
			return nil
		}),
	}
}

// rebuildOptions wires the printer into a rebuild of t's manifest.
func rebuildOptions(p *printer, t target, force bool) rebuild.Options {
	return rebuild.Options{
		Manifest: t.Manifest, Identity: t.identity(), Prefix: t.Prefix, Concurrency: t.workers(), Force: force,
		Damaged: func() {
			p.log.Warn("the manifest is damaged: rebuilding it from the bucket", "manifest", t.Manifest)
		},
		MovedAside: func(old string) {
			p.log.Warn("the old manifest is moved aside", "manifest", t.Manifest, "to", old)
		},
		LeftOut: func(key, path string, reason error) {
			if path == "" {
				p.log.Warn("left out", "key", human.Key(key), "reason", reason.Error())
				return
			}
			p.log.Warn("left out: the next sync uploads it again", "path", display(path), "reason", reason.Error())
		},
		VersionLeftOut: func(key, versionID, path string, reason error) {
			if path == "" {
				p.log.Warn("old version left out of the history", "key", human.Key(key), "version", versionID, "reason", reason.Error())
				return
			}
			p.log.Warn("old version left out of the history", "path", display(path), "version", versionID, "reason", reason.Error())
		},
		Kept: func(path string, reason error) {
			p.log.Warn("kept: the next sync refreshes its metadata", "path", display(path), "reason", reason.Error())
		},
		Failed: func(path string, err error) {
			p.log.Error("cannot read", "path", display(path), "error", err.Error())
		},
	}
}
