package scanner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

func collect(t *testing.T, fsys FS, root string, opts WalkOptions) []Entry {
	t.Helper()
	var out []Entry
	err := Walk(context.Background(), fsys, root, opts, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func paths(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.SortKey())
	}
	return out
}

func TestWalkOrderIsBytewisePathOrder(t *testing.T) {
	root := t.TempDir()
	// "a/x" must come after "a-b" and "a.txt" and before "a0", as among
	// full paths, whatever the order of the names in their folder.
	scantest.Create(t, root, scantest.Dir{
		"a":     scantest.Dir{"x": scantest.File{Content: "1"}, "y": scantest.Dir{"z": scantest.File{}}},
		"a-b":   scantest.File{},
		"a.txt": scantest.File{},
		"a0":    scantest.File{},
		"B":     scantest.File{},
		"é":     scantest.File{},
		"empty": scantest.Dir{},
	})
	got := paths(collect(t, OS{}, root, WalkOptions{}))
	want := []string{"B", "a-b", "a.txt", "a/x", "a/y/z", "a0", "é"}
	if !slices.Equal(got, want) {
		t.Fatalf("walk order\n got %q\nwant %q", got, want)
	}
}

// A wide, deep random tree walked with tiny look-ahead limits and many
// workers gives exactly the sorted list of its files: the parallel prefetch
// never reorders or loses an entry.
func TestWalkParallelMatchesSortedList(t *testing.T) {
	root := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var want []string
	var mk func(dir string, depth int)
	mk = func(dir string, depth int) {
		for i := range 3 + r.IntN(6) {
			name := fmt.Sprintf("%c%d%s", 'a'+rune(r.IntN(4)), i, []string{"", ".txt", "-x", "_"}[r.IntN(4)])
			p := filepath.Join(dir, name)
			if depth < 4 && r.IntN(3) == 0 {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
				mk(p, depth+1)
				continue
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			want = append(want, rel)
		}
	}
	mk(root, 0)
	sort.Strings(want)
	for _, opts := range []WalkOptions{{}, {Workers: 1, MaxAhead: 1}, {Workers: 16, MaxAhead: 3}} {
		got := paths(collect(t, OS{}, root, opts))
		if !slices.Equal(got, want) {
			t.Fatalf("opts %+v: %d entries, want %d\n got %q\nwant %q", opts, len(got), len(want), got, want)
		}
	}
}

func TestWalkReportsStatAndSkipsSpecialFiles(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"f":    scantest.File{Content: "hello", Mode: 0o600},
		"link": scantest.Symlink{Target: "f"},
		"loop": scantest.Symlink{Target: "loop"},
		"dirl": scantest.Symlink{Target: "."},
		"pipe": scantest.Fifo{},
	})
	// A socket, and a character device where this user may make one.
	sock, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	device := unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) == nil
	if !device {
		t.Log("cannot make a device node here: devices are not checked")
	}
	got := collect(t, OS{}, root, WalkOptions{})
	kinds := map[string]string{}
	for _, e := range got {
		kinds[e.Path] = fmt.Sprintf("%d/%s", e.Kind, e.Type)
	}
	want := map[string]string{
		"dirl": fmt.Sprintf("%d/symlink", KindSkipped),
		"f":    fmt.Sprintf("%d/file", KindFile),
		"link": fmt.Sprintf("%d/symlink", KindSkipped),
		"loop": fmt.Sprintf("%d/symlink", KindSkipped),
		"pipe": fmt.Sprintf("%d/special file", KindSkipped),
		"sock": fmt.Sprintf("%d/special file", KindSkipped),
	}
	if device {
		want["null"] = fmt.Sprintf("%d/special file", KindSkipped)
	}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", kinds, want)
	}
	fi, err := os.Lstat(filepath.Join(root, "f"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if e.Path != "f" {
			continue
		}
		if e.Stat.Size != 5 || e.Stat.MtimeNs != fi.ModTime().UnixNano() || e.Stat.Mode.Perm() != 0o600 || e.Stat.Inode == 0 {
			t.Fatalf("stat of f: %+v", e.Stat)
		}
	}
}

