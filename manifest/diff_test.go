package manifest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// countFS counts the files opened for reading, can fail chosen folders or
// the look-up of chosen paths (as below a folder without search
// permission), and can rewrite what a listing says of chosen files.
type countFS struct {
	scanner.OS
	opens      *atomic.Int64
	unreadable map[string]bool
	unstatable map[string]bool
	restat     map[string]func(*scanner.Stat) // by absolute path
}

func (c countFS) Lstat(p string) (scanner.DirEntry, error) {
	if c.unstatable[p] {
		return scanner.DirEntry{}, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrPermission}
	}
	return c.OS.Lstat(p)
}

func (c countFS) Open(p string) (scanner.File, error) {
	c.opens.Add(1)
	return c.OS.Open(p)
}

func (c countFS) ReadDir(p string) ([]scanner.DirEntry, error) {
	if c.unreadable[p] {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
	}
	ents, err := c.OS.ReadDir(p)
	for i := range ents {
		if f := c.restat[p+"/"+ents[i].Name]; f != nil {
			f(&ents[i].Stat)
		}
	}
	return ents, err
}

type fixture struct {
	t     *testing.T
	root  string
	db    *DB
	opens atomic.Int64
	fs    countFS
	// scan, if set, is the scan diff runs on instead of a walk of root.
	scan []scanner.Entry
}

func newFixture(t *testing.T, tree scantest.Dir) *fixture {
	t.Helper()
	f := &fixture{t: t, root: t.TempDir()}
	f.fs = countFS{opens: &f.opens, unreadable: map[string]bool{}, unstatable: map[string]bool{}, restat: map[string]func(*scanner.Stat){}}
	scantest.Create(t, f.root, tree)
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: f.root, Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f.db = db
	return f
}

// record puts every file now on disk into the manifest, as a completed
// sync would, with a hash time well after the files' timestamps.
func (f *fixture) record() {
	f.t.Helper()
	w := f.db.Writer()
	defer w.Close()
	for rel := range scantest.Files(f.t, f.root) {
		d, st, err := scanner.HashFile(scanner.OS{}, filepath.Join(f.root, rel))
		if err != nil {
			f.t.Fatal(err)
		}
		e := Entry{Path: rel, Hash: d, Stat: st, HashedNs: time.Now().Add(scanner.RacyWindow + time.Second).UnixNano()}
		w.Put(context.Background(), e, mustCommit(f.t))
	}
}

type diffResult struct {
	changes  []string
	all      []Change // the changes themselves, in the order sent
	stats    Stats
	problems []string
}

func (f *fixture) diff(d Diff) diffResult {
	f.t.Helper()
	f.opens.Store(0)
	d.DB, d.FS, d.Root = f.db, f.fs, f.root
	var res diffResult
	d.Problems = func(p Problem) { res.problems = append(res.problems, p.String()) }
	ctx := context.Background()
	scan := make(chan scanner.Entry)
	out := make(chan Change)
	walkErr := make(chan error, 1)
	go func() {
		defer close(scan)
		if f.scan != nil {
			for _, e := range f.scan {
				scan <- e
			}
			walkErr <- nil
			return
		}
		emit := func(e scanner.Entry) error {
			scan <- e
			return nil
		}
		if d.Scopes != nil {
			walkErr <- scanner.ScanScopes(ctx, f.fs, f.root, d.Scopes, scanner.WalkOptions{Filter: d.Filter}, emit)
			return
		}
		walkErr <- scanner.Walk(ctx, f.fs, f.root, scanner.WalkOptions{Filter: d.Filter}, emit)
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range out {
			s := c.Op.String() + " " + c.Path
			if c.From != "" {
				s = c.Op.String() + " " + c.From + " -> " + c.Path
			}
			res.changes = append(res.changes, s)
			res.all = append(res.all, c)
		}
	}()
	st, err := d.Run(ctx, scan, out)
	close(out)
	<-done
	if err != nil {
		f.t.Fatal(err)
	}
	if err := <-walkErr; err != nil {
		f.t.Fatal(err)
	}
	res.stats = st
	return res
}

