package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/prune"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove the old versions past --keep from the bucket (never a current one)",
		Description: "Removes the versions of overwritten and deleted files that --keep no longer keeps: a\n" +
			"version is kept while it was replaced less than AGE ago, or is one of its file's COUNT newest\n" +
			"old versions. It reads the manifest's history (no listing) and sends DeleteObjects with the\n" +
			"version ids, 1,000 a request; a version is forgotten only once S3 confirmed its delete. A\n" +
			"version whose Object Lock retention has not ended is kept, and said so. It takes the\n" +
			"settings of sync; --keep is needed.\n\n" +
			"Exit status: 0 pruned; 3 some versions could not be deleted (logged; the next prune tries\n" +
			"again); 1 fatal error; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...), keepFlag(),
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be removed; touch neither the bucket nor the manifest"},
			&cli.BoolFlag{Name: "json", Usage: "print the versions and the summary as JSON lines"},
		),
		Action: command(sourceOfRun, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			keep, err := loadKeep(c)
			if err != nil {
				return err
			}
			if !keep.On() {
				return usageError{errors.New("prune needs --keep (or CLOUDKEEPER_KEEP): how long, or how many, old versions to keep")}
			}
			res, err := runPrune(ctx, p, t, keep, c.Bool("dry-run"))
			if err != nil {
				return err
			}
			p.pruneSummary(res)
			if res.Errors > 0 {
				p.log.Error("prune incomplete", "errors", res.Errors, "hint", "the versions are logged above; the next prune tries again")
				return reportedError{exitIncomplete}
			}
			return nil
		}),
	}
}

// runPrune opens the manifest (read-only for a dry run) and prunes.
func runPrune(ctx context.Context, p *printer, t target, keep manifest.Keep, dryRun bool) (prune.Result, error) {
	if err := t.existingManifest(", nothing to prune"); err != nil {
		return prune.Result{}, err
	}
	open := manifest.Open
	if dryRun {
		open = manifest.OpenReadOnly
	}
	db, err := open(t.Manifest, t.identity())
	if err != nil {
		return prune.Result{}, err
	}
	defer db.Close()
	o := prune.Options{DB: db, Prefix: t.Prefix, Keep: keep, DryRun: dryRun,
		Removed: func(v manifest.OldVersion) { p.prunedVersion(v, dryRun) },
		Locked: func(v manifest.OldVersion) {
			p.log.Info("old version kept: locked", "path", display(v.Path), "version", v.VersionID, "until", lockedUntil(v))
		},
		Failed: func(v manifest.OldVersion, err error) {
			p.log.Error("could not remove an old version", "path", display(v.Path), "version", v.VersionID, "error", err.Error())
		}}
	if !dryRun {
		s3, err := uploader.NewS3(ctx, t.s3Config())
		if err != nil {
			return prune.Result{}, err
		}
		o.Bucket = s3
	}
	return prune.Run(ctx, o)
}

// lockedUntil is when v's retention ends, or "unknown" (S3 refused its
// delete, and the manifest does not know the date).
func lockedUntil(v manifest.OldVersion) string {
	if v.RetainUntil.IsZero() {
		return "unknown"
	}
	return v.RetainUntil.Format(time.RFC3339)
}

type jsonPruned struct {
	Op       string `json:"op"` // prune, or would-prune in a dry run
	Path     string `json:"path"`
	Version  string `json:"version,omitempty"`
	Key      string `json:"history_key,omitempty"`
	Size     int64  `json:"size"`
	Replaced string `json:"replaced"`
}

// prunedVersion prints a version removed (would be, in a dry run).
func (p *printer) prunedVersion(v manifest.OldVersion, dryRun bool) {
	if p.quiet {
		return
	}
	op := "prune"
	if dryRun {
		op = "would-prune"
	}
	if p.json {
		p.printJSON(jsonPruned{Op: op, Path: display(v.Path), Version: v.VersionID, Key: v.HistoryKey, Size: v.Size, Replaced: v.Ended.Format(time.RFC3339)})
		return
	}
	p.println(fmt.Sprintf("%-11s %s (version of %s, replaced %s, %s)", strings.ReplaceAll(op, "-", " "), display(v.Path),
		v.Written.Format(time.RFC3339), v.Ended.Format(time.RFC3339), human.Bytes(v.Size)))
}

// pruneSummary prints "pruned 3 old versions (1.2 MiB); kept 4, 1 of them locked".
func (p *printer) pruneSummary(res prune.Result) {
	if p.quiet {
		return
	}
	if p.json {
		p.printJSON(map[string]prune.Result{"summary": res})
		return
	}
	verb := "pruned"
	if res.DryRun {
		verb = "would prune"
	}
	line := fmt.Sprintf("%s %s (%s); kept %s", verb, human.Count(res.Versions, "old version", "old versions"), human.Bytes(res.Bytes),
		human.Thousands(res.Kept+res.Locked))
	if res.Locked > 0 {
		line += fmt.Sprintf(", %s locked", human.Thousands(res.Locked))
	}
	if res.Errors > 0 {
		line += "; " + human.Count(res.Errors, "error", "errors")
	}
	p.println(line)
}

// keepFlag is --keep, which sync, watch and prune share.
func keepFlag() cli.Flag {
	return &cli.StringFlag{Name: "keep", EnvVars: []string{"CLOUDKEEPER_KEEP"}, Value: "off", Usage: "keep overwritten and deleted files' old versions for `AGE` after they were replaced (90d, 36h), or the COUNT newest of each file (10), or both (90d,10); " +
		"kept by the bucket's versioning where it has it, by copies otherwise; `cloudkeeper prune` removes what is past it"}
}

func loadKeep(c *cli.Context) (manifest.Keep, error) {
	keep, err := manifest.ParseKeep(c.String("keep"))
	if err != nil {
		return keep, usageError{fmt.Errorf("%w (or CLOUDKEEPER_KEEP)", err)}
	}
	return keep, nil
}

// retention are the settings of --prune-every, --lock and --lock-mode.
type retention struct {
	pruneEvery time.Duration // 0: never
	lock       time.Duration // 0: none
	lockMode   types.ObjectLockMode
}

func loadRetention(c *cli.Context, keep manifest.Keep) (retention, error) {
	var r retention
	var err error
	if r.pruneEvery, err = parseOffAge(c.String("prune-every"), "--prune-every / CLOUDKEEPER_PRUNE_EVERY"); err != nil {
		return r, err
	}
	if r.pruneEvery > 0 && !keep.On() {
		return r, usageError{errors.New("--prune-every needs --keep (or CLOUDKEEPER_KEEP): what to keep")}
	}
	if r.lock, err = parseOffAge(c.String("lock"), "--lock / CLOUDKEEPER_LOCK"); err != nil {
		return r, err
	}
	switch m := strings.ToLower(c.String("lock-mode")); m {
	case "governance", "compliance":
		r.lockMode = types.ObjectLockMode(strings.ToUpper(m))
	default:
		return r, usageError{fmt.Errorf("--lock-mode / CLOUDKEEPER_LOCK_MODE %q: want governance or compliance", c.String("lock-mode"))}
	}
	return r, nil
}

// parseOffAge reads an age (30d, 36h), or off (0).
func parseOffAge(s, what string) (time.Duration, error) {
	if s == "" || s == "off" || s == "0" {
		return 0, nil
	}
	d, err := manifest.ParseAge(s)
	if err != nil || d <= 0 {
		return 0, usageError{fmt.Errorf("%s %q: want an age (30d, 36h) or off", what, s)}
	}
	return d, nil
}
