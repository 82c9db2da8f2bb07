package scanner

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rjeczalik/notify"
	"golang.org/x/sys/unix"
)

// Watcher turns file system events under a source folder into dirty paths:
// the event-driven alternative to a full walk, on a recursive
// github.com/rjeczalik/notify watch (inotify on Linux, one watch per
// folder).
//
// Events are not a complete record. notify drops events when its receiver
// is slow and hides the kernel's queue overflow, and on inotify the files
// created in a new folder before its watch exists raise no event at all.
// So a dirty path stands for itself and everything under it: a new folder
// is walked whole when the dirty paths are scanned. And Take reports when
// there is reason to think events were missed (a full event buffer, a
// storm of events as big as the kernel's queue, an event on the source
// folder itself), so that a caller can fall back to a full scan.
type Watcher struct {
	root   string
	events chan notify.EventInfo
	// storm is how many events within a second make a kernel queue
	// overflow likely (the queue's size, fs.inotify.max_queued_events);
	// 0 if unknown. notify drops the kernel's IN_Q_OVERFLOW notice, so a
	// rate that could have filled the queue is the only sign left.
	storm int

	mu    sync.Mutex
	dirty map[string]struct{}
	lost  string // why events may have been missed since the last Take
	// Whether Uncovered must count again: a create or rename came (a new
	// folder, perhaps), or the last count fell short.
	recount bool
}

// DefaultEventBuffer is the event channel's capacity: notify drops events
// once it is full.
const DefaultEventBuffer = 1 << 16

// Watch starts watching root (a folder) recursively. buffer is the event
// channel's capacity (0: DefaultEventBuffer). Stop it with Close.
func Watch(root string, buffer int) (*Watcher, error) {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	w := &Watcher{root: filepath.Clean(root), events: make(chan notify.EventInfo, buffer), dirty: map[string]struct{}{},
		storm: kernelQueueSize()}
	// notify says nothing when the watch limit stops it part way down the
	// tree: count the folders first, and the watches held after.
	folders := countFolders(w.root)
	err := notify.Watch(w.root+"/...", w.events, notify.Create, notify.Write, notify.Remove, notify.Rename)
	if err != nil {
		notify.Stop(w.events)
		if errors.Is(err, unix.ENOSPC) {
			return nil, fmt.Errorf("watch %s (raise fs.inotify.max_user_watches): %w", root, ErrWatchLimit)
		}
		return nil, fmt.Errorf("watch %s: %w", root, err)
	}
	if held := InotifyWatches(os.Getpid()); held >= 0 && held < folders {
		notify.Stop(w.events)
		return nil, fmt.Errorf("watch %s: %w", root, shortOfWatches(held, folders))
	}
	return w, nil
}

func shortOfWatches(held, folders int) error {
	return fmt.Errorf("only %d of its %d folders could be watched (raise fs.inotify.max_user_watches): %w", held, folders, ErrWatchLimit)
}

// Uncovered says why the watch may no longer cover the tree, or "": notify
// gives no error when it cannot watch a folder created after the start
// (the watch limit), so the folders are counted again against the watches
// held: after a create or rename event only (how a folder appears), and
// until the count no longer falls short. It lists every folder: call it
// once a push, not once an event.
func (w *Watcher) Uncovered() string {
	w.mu.Lock()
	recount := w.recount
	w.recount = false
	w.mu.Unlock()
	if !recount {
		return ""
	}
	held := InotifyWatches(os.Getpid())
	if held < 0 {
		return ""
	}
	if folders := countFolders(w.root); held < folders {
		w.mu.Lock()
		w.recount = true
		w.mu.Unlock()
		return shortOfWatches(held, folders).Error() + ": events in the others are missed"
	}
	return ""
}

// ErrWatchLimit is the error of a watch that cannot cover the whole tree.
var ErrWatchLimit = errors.New("the limit of inotify watches is reached")