func (f *fixture) path(rel string) string { return filepath.Join(f.root, filepath.FromSlash(rel)) }

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func TestDiffTable(t *testing.T) {
	base := scantest.Dir{
		"a.txt": scantest.File{Content: "alpha"},
		"docs": scantest.Dir{
			"report.pdf": scantest.File{Content: "report"},
			"notes.txt":  scantest.File{Content: "notes"},
		},
		"photos": scantest.Dir{
			"img001.jpg": scantest.File{Content: "jpeg one"},
			"img002.jpg": scantest.File{Content: "jpeg two"},
		},
	}
	for _, c := range []struct {
		name   string
		change func(f *fixture)
		diff   Diff
		want   []string // sorted
		reads  int64    // files opened for hashing
	}{
		{name: "nothing changed", change: func(*fixture) {}, want: nil, reads: 0},
		{
			name:   "edit",
			change: func(f *fixture) { scantest.Write(t, f.root, "docs/notes.txt", "notes, longer") },
			want:   []string{"modify docs/notes.txt"}, reads: 1,
		},
		{
			name:   "same-size edit",
			change: func(f *fixture) { scantest.Write(t, f.root, "docs/notes.txt", "NOTES") },
			want:   []string{"modify docs/notes.txt"}, reads: 1,
		},
		{
			name: "touch uploads nothing",
			change: func(f *fixture) {
				later := time.Now().Add(time.Hour)
				os.Chtimes(f.path("a.txt"), later, later)
			},
			want: []string{"touch a.txt"}, reads: 1,
		},
		{
			name:   "add",
			change: func(f *fixture) { scantest.Write(t, f.root, "new/file.bin", "brand new") },
			want:   []string{"add new/file.bin"}, reads: 1,
		},
		{
			name:   "delete",
			change: func(f *fixture) { os.Remove(f.path("a.txt")) },
			want:   []string{"delete a.txt"},
		},
		{
			name:   "delete folder",
			change: func(f *fixture) { os.RemoveAll(f.path("photos")) },
			want:   []string{"delete photos/img001.jpg", "delete photos/img002.jpg"},
		},
		{
			name:   "rename file, without reading it",
			change: func(f *fixture) { os.Rename(f.path("a.txt"), f.path("docs/a-renamed.txt")) },
			want:   []string{"rename a.txt -> docs/a-renamed.txt"}, reads: 0,
		},
		{
			// ext4 hands a freed inode to the next file, and npm, zip and
			// reproducible builds stamp files with a fixed mtime.
			name:   "a new file on a deleted one's inode, size and mtime is read, not taken for a move",
			change: func(f *fixture) { f.replaceOnItsInode("a.txt", "b.txt", "bravo") },
			want:   []string{"add b.txt", "delete a.txt"}, reads: 1,
		},
		{
			name:   "a file replaced by another of the same size and mtime, on its inode, is read",
			change: func(f *fixture) { f.replaceOnItsInode("a.txt", "a.txt", "ALPHA") },
			want:   []string{"modify a.txt"}, reads: 1,
		},
		{
			name: "a move whose birth time the file system does not give is read, and still a rename",
			change: func(f *fixture) {
				os.Rename(f.path("a.txt"), f.path("docs/a-renamed.txt"))
				f.fs.restat[f.path("docs/a-renamed.txt")] = func(st *scanner.Stat) { st.BtimeNs = 0 }
			},
			want: []string{"rename a.txt -> docs/a-renamed.txt"}, reads: 1,
		},
		{
			name: "move folder",
			change: func(f *fixture) {
				os.MkdirAll(f.path("archive/2024"), 0o755)
				os.Rename(f.path("photos"), f.path("archive/2024/photos"))
			},
			want: []string{
				"rename photos/img001.jpg -> archive/2024/photos/img001.jpg",
				"rename photos/img002.jpg -> archive/2024/photos/img002.jpg",
			},
		},
		{
			name:   "copy: new path, content of a path that stays",
			change: func(f *fixture) { scantest.Write(t, f.root, "b/logo.txt", "alpha") },
			want:   []string{"copy a.txt -> b/logo.txt"}, reads: 1,
		},
		{
			name: "rename onto an existing path",
			change: func(f *fixture) {
				os.Rename(f.path("docs/notes.txt"), f.path("docs/report.pdf"))
			},
			want: []string{"rename docs/notes.txt -> docs/report.pdf"}, reads: 1,
		},
		{
			name: "swap two files' contents: uploads, not copies of overwritten objects",
			change: func(f *fixture) {
				scantest.Write(t, f.root, "photos/img001.jpg", "jpeg two")
				scantest.Write(t, f.root, "photos/img002.jpg", "jpeg one")
			},
			want: []string{"modify photos/img001.jpg", "modify photos/img002.jpg"}, reads: 2,
		},
		{
			name:   "empty folder is not pushed",
			change: func(f *fixture) { os.MkdirAll(f.path("empty/inside"), 0o755) },
			want:   nil,
		},
		{
			name: "new empty files are uploaded, not paired with each other",
			change: func(f *fixture) {
				scantest.Write(t, f.root, "e1", "")
				scantest.Write(t, f.root, "e2", "")
			},
			want: []string{"add e1", "add e2"}, reads: 2,
		},
		{
			name: "a file replaced by a symlink is deleted",
			change: func(f *fixture) {
				os.Remove(f.path("a.txt"))
				os.Symlink("docs", f.path("a.txt"))
			},
			want: []string{"delete a.txt"},
		},
		{
			name: "unreadable folder: nothing under it is deleted",
			change: func(f *fixture) {
				f.fs.unreadable[f.path("photos")] = true
				os.Remove(f.path("a.txt"))
			},
			want: []string{"delete a.txt"},
		},
		{
			name:   "excluded paths are left alone",
			change: func(f *fixture) { scantest.Write(t, f.root, "photos/img003.jpg", "jpeg three") },
			diff:   Diff{Filter: mustFilter(t, "photos")},
			want:   nil,
		},
		{
			name: "a folder with a marker is left alone",
			change: func(f *fixture) {
				scantest.Write(t, f.root, "photos/.nobackup", "")
				scantest.Write(t, f.root, "photos/img003.jpg", "jpeg three")
				os.Remove(f.path("photos/img001.jpg"))
			},
			diff: Diff{Filter: mustRules(t, scanner.Rules{IfPresent: []string{".nobackup"}})},
			want: nil,
		},
		{
			name: "delete excluded: a marked folder's objects go",
			change: func(f *fixture) {
				scantest.Write(t, f.root, "photos/.nobackup", "")
			},
			diff: Diff{Filter: mustRules(t, scanner.Rules{IfPresent: []string{".nobackup"}}), DeleteExcluded: true},
			want: []string{"delete photos/img001.jpg", "delete photos/img002.jpg"},
		},
		{
			name:   "delete excluded: a pattern's objects go",
			change: func(*fixture) {},
			diff:   Diff{Filter: mustFilter(t, "*.txt"), DeleteExcluded: true},
			want:   []string{"delete a.txt", "delete docs/notes.txt"},
		},
		{
			name:   "delete excluded: under --max-delete",
			change: func(*fixture) {},
			diff:   Diff{Filter: mustFilter(t, "*.txt"), DeleteExcluded: true, MaxDelete: MaxDeletes(1)},
			want:   nil,
		},
		{
			name:   "rehash reads everything and finds nothing",
			change: func(*fixture) {},
			diff:   Diff{Rehash: true},
			want:   nil, reads: 5,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, base)
			f.record()
			c.change(f)
			got := f.diff(c.diff)
			if !slices.Equal(sorted(got.changes), c.want) {
				t.Fatalf("changes\n got %q\nwant %q\nproblems %q", sorted(got.changes), c.want, got.problems)
			}
			if f.opens.Load() != c.reads {
				t.Errorf("read %d files, want %d", f.opens.Load(), c.reads)
			}
		})
	}
}

