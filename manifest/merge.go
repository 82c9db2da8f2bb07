package manifest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// itemAction is what the classifier does with an item of the merge.
type itemAction uint8

const (
	actReport   itemAction = iota // only report the problem
	actHash                       // hash the file, then classify
	actKnown                      // digest known without reading (a move: see known; or learnBtime)
	actVanished                   // the manifest's row has no file any more
)

// item is one path of the merge on its way to the classifier. Items that
// need hashing are hashed by the pool while the classifier takes items in
// order.
type item struct {
	action  itemAction
	path    string
	row     *Entry // the manifest's row for path, if any
	problem *Problem
	stat    scanner.Stat // from the scan
	// filled by the hasher (actHash) or the merge (actKnown):
	digest   scanner.Digest
	hashed   scanner.Stat
	hashedNs int64
	err      error
	done     chan struct{} // closed when hashed; nil if no hashing
}

// merger walks the scan and the manifest's rows in lock-step.
type merger struct {
	d         *Diff
	ctx       context.Context
	rows      *Rows
	scan      <-chan scanner.Entry
	ordered   chan<- *item
	jobs      chan<- *item
	unchanged *atomic.Int64
	kept      *atomic.Int64
	excluded  *atomic.Int64 // folders left out by a marker
	total     *atomic.Int64 // rows of the manifest seen
	lookups   bool          // the manifest may know a new file's inode

	row     Entry
	haveRow bool
	ent     scanner.Entry
	haveEnt bool
	// unknown holds the paths of error entries (not folders) whose rows
	// under path+"/" may still come: they sort after the entry, past
	// other paths ("a-b", "a.txt" come between "a" and "a/x"), so the
	// merge remembers them until the rows have gone by.
	unknown []string
}

func (m *merger) nextRow() {
	m.row, m.haveRow = m.rows.Next()
	if m.haveRow && m.d.Scopes == nil {
		m.total.Add(1)
	}
}

func (m *merger) nextEnt() error {
	select {
	case m.ent, m.haveEnt = <-m.scan:
		return nil
	case <-m.ctx.Done():
		return m.ctx.Err()
	}
}

func (m *merger) emit(it *item) error {
	if it.action == actHash {
		it.done = make(chan struct{})
		select {
		case m.jobs <- it:
		case <-m.ctx.Done():
			return m.ctx.Err()
		}
	}
	select {
	case m.ordered <- it:
		return nil
	case <-m.ctx.Done():
		return m.ctx.Err()
	}
}

func (m *merger) run() error {
	m.nextRow()
	if err := m.nextEnt(); err != nil {
		return err
	}
	for m.haveRow || m.haveEnt {
		var err error
		switch {
		case m.haveEnt && (!m.haveRow || m.ent.SortKey() < m.row.Path):
			err = m.scanOnly()
			if err == nil {
				err = m.nextEnt()
			}
		case m.haveRow && (!m.haveEnt || m.row.Path < m.ent.SortKey()):
			row := m.row
			m.nextRow()
			if m.d.Filter.Excluded(row.Path) {
				if m.d.DeleteExcluded {
					err = m.emit(&item{action: actVanished, path: row.Path, row: &row})
				}
				break // else not scanned on purpose: leave its object alone
			}
			if m.underUnknown(row.Path) {
				m.kept.Add(1)
				continue
			}
			err = m.emit(&item{action: actVanished, path: row.Path, row: &row})
		default:
			row := m.row
			m.nextRow()
			err = m.both(&row)
			if err == nil {
				err = m.nextEnt()
			}
		}
		if err != nil {
			return err
		}
	}
	return m.rows.Err()
}

// scanOnly handles a scanned path the manifest does not have.
func (m *merger) scanOnly() error {
	e := m.ent
	switch e.Kind {
	case scanner.KindFile, scanner.KindLink:
		if err := CheckKeyLen(m.d.Prefix, e.Path); err != nil {
			return m.emit(&item{action: actReport, path: e.Path, problem: &Problem{Path: e.Path, Err: err}})
		}
		if it, ok := m.known(e); ok {
			return m.emit(it)
		}
		return m.emit(&item{action: actHash, path: e.Path, stat: e.Stat})
	case scanner.KindSkipped:
		return m.emit(&item{action: actReport, path: e.Path, problem: skipped(e)})
	case scanner.KindExcluded:
		return m.excludedFolder(e)
	default:
		return m.unreadable(e)
	}
}

// excludedFolder passes the rows under a folder a marker leaves out: its
// objects stay, as those of a path the patterns exclude, or go with
// DeleteExcluded. The entry sorts as path+"/", right before its rows.
func (m *merger) excludedFolder(e scanner.Entry) error {
	m.excluded.Add(1)
	under := e.Path + "/"
	for m.haveRow && strings.HasPrefix(m.row.Path, under) {
		row := m.row
		m.nextRow()
		if !m.d.DeleteExcluded {
			continue
		}
		if err := m.emit(&item{action: actVanished, path: row.Path, row: &row}); err != nil {
			return err
		}
	}
	return nil
}

