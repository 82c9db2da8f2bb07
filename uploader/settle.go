package uploader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// SettleBucket is what settling the keys in doubt needs of the bucket.
type SettleBucket interface {
	// Head returns the object's size and metadata, or an error wrapping
	// ErrNotFound.
	Head(ctx context.Context, key string) (ObjectMeta, error)
	// AbortUploadsOf aborts every unfinished multipart upload of key
	// but keep (the one the manifest records, which this run may
	// continue), and returns how many it aborted and whether it found
	// keep.
	AbortUploadsOf(ctx context.Context, key, keep string) (aborted int, kept bool, err error)
	// Delete deletes keys (a history copy that keeps nothing).
	Delete(ctx context.Context, keys []string) ([]KeyError, error)
}

// Settled counts what settling found.
type Settled struct {
	Found, Gone int // keys S3 holds an object at, and keys it does not
	Aborted     int // multipart uploads aborted
	Kept        int // recorded multipart uploads left for this run to continue
	Failed      int // keys left in doubt (their error went to warn)
	// History counts the history copies in doubt found and recorded,
	// and those found that kept nothing the history knows, deleted.
	History, HistoryDeleted int
	Rechecked               int // keys settled before, looked at again (SettleWatch)
	// RecheckedSince is the last intent of the Rechecked keys: when the
	// run that marked them was interrupted, about. Their watch ends
	// SettleWatch after it.
	RecheckedSince time.Time
}

// SettleWatch is how long after a killed run's last intent its keys are
// looked at again by the runs that follow, though settled: a request sent
// just before the kill can reach the server after the next run asked
// about its key (a multipart upload created then would be billed for
// good). Bounded by how long a request can take to arrive; the SDK gives
// up on one long before.
const SettleWatch = 15 * time.Minute

