package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/bwlimit"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
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
			"Changes go to stdout, one line each, then a summary and the S3 requests the run sent, by\n" +
			"type, with their price (a dry run: those it would send); problems go to stderr as log lines.\n" +
			"Each run is recorded in the manifest (see `cloudkeeper status`).\n\n" +
			"Exit status: 0 all applied; 3 completed, but some paths failed (listed on stderr);\n" +
			"1 fatal error (nothing or only part applied); 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(flags, runFlags()...),
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would change and the requests it would send, with their price; touch neither the bucket nor the manifest"},
			&cli.BoolFlag{Name: "json", Usage: "print changes and the summary as JSON lines"},
			&cli.BoolFlag{Name: "rehash", Usage: "read and hash every file, trusting no stat"},
			&cli.BoolFlag{Name: "reconcile", Usage: "list the prefix first and repair what changed behind cloudkeeper's back: upload again what is missing or differs, adopt objects the manifest does not know, delete those the tree does not have (with --dry-run: say what it would repair)"},
			&cli.DurationFlag{Name: "every", EnvVars: []string{"CLOUDKEEPER_EVERY"}, Usage: "stay in the foreground and sync once every `INTERVAL` (e.g. 24h), never two at once, until SIGINT or SIGTERM"},
		),
		Action: command(sourceOfRun, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			opts, after, err := loadSyncOptions(c, p, t)
			if err != nil {
				return err
			}
			opts.dryRun, opts.rehash, opts.reconcile = c.Bool("dry-run"), c.Bool("rehash"), c.Bool("reconcile")
			every := c.Duration("every")
			if every <= 0 {
				res := runSync(ctx, opts, p)
				after.done(ctx, res)
				return p.exit(res)
			}
			return syncEvery(ctx, every, opts, p, after)
		}),
	}
}

// runFlags are the settings of a run that sync and watch share.
func runFlags() []cli.Flag {
	return append(excludeFlags(),
		&cli.BoolFlag{Name: "follow-symlinks", Aliases: []string{"L"}, Usage: "back up what symlinks point to, as if it were at the link's path (loops are detected and skipped); by default a symlink is reported and skipped"},
		&cli.BoolFlag{Name: "links", EnvVars: []string{"CLOUDKEEPER_LINKS"}, Usage: "keep symlinks as links, never followed: an empty object with the target in x-amz-meta-symlink, which restore makes a link again (not with --follow-symlinks)"},
		&cli.StringFlag{Name: "max-delete", EnvVars: []string{"CLOUDKEEPER_MAX_DELETE"}, Value: "50%", Usage: "refuse a run that would delete more than `LIMIT` of the objects, a percentage (50%) or a count (1000): a missing or unmounted source must not empty the bucket; 0 allows no delete, 100% turns it off"},
		&cli.IntFlag{Name: "part-size", EnvVars: []string{"CLOUDKEEPER_PART_SIZE"}, Value: uploader.DefaultPartSize >> 20, Usage: "upload files larger than `MIB` mebibytes in parts of that size (5 to 5120); an upload a kill cut off is continued by the next run only with the same part size"},
		&cli.IntFlag{Name: "retries", EnvVars: []string{"CLOUDKEEPER_RETRIES"}, Value: 5, Usage: "try each S3 request up to `N` times before its key is reported as failed (exponential backoff with jitter between attempts)"},
		&cli.DurationFlag{Name: "retry-max-wait", EnvVars: []string{"CLOUDKEEPER_RETRY_MAX_WAIT"}, Value: 20 * time.Second, Usage: "longest `WAIT` between two attempts"},
		&cli.DurationFlag{Name: "reconcile-every", EnvVars: []string{"CLOUDKEEPER_RECONCILE_EVERY"}, Value: defaultReconcileEvery, Usage: "a full run whose last reconcile (see --reconcile) is older than `AGE` reconciles by itself; 0 never"},
		priceFileFlag(),
		&cli.StringFlag{Name: "bwlimit", EnvVars: []string{"CLOUDKEEPER_BWLIMIT"}, Value: "off", Usage: "limit uploads to `RATE` bytes per second, all requests together: 10M, 512K, 1.5M (K, M, G are 1024-based, as in rclone: 1M is 1 MiB/s), plain bytes, or off; " +
			"or a day schedule in local time, \"08:00,1M 23:00,off\": each limit from its time until the next, the last one over midnight"},
		keepFlag(),
		&cli.StringFlag{Name: "prune-every", EnvVars: []string{"CLOUDKEEPER_PRUNE_EVERY"}, Value: "off", Usage: "a full run whose last prune is older than `AGE` (7d, 24h) prunes at its end, by --keep (see cloudkeeper prune); off never"},
		&cli.StringFlag{Name: "lock", EnvVars: []string{"CLOUDKEEPER_LOCK"}, Value: "off", Usage: "give every version written an Object Lock retention of `AGE` (30d, 36h): not even these credentials can delete it before; the bucket must have Object Lock enabled; off none"},
		&cli.StringFlag{Name: "lock-mode", EnvVars: []string{"CLOUDKEEPER_LOCK_MODE"}, Value: "governance", Usage: "the retention's `MODE`: governance (a user with s3:BypassGovernanceRetention may still delete) or compliance (no one can, not even the account's root, until it ends)"},
		&cli.StringFlag{Name: "sse", EnvVars: []string{"CLOUDKEEPER_SSE"}, Usage: "ask S3 to encrypt every object written (uploads and server-side copies) with `ENCRYPTION`: AES256 (S3-managed keys) or aws:kms (a KMS key: --sse-kms-key-id, else the account's aws/s3 key); default: none asked, the bucket's default encryption"},
		&cli.StringFlag{Name: "sse-kms-key-id", EnvVars: []string{"CLOUDKEEPER_SSE_KMS_KEY_ID"}, Usage: "the KMS `KEY` (id, ARN or alias ARN) of --sse aws:kms"},
		&cli.StringFlag{Name: "storage-class", EnvVars: []string{"CLOUDKEEPER_STORAGE_CLASS"}, Usage: "write every object (uploads and server-side copies) in storage `CLASS`: STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, ...; default: none asked, STANDARD. GLACIER and DEEP_ARCHIVE objects cannot be copied or read until restored: a rename uploads again, restore and verify --deep name them"},
		&cli.BoolFlag{Name: "allow-existing", Usage: "let a first run (a new manifest) back up into a prefix that already holds objects; without it such a run stops and suggests \"cloudkeeper manifest rebuild\""},
	)
}

