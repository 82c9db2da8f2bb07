package manifest

import (
	"context"
	"errors"
	"io/fs"
	"sync/atomic"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// classifier turns merged items, in order, into changes.
type classifier struct {
	d        *Diff
	ctx      context.Context
	out      chan<- Change
	st       *Stats
	vanished []Entry
	deferred []Change        // adds and modifies whose content the bucket may already hold
	modified map[string]bool // paths whose object is overwritten this run
	// firsts maps the content of each add or modify of the run (of
	// DupCopyMin bytes or more) to the first path uploaded with it.
	firsts  map[scanner.Digest]string
	lookups bool          // the manifest may hold a new file's content
	total   *atomic.Int64 // rows of the manifest, known once the merge ended
}

func (c *classifier) send(ch Change) error {
	select {
	case c.out <- ch:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

func (c *classifier) report(p Problem) {
	if p.Err != nil {
		c.st.Errors++
	}
	c.d.Problems(p)
}

func (c *classifier) run(ordered <-chan *item) error {
	for {
		var it *item
		var ok bool
		select {
		case it, ok = <-ordered:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		if !ok {
			break
		}
		if it.done != nil {
			select {
			case <-it.done:
			case <-c.ctx.Done():
				return c.ctx.Err()
			}
		}
		if err := c.classify(it); err != nil {
			return err
		}
	}
	return c.pair()
}

func (c *classifier) classify(it *item) error {
	if it.problem != nil {
		c.report(*it.problem)
	}
	switch it.action {
	case actVanished:
		c.vanished = append(c.vanished, *it.row)
		return nil
	case actReport:
		return nil
	}
	if it.err != nil {
		if errors.Is(it.err, fs.ErrNotExist) { // gone since the walk
			if it.row != nil {
				c.vanished = append(c.vanished, *it.row)
			}
			return nil
		}
		if it.row != nil {
			c.st.Kept++
		}
		if errors.Is(it.err, context.Canceled) {
			return it.err
		}
		c.report(Problem{Path: it.path, Err: it.err})
		return nil
	}
	if it.action == actHash {
		c.st.Hashed++
		c.st.HashedBytes += it.hashed.Size
	}
	e := Entry{Path: it.path, Hash: it.digest, Stat: it.hashed, HashedNs: it.hashedNs}
	if it.row != nil && it.row.Hash == e.Hash {
		c.st.Unchanged++
		if it.row.Stat.Same(e.Stat) && it.row.Stat.BtimeNs == e.Stat.BtimeNs && !scanner.Racy(it.row.Stat, it.row.HashedNs) {
			return nil // --rehash confirmed what the manifest says
		}
		e.ETag, e.VersionID = it.row.ETag, it.row.VersionID // the object stays (a metadata refresh gives it a new one)
		return c.send(Change{Op: OpTouch, Path: e.Path, Entry: e, Prev: it.row})
	}
	ch := Change{Op: OpAdd, Path: e.Path, Entry: e, Prev: it.row}
	if it.row != nil {
		ch.Op = OpModify
		c.modified[e.Path] = true
	}
	if e.Stat.Size > 0 && c.lookups {
		others, err := c.d.DB.ByHash(c.ctx, e.Hash, 2)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.Path != e.Path {
				c.deferred = append(c.deferred, ch)
				return nil
			}
		}
	}
	return c.upload(ch)
}

// upload sends ch, an add or modify of content the bucket does not hold
// yet: the first path of the run with that content is uploaded, each later
// one becomes a copy of it (FromRun).
func (c *classifier) upload(ch Change) error {
	if ch.Entry.Stat.Size >= c.d.dupCopyMin() {
		if first, ok := c.firsts[ch.Entry.Hash]; ok {
			ch.Op, ch.From, ch.FromRun = OpCopy, first, true
		} else {
			c.firsts[ch.Entry.Hash] = ch.Path
		}
	}
	return c.send(ch)
}
