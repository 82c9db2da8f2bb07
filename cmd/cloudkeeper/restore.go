package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
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
			&cli.StringFlag{Name: "to", Usage: "restore into `DIR` (created if needed)"},
			&cli.StringFlag{Name: "path", Usage: "restore only `PATH`, a file or a folder with what is under it, relative to the source"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace files that exist in DIR (without it they are left and reported)"},
		),
		Action: func(c *cli.Context) error {
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			t, err := readTarget(c, false)
			if err != nil {
				return p.fail(err)
			}
			to := c.String("to")
			if to == "" {
				return p.fail(usageError{errors.New("no folder to restore into: set --to")})
			}
			only, err := pathFlag(c.String("path"))
			if err != nil {
				return p.fail(usageError{err})
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			r, err := newRestorer(ctx, t, to, only, c.Bool("overwrite"), p)
			if err != nil {
				return p.fail(err)
			}
			defer r.root.Close()
			p.log.Info("restoring", "from", fmt.Sprintf("s3://%s/%s", t.Bucket, manifest.Key(t.Prefix, only)), "to", r.root.Name())
			err = r.run(ctx, t.Concurrency)
			if !p.quiet {
				p.println(r.summary())
			}
			switch {
			case err != nil:
				if ctx.Err() != nil {
					err = errors.New("interrupted: run the same restore again to finish (files already restored are kept)")
				}
				return p.fail(err)
			case r.failed.Load() > 0:
				p.log.Error("restore incomplete", "errors", r.failed.Load(), "hint", "the objects are logged above")
				return reportedError{exitIncomplete}
			}
			return nil
		},
	}
}

// pathFlag checks --path: a relative path with no empty, "." or ".."
// component ("/docs/" means "docs"); "" means everything.
func pathFlag(s string) (string, error) {
	s = strings.Trim(s, "/")
	if s == "" {
		return "", nil
	}
	for _, c := range strings.Split(s, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("--path %q: want a path relative to the source, without empty, '.' or '..' parts", s)
		}
	}
	return s, nil
}

// restorer writes the objects of a backup into a folder, opened as an
// os.Root: no file operation can reach outside it, through ".." or
// through a symlink.
type restorer struct {
	s3        *uploader.S3
	root      *os.Root
	prefix    string
	only      string // --path; "" for everything
	overwrite bool
	p         *printer

	restored, bytes, same, failed atomic.Int64
}

func newRestorer(ctx context.Context, t target, to, only string, overwrite bool, p *printer) (*restorer, error) {
	s3, err := uploader.NewS3(ctx, t.s3Config())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return nil, fmt.Errorf("restore folder: %w", err)
	}
	root, err := os.OpenRoot(to)
	if err != nil {
		return nil, fmt.Errorf("restore folder: %w", err)
	}
	return &restorer{s3: s3, root: root, prefix: t.Prefix, only: only, overwrite: overwrite, p: p}, nil
}

// run restores every object under the prefix (and --path), concurrency
// at once, logging progress every progressEvery.
func (r *restorer) run(ctx context.Context, concurrency int) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				r.p.log.Info("restoring", "files", r.restored.Load(), "bytes", humanBytes(r.bytes.Load()), "failed", r.failed.Load())
			case <-done:
				return
			}
		}
	}()
	list := r.prefix
	if r.only != "" && utf8.ValidString(r.only) {
		// Keys of paths under only start with its key (escaping valid
		// UTF-8 is the same piece by piece); others are filtered below.
		list = manifest.Key(r.prefix, r.only)
	}
	return r.s3.EachObject(ctx, list, concurrency, r.object)
}

const progressEvery = 10 * time.Second

func (r *restorer) summary() string {
	s := fmt.Sprintf("%s restored (%s)", count(r.restored.Load(), "file", "files"), humanBytes(r.bytes.Load()))
	if n := r.same.Load(); n > 0 {
		s += fmt.Sprintf("; %s already there with the same content", thousands(n))
	}
	if n := r.failed.Load(); n > 0 {
		s += fmt.Sprintf("; %s failed or refused", thousands(n))
	}
	return s
}

// object restores one listed object, or reports why not. It returns an
// error only to end the restore: a fatal one, or ctx's.
func (r *restorer) object(ctx context.Context, o uploader.ObjectInfo) error {
	rel, err := manifest.PathOfKey(r.prefix, o.Key, o.Size)
	switch {
	case errors.Is(err, manifest.ErrFolderMarker):
		return nil
	case err != nil:
		r.failed.Add(1)
		r.p.log.Error("refused", "key", showKey(o.Key), "reason", err.Error())
		return nil
	case r.only != "" && rel != r.only && !strings.HasPrefix(rel, r.only+"/"):
		return nil
	}
	if err := r.restore(ctx, rel, o); err != nil {
		if uploader.IsFatal(err) || ctx.Err() != nil {
			return err
		}
		r.failed.Add(1)
		r.p.log.Error("cannot restore", "path", display(rel), "error", err.Error())
	}
	return nil
}

