package mirror

import (
	"context"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/prune"
)

// pruneIfDue prunes at the end of a real full run that went well, if its
// last prune is older than PruneEvery. A failed prune makes the run
// incomplete; the next run tries again.
func (r *run) pruneIfDue(ctx context.Context) {
	o, res := r.o, r.res
	if o.PruneEvery <= 0 || !o.Keep.On() || o.DryRun || o.Scopes != nil || res.Err != nil {
		return
	}
	last, ok, err := r.db.LastPruned(ctx)
	if err == nil && ok && res.Started.Sub(last) < o.PruneEvery {
		return
	}
	if err == nil && r.writer != nil {
		// Every version this run wrote or ended is in the history first.
		err = r.writer.Close()
		r.writer = nil
	}
	var pr prune.Result
	if err == nil {
		pr, err = prune.Run(ctx, prune.Options{DB: r.db, Bucket: r.s3, Prefix: o.Identity.Prefix, Keep: o.Keep,
			Locked: func(v manifest.OldVersion) {
				o.Log.Info("old version kept: locked", "path", manifest.EscapePath(v.Path), "version", v.VersionID, "until", v.RetainUntil.Format(time.RFC3339))
			},
			Failed: func(v manifest.OldVersion, err error) {
				o.Log.Warn("could not prune an old version", "path", manifest.EscapePath(v.Path), "version", v.VersionID, "error", err.Error())
			}})
	}
	res.Pruned = &pr
	res.Errors += pr.Errors
	if err != nil {
		o.Log.Error("the prune failed; the next run tries again", "error", err.Error())
		res.Errors++
	}
}
