package scanner

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Kind says what an Entry of the scan is.
type Kind uint8

const (
	// KindFile is a regular file, with its Stat.
	KindFile Kind = iota
	// KindSkipped is a path that is not backed up by design: a symlink,
	// fifo, socket or device. Type says which.
	KindSkipped
	// KindError is a path the scan could not read; Err says why. Nothing
	// is known of what is there: whatever the bucket holds at the path or
	// under it must be left alone. With Dir set, it is a folder; with Type
	// TypeSymlink, a followed link whose target cannot be reached, a file
	// or a folder; with TypeUnknown, a path that could not even be looked
	// up (a watch's scope), which may have been anything.
	KindError
	// KindExcluded is a folder left out by a marker file it holds (see
	// Rules): Dir is set and Note says which marker. Nothing under it is
	// scanned, and whatever the bucket holds under it is not deleted,
	// unless excluded objects are to be.
	KindExcluded
	// KindLink is a symlink kept as a link (OS.Links), never followed,
	// with its own Stat (Size 0); its content is its target (LinkDigest).
	KindLink
)

// Entry is one item of a scan. Entries come in the order of SortKey.
type Entry struct {
	Path string // relative to the source root, '/'-separated
	Kind Kind
	Stat Stat   // KindFile, KindLink
	Type Type   // KindSkipped: what the path is; KindError: TypeSymlink, TypeUnknown or not
	Note string // KindSkipped: why, when it is not just its type
	Dir  bool   // KindError: the path is a folder
	Err  error  // KindError
}

// SortKey is the key that orders entries among themselves and among the
// manifest's paths: the path, and for an unreadable or excluded folder the
// path with a trailing '/', which sorts right before everything that was
// under it.
func (e Entry) SortKey() string {
	if (e.Kind == KindError || e.Kind == KindExcluded) && e.Dir {
		return e.Path + "/"
	}
	return e.Path
}

// WalkOptions tune Walk. The zero value is ready to use.
type WalkOptions struct {
	// Workers is how many folders are listed at once. Default: twice the
	// number of CPUs, at least 4: listing is system calls, and on a cold
	// cache or a network file system it waits on I/O.
	Workers int
	// Filter leaves out excluded paths; nil excludes nothing.
	Filter *Filter
	// MaxAhead bounds how many listed entries may wait for the consumer,
	// which bounds memory whatever the size of the tree. Default 65536.
	MaxAhead int
	// Skip names absolute paths to leave out, such as the manifest's own
	// files when it lives inside the source.
	Skip map[string]bool
	// Under walks only the folder at this path relative to root; entries
	// keep their paths relative to root.
	Under string
}

func (o *WalkOptions) applyDefaults() {
	if o.Workers <= 0 {
		o.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.MaxAhead <= 0 {
		o.MaxAhead = 1 << 16
	}
}

// Walk lists the tree under root and calls fn for every regular file,
// skipped path and unreadable path, in SortKey order, from the calling
// goroutine. Folders are listed ahead of the consumer by a pool of workers,
// so the walk runs in parallel while its output stays ordered; the
// look-ahead is bounded by MaxAhead entries.
//
// Per-path problems are entries of KindError, not errors: the walk goes on.
// Walk returns an error only if root itself cannot be listed, if fn returns
// one, or if ctx is cancelled.
func Walk(ctx context.Context, fsys FS, root string, opts WalkOptions, fn func(Entry) error) error {
	opts.applyDefaults()
	w := &walker{
		ctx:      ctx,
		fsys:     fsys,
		root:     strings.TrimRight(root, "/"),
		opts:     opts,
		queue:    make(chan *dirNode, 4*opts.Workers),
		quit:     make(chan struct{}),
		maxAhead: int64(opts.MaxAhead),
	}
	if w.root == "" {
		w.root = "/"
	}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.work()
		}()
	}
	defer func() {
		close(w.quit)
		wg.Wait()
	}()

	top := newDirNode(opts.Under, nil, rootStat(w.abs(opts.Under)))
	w.claim(top)
	if top.err != nil {
		return fmt.Errorf("cannot read source folder %s: %w", w.abs(opts.Under), top.err)
	}
	if top.marker != "" {
		return fn(excludedFolder(opts.Under, top.marker))
	}
	return w.visit(top, fn)
}

// dirNode is a folder of the tree: listed once, by a worker ahead of time
// or by the consumer when it gets there first.
type dirNode struct {
	rel      string
	parent   *dirNode
	dev, ino uint64 // when known (FollowSymlinks), to stop at loops
	claimed  atomic.Bool
	done     chan struct{}
	children []child // sorted; valid after done
	err      error
	marker   string // why a marker file leaves the folder out; valid after done
}

type child struct {
	DirEntry
	node *dirNode // for folders
	note string   // for folders not walked: why
}

func newDirNode(rel string, parent *dirNode, st Stat) *dirNode {
	return &dirNode{rel: rel, parent: parent, dev: st.Dev, ino: st.Inode, done: make(chan struct{})}
}

// loop returns the folder above n that is the same folder as st (a
// symlink that leads back up), or nil.
func (n *dirNode) loop(st Stat) *dirNode {
	if st.Inode == 0 {
		return nil
	}
	for a := n; a != nil; a = a.parent {
		if a.ino == st.Inode && a.dev == st.Dev {
			return a
		}
	}
	return nil
}

type walker struct {
	ctx      context.Context
	fsys     FS
	root     string
	opts     WalkOptions
	queue    chan *dirNode
	quit     chan struct{}
	ahead    atomic.Int64 // entries listed and not yet visited
	maxAhead int64
}