// errExists is a file in the way, which only --overwrite replaces.
var errExists = errors.New("already exists, with other content: not overwritten (--overwrite replaces it)")

// restore downloads the object o to rel: into a temporary file, checked
// against the object's BLAKE3, given its mode and mtime, then put in
// place.
func (r *restorer) restore(ctx context.Context, rel string, o uploader.ObjectInfo) error {
	if fi, err := r.root.Lstat(rel); err == nil {
		if !r.overwrite {
			if r.sameContent(ctx, rel, fi, o) {
				r.same.Add(1)
				r.p.log.Debug("already restored", "path", display(rel))
				return nil
			}
			return errExists
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := path.Dir(rel)
	if dir != "." {
		if err := r.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	body, meta, err := r.s3.Get(ctx, o.Key)
	if err != nil {
		return err
	}
	defer body.Close()
	if meta.HashErr != nil {
		return fmt.Errorf("its bytes cannot be checked, not restored: %w", meta.HashErr)
	}
	tmp := path.Join(dir, ".cloudkeeper-restore-"+strings.ToLower(rand.Text()[:16]))
	f, err := r.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	placed := false
	defer func() {
		if !placed {
			f.Close()
			r.root.Remove(tmp)
		}
	}()
	sum, n, err := copyHashed(f, body, meta.Size)
	switch {
	case err != nil:
		return fmt.Errorf("download %s: %w", o.Key, err)
	case n != meta.Size:
		return fmt.Errorf("download %s: got %d bytes of %d, not restored", o.Key, n, meta.Size)
	case sum != meta.Hash:
		return fmt.Errorf("its bytes hash to %s, not to its x-amz-meta-blake3 %s: not restored", sum, meta.Hash)
	}
	mode := meta.Mode
	if meta.ModeErr != nil {
		mode = 0o644
		r.p.log.Warn("restored with mode 0644", "path", display(rel), "error", meta.ModeErr.Error())
	}
	// On the open file: a chmod by name could follow a symlink put there.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if meta.MtimeErr == nil {
		mtime := time.Unix(0, meta.MtimeNs)
		if err := r.root.Chtimes(tmp, mtime, mtime); err != nil {
			return err
		}
	} else {
		r.p.log.Warn("restored with the time of restoring as its mtime", "path", display(rel), "error", meta.MtimeErr.Error())
	}
	if err := r.place(tmp, rel); err != nil {
		return err
	}
	placed = true
	r.restored.Add(1)
	r.bytes.Add(meta.Size)
	if !r.p.quiet {
		r.p.println(fmt.Sprintf("restore %s (%s)", display(rel), humanBytes(meta.Size)))
	}
	return nil
}

// place renames the checked temporary file to rel. Without --overwrite it
// hard-links instead, which fails where rel exists (a rename would replace
// it): a file that appeared since the check is not overwritten either.
func (r *restorer) place(tmp, rel string) error {
	if r.overwrite {
		return r.root.Rename(tmp, rel)
	}
	err := r.root.Link(tmp, rel)
	if errors.Is(err, fs.ErrExist) {
		return errExists
	}
	if err != nil {
		// No hard links on this file system: check, then rename.
		if _, lerr := r.root.Lstat(rel); lerr == nil {
			return errExists
		}
		return r.root.Rename(tmp, rel)
	}
	if err := r.root.Remove(tmp); err != nil {
		r.p.log.Warn("restored, but the temporary file is left", "path", display(tmp), "error", err.Error())
	}
	return nil
}

// sameContent reports whether the file at rel is a regular file that
// already holds the object's content (a restore run again), to be left as
// it is.
func (r *restorer) sameContent(ctx context.Context, rel string, fi fs.FileInfo, o uploader.ObjectInfo) bool {
	if !fi.Mode().IsRegular() || fi.Size() != o.Size {
		return false
	}
	meta, err := r.s3.Head(ctx, o.Key)
	if err != nil || meta.HashErr != nil {
		return false
	}
	f, err := r.root.Open(rel)
	if err != nil {
		return false
	}
	defer f.Close()
	sum, n, err := copyHashed(io.Discard, f, o.Size)
	return err == nil && n == o.Size && sum == meta.Hash
}

// copyHashed copies up to size+1 bytes from src to dst (io.Discard to only
// hash them) and returns the BLAKE3 of what it copied and how many bytes:
// a body longer than size shows as size+1.
func copyHashed(dst io.Writer, src io.Reader, size int64) (scanner.Digest, int64, error) {
	h := blake3.New()
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(io.MultiWriter(dst, h), io.LimitReader(src, size+1), buf)
	var sum scanner.Digest
	h.Sum(sum[:0])
	return sum, n, err
}

// showKey is how a key read from the bucket is shown on one line: as it
// is, or quoted if it holds anything but printable characters.
func showKey(k string) string {
	if utf8.ValidString(k) && !strings.ContainsFunc(k, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return k
	}
	return strconv.Quote(k)
}
