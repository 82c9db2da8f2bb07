// Package prune removes from the bucket the old versions the history no
// longer keeps: the non-current versions past the retention (--keep), by
// version id where the bucket has versioning, their copies where it has
// not. A current version is never removed, nor one whose Object Lock
// retention has not ended. Each version is marked in the manifest before
// its delete goes out and forgotten only once S3 confirmed it (see
// manifest.PrunePlan): a kill in between is settled by the next prune.
package prune

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// Bucket is what a prune needs of the bucket (uploader.S3 is one).
type Bucket interface {
	// DeleteVersions deletes up to uploader.MaxDeleteBatch versions in
	// one request, and returns those it did not delete.
	DeleteVersions(ctx context.Context, refs []uploader.VersionRef) ([]uploader.VersionError, error)
	// VersionGone reports whether S3 no longer has a version (one whose
	// delete it refused).
	VersionGone(ctx context.Context, ref uploader.VersionRef) (bool, error)
}

// Options are a prune's settings.
type Options struct {
	DB     *manifest.DB
	Bucket Bucket // not used by a dry run
	Prefix string // normalized key prefix
	Keep   manifest.Keep
	Now    time.Time // the time the Keep counts from; zero: time.Now()
	DryRun bool      // say what would go; delete and forget nothing
	// Removed is told of each version deleted (a dry run: that would
	// be), Locked of each kept only for its retention, Failed of each S3
	// did not delete. Each may be nil; calls come one at a time.
	Removed, Locked func(manifest.OldVersion)
	Failed          func(manifest.OldVersion, error)
}

// Result is what a prune freed (a dry run: would free).
type Result struct {
	DryRun   bool  `json:"dry_run"`
	Versions int64 `json:"versions"` // removed
	Bytes    int64 `json:"bytes"`
	Locked   int64 `json:"locked"` // past the Keep, kept until their retention ends
	Kept     int64 `json:"kept"`   // the non-current versions the Keep keeps
	Errors   int64 `json:"errors"` // versions S3 did not delete, or whose answer was lost
}

// batches is the most DeleteObjects in flight, as the applier's deletes.
const batches = 4

// Run prunes. It returns an error for a failure of the manifest, or of a
// whole request that is fatal (uploader.IsFatal) or cancelled; the
// versions of a failed request stay marked, to go next time.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	res := Result{DryRun: o.DryRun}
	plan, err := o.DB.PrunePlan(ctx, o.Keep, o.Now)
	if err != nil {
		return res, err
	}
	res.Kept = plan.Kept
	p := &pruner{o: o, res: &res}
	for _, v := range plan.Locked {
		p.locked(v)
	}
	if o.DryRun {
		for _, v := range plan.Remove {
			p.removed(v)
		}
		res.Kept += int64(len(plan.Doubt)) // as far as a dry run knows
		return res, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batches)
	for _, v := range plan.Doubt {
		g.Go(func() error { return p.doubt(gctx, v) })
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(batches)
	for rest := plan.Remove; len(rest) > 0; {
		n := min(len(rest), uploader.MaxDeleteBatch)
		batch := rest[:n:n]
		rest = rest[n:]
		g.Go(func() error { return p.batch(gctx, batch) })
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	return res, o.DB.SetPruned(ctx, o.Now)
}

// pruner is the state of one Run: its batches report one at a time.
type pruner struct {
	o   Options
	mu  sync.Mutex
	res *Result
}

func (p *pruner) locked(v manifest.OldVersion) {
	p.res.Locked++
	if p.o.Locked != nil {
		p.o.Locked(v)
	}
}

func (p *pruner) removed(v manifest.OldVersion) {
	p.res.Versions++
	p.res.Bytes += v.Size
	if p.o.Removed != nil {
		p.o.Removed(v)
	}
}

func (p *pruner) failed(v manifest.OldVersion, err error) {
	p.res.Errors++
	if p.o.Failed != nil {
		p.o.Failed(v, err)
	}
}

// ref is where S3 keeps v: its version of the path's key, or its copy.
func (p *pruner) ref(v manifest.OldVersion) uploader.VersionRef {
	if v.VersionID != "" {
		return uploader.VersionRef{Key: manifest.Key(p.o.Prefix, v.Path), VersionID: v.VersionID}
	}
	return uploader.VersionRef{Key: v.HistoryKey}
}

// batch deletes one batch of versions: marked first, forgotten once S3
// confirmed; a version S3 refused is unmarked (a locked one reported as
// kept), one of a request that failed stays marked.
func (p *pruner) batch(ctx context.Context, batch []manifest.OldVersion) error {
	ids := make([]int64, len(batch))
	refs := make([]uploader.VersionRef, len(batch))
	for i, v := range batch {
		ids[i], refs[i] = v.ID, p.ref(v)
	}
	if err := p.db(func() error { return p.o.DB.MarkPruning(ctx, ids, p.o.Now) }); err != nil {
		return err
	}
	refused, err := p.o.Bucket.DeleteVersions(ctx, refs)
	if err != nil {
		if uploader.IsFatal(err) || ctx.Err() != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, v := range batch {
			p.failed(v, err)
		}
		return nil
	}
	bad := make(map[uploader.VersionRef]uploader.VersionError, len(refused))
	for _, e := range refused {
		if !e.Locked && !e.Gone {
			// Refused, or not there any more (a delete of a killed prune
			// that S3 applied; a lifecycle rule's expiry)?
			gone, err := p.o.Bucket.VersionGone(ctx, e.VersionRef)
			if err != nil && (uploader.IsFatal(err) || ctx.Err() != nil) {
				return err
			}
			e.Gone = gone
		}
		bad[e.VersionRef] = e
	}
	var gone, kept []int64
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, v := range batch {
		e, refused := bad[refs[i]]
		switch {
		case !refused || e.Gone:
			gone = append(gone, v.ID)
			p.removed(v)
		case e.Locked:
			kept = append(kept, v.ID)
			p.locked(v)
		default:
			kept = append(kept, v.ID)
			p.failed(v, e)
		}
	}
	if err := p.o.DB.UnmarkPruning(ctx, kept); err != nil {
		return err
	}
	return p.o.DB.ForgetVersions(ctx, gone)
}

// doubt settles a version a prune marked and did not record, which the
// Keep keeps: gone (S3 applied that delete), it is forgotten and counted
// removed; still there, it is unmarked and kept.
func (p *pruner) doubt(ctx context.Context, v manifest.OldVersion) error {
	gone, err := p.o.Bucket.VersionGone(ctx, p.ref(v))
	if err != nil {
		if uploader.IsFatal(err) || ctx.Err() != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.failed(v, err) // stays marked: asked again next time
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if gone {
		p.removed(v)
		return p.o.DB.ForgetVersions(ctx, []int64{v.ID})
	}
	p.res.Kept++
	return p.o.DB.UnmarkPruning(ctx, []int64{v.ID})
}

// db runs a write of the manifest, one at a time across the batches.
func (p *pruner) db(write func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return write()
}
