package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/dotenv"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
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
		&cli.StringFlag{Name: flagConcurrency, EnvVars: []string{"CLOUDKEEPER_CONCURRENCY"}, Value: "auto", Usage: "send at most `N` S3 requests at once; auto: up to 256 for small files, large ones bounded by a 128 MiB buffer budget, fewer while the server answers 503 SlowDown"},
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
	vars, err := dotenv.Parse(path)
	if err != nil {
		return usageError{fmt.Errorf("env file: %w", err)}
	}
	for k, v := range vars {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
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

// target is where a command's source goes: what every command needs.
type target struct {
	Source      string // absolute, symlinks resolved; "" if the command needs none
	Bucket      string
	Prefix      string // normalized
	Endpoint    string
	Region      string
	Manifest    string
	Concurrency int // --concurrency; 0: auto
	// credentials overrides the SDK's chain (the demo's gateway keys).
	credentials aws.CredentialsProvider
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

// readTarget reads and checks the shared settings. A command that does not
// need the source (restore, verify) passes needSource false: then with no
// source, target.Source is empty and, unless --manifest is given, so is
// target.Manifest (there is no default manifest without a source); and a
// source that is set but no longer there (the disk of a lost machine) is
// taken as its absolute path, only to find the default manifest.
func readTarget(c *cli.Context, needSource bool) (target, error) {
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
	case src == "" && needSource:
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
			if needSource {
				return t, err
			}
			// Gone, or never here: its path still names the default manifest.
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
		if t.Manifest, err = manifest.DefaultPath(t.identity()); err != nil {
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
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("source folder %s does not exist: check --source / BACKUP_DIR (is the disk mounted?)", abs)
	}
	if err != nil {
		return "", fmt.Errorf("source folder %s: %w", abs, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("source folder %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("source %s is not a folder", abs)
	}
	return real, nil
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
