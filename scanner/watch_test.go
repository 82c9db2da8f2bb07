package scanner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

func TestScopes(t *testing.T) {
	got := Scopes([]string{"a/x", "a", "a-b", "a.txt", "b/c/d", "b/c", "b/e", "a/y/z"})
	want := []string{"a", "a-b", "a.txt", "b/c", "b/e"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := Scopes([]string{"x", ""}); !slices.Equal(got, []string{""}) {
		t.Fatalf("whole tree: %q", got)
	}
}

// Scanning scopes gives, in path order, the entries a full walk gives under
// them, and nothing else.
func TestScanScopes(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"a":     scantest.Dir{"x": scantest.File{}, "y": scantest.Dir{"z": scantest.File{}}},
		"a-b":   scantest.File{},
		"a.txt": scantest.File{},
		"b":     scantest.Dir{"c": scantest.File{}, "d": scantest.File{}},
		"link":  scantest.Symlink{Target: "a"},
	})
	var got []string
	err := ScanScopes(context.Background(), OS{}, root, []string{"b/c", "a.txt", "a", "gone", "link", "a/y"}, WalkOptions{}, func(e Entry) error {
		got = append(got, e.SortKey())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.txt", "a/x", "a/y/z", "b/c", "link"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Scopes come out in one SortKey order, each scope's entries together: for
// every set of scopes among names that sort around each other ("a-b" and
// "a.txt" come between the file "a" and the folder "a/"), files next to
// folders, an unreadable folder (sorting as "u/"), gone scopes, what the
// scan gives is what the full walk gives at or under them, in its order.
func TestScanScopesInSortKeyOrder(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"a":     scantest.Dir{"x": scantest.File{}, "y": scantest.Dir{"z": scantest.File{}}},
		"a b":   scantest.File{},
		"a-b":   scantest.File{},
		"a.txt": scantest.File{},
		"a0":    scantest.Dir{"f": scantest.File{}},
		"a0.x":  scantest.File{},
		"u":     scantest.Dir{"in": scantest.File{}},
		"u-v":   scantest.Fifo{},
	})
	fsys := faultFS{readDir: map[string]error{filepath.Join(root, "u"): os.ErrPermission}}
	walked := collect(t, fsys, root, WalkOptions{})
	candidates := []string{"a", "a b", "a-b", "a.txt", "a0", "a0.x", "a/y", "u", "u-v", "gone"}
	for set := range 1 << len(candidates) {
		var scopes []string
		for i, c := range candidates {
			if set&(1<<i) != 0 {
				scopes = append(scopes, c)
			}
		}
		got, want := scanAndWalk(t, fsys, root, WalkOptions{}, walked, scopes)
		if !slices.Equal(got, want) {
			t.Fatalf("scopes %q: scanned %q, want %q", scopes, got, want)
		}
	}
}

// A dirty scope is excluded exactly as the full walk excludes it: a
// folder-only pattern matches a scope that is a folder (rm -rf node_modules
// && npm install makes node_modules itself dirty), any pattern matches a
// scope under an excluded folder, and a folder-only pattern leaves a file
// of that name alone.
func TestScanScopesExcludesAsTheWalkDoes(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"node_modules": scantest.Dir{"m.js": scantest.File{}, "pkg": scantest.Dir{"index.js": scantest.File{}}},
		"src": scantest.Dir{
			"a.go":         scantest.File{},
			"node_modules": scantest.Dir{"n.js": scantest.File{}},
			"build":        scantest.Dir{"out": scantest.File{}},
			"x.tmp":        scantest.Dir{"y": scantest.File{}},
		},
		"lib":   scantest.Dir{"build": scantest.Dir{"kept": scantest.File{}}},
		"cache": scantest.File{},
	})
	f, err := NewFilter([]string{"node_modules/", "/src/build/", "cache/", "*.tmp"})
	if err != nil {
		t.Fatal(err)
	}
	scopesAsWalk(t, OS{}, root, WalkOptions{Filter: f}, "node_modules", "node_modules/pkg", "node_modules/m.js", "src/node_modules",
		"src/node_modules/n.js", "src/build", "src/build/out", "src/x.tmp/y", "lib/build", "cache", "src")
}

// Following symlinks, a scope that is a link is what the walk makes of it:
// a link to a folder is walked, a broken link is an error naming the link.
func TestScanScopesFollowsSymlinksAsTheWalkDoes(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"d":      scantest.Dir{"f": scantest.File{Content: "f"}},
		"to-d":   scantest.Symlink{Target: "d"},
		"to-f":   scantest.Symlink{Target: "d/f"},
		"broken": scantest.Symlink{Target: "nowhere"},
	})
	scopesAsWalk(t, OS{FollowSymlinks: true}, root, WalkOptions{}, "to-d", "to-f", "broken")
}

