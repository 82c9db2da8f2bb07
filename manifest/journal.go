package manifest

import (
	"context"
	"fmt"
	"time"
)

// Journal records in the manifest what S3 confirmed. Recording is
// asynchronous, so that S3 workers go on with the next object while rows
// are committed in groups: done is called once the change is committed, or
// failed to be. Put and Delete block only while the queue is full, and
// return an error only if ctx ends first (done is then never called).
type Journal interface {
	// Put records the object at e.Path as S3 confirmed it (an upload or
	// a copy), which settles any doubt about it but for a watched key and
	// one whose settle failed (SettleFailed).
	Put(ctx context.Context, e Entry, done func(error)) error
	// Restat records a new stat for the row at e.Path without S3 having
	// said anything (a touch that sends nothing): a doubt about the
	// object stays.
	Restat(ctx context.Context, e Entry, done func(error)) error
	// Delete forgets the objects at paths.
	Delete(ctx context.Context, paths []string, done func(error)) error
	// Intend marks paths in doubt before the requests that change their
	// objects go out, and returns once that is durable; recording a
	// path with Put or Delete clears its mark.
	Intend(ctx context.Context, intents []Intent) error
}

// Discard is the Journal of a dry run: it records nothing.
type Discard struct{}

// Put records nothing and calls done.
func (Discard) Put(_ context.Context, _ Entry, done func(error)) error {
	done(nil)
	return nil
}

// Restat records nothing and calls done.
func (Discard) Restat(_ context.Context, _ Entry, done func(error)) error {
	done(nil)
	return nil
}

// Delete records nothing and calls done.
func (Discard) Delete(_ context.Context, _ []string, done func(error)) error {
	done(nil)
	return nil
}

// Intend records nothing.
func (Discard) Intend(context.Context, []Intent) error { return nil }

// Writer is the Journal of a real run. Changes from many workers are
// committed together, up to maxBatch at a time and at most maxDelay after
// the first of them arrived: a run with many small objects does not pay one
// SQLite commit per object, and the window between S3's confirmation and
// the manifest's record stays short (a run killed inside it uploads those
// few objects again next time; it never records one S3 did not confirm).
type Writer struct {
	m    *DB
	reqs chan writeReq
	done chan struct{}
	now  func() time.Time
	run  int64 // the run whose writes it records, in the history
}

type writeReq struct {
	put *Entry
	// restat: put is a new stat only, not S3's word on the object.
	restat bool
	del    []string
	done   func(error)
}

var _ Journal = (*Writer)(nil)
var _ Journal = Discard{}

const (
	maxBatch = 1024
	maxDelay = 50 * time.Millisecond
)

// Writer starts the manifest's writer, for writes of no run known. Close
// it to commit what is queued and stop.
func (m *DB) Writer() *Writer { return m.RunWriter(0) }

// RunWriter starts the manifest's writer for the writes of run: the
// history records each version as written by it.
func (m *DB) RunWriter(run int64) *Writer {
	w := &Writer{m: m, reqs: make(chan writeReq, maxBatch), done: make(chan struct{}), now: time.Now, run: run}
	go w.loop()
	return w
}

// Put queues e, setting its UploadedNs to now if it is zero.
func (w *Writer) Put(ctx context.Context, e Entry, done func(error)) error {
	if e.UploadedNs == 0 {
		e.UploadedNs = w.now().UnixNano()
	}
	return w.queue(ctx, writeReq{put: &e, done: done})
}

// Restat queues e as Put does, leaving any doubt about its object.
func (w *Writer) Restat(ctx context.Context, e Entry, done func(error)) error {
	if e.UploadedNs == 0 {
		e.UploadedNs = w.now().UnixNano()
	}
	return w.queue(ctx, writeReq{put: &e, restat: true, done: done})
}

// Delete queues the removal of paths.
func (w *Writer) Delete(ctx context.Context, paths []string, done func(error)) error {
	return w.queue(ctx, writeReq{del: paths, done: done})
}

func (w *Writer) queue(ctx context.Context, r writeReq) error {
	select {
	case w.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Intend marks intents in doubt at once, in a transaction of its own: a
// worker that waits for it sends its request only once the mark is
// committed.
func (w *Writer) Intend(ctx context.Context, intents []Intent) error {
	return w.m.Intend(ctx, intents)
}

// Close commits what is queued and stops the writer.
func (w *Writer) Close() error {
	close(w.reqs)
	<-w.done
	return nil
}

func (w *Writer) loop() {
	defer close(w.done)
	for r := range w.reqs {
		batch := []writeReq{r}
		timer := time.NewTimer(maxDelay)
	collect:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break collect
				}
				batch = append(batch, r)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		err := w.commit(batch)
		for _, r := range batch {
			if r.done != nil {
				r.done(err)
			}
		}
	}
}

func (w *Writer) commit(batch []writeReq) error {
	tx, err := w.m.db.Begin()
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer tx.Rollback()
	put, err := tx.Prepare(putEntrySQL)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer put.Close()
	del, err := tx.Prepare("DELETE FROM objects WHERE path = ?")
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer del.Close()
	// What S3 confirmed is no longer in doubt, but for a watched key and
	// a key whose settle failed: what the run that left them in doubt
	// sent is not this answer.
	settled, err := tx.Prepare("DELETE FROM doubt WHERE path = ? AND settled = 0 AND settle_failed = 0")
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer settled.Close()
	history, err := prepareHistory(tx)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer history.Close()
	now := w.now().UnixNano()
	for _, r := range batch {
		if r.put != nil {
			if _, err := put.Exec(entryArgs(*r.put)...); err != nil {
				return fmt.Errorf("manifest %s: record %q: %w", w.m.path, r.put.Path, err)
			}
			if !r.restat {
				if _, err := settled.Exec(r.put.Path); err != nil {
					return fmt.Errorf("manifest %s: record %q: %w", w.m.path, r.put.Path, err)
				}
				if err := history.written(*r.put, w.run); err != nil {
					return fmt.Errorf("manifest %s: %w", w.m.path, err)
				}
			}
		}
		for _, p := range r.del {
			if _, err := del.Exec(p); err != nil {
				return fmt.Errorf("manifest %s: forget %q: %w", w.m.path, p, err)
			}
			if _, err := settled.Exec(p); err != nil {
				return fmt.Errorf("manifest %s: forget %q: %w", w.m.path, p, err)
			}
			if err := history.replaced(p, now, w.run, true); err != nil {
				return fmt.Errorf("manifest %s: %w", w.m.path, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: commit: %w", w.m.path, err)
	}
	return nil
}
