package mirror

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// nothingBeforeTheWalk reports whether a real run has nothing to ask S3
// before its walk: it is not a first run (whose check refuses a prefix
// that holds objects), and has no key in doubt to settle, no multipart
// upload of an interrupted run to look at, no reconcile due. Its bucket
// check can then go out beside the walk instead of before it, which saves
// a round trip on every run that writes.
func (r *run) nothingBeforeTheWalk(ctx context.Context) (bool, error) {
	if first, err := newManifest(ctx, r.db, r.res.RunID); err != nil || first {
		return false, err
	}
	doubts, err := r.db.Doubts(ctx)
	if err != nil || len(doubts) > 0 {
		return false, err
	}
	ups, err := r.db.PartialUploads(ctx)
	if err != nil || len(ups) > 0 {
		return false, err
	}
	due, err := r.due(ctx)
	return !due, err
}

// checkedBucket holds every write back until the bucket check has
// answered (uploader.S3.Check asks once; later calls wait for that answer),
// and makes a failed check end the run: a run proves the bucket is there
// and the credentials work before it writes anything.
type checkedBucket struct {
	uploader.Bucket
	check func(context.Context) error
}

func (b checkedBucket) wait(ctx context.Context) error {
	err := b.check(ctx)
	if err != nil && !uploader.IsFatal(err) {
		return &uploader.FatalError{Msg: err.Error(), Err: err}
	}
	return err
}

func (b checkedBucket) Upload(ctx context.Context, u uploader.Upload) (uploader.Written, error) {
	if err := b.wait(ctx); err != nil {
		return uploader.Written{}, err
	}
	return b.Bucket.Upload(ctx, u)
}

func (b checkedBucket) Copy(ctx context.Context, from string, o uploader.Object) (uploader.Written, error) {
	if err := b.wait(ctx); err != nil {
		return uploader.Written{}, err
	}
	return b.Bucket.Copy(ctx, from, o)
}

func (b checkedBucket) Delete(ctx context.Context, keys []string) ([]uploader.KeyError, error) {
	if err := b.wait(ctx); err != nil {
		return nil, err
	}
	return b.Bucket.Delete(ctx, keys)
}

// checkedJournal holds every intent back until the bucket check has
// answered: a run whose check fails marks nothing in doubt, and the next
// one has nothing of it to settle.
type checkedJournal struct {
	manifest.Journal
	bucket checkedBucket
}

func (j checkedJournal) Intend(ctx context.Context, intents []manifest.Intent) error {
	if err := j.bucket.wait(ctx); err != nil {
		return err
	}
	return j.Journal.Intend(ctx, intents)
}

// checkBeside starts the bucket check in g, beside the walk, when it was
// left for the walk to overlap, and returns the bucket and the journal the
// applier uses: bucket and journal, or both holding their writes and
// intents for the check's answer. A failed check ends the pipeline, the
// walk too.
func (r *run) checkBeside(ctx context.Context, g *errgroup.Group, bucket uploader.Bucket, journal manifest.Journal) (uploader.Bucket, manifest.Journal) {
	if !r.checkLater {
		return bucket, journal
	}
	checked := checkedBucket{Bucket: bucket, check: r.s3.Check}
	g.Go(func() error { return checked.wait(ctx) })
	return checked, checkedJournal{Journal: journal, bucket: checked}
}
