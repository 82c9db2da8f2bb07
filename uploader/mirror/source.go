package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SourceError is why a run did not start: its source folder is not there
// (an unmounted disk) or is not a folder. Such a run sends no request; it
// is recorded as failed in a manifest that exists, and a manifest it would
// create is not left behind.
type SourceError struct {
	Path string
	Err  error
}

var errNotFolder = errors.New("not a folder")

func (e *SourceError) Error() string {
	switch {
	case errors.Is(e.Err, fs.ErrNotExist):
		return fmt.Sprintf("source folder %s does not exist (is the disk mounted?)", e.Path)
	case errors.Is(e.Err, errNotFolder):
		return fmt.Sprintf("source %s is not a folder", e.Path)
	}
	return fmt.Sprintf("cannot read source folder %s: %v", e.Path, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

// CheckSource returns a *SourceError unless dir is a folder that is there.
func CheckSource(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		err = errNotFolder
	}
	if err != nil {
		return &SourceError{Path: dir, Err: err}
	}
	return nil
}

// checkSource fails the run if its source is not there, before anything
// else: before the first-run check of the prefix (whose message would
// mislead) and before any request. A new manifest is removed again; a
// real run on one that exists is recorded as failed.
func (r *run) checkSource(ctx context.Context) error {
	err := CheckSource(r.o.Identity.Source)
	if err == nil || r.o.DryRun {
		return err
	}
	if r.fresh() {
		r.abandon()
		return err
	}
	id, rerr := r.db.StartRun(ctx, r.res.Started)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	r.res.RunID, r.recording = id, true
	return err
}
