package uploader

import (
	"fmt"
	"sync"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// sources holds back the copies whose source is written by the same run
// (manifest.Change.FromRun) until S3 answered that write. It knows only
// the writes in flight (at most Applier.Concurrency) and those that failed.
//
// A copy whose source was not written uploads its own file instead: the
// file is there and was hashed, and the source's failure is most often its
// own (its file changed during the upload, its key is refused, or in the
// way of an old one until the deletes).
type sources struct {
	mu      sync.Mutex
	flying  map[string][]pending // writes in flight, by path, with the copies waiting for them
	failed  map[string]bool      // paths whose write failed this run
	ready   []pending            // copies whose source was answered, to start
	waiting int                  // copies held in flying
	wake    chan struct{}        // signalled when ready grows
}

func newSources() *sources {
	return &sources{flying: map[string][]pending{}, failed: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// isSource reports whether ch writes an object a later copy of the run may
// read.
func isSource(ch manifest.Change) bool {
	return ch.Op == manifest.OpAdd || ch.Op == manifest.OpModify
}

// hold is called for each change before it starts, in the diff's order: it
// notes a write in flight, and holds a copy whose source is in flight
// (true: do not start it). A copy whose source failed becomes an upload.
func (s *sources) hold(p *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case isSource(p.Change):
		s.flying[p.Path] = nil
	case p.FromRun:
		if waiting, ok := s.flying[p.From]; ok {
			s.flying[p.From] = append(waiting, *p)
			s.waiting++
			return true
		}
		if s.failed[p.From] {
			unwritten(p)
		}
	}
	return false
}

// answered is told that S3 answered the write of path: written or not.
// The copies waiting for it are ready.
func (s *sources) answered(path string, written bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiting, ok := s.flying[path]
	if !ok {
		return // a second attempt (see ErrKeyConflict)
	}
	delete(s.flying, path)
	if !written {
		s.failed[path] = true
		for i := range waiting {
			unwritten(&waiting[i])
		}
	}
	if len(waiting) == 0 {
		return
	}
	s.waiting -= len(waiting)
	s.ready = append(s.ready, waiting...)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the copies that are ready, and how many are still held.
func (s *sources) take() (ready []pending, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ready, s.ready = s.ready, nil
	return ready, s.waiting
}

// unwritten turns p, a copy whose source was not written, into the upload
// of its own file, with a note that says why.
func unwritten(p *pending) {
	p.note = fmt.Sprintf("%s, whose content it has, was not written: uploaded instead", manifest.EscapePath(p.From))
	p.Op, p.From, p.FromRun = manifest.OpAdd, "", false
	if p.Prev != nil {
		p.Op = manifest.OpModify
	}
}