// The walk's stat is stat(2)'s (manifests recorded from stat(2) must still
// match), with the birth time where the file system keeps one, and it is
// the stat HashFile records and Lstat gives (a watch's scope): otherwise
// every file would look changed, or every move be read.
func TestWalkStatIsStatsAndHashFiles(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{"f": scantest.File{Content: "hello"}})
	p := filepath.Join(root, "f")
	got := collect(t, OS{}, root, WalkOptions{})
	if len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	walked := got[0].Stat
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if walked.Dev != st.Dev || walked.Inode != st.Ino || walked.MtimeNs != st.Mtim.Nano() || walked.CtimeNs != st.Ctim.Nano() || walked.Size != st.Size {
		t.Fatalf("walk %+v, lstat %+v", walked, st)
	}
	_, hashed, err := HashFile(OS{}, p)
	if err != nil {
		t.Fatal(err)
	}
	if hashed != walked {
		t.Fatalf("HashFile %+v, walk %+v", hashed, walked)
	}
	for _, o := range []OS{{}, {FollowSymlinks: true}} {
		if d, err := o.Lstat(p); err != nil || d.Type != TypeFile || d.Stat != walked {
			t.Fatalf("Lstat (%+v) %+v, %v; walk %+v", o, d, err, walked)
		}
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &stx); err != nil || stx.Mask&unix.STATX_BTIME == 0 {
		t.Skipf("this file system gives no birth time (%v): its presence is not checked", err)
	}
	if want := stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec); walked.BtimeNs != want {
		t.Fatalf("birth time %d, want %d", walked.BtimeNs, want)
	}
}

// faultFS fails ReadDir, the stat of a listed name, Open or Lstat for
// chosen paths and passes the rest to OS.
type faultFS struct {
	OS
	readDir map[string]error
	stat    map[string]error
	open    map[string]error
	lstat   map[string]error
}

func (f faultFS) Lstat(p string) (DirEntry, error) {
	if err := f.lstat[p]; err != nil {
		return DirEntry{}, err
	}
	return f.OS.Lstat(p)
}

func (f faultFS) ReadDir(p string) ([]DirEntry, error) {
	if err := f.readDir[p]; err != nil {
		return nil, err
	}
	ents, err := f.OS.ReadDir(p)
	for i := range ents {
		if err := f.stat[p+"/"+ents[i].Name]; err != nil {
			ents[i].Stat, ents[i].Err = Stat{}, err
		}
	}
	return ents, err
}

func (f faultFS) Open(p string) (File, error) {
	if err := f.open[p]; err != nil {
		return nil, err
	}
	return f.OS.Open(p)
}

func TestWalkUnreadableFolderIsAnEntryAndTheWalkGoesOn(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"a":      scantest.File{},
		"secret": scantest.Dir{"x": scantest.File{}},
		"z":      scantest.File{},
	})
	fsys := faultFS{readDir: map[string]error{filepath.Join(root, "secret"): fs.ErrPermission}}
	got := collect(t, fsys, root, WalkOptions{})
	if p := paths(got); !slices.Equal(p, []string{"a", "secret/", "z"}) {
		t.Fatalf("got %q", p)
	}
	e := got[1]
	if e.Kind != KindError || !e.Dir || !errors.Is(e.Err, fs.ErrPermission) {
		t.Fatalf("secret: %+v", e)
	}
}

// A folder whose stat failed is still a folder: its entry says so, and
// sorts as one, so that what the bucket holds under it is kept.
func TestWalkFolderThatCannotBeStatedIsAFolderError(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"sub":     scantest.Dir{"x": scantest.File{}},
		"sub.txt": scantest.File{},
	})
	fsys := faultFS{OS: OS{FollowSymlinks: true}, stat: map[string]error{filepath.Join(root, "sub"): fs.ErrPermission}}
	got := collect(t, fsys, root, WalkOptions{})
	if p := paths(got); !slices.Equal(p, []string{"sub.txt", "sub/"}) {
		t.Fatalf("got %q", p)
	}
	if e := got[1]; e.Kind != KindError || !e.Dir || !errors.Is(e.Err, fs.ErrPermission) {
		t.Fatalf("sub: %+v", e)
	}
}

