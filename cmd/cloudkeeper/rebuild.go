package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
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
			"It takes the settings of sync; --source is needed, as the manifest records the folder it\n" +
			"describes. The new manifest is written beside the old path and put in place when complete.\n" +
			"An existing manifest that opens fine is left alone unless --force; a damaged one (or any,\n" +
			"with --force) is moved aside to PATH.old-<unix time>, with its -wal and -shm files.\n\n" +
			"Exit status: 0 rebuilt; 3 rebuilt, but some objects could not be read (listed on stderr;\n" +
			"the next sync uploads them again); 1 fatal error, nothing changed; 2 usage error.",
		Before:       applyEnvFile,
		OnUsageError: onUsageError,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.BoolFlag{Name: "force", Usage: "rebuild even if the manifest opens fine (the old one is moved aside)"},
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
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := rebuild(ctx, t, c.Bool("force"), p)
			if err != nil {
				return p.fail(err)
			}
			if !p.quiet {
				line := fmt.Sprintf("manifest rebuilt from the bucket: %s (%s)", count(res.objects.Load(), "object", "objects"), humanBytes(res.bytes.Load()))
				if n := res.skipped.Load(); n > 0 {
					line += fmt.Sprintf("; %s left out", thousands(n))
				}
				if n := res.failed.Load(); n > 0 {
					line += fmt.Sprintf("; %s could not be read", thousands(n))
				}
				p.println(line)
			}
			if res.failed.Load() > 0 {
				p.log.Error("rebuild incomplete", "errors", res.failed.Load(), "hint", "the next sync uploads those objects again")
				return reportedError{exitIncomplete}
			}
			return nil
		},
	}
}

type rebuildResult struct {
	objects, bytes, skipped, failed atomic.Int64
}

// rebuild writes a new manifest for t from the bucket. It holds the
// manifest's lock throughout, so that no sync runs meanwhile, builds the
// new one beside it, and only once that is complete moves the old one
// aside (if any) and puts the new one in its place.
func rebuild(ctx context.Context, t target, force bool, p *printer) (*rebuildResult, error) {
	if err := os.MkdirAll(filepath.Dir(t.Manifest), 0o700); err != nil {
		return nil, fmt.Errorf("manifest folder: %w", err)
	}
	lock, err := manifest.Lock(t.Manifest)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	replace, err := oldManifest(t, force, p)
	if err != nil {
		return nil, err
	}
	s3, err := uploader.NewS3(ctx, t.s3Config())
	if err != nil {
		return nil, err
	}
	tmp := t.Manifest + ".rebuild"
	manifest.Remove(tmp) // left by a rebuild that was killed
	res, err := fillManifest(ctx, tmp, t, s3, p)
	if err != nil {
		manifest.Remove(tmp)
		return nil, err
	}
	if replace {
		old, err := manifest.MoveAside(t.Manifest, time.Now())
		if err != nil {
			manifest.Remove(tmp)
			return nil, err
		}
		p.log.Warn("the old manifest is moved aside", "manifest", t.Manifest, "to", old)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(tmp+suffix, t.Manifest+suffix); err != nil && (suffix == "" || !errors.Is(err, fs.ErrNotExist)) {
			return nil, fmt.Errorf("manifest %s: put the rebuilt one in place: %w", t.Manifest, err)
		}
	}
	os.Remove(tmp + ".lock")
	return res, nil
}

// oldManifest decides what to do with the manifest at t.Manifest: nothing
// if there is none; replace it if it is damaged or force is set; and
// otherwise refuse, since it is fine.
func oldManifest(t target, force bool, p *printer) (replace bool, err error) {
	if _, err := os.Lstat(t.Manifest); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	db, err := manifest.OpenReadOnly(t.Manifest, t.identity())
	switch {
	case err == nil:
		db.Close()
		if !force {
			return false, fmt.Errorf("manifest %s exists and opens fine: nothing to rebuild (--force rebuilds it anyway, moving this one aside)", t.Manifest)
		}
	case errors.Is(err, manifest.ErrDamaged):
		p.log.Warn("the manifest is damaged: rebuilding it from the bucket", "manifest", t.Manifest)
	case !force:
		return false, fmt.Errorf("%w (--force moves it aside and rebuilds it)", err)
	}
	return true, nil
}

// fillManifest writes a manifest at path with a row for every object under
// the prefix that describes itself, from the listing and HeadObject. Rows
// have no inode, device or ctime, and a hash time of 0: the next sync
// hashes each file once, finds the same content, and records its stat.
func fillManifest(ctx context.Context, path string, t target, s3 *uploader.S3, p *printer) (*rebuildResult, error) {
	db, err := manifest.Open(path, t.identity())
	if err != nil {
		return nil, err
	}
	listed := time.Now()
	w := db.Writer()
	res := &rebuildResult{}
	var mu sync.Mutex
	var recordErr error
	err = s3.EachObject(ctx, t.Prefix, t.Concurrency, func(ctx context.Context, o uploader.ObjectInfo) error {
		rel, err := manifest.PathOfKey(t.Prefix, o.Key, o.Size)
		if errors.Is(err, manifest.ErrFolderMarker) {
			return nil
		}
		if err != nil {
			res.skipped.Add(1)
			p.log.Warn("left out", "key", showKey(o.Key), "reason", err.Error())
			return nil
		}
		meta, err := s3.Head(ctx, o.Key)
		switch {
		case err != nil && (uploader.IsFatal(err) || ctx.Err() != nil):
			return err
		case errors.Is(err, uploader.ErrNotFound):
			return nil // deleted since the listing
		case err != nil:
			res.failed.Add(1)
			p.log.Error("cannot read", "path", display(rel), "error", err.Error())
			return nil
		case meta.HashErr != nil:
			res.skipped.Add(1)
			p.log.Warn("left out: the next sync uploads it again", "path", display(rel), "reason", meta.HashErr.Error())
			return nil
		case meta.Err() != nil:
			p.log.Warn("kept: the next sync refreshes its metadata", "path", display(rel), "reason", meta.Err().Error())
		}
		e := reconcile.Adopt(rel, o, meta) // without a LastModified, uploaded at the Writer's now
		return w.Put(ctx, e, func(err error) {
			if err != nil {
				mu.Lock()
				if recordErr == nil {
					recordErr = err
				}
				mu.Unlock()
				return
			}
			res.objects.Add(1)
			res.bytes.Add(e.Stat.Size)
		})
	})
	w.Close()
	if err == nil {
		err = recordErr
	}
	if err == nil {
		// Made from a listing: as good as a reconcile at its start.
		err = db.SetReconciled(ctx, manifest.Reconciled{At: listed})
	}
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("manifest %s: %w", path, cerr)
	}
	return res, err
}
