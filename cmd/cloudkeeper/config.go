package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/dotenv"
	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/suggest"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// Flag names shared by every command that reaches the bucket.
const (
	flagEnvFile     = "env-file"
	flagSource      = "source"
	flagBucket      = "bucket"
	flagPrefix      = "prefix"
	flagEndpoint    = "endpoint"
	flagRegion      = "region"
	flagManifest    = "manifest"
	flagConcurrency = "concurrency"
)

// configFlags are the settings every command takes, each with its
// environment variables; a .env file fills in what neither sets.
func configFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagEnvFile, Usage: "read settings from this `FILE` (default: ./.env when present); real environment variables win over it"},
		&cli.StringFlag{Name: flagSource, EnvVars: []string{"BACKUP_DIR"}, Usage: "the `DIR` to back up"},
		&cli.StringFlag{Name: flagBucket, EnvVars: []string{"S3_BUCKET"}, Usage: "the S3 `BUCKET`"},
		&cli.StringFlag{Name: flagPrefix, EnvVars: []string{"S3_BUCKET_PREFIX"}, Usage: "key `PREFIX` in the bucket (\"backups\" and \"backups/\" mean the same)"},
		&cli.StringFlag{Name: flagEndpoint, EnvVars: []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, Usage: "`URL` of an S3-compatible server (MinIO, Ceph, R2, Versity...); implies path-style addressing"},
		&cli.StringFlag{Name: flagRegion, EnvVars: []string{"AWS_REGION", "AWS_DEFAULT_REGION"}, Usage: "AWS `REGION` (default with --endpoint: us-east-1)"},
		&cli.StringFlag{Name: flagManifest, EnvVars: []string{"CLOUDKEEPER_MANIFEST"}, Usage: "SQLite manifest `FILE` (default: one per source, endpoint, bucket and prefix in the state folder: $STATE_DIRECTORY, else $XDG_STATE_HOME/cloudkeeper, else ~/.local/state/cloudkeeper, else for root /var/lib/cloudkeeper)"},
		&cli.StringFlag{Name: flagConcurrency, EnvVars: []string{"CLOUDKEEPER_CONCURRENCY"}, Value: "auto", Usage: "send at most `N` S3 requests at once (1 to 1024); auto: up to 256 for small files, large ones bounded by memory (8 read whole at once, parts within 8 × --part-size), fewer while the server answers 503 SlowDown"},
	}
}