// scanAndWalk returns what ScanScopes gives for scopes and what the full
// walk (walked) has at or under them, each entry as its sort key, kind and
// type, in the order each came.
func scanAndWalk(t *testing.T, fsys FS, root string, opts WalkOptions, walked []Entry, scopes []string) (got, want []string) {
	t.Helper()
	show := func(e Entry) string { return fmt.Sprintf("%s %d %v", e.SortKey(), e.Kind, e.Type) }
	for _, e := range walked {
		if slices.ContainsFunc(scopes, func(s string) bool { return e.Path == s || strings.HasPrefix(e.Path, s+"/") }) {
			want = append(want, show(e))
		}
	}
	err := ScanScopes(context.Background(), fsys, root, scopes, opts, func(e Entry) error {
		got = append(got, show(e))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, want
}

// scopesAsWalk checks that scanning each scope alone gives what the full
// walk gives at it and under it: the same paths, of the same kinds.
func scopesAsWalk(t *testing.T, fsys FS, root string, opts WalkOptions, scopes ...string) {
	t.Helper()
	walked := collect(t, fsys, root, opts)
	for _, scope := range scopes {
		got, want := scanAndWalk(t, fsys, root, opts, walked, []string{scope})
		if !slices.Equal(got, want) {
			t.Errorf("scope %s: scanned %q, the full walk has %q", scope, got, want)
		}
	}
}

// A scope that cannot be looked up (a folder above it without search
// permission, a dead mount: ENOTCONN, ESTALE) is an error entry of unknown
// type, not a folder's (it may have been a file), named with why: nothing
// at it or under it is known. Not found is gone only where a listing shows
// it: its folder lists without it, or is itself gone.
func TestScanScopesUnknownScopeIsAnErrorOfUnknownType(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"P":    scantest.Dir{"D": scantest.Dir{"a": scantest.File{}}, "f": scantest.File{}},
		"Q":    scantest.Dir{},
		"file": scantest.File{},
	})
	abs := func(rel string) string { return filepath.Join(root, rel) }
	fault := func(op, rel string, errno error) error { return &os.PathError{Op: op, Path: abs(rel), Err: errno} }
	fsys := faultFS{
		lstat: map[string]error{
			abs("P/D"): fault("lstat", "P/D", unix.ENOTCONN),
			abs("P/f"): fault("lstat", "P/f", unix.EACCES),
			abs("P/E"): fault("lstat", "P/E", unix.ESTALE),
		},
		readDir: map[string]error{abs("Q"): fault("open", "Q", unix.EACCES)},
	}
	for _, c := range []struct {
		scope string
		err   error // nil: gone, no entry
	}{
		{"P/D", unix.ENOTCONN},
		{"P/f", unix.EACCES}, // a file, as far as anyone knew
		{"P/E", unix.ESTALE},
		{"gone", nil},           // not in the listing of its folder
		{"Q/gone", unix.EACCES}, // not found, in a folder that cannot be listed
		{"R/S/gone", nil},       // its folders are gone too
		{"file/x", nil},         // under a file (ENOTDIR)
	} {
		var got []Entry
		err := ScanScopes(context.Background(), fsys, root, []string{c.scope}, WalkOptions{}, func(e Entry) error {
			got = append(got, e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.err == nil {
			if len(got) != 0 {
				t.Errorf("scope %s, gone: got %+v", c.scope, got)
			}
			continue
		}
		if len(got) != 1 || got[0].Path != c.scope || got[0].Kind != KindError || got[0].Type != TypeUnknown || got[0].Dir ||
			!errors.Is(got[0].Err, c.err) || !strings.Contains(got[0].Err.Error(), abs(c.scope)) {
			t.Errorf("scope %s: got %+v, want one error of unknown type %s with an error naming it (%v)", c.scope, got, c.scope, c.err)
		}
	}
}

// The watcher marks what changes dirty, and a new folder stands for
// everything in it, even files created before its watch existed.
func TestWatcherMarksChanges(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{"keep": scantest.File{Content: "k"}, "old": scantest.File{Content: "o"}, "dir": scantest.Dir{"f": scantest.File{Content: "f"}}})
	root, _ = filepath.EvalSymlinks(root)
	w := mustWatch(t, root)
	runWatcher(t, w)

	scantest.Write(t, root, "dir/f", "changed")
	os.Remove(filepath.Join(root, "old"))
	os.MkdirAll(filepath.Join(root, "new/deep/er"), 0o755)
	scantest.Write(t, root, "new/deep/er/file", "x")
	os.Rename(filepath.Join(root, "keep"), filepath.Join(root, "kept"))

	want := []string{"dir/f", "keep", "kept", "new", "old"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := Scopes(w.Peek())
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dirty scopes %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	dirty, lost := w.Take()
	if lost != "" || len(dirty) == 0 {
		t.Fatalf("take: %q %q", dirty, lost)
	}
	var scanned []string
	ScanScopes(context.Background(), OS{}, root, dirty, WalkOptions{}, func(e Entry) error {
		scanned = append(scanned, e.Path)
		return nil
	})
	if !slices.Equal(scanned, []string{"dir/f", "kept", "new/deep/er/file"}) {
		t.Fatalf("scanned %q", scanned)
	}
}

// notify hides the kernel's queue overflow: a second with as many events as
// the kernel's queue holds is taken as a sign that some were dropped.
func TestWatcherSuspectsAStorm(t *testing.T) {
	root, _ := filepath.EvalSymlinks(t.TempDir())
	w := mustWatch(t, root)
	if w.storm != kernelQueueSize() {
		t.Fatalf("storm threshold %d, kernel queue %d", w.storm, kernelQueueSize())
	}
	w.storm = 100 // a small kernel queue, as fs.inotify.max_queued_events=100 would give
	runWatcher(t, w)

	for i := range 20 {
		scantest.Write(t, root, fmt.Sprintf("calm-%d", i), "x")
	}
	time.Sleep(300 * time.Millisecond)
	if _, lost := w.Take(); lost != "" {
		t.Fatalf("20 writes taken for a storm: %q", lost)
	}
	for i := range 300 {
		scantest.Write(t, root, fmt.Sprintf("storm-%d", i), "x")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, lost := w.Take(); strings.Contains(lost, "as many as the kernel's inotify queue holds") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("300 writes at once not taken for a storm (last reason %q)", lost)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The two counts Watch compares to notice a tree that is only partly
// watched: the folders it can list, and the inotify watches held.
func TestWatchCountsFoldersAndWatches(t *testing.T) {
	root, _ := filepath.EvalSymlinks(t.TempDir())
	scantest.Create(t, root, watchLimitTree())
	if n := countFolders(root); n != 31 {
		t.Fatalf("%d folders counted, want 31", n)
	}
	before := InotifyWatches(os.Getpid())
	w := mustWatch(t, root)
	if held := InotifyWatches(os.Getpid()); held < 31 || held-max(before, 0) != 31 {
		t.Fatalf("%d inotify watches held (%d before), want 31 more", held, before)
	}
	if why := w.Uncovered(); why != "" {
		t.Fatalf("a whole watch said uncovered: %q", why)
	}
	// Folders created later are watched too (notify adds them on their
	// create event): no false alarm once it has.
	runWatcher(t, w)
	for i := range 3 {
		os.MkdirAll(filepath.Join(root, fmt.Sprintf("new%d/sub", i)), 0o755)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Uncovered() != "" {
		if time.Now().After(deadline) {
			t.Fatalf("new folders never watched: %q", w.Uncovered())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func watchLimitTree() scantest.Dir {
	tree := scantest.Dir{}
	for i := range 30 {
		tree[fmt.Sprintf("d%02d", i)] = scantest.Dir{"f": scantest.File{Content: "x"}}
	}
	return tree
}

// notify stops quietly at the inotify watch limit, part way down the tree;
// Watch must not then claim to watch it all. The limit is the kernel's,
// lowered for the length of the test: it is machine-wide for the user, so
// the test runs only when asked (CLOUDKEEPER_TEST_WATCH_LIMIT=1, as root),
// never beside other tests that watch.
func TestWatchNoticesTheWatchLimit(t *testing.T) {
	const sysctl = "/proc/sys/fs/inotify/max_user_watches"
	if os.Getenv("CLOUDKEEPER_TEST_WATCH_LIMIT") != "1" {
		t.Skip("lowers the machine's inotify watch limit for a moment: run with CLOUDKEEPER_TEST_WATCH_LIMIT=1, as root, alone")
	}
	old, err := os.ReadFile(sysctl)
	if err != nil || os.Geteuid() != 0 {
		t.Skipf("cannot lower the watch limit here (root: %v, %v)", os.Geteuid() == 0, err)
	}
	root, _ := filepath.EvalSymlinks(t.TempDir())
	scantest.Create(t, root, watchLimitTree())

	// Room for 10 more watches than this user's processes hold now.
	limit := userWatches() + 10
	if err := os.WriteFile(sysctl, []byte(strconv.Itoa(limit)), 0o644); err != nil {
		t.Skipf("cannot lower the watch limit here: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(sysctl, old, 0o644); err != nil {
			t.Errorf("could not restore %s to %s: %v", sysctl, strings.TrimSpace(string(old)), err)
		}
	})
	w, err := Watch(root, 0)
	if err == nil {
		w.Close()
		t.Fatalf("31 folders watched under a limit of %d", limit)
	}
	if !errors.Is(err, ErrWatchLimit) || !strings.Contains(err.Error(), "max_user_watches") || !strings.Contains(err.Error(), root) {
		t.Fatalf("error %q", err)
	}

	// With the limit back, the same tree is watched whole.
	if err := os.WriteFile(sysctl, old, 0o644); err != nil {
		t.Fatal(err)
	}
	w = mustWatch(t, root)
	runWatcher(t, w)

	// Folders created past the limit: notify gives no error, Uncovered
	// tells.
	if err := os.WriteFile(sysctl, []byte(strconv.Itoa(userWatches()+5)), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		os.MkdirAll(filepath.Join(root, fmt.Sprintf("later%02d", i)), 0o755)
	}
	time.Sleep(300 * time.Millisecond)
	why := w.Uncovered()
	if !strings.Contains(why, "of its 51 folders could be watched") {
		t.Fatalf("20 folders created past the limit: uncovered %q", why)
	}
}

// userWatches counts the inotify watches held by the processes this test
// can see (the limit counts them all for the user).
func userWatches() int {
	n := 0
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if pid, err := strconv.Atoi(p.Name()); err == nil {
			n += max(0, InotifyWatches(pid))
		}
	}
	return n
}

// mustWatch watches root until the test ends.
func mustWatch(t *testing.T, root string) *Watcher {
	t.Helper()
	w, err := Watch(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// runWatcher records w's events until the test ends.
func runWatcher(t *testing.T, w *Watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx)
}

// listCountFS counts the non-folder entries its listings return: what the
// scan has read and holds until the consumer takes it.
type listCountFS struct {
	FS
	listed *atomic.Int64
}

func (c listCountFS) ReadDir(p string) ([]DirEntry, error) {
	ents, err := c.FS.ReadDir(p)
	for _, e := range ents {
		if e.Type != TypeDir {
			c.listed.Add(1)
		}
	}
	return ents, err
}

// A push after `mv big other` (dirty: the two folders) streams the folder
// as the full walk does: what is listed ahead of a slow consumer stays
// within the walk's look-ahead, whatever the folder holds.
func TestScanScopesStreams(t *testing.T) {
	root := t.TempDir()
	const folders, perFolder = 100, 100
	other := scantest.Dir{}
	for i := range folders {
		d := scantest.Dir{}
		for j := range perFolder {
			d[fmt.Sprintf("f%03d", j)] = scantest.File{}
		}
		other[fmt.Sprintf("d%03d", i)] = d
	}
	scantest.Create(t, root, scantest.Dir{"other": other, "other.txt": scantest.File{}})
	var listed atomic.Int64
	fsys := listCountFS{FS: OS{}, listed: &listed}
	opts := WalkOptions{Workers: 2, MaxAhead: 256}
	taken, most := int64(0), int64(0)
	err := ScanScopes(context.Background(), fsys, root, []string{"big", "other", "other.txt"}, opts, func(e Entry) error {
		if taken == 0 {
			time.Sleep(100 * time.Millisecond) // a slow consumer: let the listing run as far ahead as it may
		}
		taken++
		most = max(most, listed.Load()-taken)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk's bound: MaxAhead entries, plus the folders queued
	// (4 per worker) and being listed when the budget ran out.
	bound := int64(opts.MaxAhead + (5*opts.Workers+1)*perFolder)
	t.Logf("%d entries scanned, at most %d listed ahead of the consumer (bound %d)", taken, most, bound)
	if taken != folders*perFolder+1 || most > bound {
		t.Fatalf("%d entries, up to %d held ahead of the consumer, want at most %d", taken, most, bound)
	}
}

// An error of fn ends the scan as it is, from within a folder's walk too:
// it is not taken for a folder that cannot be read.
func TestScanScopesStopsAtAnErrorOfFn(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"d": scantest.Dir{"1": scantest.File{}, "2": scantest.File{}, "3": scantest.File{}},
		"e": scantest.File{},
	})
	stop := errors.New("stop")
	var got []string
	err := ScanScopes(context.Background(), OS{}, root, []string{"d", "e"}, WalkOptions{}, func(e Entry) error {
		got = append(got, e.SortKey())
		if len(got) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !slices.Equal(got, []string{"d/1", "d/2"}) {
		t.Fatalf("got %q, %v; want d/1, d/2 and the error of fn", got, err)
	}
}