// countFolders counts root and the folders under it that can be listed
// (what inotify can watch), from directory entries alone, without stat.
func countFolders(root string) int {
	ents, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	n := 1
	for _, e := range ents {
		if e.IsDir() {
			n += countFolders(filepath.Join(root, e.Name()))
		}
	}
	return n
}

// InotifyWatches counts the inotify watches process pid holds, from
// /proc/PID/fdinfo; -1 if it cannot tell (no /proc, no inotify instance).
func InotifyWatches(pid int) int {
	proc := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return -1
	}
	n, found := 0, false
	for _, fd := range fds {
		if target, err := os.Readlink(proc + "/fd/" + fd.Name()); err != nil || target != "anon_inode:inotify" {
			continue
		}
		info, err := os.ReadFile(proc + "/fdinfo/" + fd.Name())
		if err != nil {
			return -1
		}
		found = true
		n += strings.Count(string(info), "inotify wd:")
	}
	if !found {
		return -1
	}
	return n
}

// kernelQueueSize is inotify's per-instance event queue size, or 0.
func kernelQueueSize() int {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// Run records events as dirty paths until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	var second time.Time // start of the current one-second window
	inSecond := 0        // events received in it
	for {
		select {
		case ev := <-w.events:
			full := len(w.events) == cap(w.events)-1 // it was full when this one was taken
			if now := time.Now(); now.Sub(second) >= time.Second {
				second, inSecond = now, 0
			}
			inSecond++
			w.record(ev, full, w.storm > 0 && inSecond == w.storm)
		case <-ctx.Done():
			return
		}
	}
}

func (w *Watcher) record(ev notify.EventInfo, full, storm bool) {
	rel, ok := w.rel(ev.Path())
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.Event()&(notify.Create|notify.Rename) != 0 {
		w.recount = true // a new folder, perhaps
	}
	if full && w.lost == "" {
		w.lost = "the event buffer filled up: events may have been dropped"
	}
	if storm && w.lost == "" {
		w.lost = fmt.Sprintf("%d events within a second, as many as the kernel's inotify queue holds (fs.inotify.max_queued_events): events may have been dropped", w.storm)
	}
	if !ok {
		return
	}
	if rel == "" {
		// The source folder itself (renamed, deleted): nothing event-based
		// can tell what is left.
		if w.lost == "" {
			w.lost = "an event on the source folder itself"
		}
		return
	}
	w.dirty[rel] = struct{}{}
}

// rel maps an absolute event path into the source; false if outside it.
func (w *Watcher) rel(abs string) (string, bool) {
	if abs == w.root {
		return "", true
	}
	rel, ok := strings.CutPrefix(abs, w.root+"/")
	return rel, ok
}

// Mark adds dirty paths by hand (relative to the source), such as those
// persisted by an earlier run.
func (w *Watcher) Mark(paths ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range paths {
		w.dirty[p] = struct{}{}
	}
}

// Take returns the dirty paths, sorted, and why events may have been lost
// ("" if there is no reason to think so), and starts afresh.
func (w *Watcher) Take() (dirty []string, lost string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	dirty, lost = w.peekLocked(), w.lost
	w.dirty, w.lost = map[string]struct{}{}, ""
	return dirty, lost
}

// Peek returns the dirty paths without taking them.
func (w *Watcher) Peek() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peekLocked()
}

