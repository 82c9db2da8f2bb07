package manifest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Op is what a change does to the bucket.
type Op uint8

const (
	// OpAdd uploads a path the manifest does not have.
	OpAdd Op = iota + 1
	// OpModify uploads new content for a path the manifest has.
	OpModify
	// OpRename copies From's object to Path on the server, then deletes
	// From: a file that moved, found by its content hash.
	OpRename
	// OpCopy copies From's object, which stays, to Path on the server.
	OpCopy
	// OpDelete deletes the object of a path that is gone.
	OpDelete
	// OpTouch records a new stat for unchanged content. The object's
	// metadata is refreshed if the mtime or mode moved; nothing is uploaded.
	OpTouch
)

var opNames = [...]string{OpAdd: "add", OpModify: "modify", OpRename: "rename", OpCopy: "copy", OpDelete: "delete", OpTouch: "touch"}

func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Change is one step that makes the bucket match the source.
type Change struct {
	Op    Op
	Path  string // the path changed; for rename and copy, the new one
	From  string // rename and copy: the path whose object is copied
	Entry Entry  // the row to record once S3 confirmed; for a delete, the row to forget
	Prev  *Entry // the row this change replaces, if the path had one
}

// MetaChanged reports whether a touch must refresh the object's metadata:
// the mtime or the mode differs from what the object carries.
func (c Change) MetaChanged() bool {
	return c.Prev == nil || c.Prev.Stat.MtimeNs != c.Entry.Stat.MtimeNs || c.Prev.Stat.Mode != c.Entry.Stat.Mode
}

// Problem is a path the run could not back up as it is: an error (Err set)
// or a notice that it was skipped by design (Notice set).
type Problem struct {
	Path   string
	Err    error
	Notice string
}

func (p Problem) String() string {
	if p.Err != nil {
		return fmt.Sprintf("%s: %v", p.Path, p.Err)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Notice)
}

// Stats counts what a diff saw besides its changes.
type Stats struct {
	Unchanged   int64 // files whose object is up to date (touches included)
	Kept        int64 // objects left alone because their path could not be read
	Errors      int64 // problems with an error
	Hashed      int64 // files read and hashed
	HashedBytes int64 // bytes read to hash them
	// Refused is set when the deletes were held back by MaxDelete: the
	// run must say so and fail, although it applied everything else.
	Refused error
}

