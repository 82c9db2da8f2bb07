package uploader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Result is the outcome of one change, reported once it is applied and
// recorded, or has failed.
type Result struct {
	Change manifest.Change
	Err    error
	Bytes  int64 // content bytes uploaded
	// Kept is the bytes of an upload a killed run left that the bucket
	// held already and were not sent again (see Written): a resumed
	// upload's.
	Kept int64
	// Note, if set, says why the change was applied otherwise than its
	// Op says (a copy whose source was gone, uploaded instead).
	Note string
}

// Summary counts what a run applied: the adds, modifies, renames, copies
// and deletes, the bytes uploaded and the changes that failed (Unchanged is
// the diff's to count). It is the manifest's one type for a run's counts.
type Summary = manifest.Counts

// Applier applies changes to a Bucket and records them in a Journal.
type Applier struct {
	Bucket  Bucket
	Journal manifest.Journal
	Root    string // the source folder the changes' paths are relative to
	Prefix  string // normalized key prefix
	// Concurrency is the number of changes applied at once. Default
	// AutoConcurrency: the Bucket bounds what is in flight (requests and
	// bytes), so that a worker waiting on a round trip costs a goroutine.
	Concurrency int
	// FS is what files are read through to upload them: the FS the diff
	// hashed them through (a scanner.OS that follows symlinks if the scan
	// did). nil means scanner.OS{}.
	FS scanner.FS
	// Report receives every Result, one call at a time.
	Report func(Result)
	// Queued, if set, is told of each change as it arrives (for progress
	// displays).
	Queued func(manifest.Change)
	// Resumes, if set, records multipart uploads as they go, so that the
	// next run continues one a kill cut off (the manifest of a real run;
	// see S3.Upload).
	Resumes Resumes
	// History, if set, keeps a copy of each object overwritten or
	// deleted that S3 does not keep as a version (see History).
	History *History

	mu      sync.Mutex
	sum     Summary
	deletes []pending // deletes, and renames waiting for their old key's delete
	// conflicts are writes the server refused until old keys are gone
	// (see ErrKeyConflict): tried again, as uploads, after the deletes.
	conflicts []pending
	// sources holds back the copies of content this run writes, until it
	// is written (manifest.Change.FromRun).
	sources *sources
	// recording counts changes handed to the Journal and not yet committed.
	recording sync.WaitGroup
	// stop ends the run with the Journal's error: what S3 confirms can
	// no longer be recorded.
	stop context.CancelCauseFunc
}

// pending is a change with its place in the input, so that the deletes go
// out in the diff's order (batches of it, deleteBatches at once).
type pending struct {
	seq int
	manifest.Change
	retry bool // second attempt after a key conflict
	// note says why the change is applied otherwise than its Op said: a
	// rename's upload, if its source was gone (reported with its delete),
	// or a copy whose source this run failed to write (see sources).
	note       string
	sent, kept int64
	saved      bool // the object it overwrites is kept already (see History)
}

