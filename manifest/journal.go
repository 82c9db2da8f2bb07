package manifest

import (
	"context"
	"fmt"
	"time"
)

// Journal records in the manifest what S3 confirmed. Its methods return once
// the change is committed.
type Journal interface {
	// Put records the object at e.Path (an upload, copy, or new stat).
	Put(ctx context.Context, e Entry) error
	// Delete forgets the objects at paths.
	Delete(ctx context.Context, paths []string) error
}

// Discard is the Journal of a dry run: it records nothing.
type Discard struct{}

// Put does nothing.
func (Discard) Put(context.Context, Entry) error { return nil }

// Delete does nothing.
func (Discard) Delete(context.Context, []string) error { return nil }

// Writer is the Journal of a real run. Changes from many workers are
// committed together ("group commit"): each caller waits for the
// transaction that holds its change, so the window between S3's
// confirmation and the manifest's record stays one commit long while a
// busy run does not pay one commit per object.
type Writer struct {
	m    *DB
	reqs chan writeReq
	done chan struct{}
	now  func() time.Time
}

type writeReq struct {
	put  *Entry
	del  []string
	errc chan error
}

var _ Journal = (*Writer)(nil)
var _ Journal = Discard{}

// maxBatch bounds the changes in one transaction.
const maxBatch = 1024

// Writer starts the manifest's writer. Close it to stop.
func (m *DB) Writer() *Writer {
	w := &Writer{m: m, reqs: make(chan writeReq, maxBatch), done: make(chan struct{}), now: time.Now}
	go w.loop()
	return w
}

// Put records e, setting its UploadedNs to now if it is zero.
func (w *Writer) Put(ctx context.Context, e Entry) error {
	if e.UploadedNs == 0 {
		e.UploadedNs = w.now().UnixNano()
	}
	return w.do(ctx, writeReq{put: &e})
}

// Delete forgets paths.
func (w *Writer) Delete(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	return w.do(ctx, writeReq{del: paths})
}

func (w *Writer) do(ctx context.Context, r writeReq) error {
	r.errc = make(chan error, 1)
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued the change will be committed or fail: wait for it even
	// if ctx ends, so the caller knows which.
	return <-r.errc
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
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		err := w.commit(batch)
		for _, r := range batch {
			r.errc <- err
		}
	}
}

func (w *Writer) commit(batch []writeReq) error {
	tx, err := w.m.db.Begin()
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer tx.Rollback()
	put, err := tx.Prepare("INSERT OR REPLACE INTO objects(" + entryColumns + ") VALUES (?,?,?,?,?,?,?,?,?,?)")
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer put.Close()
	del, err := tx.Prepare("DELETE FROM objects WHERE path = ?")
	if err != nil {
		return fmt.Errorf("manifest %s: %w", w.m.path, err)
	}
	defer del.Close()
	for _, r := range batch {
		if r.put != nil {
			if _, err := put.Exec(entryArgs(*r.put)...); err != nil {
				return fmt.Errorf("manifest %s: record %q: %w", w.m.path, r.put.Path, err)
			}
		}
		for _, p := range r.del {
			if _, err := del.Exec(p); err != nil {
				return fmt.Errorf("manifest %s: forget %q: %w", w.m.path, p, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: commit: %w", w.m.path, err)
	}
	return nil
}