// Diff compares a scan with the manifest.
type Diff struct {
	DB     *DB
	FS     scanner.FS
	Root   string // the source folder the scan's paths are relative to
	Prefix string // normalized key prefix, to check key lengths
	// Filter: manifest paths it excludes are left alone, neither scanned
	// nor deleted.
	Filter *scanner.Filter
	// Rehash hashes every file, trusting no stat.
	Rehash bool
	// MaxDelete bounds the deletes of the run (renames are not deletes);
	// the zero value is DefaultDeleteLimit (a limit of 0 allows none).
	MaxDelete DeleteLimit
	// Scopes, when not nil, restricts the diff to these paths and what is
	// under them (the dirty paths of a watch, see scanner.Scopes): the
	// scan covers only them, and manifest rows elsewhere are not looked
	// at.
	Scopes []string
	// Hashers is how many files are hashed at once; default the number of
	// CPUs, at least 4 (a hasher waits on the disk as often as not).
	Hashers int
	// Problems receives every problem, from a single goroutine.
	Problems func(Problem)
	// Hashed, if set, is told the size of each file hashed, from the
	// hashing goroutines (for progress displays).
	Hashed func(size int64)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

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

// Run merges the scan (in SortKey order) with the manifest and sends the
// changes to out in three waves: uploads and touches as the merge finds
// them; then, when the whole scan is known, renames and copies paired by
// content hash (with the uploads of content that turned out not to be in
// the bucket); then deletes. Appliers must finish every copy before a
// delete, since a vanished path's object may be a copy's source.
func (d *Diff) Run(ctx context.Context, scan <-chan scanner.Entry, out chan<- Change) (Stats, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Problems == nil {
		d.Problems = func(Problem) {}
	}
	hashers := d.Hashers
	if hashers <= 0 {
		hashers = max(4, runtime.GOMAXPROCS(0))
	}
	// With an empty manifest (a first run) no content is known: skip the
	// look-ups by hash and inode made for each new file.
	empty, err := d.DB.Empty(ctx)
	if err != nil {
		return Stats{}, err
	}
	var rows *Rows
	var objects int64 // the share --max-delete counts against
	if d.Scopes != nil {
		if objects, _, err = d.DB.Count(ctx); err == nil {
			rows, err = d.DB.RowsIn(ctx, d.Scopes)
		}
	} else {
		rows, err = d.DB.Rows(ctx)
	}
	if err != nil {
		return Stats{}, err
	}
	defer rows.Close()

	var st Stats
	var unchanged, kept, total atomic.Int64
	total.Store(objects) // a scoped diff counts against the whole manifest; a full one counts its rows
	g, ctx := errgroup.WithContext(ctx)
	ordered := make(chan *item, 4096)
	jobs := make(chan *item, 256)
	for range hashers {
		g.Go(func() error {
			for it := range jobs {
				d.hash(ctx, it)
				close(it.done)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(ordered)
		defer close(jobs)
		m := merger{d: d, ctx: ctx, rows: rows, scan: scan, ordered: ordered, jobs: jobs, unchanged: &unchanged, kept: &kept, total: &total, lookups: !empty}
		return m.run()
	})
	g.Go(func() error {
		c := classifier{d: d, ctx: ctx, out: out, st: &st, modified: map[string]bool{}, lookups: !empty, total: &total}
		return c.run(ordered)
	})
	err = g.Wait()
	st.Unchanged += unchanged.Load()
	st.Kept += kept.Load()
	return st, err
}

func (d *Diff) abs(rel string) string { return d.Root + "/" + rel }

func (d *Diff) hash(ctx context.Context, it *item) {
	if err := ctx.Err(); err != nil {
		it.err = err
		return
	}
	it.hashedNs = d.Now().UnixNano()
	it.digest, it.hashed, it.err = scanner.HashFile(d.FS, d.abs(it.path))
	if it.err == nil && d.Hashed != nil {
		d.Hashed(it.hashed.Size)
	}
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
				continue // not scanned on purpose: leave its object alone
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
	case scanner.KindFile:
		if n := len(Key(m.d.Prefix, e.Path)); n > MaxKeyLen {
			return m.emit(&item{action: actReport, path: e.Path, problem: &Problem{Path: e.Path,
				Err: fmt.Errorf("its key would be %d bytes, over S3's limit of %d: not backed up (shorten the path or the prefix)", n, MaxKeyLen)}})
		}
		if it, ok := m.known(e); ok {
			return m.emit(it)
		}
		return m.emit(&item{action: actHash, path: e.Path, stat: e.Stat})
	case scanner.KindSkipped:
		return m.emit(&item{action: actReport, path: e.Path, problem: skipped(e)})
	default:
		return m.unreadable(e)
	}
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
	case scanner.KindFile:
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
	note := fmt.Sprintf("%s not backed up (only regular files are)", e.Type)
	if e.Type == scanner.TypeSymlink {
		note = "symlink not followed (--follow-symlinks follows them)"
	}
	return &Problem{Path: e.Path, Notice: note}
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

// classifier turns merged items, in order, into changes.
type classifier struct {
	d        *Diff
	ctx      context.Context
	out      chan<- Change
	st       *Stats
	vanished []Entry
	deferred []Change        // adds and modifies whose content the bucket may already hold
	modified map[string]bool // paths whose object is overwritten this run
	lookups  bool            // the manifest may hold a new file's content
	total    *atomic.Int64   // rows of the manifest, known once the merge ended
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
		e.ETag = it.row.ETag // the object stays (a metadata refresh gives it a new one)
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
	return c.send(ch)
}

// pair runs once the whole scan is known: each deferred add or modify
// becomes a rename of a vanished path with the same content, a copy of an
// object that holds it, or an upload after all; then the vanished paths
// that were not renamed are deleted.
func (c *classifier) pair() error {
	byHash := map[scanner.Digest][]Entry{}
	for _, v := range c.vanished {
		if v.Stat.Size > 0 {
			byHash[v.Hash] = append(byHash[v.Hash], v)
		}
	}
	renamed := map[string]bool{}
	for _, ch := range c.deferred {
		if vs := byHash[ch.Entry.Hash]; len(vs) > 0 {
			i := sameBase(vs, ch.Path)
			ch.Op, ch.From = OpRename, vs[i].Path
			byHash[ch.Entry.Hash] = append(vs[:i:i], vs[i+1:]...)
			renamed[ch.From] = true
			if err := c.send(ch); err != nil {
				return err
			}
			continue
		}
		srcs, err := c.d.DB.ByHash(c.ctx, ch.Entry.Hash, 16)
		if err != nil {
			return err
		}
		for _, s := range srcs {
			// An object overwritten this run no longer holds the content.
			if s.Path != ch.Path && !c.modified[s.Path] {
				ch.Op, ch.From = OpCopy, s.Path
				break
			}
		}
		if err := c.send(ch); err != nil {
			return err
		}
	}
	var deletes []Entry
	for _, v := range c.vanished {
		if !renamed[v.Path] {
			deletes = append(deletes, v)
		}
	}
	if err := c.d.MaxDelete.check(int64(len(deletes)), c.total.Load()); err != nil {
		c.st.Refused = err
		return nil
	}
	for _, v := range deletes {
		if err := c.send(Change{Op: OpDelete, Path: v.Path, Entry: v, Prev: &v}); err != nil {
			return err
		}
	}
	return nil
}

// sameBase picks the vanished entry with the same file name as p, if any,
// so that moving a folder pairs each file with itself.
func sameBase(vs []Entry, p string) int {
	base := path.Base(p)
	for i, v := range vs {
		if path.Base(v.Path) == base {
			return i
		}
	}
	return 0
}