// A followed link whose target cannot be stat'ed (a NAS not mounted, a link
// to nowhere) is an error naming the link, not a skipped link: what it led
// to may be in the bucket.
func TestWalkFollowedLinkToNowhereIsAnError(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{"nas": scantest.Symlink{Target: filepath.Join(root, "unmounted", "photos")}})
	got := collect(t, OS{FollowSymlinks: true}, root, WalkOptions{})
	if len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	e := got[0]
	if e.Path != "nas" || e.Kind != KindError || e.Type != TypeSymlink || e.Dir || !errors.Is(e.Err, fs.ErrNotExist) ||
		!strings.Contains(e.Err.Error(), filepath.Join(root, "nas")) || !strings.Contains(e.Err.Error(), "mounted") {
		t.Fatalf("nas: %+v", e)
	}
}

// A folder that can be listed but not searched (mode 0644) is one error for
// the folder, not one per name in it.
func TestReadDirOfUnsearchableFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root searches any folder; TestSyncUnsearchableFolderIsKept checks this as nobody")
	}
	dir := filepath.Join(t.TempDir(), "pub")
	scantest.Create(t, dir, scantest.Dir{"a": scantest.File{}, "b": scantest.File{}})
	os.Chmod(dir, 0o644)
	defer os.Chmod(dir, 0o755)
	_, err := OS{}.ReadDir(dir)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), dir+": permission denied: the folder can be listed but not searched") {
		t.Fatalf("got %v", err)
	}
}

func TestWalkMissingRootIsAnError(t *testing.T) {
	err := Walk(context.Background(), OS{}, filepath.Join(t.TempDir(), "nope"), WalkOptions{}, func(Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("want an error naming the folder, got %v", err)
	}
}

func TestWalkExcludes(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"keep.txt":     scantest.File{},
		"x.tmp":        scantest.File{},
		"node_modules": scantest.Dir{"m.js": scantest.File{}},
		"src": scantest.Dir{
			"a.go":         scantest.File{},
			"b.tmp":        scantest.File{},
			"node_modules": scantest.Dir{"n.js": scantest.File{}},
			"build":        scantest.Dir{"out": scantest.File{}},
		},
		"build": scantest.File{},
	})
	f, err := NewFilter([]string{"*.tmp", "node_modules", "src/build/"})
	if err != nil {
		t.Fatal(err)
	}
	got := paths(collect(t, OS{}, root, WalkOptions{Filter: f}))
	want := []string{"build", "keep.txt", "src/a.go"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestWalkCancelled(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{"a": scantest.File{}, "b": scantest.Dir{"c": scantest.File{}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Walk(ctx, OS{}, root, WalkOptions{}, func(Entry) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// With OS.Links a symlink is an entry of its own, with its lstat (Size 0)
// and never followed: a link to a folder is one entry, nothing under it;
// HashLink hashes its target. ScanScopes makes the same entry of it.
func TestWalkKeepsLinksWithLinks(t *testing.T) {
	root := t.TempDir()
	scantest.Create(t, root, scantest.Dir{
		"dir":      scantest.Dir{"d.txt": scantest.File{Content: "d"}},
		"linkdir":  scantest.Symlink{Target: "dir"},
		"dangling": scantest.Symlink{Target: "nowhere"},
	})
	fsys := OS{Links: true}
	got := collect(t, fsys, root, WalkOptions{})
	if p := paths(got); !slices.Equal(p, []string{"dangling", "dir/d.txt", "linkdir"}) {
		t.Fatalf("paths %q", p)
	}
	for _, e := range []Entry{got[0], got[2]} {
		if e.Kind != KindLink || e.Stat.Size != 0 || e.Stat.Mode&fs.ModeSymlink == 0 || e.Stat.Inode == 0 || e.Stat.CtimeNs == 0 {
			t.Errorf("%s: %+v", e.Path, e)
		}
	}
	d, st, target, err := HashLink(fsys, filepath.Join(root, "linkdir"))
	if err != nil || target != "dir" || d != LinkDigest("dir") || !st.Same(got[2].Stat) {
		t.Fatalf("HashLink: %v %q %v", d, target, err)
	}
	if LinkDigest("dir") == Digest(blake3.Sum256([]byte("dir"))) {
		t.Fatal("a link's digest is the hash of a file holding its target")
	}
	var scoped []Entry
	err = ScanScopes(context.Background(), fsys, root, []string{"linkdir"}, WalkOptions{}, func(e Entry) error { scoped = append(scoped, e); return nil })
	if err != nil || len(scoped) != 1 || scoped[0].Kind != KindLink || !scoped[0].Stat.Same(got[2].Stat) {
		t.Fatalf("ScanScopes: %+v, %v", scoped, err)
	}
}