// unreadable reports an error entry and keeps every row at its path or
// under it: a path the scan could not read must never look deleted.
func (m *merger) unreadable(e scanner.Entry) error {
	if err := m.emit(&item{action: actReport, path: e.Path, problem: unreadable(e)}); err != nil {
		return err
	}
	if !e.Dir {
		// Its rows under path+"/" come later (see unknown).
		m.unknown = append(m.unknown, e.Path)
		return nil
	}
	// A folder's entry sorts as path+"/", right before its rows.
	under := e.Path + "/"
	for m.haveRow && strings.HasPrefix(m.row.Path, under) {
		m.kept.Add(1)
		m.nextRow()
	}
	return nil
}

// underUnknown reports whether the row at p lies under the path of an
// error entry met before. Rows come in order: an entry is forgotten once
// the rows have passed everything under it.
func (m *merger) underUnknown(p string) bool {
	m.unknown = slices.DeleteFunc(m.unknown, func(u string) bool { return p > u+"/" && !strings.HasPrefix(p, u+"/") })
	for _, u := range m.unknown {
		if strings.HasPrefix(p, u+"/") {
			return true
		}
	}
	return false
}

// both handles a path that is in the scan and in the manifest.
func (m *merger) both(row *Entry) error {
	e := m.ent
	switch e.Kind {
	case scanner.KindFile, scanner.KindLink:
		if !m.d.Rehash && e.Stat.Same(row.Stat) && !scanner.Racy(row.Stat, row.HashedNs) {
			if row.Stat.BtimeNs == 0 && e.Stat.BtimeNs != 0 {
				return m.emit(learnBtime(row, e.Stat))
			}
			m.unchanged.Add(1)
			return nil
		}
		return m.emit(&item{action: actHash, path: e.Path, row: row, stat: e.Stat})
	case scanner.KindSkipped:
		// Was a file, is now a symlink or the like: its object goes.
		if err := m.emit(&item{action: actReport, path: e.Path, problem: skipped(e)}); err != nil {
			return err
		}
		return m.emit(&item{action: actVanished, path: row.Path, row: row})
	default:
		m.kept.Add(1)
		return m.unreadable(e)
	}
}

// known looks for a file the manifest knows under another name with the
// same inode, device, size, mtime and birth time: the same file, moved. Its
// hash is reused and the file is not read.
//
// The birth time is what makes it the same file: ext4 hands a freed inode
// straight to the next file created, and npm, zip and reproducible builds
// stamp files with a fixed mtime, so a new file can match a deleted one on
// everything else. A birth time cannot be set, and timestamps' coarse ticks
// do not matter: the row was hashed RacyWindow after the old file's ctime
// (no earlier than its birth), and the new file was born after that hash.
// Without birth times on both sides (a file system that has none, a row
// recorded before they were) the file is hashed: a move then costs a read,
// still no upload, as the classifier pairs it by content hash.
func (m *merger) known(e scanner.Entry) (*item, bool) {
	if m.d.Rehash || e.Stat.Size == 0 || e.Stat.BtimeNs == 0 || !m.lookups {
		return nil, false
	}
	cands, err := m.d.DB.ByInode(m.ctx, e.Stat.Inode, e.Stat.Dev)
	if err != nil {
		return nil, false // hashing is always correct
	}
	for _, c := range cands {
		if c.Stat.Size == e.Stat.Size && c.Stat.MtimeNs == e.Stat.MtimeNs && c.Stat.BtimeNs == e.Stat.BtimeNs && !scanner.Racy(c.Stat, c.HashedNs) {
			return &item{action: actKnown, path: e.Path, stat: e.Stat, digest: c.Hash, hashed: e.Stat, hashedNs: m.d.Now().UnixNano()}, true
		}
	}
	return nil, false
}

// learnBtime is the item that records the birth time of an unchanged file
// whose row has none (recorded before birth times were): a touch, which
// sends nothing to S3 and reads nothing, so that a later move of the file
// is recognised without reading it (see known).
func learnBtime(row *Entry, st scanner.Stat) *item {
	return &item{action: actKnown, path: row.Path, row: row, stat: st, digest: row.Hash, hashed: st, hashedNs: row.HashedNs}
}

func skipped(e scanner.Entry) *Problem {
	if e.Note != "" {
		return &Problem{Path: e.Path, Notice: e.Note}
	}
	if e.Type == scanner.TypeSymlink {
		return &Problem{Path: e.Path, Notice: "symlink not followed (--follow-symlinks follows them, --links keeps them)", Symlink: true}
	}
	return &Problem{Path: e.Path, Notice: fmt.Sprintf("%s not backed up (only regular files are)", e.Type)}
}

func unreadable(e scanner.Entry) *Problem {
	what := "cannot read file"
	switch {
	case e.Dir:
		what = "cannot read folder"
	case e.Type == scanner.TypeSymlink:
		what = "cannot follow symlink"
	case e.Type == scanner.TypeUnknown:
		what = "cannot look up path"
	}
	return &Problem{Path: e.Path, Err: fmt.Errorf("%s, nothing at or under it is changed in the bucket this run: %w", what, e.Err)}
}