// applyEnvFile loads the .env file into the environment without
// overriding what is already set, then gives every flag that neither the
// command line nor the real environment set its value from the file.
func applyEnvFile(c *cli.Context) error {
	path := c.String(flagEnvFile)
	if path == "" {
		path = ".env"
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	vars, err := dotenv.ParseLines(path)
	if err != nil {
		return usageError{fmt.Errorf("env file: %w", err)}
	}
	// The real environment wins; within the file, a key's last line.
	real := map[string]bool{}
	for _, v := range vars {
		if _, set := os.LookupEnv(v.Key); set {
			real[v.Key] = true
		}
	}
	for _, v := range vars {
		if !real[v.Key] {
			os.Setenv(v.Key, v.Value)
		}
	}
	if err := warnUnknownKeys(c, path, vars); err != nil {
		return err
	}
	for _, f := range c.Command.Flags {
		ef, ok := f.(interface{ GetEnvVars() []string })
		if !ok {
			continue
		}
		name := f.Names()[0]
		if c.IsSet(name) {
			continue
		}
		for _, env := range ef.GetEnvVars() {
			if v, set := os.LookupEnv(env); set {
				if err := c.Set(name, v); err != nil {
					return usageError{fmt.Errorf("%s=%q (from %s): %w", env, v, path, err)}
				}
				break
			}
		}
	}
	return nil
}

// legacyKeys are the keys that no flag reads by that name: the original
// daemon's intervals and access key's name, and the demo's gateway binary.
var legacyKeys = []string{"S3_BACKUP_INTERVAL", "S3_BACKUP_INTERVAL_UNIT", "DB_PERSISTENCE_INTERVAL",
	"DB_PERSISTENCE_INTERVAL_UNIT", "AWS_ACCESS_KEY", s3test.EnvBinary}

// ownPrefixes are the beginnings of the keys that are cloudkeeper's (or
// the original daemon's) to read: one of them that no setting has is a
// typo. Other AWS_* keys are the SDK's, and the rest are others'.
var ownPrefixes = []string{"S3_", "CLOUDKEEPER_", "BACKUP_", "DB_PERSISTENCE_", "AWS_ENDPOINT"}

// warnUnknownKeys logs a warning for each key of the .env file that looks
// like cloudkeeper's but is no setting of any command, with the key it may
// have been meant as.
func warnUnknownKeys(c *cli.Context, path string, vars []dotenv.Var) error {
	known := append(slices.Clone(legacyKeys), listEnvKeys...)
	var walk func(cmds []*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			for _, f := range cmd.Flags {
				if ef, ok := f.(interface{ GetEnvVars() []string }); ok {
					known = append(known, ef.GetEnvVars()...)
				}
			}
			walk(cmd.Subcommands)
		}
	}
	walk(c.App.Commands)
	var log *slog.Logger
	for _, v := range vars {
		own := slices.ContainsFunc(ownPrefixes, func(p string) bool { return strings.HasPrefix(v.Key, p) })
		if !own || strings.HasPrefix(v.Key, "AWS_ENDPOINT_URL_") && v.Key != "AWS_ENDPOINT_URL_S3" || slices.Contains(known, v.Key) {
			continue // AWS_ENDPOINT_URL_<SERVICE> are the SDK's
		}
		if log == nil {
			var err error
			if log, err = newLogger(c, c.App.ErrWriter); err != nil {
				return err
			}
		}
		msg := fmt.Sprintf("%s:%d: %s is not a setting of cloudkeeper", path, v.Line, v.Key)
		if s := suggest.Closest(v.Key, known); s != "" {
			msg += ": did you mean " + s + "?"
		}
		log.Warn(msg)
	}
	return nil
}

// target is where a command's source goes: what every command needs.
type target struct {
	Source      string // absolute, symlinks resolved; "" if the command needs none
	Bucket      string
	Prefix      string // normalized
	Endpoint    string
	Region      string
	Manifest    string
	Concurrency int // --concurrency; 0: auto
	// sourceErr is why the source could not be resolved (sourceOfRun):
	// Source is then its absolute path.
	sourceErr error
	// credentials overrides the SDK's chain (the demo's gateway keys).
	credentials aws.CredentialsProvider
	// log takes the SDK's own warnings, in the command's log format.
	log *slog.Logger
}

// parseConcurrency reads --concurrency: "auto" (0) or a cap of 1 to 1024.
func parseConcurrency(s string) (int, error) {
	if s == "" || s == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1024 {
		return 0, fmt.Errorf("--concurrency %q: want auto or 1 to 1024", s)
	}
	return n, nil
}

// workers is how many objects a command handles at once: the cap, or
// uploader.AutoConcurrency (the client bounds the requests in flight).
func (t target) workers() int {
	if t.Concurrency > 0 {
		return t.Concurrency
	}
	return uploader.AutoConcurrency
}

func (t target) identity() manifest.Identity {
	return manifest.Identity{Source: t.Source, Endpoint: t.Endpoint, Bucket: t.Bucket, Prefix: t.Prefix}
}

// report is the target as reports name it.
func (t target) report() report.Target {
	return report.Target{Source: t.Source, Bucket: t.Bucket, Prefix: t.Prefix, Endpoint: t.Endpoint}
}

// sourceUse is what a command needs of the source folder.
type sourceUse int

const (
	// sourceOptional (restore, verify): with no source, target.Source is
	// empty and, unless --manifest is given, so is target.Manifest (there
	// is no default manifest without a source); a source that is set but
	// no longer there (the disk of a lost machine) is taken as its
	// absolute path, only to find the default manifest.
	sourceOptional sourceUse = iota
	// sourceOfRun (sync, watch, status): the source must be set; one that
	// is not there is taken as its absolute path, as for sourceOptional:
	// the run fails on it as a run (notified, recorded in the manifest it
	// finds), and status shows that run.
	sourceOfRun
	// sourceRequired (manifest rebuild): the source must be a folder that
	// is there.
	sourceRequired
)

