package mirror

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/cost"
)

// report is Options.Report, counting the objects each applied change
// replaces (for the charge of a minimum storage duration).
func (r *run) report(res uploader.Result) {
	if res.Err == nil {
		r.res.Replaced.AddChange(res.Change, time.Now())
	}
	if r.o.Report != nil {
		r.o.Report(res)
	}
}

// countRequests sets the result's requests: those the client sent (and,
// in a dry run, those its bucket would have sent), with what a dry run
// predicts of the steps it skips.
func (r *run) countRequests() {
	if r.s3 != nil {
		r.res.Requests = r.s3.Requests().Plus(r.predicted)
	}
}

// predictSkipped counts, in a dry run, the requests of the steps the real
// run would take before its diff and the dry run does not: the settle of
// keys in doubt and a reconcile that is only due. (A first run's look for
// objects in the prefix, one LIST, the dry run sends itself.) What cannot
// be known without asking S3 is said in Result.Approximated.
func (r *run) predictSkipped(ctx context.Context) error {
	doubts, err := r.db.Doubts(ctx)
	if err != nil {
		return err
	}
	r.sayDoubts(doubts)
	if err := r.sayResumes(ctx); err != nil {
		return err
	}
	for _, d := range doubts {
		r.predicted.Add("HeadObject", 1)
		if d.Multipart {
			r.predicted.Add("ListMultipartUploads", 1)
		}
	}
	if r.o.Reconcile {
		return nil // the dry run reconciles too: its requests were sent
	}
	due, err := r.dueForRealRun(ctx)
	if err != nil {
		return err
	}
	if !due {
		return r.predictFirstRun(ctx)
	}
	r.predicted.Add("GetBucketVersioning", 1)
	objects, _, err := r.db.Count(ctx)
	if err != nil {
		return err
	}
	r.predicted.Add("ListObjectsV2", max(1, (objects+999)/1000))
	r.approximate("a reconcile is due: the real run first lists the prefix (counted: one LIST per 1,000 of the manifest's objects), " +
		"sends a HEAD for each object it does not know and repairs what it finds (neither counted), and asks the bucket's versioning (counted; " +
		"with versioning on, objects recorded without their version id get it from a listing of versions, not counted)")
	return nil
}

// predictFirstRun counts, in a dry run of a first run, the check of the
// bucket's versioning that the real run makes at its end.
func (r *run) predictFirstRun(ctx context.Context) error {
	if r.o.Scopes != nil || r.o.AllowExisting {
		return nil
	}
	first, err := newManifest(ctx, r.db, 0)
	if err == nil && first {
		r.predicted.Add("GetBucketVersioning", 1)
	}
	return err
}

// sayDoubts tells, in a dry run, of the keys in doubt the real run asks S3
// about: those an interrupted run left and no run settled yet, and those
// settled already but still watched (see uploader.SettleWatch).
func (r *run) sayDoubts(doubts []manifest.Intent) {
	unsettled, watched := 0, 0
	var since time.Time
	for _, d := range doubts {
		if !d.Settled {
			unsettled++
			continue
		}
		watched++
		if d.Since.After(since) {
			since = d.Since
		}
	}
	const asks = "(counted: a HEAD each, and a listing of the multipart uploads of those that may have one), then aborts the uploads it finds (not counted) " +
		"and diffs with what it learnt, which may change what it sends"
	if unsettled > 0 {
		r.o.Log.Info("an interrupted run left keys in doubt: the next real run asks S3 about them first", "keys", unsettled)
		r.approximate(fmt.Sprintf("keys left in doubt by an interrupted run (%d): the real run first asks S3 about them %s", unsettled, asks))
	}
	if watched > 0 {
		window := watchWindow(since, ", watched until ")
		r.o.Log.Info(fmt.Sprintf("the next real run asks S3 again about %s of a run interrupted at %s (settled already; a request sent just before the interruption may still land)",
			keys(watched), window))
		r.approximate(fmt.Sprintf("keys of a run interrupted at %s, settled already (%d): the real run asks S3 about them again %s", window, watched, asks))
	}
}

// sayResumes tells, in a dry run, of the multipart uploads a killed run
// left: those the real run continues are counted from the parts the
// manifest recorded, which S3 is taken to hold (the dry run does not ask).
func (r *run) sayResumes(ctx context.Context) error {
	ups, err := r.db.PartialUploads(ctx)
	if err != nil || len(ups) == 0 {
		return err
	}
	r.approximate(fmt.Sprintf("multipart uploads an interrupted run left (%d): one the real run continues is counted with the parts the manifest recorded; "+
		"it first asks S3 which parts it holds (a ListParts, counted) and sends again those S3 no longer has, or the whole file if the upload is gone", len(ups)))
	return nil
}

func (r *run) approximate(s string) { r.res.Approximated = append(r.res.Approximated, s) }

// Estimate prices the run's requests and the objects it replaced at p.
func (res Result) Estimate(p cost.Prices) cost.Estimate {
	return p.Estimate(res.Requests, res.Replaced)
}