// loadSyncOptions reads the settings of configFlags, runFlags and
// afterRunFlags.
func loadSyncOptions(c *cli.Context, p *printer, t target) (syncOptions, afterRun, error) {
	filter, err := excludeRules(c)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	if c.Bool("links") && c.Bool("follow-symlinks") {
		return syncOptions{}, afterRun{}, usageError{errors.New("--links (or CLOUDKEEPER_LINKS) keeps symlinks as links, --follow-symlinks backs up what they point to: choose one")}
	}
	after, err := loadAfterRun(c, p.log, t)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	limit, err := manifest.ParseDeleteLimit(c.String("max-delete"))
	if err != nil {
		return syncOptions{}, afterRun{}, usageError{err}
	}
	if err := p.loadPrices(c); err != nil {
		return syncOptions{}, afterRun{}, err
	}
	if ps := c.Int("part-size"); ps < 5 || ps > 5120 {
		return syncOptions{}, afterRun{}, usageError{fmt.Errorf("--part-size %d: want 5 to 5120 (MiB)", ps)}
	}
	if c.Int("retries") < 1 {
		return syncOptions{}, afterRun{}, usageError{fmt.Errorf("--retries %d: want at least 1", c.Int("retries"))}
	}
	bandwidth, err := loadBandwidth(c, p)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	keep, err := loadKeep(c)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	ret, err := loadRetention(c, keep)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	enc, err := loadEncryption(c)
	if err != nil {
		return syncOptions{}, afterRun{}, err
	}
	return syncOptions{retention: ret, encryption: enc, target: t, filter: filter, deleteExcluded: c.Bool("delete-excluded"), follow: c.Bool("follow-symlinks"), links: c.Bool("links"), allowExisting: c.Bool("allow-existing"),
		maxDelete: limit, partSize: int64(c.Int("part-size")) << 20, retries: c.Int("retries"), retryWait: c.Duration("retry-max-wait"),
		reconcileEvery: c.Duration("reconcile-every"), bandwidth: bandwidth, keep: keep}, after, nil
}

// loadBandwidth is the limiter of --bwlimit, one for the whole command
// (every run of sync --every or watch shares it, so it follows its
// schedule across runs); nil without a limit.
func loadBandwidth(c *cli.Context, p *printer) (*bwlimit.Limiter, error) {
	sched, err := bwlimit.ParseSchedule(c.String("bwlimit"))
	if err != nil {
		return nil, usageError{fmt.Errorf("--bwlimit / CLOUDKEEPER_BWLIMIT: %w", err)}
	}
	if sched.Off() {
		return nil, nil
	}
	p.log.Info("uploads limited", "bwlimit", sched.String())
	return bwlimit.New(sched), nil
}

// syncEvery syncs now and then once every interval (mirror.Every), until
// ctx ends: a failed run is logged and the schedule goes on.
func syncEvery(ctx context.Context, every time.Duration, o syncOptions, p *printer, after afterRun) error {
	p.log.Info("syncing on a schedule", "every", every.String(), "source", o.Source)
	mirror.Every(ctx, every, func(ctx context.Context) {
		res := runSync(ctx, o, p)
		after.done(ctx, res)
		p.exit(res)
	}, func(next time.Time) { p.log.Info("next run", "at", next.Format(time.RFC3339)) })
	p.log.Info("stopped by signal")
	return nil
}