// replaceOnItsInode deletes from and writes to with content of the same
// size, with from's mtime and its inode, as ext4 hands a freed inode
// straight to the next file created (it most often does here already; the
// listing makes sure). The new file differs only by ctime and birth time.
func (f *fixture) replaceOnItsInode(from, to, content string) {
	f.t.Helper()
	old := f.lstat(from)
	os.Remove(f.path(from))
	scantest.Write(f.t, f.root, to, content)
	os.Chtimes(f.path(to), old.Mtime(), old.Mtime())
	f.fs.restat[f.path(to)] = func(st *scanner.Stat) { st.Inode, st.Dev = old.Inode, old.Dev }
}

// lstat is the scanner's Stat of rel, as the walk takes it.
func (f *fixture) lstat(rel string) scanner.Stat {
	f.t.Helper()
	dir, name := filepath.Split(f.path(rel))
	ents, err := scanner.OS{}.ReadDir(filepath.Clean(dir))
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name == name {
			return e.Stat
		}
	}
	f.t.Fatalf("%s not listed", rel)
	return scanner.Stat{}
}

func mustRules(t *testing.T, r scanner.Rules) *scanner.Filter {
	f, err := scanner.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustFilter(t *testing.T, globs ...string) *scanner.Filter {
	f, err := scanner.NewFilter(globs)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDiffUnreadableFolderIsReportedAndKept(t *testing.T) {
	f := newFixture(t, scantest.Dir{"secret": scantest.Dir{"a": scantest.File{Content: "a"}, "b": scantest.File{Content: "b"}}, "z": scantest.File{Content: "z"}})
	f.record()
	f.fs.unreadable[f.path("secret")] = true
	got := f.diff(Diff{})
	if len(got.changes) != 0 || got.stats.Kept != 2 || got.stats.Errors != 1 || got.stats.Unchanged != 1 {
		t.Fatalf("got %+v", got)
	}
	if len(got.problems) != 1 || !strings.Contains(got.problems[0], "secret") || !strings.Contains(got.problems[0], "permission denied") {
		t.Fatalf("problems %q", got.problems)
	}
}

// A manifest recorded before birth times were has none: an unchanged file
// is not read again for it, but its row learns the birth time (a touch,
// which sends nothing to S3), so that a later move is recognised without
// reading the file.
func TestDiffLearnsBirthTimesOfOldRows(t *testing.T) {
	f := newFixture(t, scantest.Dir{"a": scantest.File{Content: "alpha"}, "b": scantest.File{Content: "bravo"}})
	w := f.db.Writer()
	for _, rel := range []string{"a", "b"} {
		d, st, err := scanner.HashFile(scanner.OS{}, f.path(rel))
		if err != nil {
			t.Fatal(err)
		}
		st.BtimeNs = 0
		w.Put(context.Background(), Entry{Path: rel, Hash: d, Stat: st, HashedNs: time.Now().Add(time.Hour).UnixNano()}, mustCommit(t))
	}
	w.Close()

	got := f.diff(Diff{})
	if !slices.Equal(got.changes, []string{"touch a", "touch b"}) || f.opens.Load() != 0 || got.stats.Unchanged != 2 {
		t.Fatalf("first run: %q, %d files read, %+v", got.changes, f.opens.Load(), got.stats)
	}
	w = f.db.Writer()
	for _, c := range got.all {
		if c.Entry.Stat.BtimeNs == 0 || c.MetaChanged() {
			t.Fatalf("%s: birth time %d, metadata changed %v", c.Path, c.Entry.Stat.BtimeNs, c.MetaChanged())
		}
		w.Put(context.Background(), c.Entry, mustCommit(t))
	}
	w.Close()

	if got := f.diff(Diff{}); len(got.changes) != 0 || f.opens.Load() != 0 {
		t.Fatalf("second run: %q, %d files read", got.changes, f.opens.Load())
	}
	os.Rename(f.path("a"), f.path("c"))
	if got := f.diff(Diff{}); !slices.Equal(got.changes, []string{"rename a -> c"}) || f.opens.Load() != 0 {
		t.Fatalf("move: %q, %d files read", got.changes, f.opens.Load())
	}
}

// A path the scan could not read (an error entry) never causes a delete of
// what the manifest holds at it or under it, wherever those rows sort: a
// folder's entry sorts right before its rows, but a followed link of
// unknown kind sorts as "l", and "l-x" and "l.txt" come before "l/a".
func TestDiffErrorEntriesDeleteNothingAtOrUnderThem(t *testing.T) {
	tree := scantest.Dir{
		"l":     scantest.Dir{"a": scantest.File{Content: "a"}, "b": scantest.Dir{"c": scantest.File{Content: "c"}}},
		"l-x":   scantest.File{Content: "l-x"},
		"l.txt": scantest.File{Content: "l.txt, deleted"},
		"m":     scantest.File{Content: "m"},
		"p":     scantest.File{Content: "p, now a link that leads nowhere"},
	}
	errNone := &fs.PathError{Op: "stat", Path: "/src/l", Err: fs.ErrNotExist}
	for _, c := range []struct {
		name string
		l    scanner.Entry
	}{
		{"a followed link to nowhere", scanner.Entry{Path: "l", Kind: scanner.KindError, Type: scanner.TypeSymlink, Err: errNone}},
		{"an unreadable folder", scanner.Entry{Path: "l", Kind: scanner.KindError, Dir: true, Err: fs.ErrPermission}},
		{"a path of unknown kind", scanner.Entry{Path: "l", Kind: scanner.KindError, Type: scanner.TypeUnknown, Err: fs.ErrPermission}},
		{"a file that cannot be stat'ed", scanner.Entry{Path: "l", Kind: scanner.KindError, Err: fs.ErrPermission}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, tree)
			f.record()
			file := func(rel string) scanner.Entry {
				return scanner.Entry{Path: rel, Kind: scanner.KindFile, Stat: f.lstat(rel)}
			}
			p := scanner.Entry{Path: "p", Kind: scanner.KindError, Type: scanner.TypeSymlink, Err: &fs.PathError{Op: "stat", Path: "/src/p", Err: fs.ErrNotExist}}
			f.scan = []scanner.Entry{file("l-x"), c.l, file("m"), p} // l.txt is gone
			slices.SortFunc(f.scan, func(a, b scanner.Entry) int { return strings.Compare(a.SortKey(), b.SortKey()) })
			got := f.diff(Diff{})
			if !slices.Equal(got.changes, []string{"delete l.txt"}) || got.stats.Kept != 3 || got.stats.Errors != 2 {
				t.Fatalf("changes %q, %+v, problems %q", got.changes, got.stats, got.problems)
			}
			if !strings.Contains(got.problems[0], "l: cannot ") || !strings.Contains(got.problems[0], "nothing at or under it is changed") {
				t.Fatalf("problems %q", got.problems)
			}
		})
	}
}