// Settle asks S3 what it holds at each key the manifest is in doubt about
// (a run was killed or lost an answer between sending a change and
// recording it) and records that: one HEAD per key, and for a key that may
// have had a multipart upload started, one listing of that key's uploads,
// which are aborted, but for the one the manifest records: that one is kept
// for the upload of the key to continue, and aborted at the run's end if it
// does not (AbortLeftUploads). Keys that cannot be settled now stay in doubt for the
// next run, though this run writes or deletes them (manifest's SettleFailed),
// and are told to warn; fatal errors end it.
func Settle(ctx context.Context, db *manifest.DB, b SettleBucket, prefix string, concurrency int, warn func(path string, err error)) (Settled, error) {
	// History copies first: the versions they keep are still current.
	var res Settled
	var err error
	if res.History, res.HistoryDeleted, err = settleHistory(ctx, db, b, warn); err != nil {
		return res, err
	}
	doubts, err := db.Doubts(ctx)
	if err != nil || len(doubts) == 0 {
		return res, err
	}
	recorded, err := db.PartialUploads(ctx)
	if err != nil {
		return res, err
	}
	keep := map[string]string{}
	for _, u := range recorded {
		keep[u.Key] = u.UploadID
	}
	var (
		mu     sync.Mutex
		found  []manifest.Found
		failed []string
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for _, d := range doubts {
		g.Go(func() error {
			key := manifest.Key(prefix, d.Path)
			f, aborted, kept, err := settleOne(gctx, b, key, keep[key], d)
			f.Watch = !d.Answered && time.Since(d.Since) < SettleWatch
			mu.Lock()
			defer mu.Unlock()
			res.Aborted += aborted
			if kept {
				res.Kept++
			}
			if d.Settled && err == nil {
				res.Rechecked++
				if d.Since.After(res.RecheckedSince) {
					res.RecheckedSince = d.Since
				}
				found = append(found, f)
				return nil
			}
			switch {
			case IsFatal(err) || errors.Is(err, context.Canceled):
				return err
			case err != nil:
				res.Failed++
				failed = append(failed, d.Path)
				warn(d.Path, err)
			case f.Object == nil:
				res.Gone++
				found = append(found, f)
			default:
				res.Found++
				found = append(found, f)
			}
			return nil
		})
	}
	err = g.Wait()
	// What was learnt is recorded even if the rest failed, and so are
	// the keys that must stay in doubt though this run writes them.
	serr := db.Settle(context.WithoutCancel(ctx), found)
	if serr == nil {
		serr = db.SettleFailed(context.WithoutCancel(ctx), failed)
	}
	if err == nil {
		err = serr
	}
	return res, err
}

func settleOne(ctx context.Context, b SettleBucket, key, keep string, d manifest.Intent) (f manifest.Found, aborted int, kept bool, err error) {
	if d.Multipart {
		if aborted, kept, err = b.AbortUploadsOf(ctx, key, keep); err != nil {
			return manifest.Found{}, aborted, kept, err
		}
	}
	meta, err := b.Head(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return manifest.Found{Path: d.Path}, aborted, kept, nil
	}
	if err != nil {
		return manifest.Found{}, aborted, kept, err
	}
	e := meta.Entry(d.Path)
	return manifest.Found{Path: d.Path, Object: &e}, aborted, kept, nil
}

// AbortUploadsOf aborts the unfinished multipart uploads of key exactly
// but keep (one listing of the uploads under key, then one abort each).
func (b *S3) AbortUploadsOf(ctx context.Context, key, keep string) (n int, kept bool, err error) {
	if err := b.Check(ctx); err != nil {
		return 0, false, err
	}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(b.bucket), Prefix: aws.String(key)}
	for {
		out, err := b.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return n, kept, b.opError("list multipart uploads of", key, err)
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) != key {
				continue // another key that starts with this one
			}
			if keep != "" && aws.ToString(u.UploadId) == keep {
				kept = true
				continue
			}
			if err := b.sendAbort(ctx, key, aws.ToString(u.UploadId)); err != nil {
				return n, kept, b.opError(fmt.Sprintf("abort multipart upload %s of", aws.ToString(u.UploadId)), key, err)
			}
			n++
		}
		if !aws.ToBool(out.IsTruncated) {
			return n, kept, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// isNoSuchUpload is an abort of an upload that is already gone.
func isNoSuchUpload(err error) bool {
	var nu *types.NoSuchUpload
	var ae smithy.APIError
	return errors.As(err, &nu) || errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}

// settleHistory asks S3 about each history copy an interrupted run left in
// doubt (one HEAD each) and records it on the version it keeps; a copy that
// keeps no version the history knows is deleted. A copy that cannot be
// asked about stays in doubt, told to warn.
func settleHistory(ctx context.Context, db *manifest.DB, b SettleBucket, warn func(path string, err error)) (recorded, deleted int, err error) {
	doubts, err := db.HistoryDoubts(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, c := range doubts {
		attached, removed, err := settleHistoryCopy(ctx, db, b, c)
		switch {
		case IsFatal(err) || ctx.Err() != nil:
			return recorded, deleted, err
		case err != nil:
			warn(c.Of.Path, err)
		case attached:
			recorded++
		case removed:
			deleted++
		}
	}
	return recorded, deleted, nil
}

// settleHistoryCopy settles one history copy in doubt: recorded if it is
// there with the content the doubt says and a version of that content has
// no copy yet; deleted if it is there otherwise. A large one's unfinished
// multipart uploads are aborted first.
//
// A copy the killed run may still have on its way (as SettleWatch says) is
// looked for again by the runs that follow, until it is recorded or the
// watch ends: one that lands after this run copied the version again
// keeps nothing, and is deleted then.
func settleHistoryCopy(ctx context.Context, db *manifest.DB, b SettleBucket, c manifest.HistoryCopy) (attached, deleted bool, err error) {
	watch := !c.Answered && time.Since(c.Since) < SettleWatch
	if c.Of.Stat.Size >= manifest.MinPartSize {
		// Copied in parts, maybe (see S3.Copy): a multipart upload
		// the kill cut off is billed until aborted.
		if _, _, err := b.AbortUploadsOf(ctx, c.Key, ""); err != nil {
			return false, false, fmt.Errorf("history copy %s: %w", c.Key, err)
		}
	}
	meta, err := b.Head(ctx, c.Key)
	if errors.Is(err, ErrNotFound) {
		if !watch {
			_, err = db.SettleHistory(ctx, c, false)
		}
		return false, false, err
	}
	if err != nil {
		return false, false, fmt.Errorf("history copy %s: %w", c.Key, err)
	}
	if meta.HashErr == nil && meta.Hash == c.Of.Hash {
		if attached, err = db.SettleHistory(ctx, c, true); attached || err != nil {
			return attached, false, err
		}
	}
	failed, err := b.Delete(ctx, []string{c.Key})
	if err == nil && len(failed) > 0 {
		err = failed[0]
	}
	if err != nil {
		return false, false, fmt.Errorf("history copy %s, which keeps no version: %w", c.Key, err)
	}
	if !watch {
		_, err = db.SettleHistory(ctx, c, false)
	}
	return false, err == nil, err
}