func (w *walker) work() {
	for {
		select {
		case n := <-w.queue:
			if n.claimed.CompareAndSwap(false, true) {
				w.list(n)
			}
		case <-w.quit:
			return
		case <-w.ctx.Done():
			return
		}
	}
}

// claim lists n now, unless a worker has already started; then it waits.
func (w *walker) claim(n *dirNode) error {
	if n.claimed.CompareAndSwap(false, true) {
		w.list(n)
		return nil
	}
	select {
	case <-n.done:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

func (w *walker) abs(rel string) string {
	if rel == "" {
		return w.root
	}
	if w.root == "/" {
		return "/" + rel
	}
	return w.root + "/" + rel
}

// list reads the folder, sorts it in path order and offers its subfolders
// to the workers while the look-ahead budget lasts.
func (w *walker) list(n *dirNode) {
	defer close(n.done)
	ents, err := w.fsys.ReadDir(w.abs(n.rel))
	if err != nil {
		n.err = err
		return
	}
	if n.rel != "" { // the source folder itself is never left out
		if n.marker = w.opts.Filter.markedBy(w.fsys, w.abs(n.rel), listingHas(ents)); n.marker != "" {
			return
		}
	}
	kids := make([]child, 0, len(ents))
	for _, e := range ents {
		isDir := e.Type == TypeDir
		if !w.opts.Filter.Empty() || len(w.opts.Skip) > 0 {
			rel := e.Name
			if n.rel != "" {
				rel = n.rel + "/" + e.Name
			}
			if w.opts.Filter.excludes(rel, e.Name, isDir) || w.opts.Skip[w.abs(rel)] {
				continue
			}
		}
		c := child{DirEntry: e}
		if isDir && e.Err == nil {
			rel := e.Name
			if n.rel != "" {
				rel = n.rel + "/" + e.Name
			}
			if a := n.loop(e.Stat); a != nil {
				c.Type = TypeSymlink
				c.note = "symlink loop: it leads back to " + displayRel(a.rel) + "; not followed"
			} else {
				c.node = newDirNode(rel, n, e.Stat)
			}
		}
		kids = append(kids, c)
	}
	slices.SortFunc(kids, func(a, b child) int { return compareNames(a.Name, a.Type == TypeDir, b.Name, b.Type == TypeDir) })
	n.children = kids
	w.ahead.Add(int64(len(n.children)))
	for _, c := range n.children {
		if c.node == nil {
			continue
		}
		if w.ahead.Load() >= w.maxAhead {
			return
		}
		select {
		case w.queue <- c.node:
		default:
			return
		}
	}
}

// visit emits the entries under n in order, descending into subfolders.
func (w *walker) visit(n *dirNode, fn func(Entry) error) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	kids := n.children
	n.children = nil
	defer w.ahead.Add(-int64(len(kids)))
	for _, c := range kids {
		rel := c.Name
		if n.rel != "" {
			rel = n.rel + "/" + c.Name
		}
		var err error
		switch {
		case c.node != nil:
			if err := w.claim(c.node); err != nil {
				return err
			}
			switch {
			case c.node.err != nil:
				err = fn(Entry{Path: rel, Kind: KindError, Dir: true, Err: c.node.err})
			case c.node.marker != "":
				err = fn(excludedFolder(rel, c.node.marker))
			default:
				err = w.visit(c.node, fn)
			}
		case c.note != "":
			err = fn(Entry{Path: rel, Kind: KindSkipped, Type: c.Type, Note: c.note})
		case c.KeptLink():
			err = fn(Entry{Path: rel, Kind: KindLink, Stat: c.Stat})
		case c.Type == TypeSymlink && c.Err != nil:
			err = fn(unreachableLink(rel, c.Err))
		case c.Err != nil:
			err = fn(Entry{Path: rel, Kind: KindError, Dir: c.Type == TypeDir, Err: c.Err})
		case c.Type == TypeFile:
			err = fn(Entry{Path: rel, Kind: KindFile, Stat: c.Stat})
		default:
			err = fn(Entry{Path: rel, Kind: KindSkipped, Type: c.Type})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// listingHas tells whether a folder's listing has an entry of a name.
func listingHas(ents []DirEntry) func(string) bool {
	return func(name string) bool {
		return slices.ContainsFunc(ents, func(e DirEntry) bool { return e.Name == name })
	}
}

// unreachableLink is the entry of a followed symlink whose target cannot
// be stat'ed: an error, not a skipped link, since the target may be a
// folder the bucket holds (a NAS not mounted tonight) and nothing under it
// may be taken for deleted.
func unreachableLink(rel string, err error) Entry {
	return Entry{Path: rel, Kind: KindError, Type: TypeSymlink,
		Err: fmt.Errorf("%w (is its target mounted? if the link is meant to lead nowhere, --exclude it)", err)}
}

// compareNames orders two names of one folder as their full paths sort:
// a folder's name compares as if followed by '/'.
func compareNames(a string, aDir bool, b string, bDir bool) int {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	// One is a prefix of the other (they differ: names of one folder):
	// compare the next byte, '/' for a folder's end, none (lowest) for a
	// file's.
	next := func(s string, dir bool) int {
		switch {
		case len(s) > n:
			return int(s[n])
		case dir:
			return '/'
		default:
			return -1
		}
	}
	return next(a, aDir) - next(b, bDir) // names hold no '/', so this decides
}

func displayRel(rel string) string {
	if rel == "" {
		return "the source folder"
	}
	return rel
}

// rootStat is the device and inode of the source folder, for the loop
// check; zero if it cannot be had (the walk then reports the error).
func rootStat(root string) Stat {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return Stat{}
	}
	return statFromUnix(&st)
}