// A hash taken within RacyWindow of the file's mtime is not trusted: a
// same-size write in the same timestamp tick keeps the stat, so such a file
// is hashed again. A hash taken long after is trusted without reading.
func TestDiffRacilyCleanEntriesAreHashedAgain(t *testing.T) {
	for _, c := range []struct {
		name     string
		hashedAt time.Duration // after the file's mtime
		want     []string
	}{
		{"racy", time.Second, []string{"modify f"}},
		{"clean", time.Hour, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, scantest.Dir{"f": scantest.File{Content: "new content"}})
			_, st, err := scanner.HashFile(scanner.OS{}, f.path("f"))
			if err != nil {
				t.Fatal(err)
			}
			// The manifest claims other content under the very same stat, as
			// if the file had been rewritten within one timestamp tick.
			stale := Entry{Path: "f", Stat: st, Hash: scanner.Digest{1}, HashedNs: max(st.MtimeNs, st.CtimeNs) + int64(c.hashedAt)}
			w := f.db.Writer()
			w.Put(context.Background(), stale, mustCommit(t))
			w.Close()
			got := f.diff(Diff{})
			if !slices.Equal(got.changes, c.want) {
				t.Fatalf("got %q, want %q", got.changes, c.want)
			}
		})
	}
}

// A touch (same content, new stat) writes no new object, so the row keeps
// the ETag S3 gave the object: a reconcile compares it with the listing.
func TestDiffTouchKeepsETag(t *testing.T) {
	f := newFixture(t, scantest.Dir{"f": scantest.File{Content: "content"}})
	f.record()
	e, _, _ := f.db.Get(context.Background(), "f")
	e.ETag = "etag-of-f"
	w := f.db.Writer()
	w.Put(context.Background(), e, mustCommit(t))
	w.Close()
	later := time.Now().Add(time.Hour)
	os.Chtimes(f.path("f"), later, later)
	got := f.diff(Diff{})
	if len(got.all) != 1 || got.all[0].Op != OpTouch || got.all[0].Entry.ETag != "etag-of-f" {
		t.Fatalf("changes %+v: want a touch of f that keeps its ETag", got.all)
	}
}