type syncOptions struct {
	target
	filter         *scanner.Filter
	deleteExcluded bool // --delete-excluded
	dryRun         bool
	rehash         bool
	follow         bool // --follow-symlinks
	links          bool // --links
	maxDelete      manifest.DeleteLimit
	partSize       int64 // bytes
	retries        int
	retryWait      time.Duration
	// allowExisting lets a first run back up into a prefix that holds
	// objects already.
	allowExisting  bool
	reconcile      bool             // --reconcile: reconcile before the diff
	reconcileEvery time.Duration    // reconcile when the last one is older; 0 never
	bandwidth      *bwlimit.Limiter // --bwlimit; nil none
	keep           manifest.Keep    // --keep
	retention                       // --prune-every, --lock, --lock-mode
	encryption                      // --sse, --sse-kms-key-id, --storage-class
}

// encryption are the settings of --sse, --sse-kms-key-id and
// --storage-class.
type encryption struct {
	sse    types.ServerSideEncryption
	kmsKey string
	class  types.StorageClass
}

func loadEncryption(c *cli.Context) (encryption, error) {
	var e encryption
	var err error
	if e.sse, err = uploader.ParseSSE(c.String("sse")); err != nil {
		return e, usageError{fmt.Errorf("--sse / CLOUDKEEPER_SSE: %w", err)}
	}
	if e.kmsKey = c.String("sse-kms-key-id"); e.kmsKey != "" && e.sse != types.ServerSideEncryptionAwsKms {
		return e, usageError{errors.New("--sse-kms-key-id / CLOUDKEEPER_SSE_KMS_KEY_ID is the key of --sse aws:kms: set --sse aws:kms (or CLOUDKEEPER_SSE=aws:kms)")}
	}
	if e.class, err = uploader.ParseStorageClass(c.String("storage-class")); err != nil {
		return e, usageError{fmt.Errorf("--storage-class / CLOUDKEEPER_STORAGE_CLASS: %w", err)}
	}
	return e, nil
}

// mirrorOptions are the options of a run, its callbacks wired to the
// printer: per-path problems logged and kept for the notification,
// changes printed, progress shown.
func (o syncOptions) mirrorOptions(p *printer) mirror.Options {
	cfg := o.s3Config()
	cfg.MaxAttempts, cfg.MaxBackoff, cfg.PartSize, cfg.Bandwidth = o.retries, o.retryWait, o.partSize, o.bandwidth
	cfg.Lock, cfg.LockMode = o.lock, o.lockMode
	cfg.SSE, cfg.SSEKMSKeyID, cfg.StorageClass = o.sse, o.kmsKey, o.class
	return mirror.Options{
		Identity: o.identity(), Manifest: o.Manifest, S3: cfg, Concurrency: o.Concurrency,
		Filter: o.filter, DeleteExcluded: o.deleteExcluded, DryRun: o.dryRun, Rehash: o.rehash, FollowSymlinks: o.follow, Links: o.links, MaxDelete: o.maxDelete,
		AllowExisting: o.allowExisting, Reconcile: o.reconcile, ReconcileEvery: o.reconcileEvery, Keep: o.keep, PruneEvery: o.pruneEvery,
		Log: p.log, Report: p.result, Problem: p.diffProblem,
		Unsettled: func(path string, err error) {
			p.keepError(fmt.Sprintf("%s: in doubt since an interrupted run and S3 could not be asked: %v", display(path), err))
			p.log.Error("could not settle a key left in doubt; its row may be wrong this run, the next run asks again", "path", display(path), "error", err.Error())
		},
		Finding: func(f reconcile.Finding) { logFinding(p, f) },
		ReconcileFailed: func(err error) {
			p.keepError(err.Error())
			p.log.Error("the reconcile failed; the run goes on without it and the next one tries again", "error", err.Error())
		},
		Scanned: p.scanned, Hashed: p.progress.Hashed, Queued: p.progress.Queued,
	}
}

// outcome is what a run did and how it ended, and the first paths that
// failed, with why, for the notification.
type outcome struct {
	mirror.Result
	firstErrors []string
}

// exitCode is the run's exit status: 0 all applied, 3 some paths failed, 1
// fatal, 2 usage.
func (o outcome) exitCode() int {
	if isUsage(o.Err) {
		return exitUsage
	}
	return o.ExitCode()
}

// runSync is one run (see mirror.Run), shown by the printer.
func runSync(ctx context.Context, o syncOptions, p *printer) outcome {
	p.progress.Start()
	return p.outcome(mirror.Run(ctx, o.mirrorOptions(p)))
}