func (w *Watcher) peekLocked() []string {
	out := make([]string, 0, len(w.dirty))
	for p := range w.dirty {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Close stops the watch.
func (w *Watcher) Close() { notify.Stop(w.events) }

// Scopes reduces dirty paths to the fewest that cover them: a path under
// another one is covered by it. The result is sorted; [""] is the whole
// tree.
func Scopes(paths []string) []string {
	set := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			return []string{""}
		}
		set[p] = true
	}
	out := make([]string, 0, len(set))
	for p := range set {
		covered := false
		for i := 0; i < len(p) && !covered; i++ {
			covered = p[i] == '/' && set[p[:i]]
		}
		if !covered {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// ScanScopes scans only the given scopes (paths relative to root, each
// standing for itself and everything under it) and calls fn for their
// entries in SortKey order, like Walk for the whole tree. A scope is
// excluded as Walk would exclude it: by a folder above it, or by a pattern
// that matches it as what it is (a folder-only pattern matches a folder).
// A scope under a folder that a marker leaves out is that folder's
// KindExcluded entry (see Rules), once for all the scopes under it.
//
// It streams as Walk does: each scope is looked up first, which tells
// where its entries sort, then the folders among them are walked one after
// the other, each with Walk's bounded look-ahead. Nothing is held for a
// scope but what it is, however much a folder holds.
func ScanScopes(ctx context.Context, fsys FS, root string, scopes []string, opts WalkOptions, fn func(Entry) error) error {
	listed := listings{fsys: fsys, root: root}
	marks := marked{fsys: fsys, root: root, filter: opts.Filter}
	links := linksAbove{fsys: fsys, root: root}
	var plan []scopePlan
	for _, s := range Scopes(scopes) {
		if s == "" {
			return Walk(ctx, fsys, root, opts, fn)
		}
		abs := root + "/" + s
		if opts.Filter.Excluded(s) || opts.Skip[abs] {
			continue
		}
		if dir, why, first := marks.above(s); why != "" {
			if first {
				plan = append(plan, scopePlan{key: dir + "/", entry: excludedFolder(dir, why)})
			}
			continue
		}
		if links.any(s) {
			continue // not read through a link the walk does not follow: gone, as the walk sees it
		}
		d, err := fsys.Lstat(abs)
		var e Entry
		switch {
		case err != nil && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)) && listed.gone(s, false):
			continue // gone: the diff sees its rows vanish
		case err != nil:
			// What it was is unknown, a file or a folder: nothing at it or
			// under it may be taken for gone (see KindError).
			e = Entry{Path: s, Kind: KindError, Type: TypeUnknown, Err: listed.why(s, err)}
		case d.KeptLink():
			e = Entry{Path: s, Kind: KindLink, Stat: d.Stat}
		case d.Type == TypeSymlink && d.Err != nil:
			e = unreachableLink(s, d.Err) // as the walk makes of it
		case d.Type == TypeDir:
			if opts.Filter.excludedPath(s, true) {
				continue // as the walk leaves out an excluded folder ("node_modules/")
			}
			plan = append(plan, scopePlan{key: s + "/", folder: s})
			continue
		case d.Type == TypeFile:
			e = Entry{Path: s, Kind: KindFile, Stat: d.Stat}
		default:
			e = Entry{Path: s, Kind: KindSkipped, Type: d.Type}
		}
		plan = append(plan, scopePlan{key: e.SortKey(), entry: e})
	}
	// Scopes do not nest (Scopes drops a path under another), so every
	// entry of a scope begins with its key and sorts after the keys below
	// it and before those above: a folder "a" with its "a/..." after the
	// file "a.txt", the file "a" before "a-b".
	slices.SortFunc(plan, func(a, b scopePlan) int { return strings.Compare(a.key, b.key) })
	for _, p := range plan {
		var err error
		if p.folder != "" {
			err = walkScope(ctx, fsys, root, p.folder, opts, fn)
		} else {
			err = fn(p.entry)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// foldersAbove yields the folders above the path s, the top one first:
// "a", "a/b" for "a/b/c".
func foldersAbove(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range len(s) {
			if s[i] == '/' && !yield(s[:i]) {
				return
			}
		}
	}
}

// linksAbove finds, for ScanScopes, the scopes below a symlink to a folder
// that the walk does not follow (with FollowSymlinks, Lstat follows it and
// says a folder): each folder above a scope is looked up once.
type linksAbove struct {
	fsys FS
	root string
	link map[string]bool // by folder
}

func (l *linksAbove) any(s string) bool {
	if l.link == nil {
		l.link = map[string]bool{}
	}
	for dir := range foldersAbove(s) {
		link, ok := l.link[dir]
		if !ok {
			d, err := l.fsys.Lstat(l.root + "/" + dir)
			link = err == nil && d.Type == TypeSymlink
			l.link[dir] = link
		}
		if link {
			return true
		}
	}
	return false
}

// marked finds, for ScanScopes, the folders above a scope that a marker
// leaves out: each folder is looked at once (a look-up per marker name,
// no listing).
type marked struct {
	fsys   FS
	root   string
	filter *Filter
	whys   map[string]string // by folder: why it is left out, or ""
	told   map[string]bool   // the folders whose entry is planned
}

// above returns the topmost folder above scope s that a marker leaves
// out, with why, and whether this is the first scope under it.
func (m *marked) above(s string) (dir, why string, first bool) {
	if !m.filter.HasMarkers() {
		return "", "", false
	}
	if m.whys == nil {
		m.whys, m.told = map[string]string{}, map[string]bool{}
	}
	for dir = range foldersAbove(s) {
		why, ok := m.whys[dir]
		if !ok {
			abs := m.root + "/" + dir
			why = m.filter.markedBy(m.fsys, abs, func(name string) bool {
				_, err := m.fsys.Lstat(abs + "/" + name)
				return err == nil
			})
			m.whys[dir] = why
		}
		if why != "" {
			first = !m.told[dir]
			m.told[dir] = true
			return dir, why, first
		}
	}
	return "", "", false
}

// scopePlan is a scope of ScanScopes once looked up: a folder to walk, or
// its one entry.
type scopePlan struct {
	key    string // where its entries sort: the entry's SortKey, a folder's path and '/'
	folder string // the folder to walk, or ""
	entry  Entry  // if not a folder
}

// walkScope walks the folder scope rel. A folder that cannot be walked is
// an error entry (sorting as rel+"/", before anything under it would),
// not an error of the scan.
func walkScope(ctx context.Context, fsys FS, root, rel string, opts WalkOptions, fn func(Entry) error) error {
	opts.Under = rel
	var fnErr error
	err := Walk(ctx, fsys, root, opts, func(e Entry) error {
		fnErr = fn(e)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return fnErr
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fn(Entry{Path: rel, Kind: KindError, Dir: true, Err: err})
	}
	return nil
}

// listings lists folders for ScanScopes, each once, to tell whether a
// scope that lstat did not find is gone: only a listing shows that (a
// folder that cannot be listed is never a deletion).
type listings struct {
	fsys  FS
	root  string
	lists map[string]listing
}

type listing struct {
	types map[string]Type // by name
	err   error
}

func (l *listings) list(rel string) listing {
	if got, ok := l.lists[rel]; ok {
		return got
	}
	abs := l.root
	if rel != "" {
		abs += "/" + rel
	}
	ents, err := l.fsys.ReadDir(abs)
	got := listing{types: make(map[string]Type, len(ents)), err: err}
	for _, e := range ents {
		got.types[e.Name] = e.Type
	}
	if l.lists == nil {
		l.lists = map[string]listing{}
	}
	l.lists[rel] = got
	return got
}

// gone reports whether nothing is at rel (asFolder: no folder): its folder
// lists without it, or is itself gone. The source folder is never gone
// here: a missing source is a full sync's error.
func (l *listings) gone(rel string, asFolder bool) bool {
	if rel == "" {
		return false
	}
	dir, name := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	in := l.list(dir)
	if in.err != nil {
		return l.gone(dir, true)
	}
	t, ok := in.types[name]
	return !ok || asFolder && t != TypeDir
}

// why is the error of a scope that could not be looked up, with what to do.
func (l *listings) why(rel string, err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		dir, _ := path.Split(rel)
		if in := l.list(strings.TrimSuffix(dir, "/")); in.err != nil {
			// Not "not found": it may be there.
			return fmt.Errorf("%v, and its folder cannot be listed to tell whether it is gone (%w): check that folder's permissions", err, in.err)
		}
		return fmt.Errorf("%v, yet its folder lists it", err)
	}
	return fmt.Errorf("%w: what is there cannot be told; check the permissions of the folders above it, or whether its file system is still mounted", err)
}