func TestDiffKeyTooLongIsReported(t *testing.T) {
	long := strings.Repeat("x", 200)
	f := newFixture(t, scantest.Dir{long: scantest.Dir{long: scantest.Dir{long: scantest.Dir{long: scantest.Dir{long: scantest.Dir{long: scantest.File{Content: "deep"}}}}}}, "ok": scantest.File{Content: "ok"}})
	got := f.diff(Diff{Prefix: "backups/"})
	if !slices.Equal(got.changes, []string{"add ok"}) || got.stats.Errors != 1 || !strings.Contains(got.problems[0], "over S3's limit") {
		t.Fatalf("got %+v", got)
	}
}

func TestDiffFileVanishingDuringScanIsNotAnError(t *testing.T) {
	f := newFixture(t, scantest.Dir{"a": scantest.File{Content: "a"}})
	f.record()
	// Remove the file after the walk lists it, before it is hashed:
	// force a hash with Rehash, and delete in the Open hook.
	f.fs.unreadable = map[string]bool{}
	vfs := vanishFS{countFS: f.fs, path: f.path("a")}
	f.fs.opens = &f.opens
	d := Diff{Rehash: true, MaxDelete: MaxDeleteShare(100)}
	d.DB, d.FS, d.Root = f.db, vfs, f.root
	var problems []Problem
	d.Problems = func(p Problem) { problems = append(problems, p) }
	scan := make(chan scanner.Entry, 10)
	if err := scanner.Walk(context.Background(), scanner.OS{}, f.root, scanner.WalkOptions{}, func(e scanner.Entry) error { scan <- e; return nil }); err != nil {
		t.Fatal(err)
	}
	close(scan)
	out := make(chan Change, 10)
	st, err := d.Run(context.Background(), scan, out)
	close(out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for c := range out {
		got = append(got, fmt.Sprint(c.Op, " ", c.Path))
	}
	if !slices.Equal(got, []string{"delete a"}) || st.Errors != 0 || len(problems) != 0 {
		t.Fatalf("got %q %+v %v", got, st, problems)
	}
}

type vanishFS struct {
	countFS
	path string
}

func (v vanishFS) Open(p string) (scanner.File, error) {
	if p == v.path {
		os.Remove(p)
	}
	return v.countFS.Open(p)
}

// A run that would delete more than the limit deletes nothing and says
// why: a missing or unmounted source must not empty the bucket.
func TestDiffDeleteLimit(t *testing.T) {
	tree := scantest.Dir{}
	for i := range 10 {
		tree[fmt.Sprintf("f%d", i)] = scantest.File{Content: fmt.Sprint("content ", i)}
	}
	for _, c := range []struct {
		name    string
		remove  int
		limit   string // as --max-delete gives it; "": not set
		refused bool
	}{
		{"half is allowed by default", 5, "", false},
		{"more than half is refused by default", 6, "", true},
		{"everything, when the source is empty", 10, "", true},
		{"everything, when allowed", 10, "100%", false},
		{"a count", 3, "2", true},
		{"within a count", 2, "2", false},
		{"a share", 3, "20%", true},
		{"within a share", 2, "20%", false},
		{"none at all: 0", 1, "0", true},
		{"none at all: 0%", 1, "0%", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var limit DeleteLimit
			if c.limit != "" {
				var err error
				if limit, err = ParseDeleteLimit(c.limit); err != nil {
					t.Fatal(err)
				}
			}
			f := newFixture(t, tree)
			f.record()
			for i := range c.remove {
				os.Remove(f.path(fmt.Sprintf("f%d", i)))
			}
			got := f.diff(Diff{MaxDelete: limit})
			if c.refused != (got.stats.Refused != nil) {
				t.Fatalf("refused: %v", got.stats.Refused)
			}
			if c.refused {
				if len(got.changes) != 0 || !errors.Is(got.stats.Refused, ErrTooManyDeletes) || !strings.Contains(got.stats.Refused.Error(), "--max-delete") {
					t.Fatalf("changes %q, %v", got.changes, got.stats.Refused)
				}
			} else if len(got.changes) != c.remove {
				t.Fatalf("changes %q", got.changes)
			}
		})
	}
	// Moving everything is renames, not deletes.
	f := newFixture(t, tree)
	f.record()
	os.Mkdir(f.path("moved"), 0o755)
	for i := range 10 {
		os.Rename(f.path(fmt.Sprintf("f%d", i)), f.path(fmt.Sprintf("moved/f%d", i)))
	}
	if got := f.diff(Diff{}); got.stats.Refused != nil || len(got.changes) != 10 || !strings.HasPrefix(got.changes[0], "rename") {
		t.Fatalf("move: %+v", got)
	}
}