// Run applies the changes from ch until it is closed: uploads, copies and
// renames' copies on the pool as they come, then, once all of those are
// done, the deletes (including the old keys of renames) in batches of
// MaxDeleteBatch. A copy of content written by this run (FromRun) starts
// once S3 answered that write; if the write failed, the copy uploads its own
// file instead. A change is recorded in the Journal only after the bucket
// confirmed it, and reported once recorded. Failures of single changes are
// reported and counted; Run returns an error only for fatal ones (see
// FatalError), a Journal failure, or a cancelled ctx.
func (a *Applier) Run(ctx context.Context, changes <-chan manifest.Change) (Summary, error) {
	if a.Concurrency <= 0 {
		a.Concurrency = AutoConcurrency
	}
	if a.Report == nil {
		a.Report = func(Result) {}
	}
	ctx, a.stop = context.WithCancelCause(ctx)
	defer a.stop(nil)
	a.sources = newSources()
	err := a.pool(ctx, func(g *errgroup.Group, gctx context.Context) error {
		seq := 0
		for {
			batch, more, err := a.take(gctx, changes)
			if err != nil {
				return err
			}
			a.startReady(g, gctx)
			var intents []manifest.Intent
			var start []pending
			for _, ch := range batch {
				seq++
				if a.Queued != nil {
					a.Queued(ch)
				}
				p := pending{seq: seq, Change: ch}
				if ch.Op == manifest.OpDelete {
					a.mu.Lock()
					a.deletes = append(a.deletes, p)
					a.mu.Unlock()
					continue
				}
				if sendsRequest(ch) {
					intents = append(intents, manifest.IntentFor(ch.Entry))
				}
				start = append(start, p)
			}
			// Intent before effect: one commit for the batch, so
			// that no worker waits on SQLite for its object.
			if err := a.Journal.Intend(gctx, intents); err != nil {
				return err
			}
			if err := a.start(g, gctx, start); err != nil {
				return err
			}
			if !more {
				return a.startHeld(g, gctx)
			}
		}
	})
	if err == nil {
		err = a.deleteAll(ctx)
	}
	if err == nil && len(a.conflicts) > 0 {
		// Old keys are gone: write what they were in the way of. Copies
		// become uploads: their source may have been one of the deletes.
		conflicts := a.conflicts
		a.conflicts = nil
		err = a.pool(ctx, func(g *errgroup.Group, gctx context.Context) error {
			for _, p := range conflicts {
				p.retry = true
				g.Go(func() error { return a.apply(gctx, p) })
			}
			return nil
		})
		if err == nil {
			err = a.deleteAll(ctx)
		}
	}
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		err = cause // the Journal failed
	}
	return a.sum, err
}

// intentBatch is the most changes whose keys are marked in doubt with one
// commit.
const intentBatch = 256