// readTarget reads and checks the shared settings, the source as use says.
func readTarget(c *cli.Context, use sourceUse) (target, error) {
	t := target{
		Bucket:   c.String(flagBucket),
		Prefix:   manifest.NormalizePrefix(c.String(flagPrefix)),
		Endpoint: c.String(flagEndpoint),
		Region:   c.String(flagRegion),
		Manifest: c.String(flagManifest),
	}
	conc, cerr := parseConcurrency(c.String(flagConcurrency))
	if cerr != nil {
		return t, usageError{cerr}
	}
	t.Concurrency = conc
	src := c.String(flagSource)
	switch {
	case src == "" && use != sourceOptional:
		return t, usageError{errors.New("no source folder: set --source or BACKUP_DIR")}
	case t.Bucket == "":
		return t, usageError{errors.New("no bucket: set --bucket or S3_BUCKET")}
	}
	if err := t.checkBucket(); err != nil {
		return t, usageError{err}
	}
	if src != "" {
		abs, err := sourceDir(src)
		if err != nil {
			if use == sourceRequired {
				return t, err
			}
			// Gone, or never here: its path still names the default manifest.
			t.sourceErr = err
			if abs, err = filepath.Abs(src); err != nil {
				return t, err
			}
		}
		t.Source = abs
	}
	var err error
	switch {
	case t.Manifest != "":
		t.Manifest, err = filepath.Abs(t.Manifest)
	case t.Source != "":
		if t.Manifest, err = manifest.FindDefault(t.identity()); err != nil {
			err = fmt.Errorf("no home folder for the manifest: set --manifest or CLOUDKEEPER_MANIFEST: %w", err)
		}
	}
	return t, err
}

// checkBucket checks the bucket name and the endpoint before any request,
// with the rules of the uploader (which checks them too), naming the
// settings to fix.
func (t target) checkBucket() error {
	if err := uploader.CheckBucketName(t.Bucket); err != nil {
		return fmt.Errorf("%w: check --bucket / S3_BUCKET", err)
	}
	if t.Endpoint == "" {
		return nil
	}
	if err := uploader.CheckEndpoint(t.Endpoint); err != nil {
		return fmt.Errorf("%w: check --endpoint / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL", err)
	}
	return nil
}

// sourceDir resolves the source folder, with a clear message if it is not
// there: a missing folder must stop the run, not look like "delete all".
func sourceDir(src string) (string, error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	if err := mirror.CheckSource(abs); err != nil {
		return "", withSourceHint(err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", withSourceHint(&mirror.SourceError{Path: abs, Err: err})
	}
	return real, nil
}

// withSourceHint names the settings to check when err is a
// mirror.SourceError.
func withSourceHint(err error) error {
	var se *mirror.SourceError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: check --source / BACKUP_DIR", err)
	}
	return err
}

// s3Config builds the bucket's client settings. Credentials come from the
// SDK's chain (environment, shared config and profiles, instance roles);
// the original daemon's AWS_ACCESS_KEY / AWS_SECRET_ACCESS_KEY work too.
func (t target) s3Config() uploader.S3Config {
	cfg := uploader.S3Config{
		Bucket:      t.Bucket,
		Endpoint:    t.Endpoint,
		Region:      t.Region,
		Concurrency: t.Concurrency,
		Log:         t.log,
	}
	switch {
	case t.credentials != nil:
		cfg.Credentials = t.credentials
	case os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_ACCESS_KEY") != "":
		cfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(
			os.Getenv("AWS_ACCESS_KEY"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")))
	}
	return cfg
}

// existingManifest fails unless t's manifest is there (a command that only
// reads it must not make an empty one), its message ending with more.
func (t target) existingManifest(more string) error {
	if _, err := os.Stat(t.Manifest); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if t.sourceErr != nil {
		return t.sourceErr // a mistyped --source, most likely
	}
	return fmt.Errorf("no manifest at %s: no sync has run for %s yet%s", t.Manifest, t.identity(), more)
}