func TestParseDeleteLimit(t *testing.T) {
	for in, want := range map[string]DeleteLimit{
		"50%": MaxDeleteShare(50), "100%": MaxDeleteShare(100), "all": MaxDeleteShare(100), "1000": MaxDeletes(1000), "12.5%": MaxDeleteShare(12.5),
		"0": MaxDeletes(0), "0%": MaxDeleteShare(0),
	} {
		if got, err := ParseDeleteLimit(in); err != nil || got != want {
			t.Errorf("%q: %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "150%", "x%", "ten"} {
		if _, err := ParseDeleteLimit(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A diff restricted to scopes (a watch's dirty paths) sees changes there,
// pairs renames across them, and leaves everything else alone.
func TestDiffScopes(t *testing.T) {
	f := newFixture(t, scantest.Dir{
		"a":     scantest.Dir{"x": scantest.File{Content: "x"}, "y": scantest.File{Content: "y"}},
		"b":     scantest.Dir{"z": scantest.File{Content: "z"}},
		"c.txt": scantest.File{Content: "c"},
	})
	f.record()
	os.RemoveAll(f.path("a"))                         // dirty: a
	scantest.Write(t, f.root, "b/new", "new")         // dirty: b/new
	os.Rename(f.path("c.txt"), f.path("b/moved.txt")) // dirty: c.txt, b/moved.txt
	scantest.Write(t, f.root, "b/z", "changed but not seen")
	scopes := scanner.Scopes([]string{"a", "b/new", "c.txt", "b/moved.txt"})
	d := Diff{Scopes: scopes, MaxDelete: MaxDeleteShare(100)}
	d.DB, d.FS, d.Root = f.db, f.fs, f.root
	scan := make(chan scanner.Entry, 100)
	if err := scanner.ScanScopes(context.Background(), scanner.OS{}, f.root, scopes, scanner.WalkOptions{}, func(e scanner.Entry) error { scan <- e; return nil }); err != nil {
		t.Fatal(err)
	}
	close(scan)
	out := make(chan Change, 100)
	if _, err := d.Run(context.Background(), scan, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []string
	for c := range out {
		s := c.Op.String() + " " + c.Path
		if c.From != "" {
			s += " <- " + c.From
		}
		got = append(got, s)
	}
	want := []string{"add b/new", "delete a/x", "delete a/y", "rename b/moved.txt <- c.txt"}
	if !slices.Equal(sorted(got), want) {
		t.Fatalf("got %q, want %q", sorted(got), want)
	}
}

// A dirty path that cannot be looked up (its folder lost its search
// permission; a dead mount) keeps all it stood for, whatever it was: the
// object at it and the objects under it, which the merge meets after other
// paths (P/f-x sorts between P/f and P/f/).
func TestDiffScopesKeepWhatCannotBeLookedUp(t *testing.T) {
	f := newFixture(t, scantest.Dir{"P": scantest.Dir{
		"D": scantest.Dir{"a": scantest.File{Content: "a"}, "b": scantest.File{Content: "b"}},
		"f": scantest.File{Content: "f"},
	}})
	f.record()
	os.Rename(f.path("P/D"), f.path("P/E"))
	scantest.Write(t, f.root, "P/f-x", "new")
	for _, p := range []string{"P/D", "P/E", "P/f"} {
		f.fs.unstatable[f.path(p)] = true
	}
	got := f.diff(Diff{Scopes: scanner.Scopes([]string{"P/D", "P/E", "P/f", "P/f-x"}), MaxDelete: MaxDeleteShare(100)})
	if !slices.Equal(got.changes, []string{"add P/f-x"}) || got.stats.Kept != 3 || got.stats.Errors != 3 {
		t.Fatalf("got %+v", got)
	}
	for _, p := range got.problems {
		if !strings.Contains(p, ": cannot look up path, nothing at or under it is changed") {
			t.Errorf("problem %q", p)
		}
	}
}

// Of new files with one content that the bucket does not hold, the first
// in path order is uploaded and the others are copies of it, sent after it
// and marked as waiting for it (FromRun), each with its own row; on a first
// run (no look-ups in the manifest) as on a later one. Files below
// DupCopyMin are uploaded each.
func TestDiffDuplicatesWithinARunAreCopiesOfTheFirst(t *testing.T) {
	dup := strings.Repeat("same content ", DefaultDupCopyMin/10)
	tree := scantest.Dir{
		"c":      scantest.Dir{"dup.bin": scantest.File{Content: dup}},
		"a":      scantest.Dir{"dup.bin": scantest.File{Content: dup}},
		"b":      scantest.Dir{"dup.bin": scantest.File{Content: dup, Mode: 0o600}},
		"small1": scantest.File{Content: "small"},
		"small2": scantest.File{Content: "small"},
	}
	want := []string{"add a/dup.bin", "add small1", "add small2", "copy a/dup.bin -> b/dup.bin", "copy a/dup.bin -> c/dup.bin"}
	check := func(t *testing.T, got diffResult) {
		t.Helper()
		var dups []string
		for _, c := range got.all {
			if strings.HasSuffix(c.Path, "dup.bin") || strings.HasPrefix(c.Path, "small") {
				dups = append(dups, c.Op.String()+" "+c.Path)
			}
		}
		if !slices.Equal(sorted(got.changes), want) {
			t.Fatalf("changes\n got %q\nwant %q", got.changes, want)
		}
		if !slices.Equal(dups[:3], []string{"add a/dup.bin", "copy b/dup.bin", "copy c/dup.bin"}) {
			t.Fatalf("the copies are not sent after their source: %q", dups)
		}
		for _, c := range got.all {
			if c.FromRun != (c.Op == OpCopy) {
				t.Errorf("%s %s: FromRun %v", c.Op, c.Path, c.FromRun)
			}
			if c.Entry.Path != c.Path || c.Path == "b/dup.bin" && c.Entry.Stat.Mode&0o777 != 0o600 {
				t.Errorf("%s %s: the row is not the file's own: %+v", c.Op, c.Path, c.Entry)
			}
		}
	}
	t.Run("first run", func(t *testing.T) {
		f := newFixture(t, tree)
		check(t, f.diff(Diff{}))
	})
	t.Run("later run", func(t *testing.T) {
		f := newFixture(t, scantest.Dir{"old.txt": scantest.File{Content: "old"}})
		f.record()
		scantest.Create(t, f.root, tree)
		check(t, f.diff(Diff{}))
	})
}

// A folder a marker leaves out counts in Stats.Excluded, in a full diff
// and in a scoped one (a watch's dirty path inside it), and its rows stay
// unless DeleteExcluded.
func TestDiffMarkedFolder(t *testing.T) {
	f := newFixture(t, scantest.Dir{
		"a.txt": scantest.File{Content: "alpha"},
		"cache": scantest.Dir{"x": scantest.File{Content: "x"}, "sub": scantest.Dir{"y": scantest.File{Content: "y"}}},
	})
	f.record()
	scantest.Write(t, f.root, "cache/CACHEDIR.TAG", scanner.CacheTagSignature+"\n")
	scantest.Write(t, f.root, "cache/sub/y", "edited")
	caches := mustRules(t, scanner.Rules{Caches: true})
	all := []string{"delete cache/sub/y", "delete cache/x"}
	for _, c := range []struct {
		scopes  []string
		deletes []string // with DeleteExcluded: the rows of the scopes
	}{
		{nil, all},
		{[]string{"cache/sub/y"}, []string{"delete cache/sub/y"}},
		{caches.MarkerScopes([]string{"cache/CACHEDIR.TAG"}), all}, // the tag, made: its folder
	} {
		got := f.diff(Diff{Filter: caches, Scopes: c.scopes})
		if len(got.changes) != 0 || len(got.problems) != 0 || got.stats.Excluded != 1 {
			t.Errorf("scopes %q: changes %q, problems %q, %d folders excluded, want none, none and 1", c.scopes, got.changes, got.problems, got.stats.Excluded)
		}
		got = f.diff(Diff{Filter: caches, Scopes: c.scopes, DeleteExcluded: true, MaxDelete: MaxDeleteShare(100)})
		if !slices.Equal(sorted(got.changes), c.deletes) {
			t.Errorf("scopes %q, delete excluded: changes %q, want %q", c.scopes, sorted(got.changes), c.deletes)
		}
	}
}