// take waits for the next change, then takes those that are ready too, up
// to intentBatch; or returns none when a held copy can start. more is false
// once changes is closed.
func (a *Applier) take(ctx context.Context, changes <-chan manifest.Change) (batch []manifest.Change, more bool, err error) {
	select {
	case ch, ok := <-changes:
		if !ok {
			return nil, false, nil
		}
		batch = append(batch, ch)
	case <-a.sources.wake:
		return nil, true, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	for len(batch) < intentBatch {
		select {
		case ch, ok := <-changes:
			if !ok {
				return batch, false, nil
			}
			batch = append(batch, ch)
		default:
			return batch, true, nil
		}
	}
	return batch, true, nil
}

// start starts the changes of a batch, in order, but for the copies held
// until their source is written (see sources).
func (a *Applier) start(g *errgroup.Group, ctx context.Context, batch []pending) error {
	for _, p := range batch {
		if !a.sources.hold(&p) {
			g.Go(func() error { return a.apply(ctx, p) })
		} else if a.Concurrency == 1 {
			// One at a time (a dry run): keep the diff's order.
			if err := a.startHeld(g, ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// startReady starts the held copies whose source S3 answered.
func (a *Applier) startReady(g *errgroup.Group, ctx context.Context) (held int) {
	ready, held := a.sources.take()
	for _, p := range ready {
		g.Go(func() error { return a.apply(ctx, p) })
	}
	return held
}

// startHeld starts the copies still held once every change came, as their
// sources are answered.
func (a *Applier) startHeld(g *errgroup.Group, ctx context.Context) error {
	for a.startReady(g, ctx) > 0 {
		select {
		case <-a.sources.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// sendsRequest reports whether applying ch (not a delete) changes an
// object: all but a touch that leaves the metadata as it is.
func sendsRequest(ch manifest.Change) bool {
	return ch.Op != manifest.OpTouch || ch.MetaChanged()
}

// pool runs feed, which starts changes on g, then waits for them and for
// the Journal to commit what they recorded.
func (a *Applier) pool(ctx context.Context, feed func(*errgroup.Group, context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.Concurrency)
	err := feed(g, gctx)
	if werr := g.Wait(); werr != nil {
		err = werr
	}
	a.recording.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// record hands e to the Journal, as S3's answer if confirmed and as a new
// stat only otherwise; then runs once it is committed.
func (a *Applier) record(ctx context.Context, e manifest.Entry, confirmed bool, then func()) error {
	a.recording.Add(1)
	put := a.Journal.Put
	if !confirmed {
		put = a.Journal.Restat
	}
	err := put(ctx, e, func(err error) {
		defer a.recording.Done()
		if err != nil {
			a.stop(err)
			return
		}
		then()
	})
	if err != nil {
		a.recording.Done()
	}
	return err
}

func (a *Applier) key(path string) string { return manifest.Key(a.Prefix, path) }

func (a *Applier) object(e manifest.Entry) Object {
	return Object{Key: a.key(e.Path), Size: e.Stat.Size, Hash: e.Hash, MtimeNs: e.Stat.MtimeNs, Mode: e.Stat.Mode}
}

// uploadInstead reports whether a copy from the object of path that failed
// with err is to be an upload of the file instead: the object is too
// large to copy, not in the bucket, or in an archive storage class. why
// says so, but for the first, which says nothing.
func uploadInstead(err error, from string) (why string, upload bool) {
	switch {
	case errors.Is(err, ErrSourceMissing):
		return fmt.Sprintf("the object of %s is not in the bucket: uploaded instead", manifest.EscapePath(from)), true
	case errors.Is(err, ErrArchived):
		return fmt.Sprintf("the object of %s is in an archive storage class and cannot be copied until restored: uploaded instead", manifest.EscapePath(from)), true
	}
	return "", errors.Is(err, ErrCopyTooLarge)
}

// apply runs one change other than a delete.
func (a *Applier) apply(ctx context.Context, p pending) error {
	ch := p.Change
	obj := a.object(ch.Entry)
	var err error
	fallback := p.note // why a copy became an upload
	var w Written      // of the object written; a touch that sends nothing keeps its Entry's
	answered := true   // S3 confirmed the object is as ch.Entry says
	if err := a.keepPrev(ctx, &p); err != nil {
		return a.fail(ch, err)
	}
	switch ch.Op {
	case manifest.OpAdd, manifest.OpModify:
		w, err = a.upload(ctx, ch, obj)
		a.sources.answered(ch.Path, err == nil)
	case manifest.OpCopy, manifest.OpRename:
		err = ErrCopyTooLarge
		if !p.retry {
			w, err = a.Bucket.Copy(ctx, a.key(ch.From), obj)
		}
		if errors.Is(err, ErrSourceMissing) && ch.Op == manifest.OpCopy {
			// The manifest trusted a row whose object is gone: send the
			// file, and put the source's row in doubt, so that the
			// next run asks S3 and uploads that file too, unless this
			// run writes it (a rename's old row goes anyway).
			if ierr := a.Journal.Intend(ctx, []manifest.Intent{{Path: ch.From}}); ierr != nil {
				return ierr
			}
		}
		if why, upload := uploadInstead(err, ch.From); upload {
			fallback = cmp.Or(why, fallback)
			w, err = a.upload(ctx, ch, obj)
		}
	case manifest.OpTouch:
		answered = false // a new stat only, unless a request goes out
		if ch.MetaChanged() && obj.IsLink() {
			// As cheap as a copy, which would have to read the target
			// from the object first.
			w, err = a.upload(ctx, ch, obj)
			answered = err == nil
		} else if ch.MetaChanged() {
			w, err = a.Bucket.Copy(ctx, obj.Key, obj)
			answered = err == nil
			if errors.Is(err, ErrCopyTooLarge) || errors.Is(err, ErrArchived) {
				err = nil // the metadata stays stale; the content is right
			}
			if errors.Is(err, ErrSourceMissing) {
				fallback = "its object is not in the bucket: uploaded again"
				w, err = a.upload(ctx, ch, obj)
				answered = true
			}
		}
	default:
		return fmt.Errorf("apply: unexpected %s of %s", ch.Op, ch.Path)
	}
	if errors.Is(err, ErrKeyConflict) && !p.retry {
		a.mu.Lock()
		a.conflicts = append(a.conflicts, p)
		a.mu.Unlock()
		return nil
	}
	if err != nil {
		return a.fail(ch, err)
	}
	if w.ETag != "" {
		ch.Entry.ETag = w.ETag
	}
	if answered {
		ch.Entry.VersionID = w.VersionID
		ch.Entry.RetainUntilNs = 0
		if !w.RetainUntil.IsZero() {
			ch.Entry.RetainUntilNs = w.RetainUntil.UnixNano()
		}
	}
	return a.record(ctx, ch.Entry, answered, func() {
		if ch.Op == manifest.OpRename {
			// Done when its old key is deleted, after every copy.
			p.note, p.sent, p.kept = fallback, w.Sent, w.Kept
			a.mu.Lock()
			a.deletes = append(a.deletes, p)
			a.mu.Unlock()
			return
		}
		a.done(Result{Change: ch, Bytes: w.Sent, Kept: w.Kept, Note: fallback})
	})
}

func (a *Applier) upload(ctx context.Context, ch manifest.Change, obj Object) (Written, error) {
	return a.Bucket.Upload(ctx, Upload{Object: obj, Path: a.Root + "/" + ch.Path, FS: a.FS, Stat: ch.Entry.Stat, Resumes: a.Resumes})
}

// fail reports a change that failed, and returns the error if it must end
// the run.
func (a *Applier) fail(ch manifest.Change, err error) error {
	if IsFatal(err) || errors.Is(err, context.Canceled) {
		return err
	}
	a.done(Result{Change: ch, Err: err})
	return nil
}

func (a *Applier) done(r Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Err != nil {
		a.sum.Errors++
	} else {
		switch r.Change.Op {
		case manifest.OpAdd:
			a.sum.Add++
		case manifest.OpModify:
			a.sum.Modify++
		case manifest.OpRename:
			a.sum.Rename++
		case manifest.OpCopy:
			a.sum.Copy++
		case manifest.OpDelete:
			a.sum.Delete++
		}
		a.sum.Bytes += r.Bytes
	}
	a.Report(r)
}

// deleteBatches is the most DeleteObjects in flight: a folder of 10,000
// files moved is 10 batches, whose round trips overlap.
const deleteBatches = 4

// deleteAll deletes the keys of deletes and of renames' old paths, in
// batches, deleteBatches at once, and forgets them in the manifest once S3
// confirmed.
func (a *Applier) deleteAll(ctx context.Context) error {
	slices.SortFunc(a.deletes, func(x, y pending) int { return x.seq - y.seq })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteBatches)
	for len(a.deletes) > 0 {
		n := min(len(a.deletes), MaxDeleteBatch)
		batch := a.deletes[:n:n]
		a.deletes = a.deletes[n:]
		g.Go(func() error { return a.deleteBatch(gctx, batch) })
	}
	err := g.Wait()
	a.recording.Wait()
	if err != nil {
		return err
	}
	return ctx.Err()
}

// deleteBatch deletes the keys of one batch with one request, reports those
// that failed, and forgets the others in the manifest.
func (a *Applier) deleteBatch(ctx context.Context, batch []pending) error {
	batch, err := a.keepGone(ctx, batch)
	if err != nil || len(batch) == 0 {
		return err
	}
	n := len(batch)
	keys := make([]string, n)
	gone := make([]string, n) // the paths whose objects go
	intents := make([]manifest.Intent, n)
	byKey := make(map[string]pending, n)
	for i, p := range batch {
		gone[i] = p.Path
		if p.Op == manifest.OpRename {
			gone[i] = p.From
		}
		keys[i] = a.key(gone[i])
		intents[i] = manifest.Intent{Path: gone[i]}
		byKey[keys[i]] = p
	}
	if err := a.Journal.Intend(ctx, intents); err != nil {
		return err
	}
	failed, err := a.Bucket.Delete(ctx, keys)
	if err != nil {
		if IsFatal(err) || ctx.Err() != nil {
			return err
		}
		for _, p := range batch {
			a.done(Result{Change: p.Change, Err: err})
		}
		return nil
	}
	bad := map[string]bool{}
	for _, f := range failed {
		bad[f.Key] = true
		if p, ok := byKey[f.Key]; ok {
			a.done(Result{Change: p.Change, Err: fmt.Errorf("delete %s: %w", f.Key, f.Err)})
		}
	}
	var forget []string
	var ok []pending
	for i, p := range batch {
		if !bad[keys[i]] {
			forget = append(forget, gone[i])
			ok = append(ok, p)
		}
	}
	if len(forget) == 0 {
		return nil
	}
	a.recording.Add(1)
	err = a.Journal.Delete(ctx, forget, func(err error) {
		defer a.recording.Done()
		if err != nil {
			a.stop(err)
			return
		}
		for _, p := range ok {
			a.done(Result{Change: p.Change, Bytes: p.sent, Kept: p.kept, Note: p.note})
		}
	})
	if err != nil {
		a.recording.Done()
	}
	return err
}
