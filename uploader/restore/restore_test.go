package restore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/readertest"
)

const mtime = 1_700_000_000_123_456_789

// log records the callbacks of a Run.
type log struct {
	mu                             sync.Mutex
	restored, same, refused, warns []string
	failed                         map[string]error
}

func (l *log) options(o Options) Options {
	l.failed = map[string]error{}
	add := func(to *[]string, s string) { l.mu.Lock(); *to = append(*to, s); l.mu.Unlock() }
	o.Prefix = "p/"
	if o.Concurrency == 0 {
		o.Concurrency = 3
	}
	o.Restored = func(path string, _ int64) { add(&l.restored, path) }
	o.Same = func(path string) { add(&l.same, path) }
	o.Refused = func(key string, _ error) { add(&l.refused, key) }
	o.Warn = func(path string, w Warning, _ error) { add(&l.warns, path+" "+string('0'+byte(w))) }
	o.Failed = func(path string, err error) { l.mu.Lock(); l.failed[path] = err; l.mu.Unlock() }
	return o
}

func run(t *testing.T, f *readertest.Fake, dir string, o Options) (Result, *log) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	l := &log{}
	res, err := Run(context.Background(), f, root, l.options(o))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]string{l.restored, l.same, l.refused, l.warns} {
		slices.Sort(s)
	}
	return res, l
}

func put(f *readertest.Fake, path, body string, mode fs.FileMode) {
	f.Put(manifest.Key("p/", path), []byte(body), readertest.Meta([]byte(body), mtime, mode))
}

// leftovers lists the temporary files left under dir.
func leftovers(t *testing.T, dir string) []string {
	var left []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), ".cloudkeeper-restore-") {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// Keys from the listing are untrusted: every one that names no path
// inside the folder is refused, counted and reported, and nothing is
// written for it; a folder marker is ignored.
func TestRefusesKeysThatNameNoPathInside(t *testing.T) {
	f := readertest.NewFake()
	put(f, "ok.txt", "ok", 0o644)
	bad := []string{"p/../up", "p//etc/x", "p/a//b", "p/nul\x00byte", `p/bad\xzz`, `p/\x41-not-canonical`, "p/./dot", `p/\x2e\x2e/up`}
	for _, k := range bad {
		f.Put(k, []byte("evil"), readertest.Meta([]byte("evil"), mtime, 0o644))
	}
	f.Put("p/folder/", nil, readertest.Meta(nil, mtime, 0o755))
	dir := t.TempDir()
	res, l := run(t, f, dir, Options{})
	slices.Sort(bad)
	if !slices.Equal(l.refused, bad) || res.Failed != int64(len(bad)) || res.Restored != 1 {
		t.Errorf("refused %q, result %+v; want %q refused and ok.txt restored", l.refused, res, bad)
	}
	var files []string
	filepath.WalkDir(filepath.Dir(dir), func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if want := []string{filepath.Join(dir, "ok.txt")}; !slices.Equal(files, want) {
		t.Errorf("files written: %q, want %q", files, want)
	}
}

// A symlink in the folder does not lead a restore out of it.
func TestNoSymlinkLeadsOutOfTheFolder(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	os.Symlink(outside, filepath.Join(dir, "link"))
	f := readertest.NewFake()
	put(f, "link/x.txt", "evil", 0o644)
	res, l := run(t, f, dir, Options{})
	if res.Failed != 1 || l.failed["link/x.txt"] == nil {
		t.Errorf("result %+v, failed %v; want link/x.txt failed", res, l.failed)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside: %v", ents)
	}
}

// A restored file has the object's bytes, mode and mtime, and no
// temporary file is left.
func TestRestoredFileHasItsBytesModeAndMtime(t *testing.T) {
	f := readertest.NewFake()
	put(f, "a.txt", "alpha", 0o600)
	put(f, "d/e/run.sh", "#!/bin/sh", 0o755)
	put(f, "empty", "", 0o640)
	dir := t.TempDir()
	res, l := run(t, f, dir, Options{})
	if want := []string{"a.txt", "d/e/run.sh", "empty"}; !slices.Equal(l.restored, want) || res.Restored != 3 || res.Bytes != 14 || res.Failed != 0 {
		t.Fatalf("restored %q, %+v, failed %v", l.restored, res, l.failed)
	}
	for p, want := range map[string]struct {
		body string
		mode fs.FileMode
	}{"a.txt": {"alpha", 0o600}, "d/e/run.sh": {"#!/bin/sh", 0o755}, "empty": {"", 0o640}} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		fi, _ := os.Stat(filepath.Join(dir, p))
		if err != nil || string(b) != want.body || fi.Mode().Perm() != want.mode || fi.ModTime().UnixNano() != mtime {
			t.Errorf("%s: %q %v %v, %v", p, b, fi.Mode(), fi.ModTime(), err)
		}
	}
	if left := leftovers(t, dir); left != nil {
		t.Errorf("temporary files left: %q", left)
	}
}

// Bytes that do not hash to the metadata, a body shorter or longer than
// the object, an object without a hash and a failing read are not
// restored, and leave nothing behind.
func TestBadBytesLeaveNothingBehind(t *testing.T) {
	f := readertest.NewFake()
	m := readertest.Meta([]byte("truth"), mtime, 0o644)
	f.Put("p/liar", []byte("lies!"), m)
	f.Put("p/short", []byte("trut"), m)
	f.Put("p/long", []byte("truth and more"), m)
	f.Put("p/nohash", []byte("plain"), readertest.NoMeta(5))
	put(f, "unreadable", "x", 0o644)
	f.Err = func(op, key string) error {
		if key == "p/unreadable" {
			return errors.New("connection reset")
		}
		return nil
	}
	dir := t.TempDir()
	res, l := run(t, f, dir, Options{})
	want := map[string]string{"liar": "not to its x-amz-meta-blake3", "short": "got 4 bytes of 5", "long": "got 6 bytes of 5",
		"nohash": "cannot be checked", "unreadable": "connection reset"}
	for p, w := range want {
		if err := l.failed[p]; err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %v, want %q", p, err, w)
		}
	}
	if res.Failed != 5 || res.Restored != 0 {
		t.Errorf("result %+v", res)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in the folder: %v", ents)
	}
}

// Metadata without a valid mode or mtime still restores the file, with
// 0644 and the time of restoring, and says so.
func TestMissingModeOrMtimeIsAWarning(t *testing.T) {
	f := readertest.NewFake()
	m := readertest.Meta([]byte("x"), mtime, 0o600)
	m.ModeErr = errors.New("no mode")
	f.Put("p/nomode", []byte("x"), m)
	m = readertest.Meta([]byte("x"), mtime, 0o600)
	m.MtimeErr = errors.New("no mtime")
	f.Put("p/nomtime", []byte("x"), m)
	dir := t.TempDir()
	start := time.Now().Add(-time.Second)
	res, l := run(t, f, dir, Options{})
	if res.Restored != 2 || !slices.Equal(l.warns, []string{"nomode 1", "nomtime 2"}) {
		t.Errorf("result %+v, warnings %q", res, l.warns)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "nomode")); fi.Mode().Perm() != 0o644 || fi.ModTime().UnixNano() != mtime {
		t.Errorf("nomode: %v %v", fi.Mode(), fi.ModTime())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "nomtime")); fi.Mode().Perm() != 0o600 || fi.ModTime().Before(start) {
		t.Errorf("nomtime: %v %v", fi.Mode(), fi.ModTime())
	}
}

// An existing file is kept unless Overwrite; one with the object's
// content counts as restored already.
func TestExistingFilesAreKeptUnlessOverwrite(t *testing.T) {
	f := readertest.NewFake()
	put(f, "same", "same", 0o644)
	put(f, "other", "new", 0o644)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "same"), []byte("same"), 0o600)
	os.WriteFile(filepath.Join(dir, "other"), []byte("old"), 0o600)
	res, l := run(t, f, dir, Options{})
	if res.Same != 1 || res.Failed != 1 || !errors.Is(l.failed["other"], ErrExists) || !slices.Equal(l.same, []string{"same"}) {
		t.Errorf("result %+v, failed %v, same %q", res, l.failed, l.same)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "other")); string(b) != "old" {
		t.Errorf("other overwritten: %q", b)
	}
	res, _ = run(t, f, dir, Options{Overwrite: true})
	if res.Restored != 2 || res.Failed != 0 {
		t.Errorf("overwrite: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "other")); string(b) != "new" {
		t.Errorf("other not overwritten: %q", b)
	}
}

// Only restores one file, or a folder with what is under it, and no
// neighbour whose name starts the same.
func TestOnlyRestoresOnePath(t *testing.T) {
	f := readertest.NewFake()
	for _, p := range []string{"docs/a", "docs/sub/b", "docs2/c", "docs.txt", "other"} {
		put(f, p, p, 0o644)
	}
	_, l := run(t, f, t.TempDir(), Options{Only: "docs"})
	if want := []string{"docs/a", "docs/sub/b"}; !slices.Equal(l.restored, want) {
		t.Errorf("restored %q, want %q", l.restored, want)
	}
	_, l = run(t, f, t.TempDir(), Options{Only: "docs.txt"})
	if want := []string{"docs.txt"}; !slices.Equal(l.restored, want) {
		t.Errorf("restored %q, want %q", l.restored, want)
	}
	// A library caller may pass what a user typed: "/docs/" is "docs".
	_, l = run(t, f, t.TempDir(), Options{Only: "/docs/"})
	if want := []string{"docs/a", "docs/sub/b"}; !slices.Equal(l.restored, want) {
		t.Errorf("Only /docs/: restored %q, want %q", l.restored, want)
	}
	// One that could lead outside the folder is refused before any request.
	root, _, err := OpenRoot(filepath.Join(t.TempDir(), "new", "folder"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, bad := range []string{"../docs", "docs/../../x", "a//b", "./docs"} {
		_, err := Run(context.Background(), f, root, Options{Only: bad})
		if err == nil || errors.Is(err, ErrNothing) || !strings.Contains(err.Error(), "component") {
			t.Errorf("Only %q: %v, want the path refused for its component", bad, err)
		}
	}
	// Nothing under the prefix (or Only) is ErrNothing, not "0 restored".
	if _, err := Run(context.Background(), f, root, Options{Only: "nothing/here"}); !errors.Is(err, ErrNothing) {
		t.Errorf("Only nothing/here: %v, want ErrNothing", err)
	}
}

// A fatal error ends the restore and is returned.
func TestFatalErrorEndsTheRestore(t *testing.T) {
	f := readertest.NewFake()
	put(f, "a", "a", 0o644)
	root, _ := os.OpenRoot(t.TempDir())
	defer root.Close()
	f.Err = func(op, key string) error { return uploader.ErrNotFound } // not fatal: counted
	res, err := Run(context.Background(), f, root, Options{Prefix: "p/"})
	if err != nil || res.Failed != 1 {
		t.Errorf("Run = %+v, %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Err = func(op, key string) error { cancel(); return ctx.Err() }
	if _, err := Run(ctx, f, root, Options{Prefix: "p/"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Run = %v", err)
	}
}

// removeCreated removes the folders OpenRoot made while they are empty,
// and never one that holds anything or was there before.
func TestOpenRootRemoveCreated(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "new", "folder")
	root, removeCreated, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	root.Close()
	removeCreated()
	if _, err := os.Stat(filepath.Join(base, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty folders it made are left: %v", err)
	}
	if _, err := os.Stat(base); err != nil {
		t.Errorf("the folder that was there is gone: %v", err)
	}
	root, removeCreated, err = OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFile("part", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	root.Close()
	removeCreated()
	if _, err := os.Stat(filepath.Join(dir, "part")); err != nil {
		t.Errorf("a folder that holds a file was removed: %v", err)
	}
}

// A link object is made a symlink, its target as it was; a file listed
// under it is refused, not written through it into the folder it leads to.
func TestLinkRestoredAndNotWrittenThrough(t *testing.T) {
	f := readertest.NewFake()
	put(f, "dir/d.txt", "in dir", 0o644)
	put(f, "linkdir/planted.txt", "planted", 0o644)
	f.Put(manifest.Key("p/", "linkdir"), nil, uploader.ObjectMeta{Hash: scanner.LinkDigest("dir"), Mode: 0o777, IsLink: true, Link: "dir"})
	f.Put(manifest.Key("p/", "out"), nil, uploader.ObjectMeta{Hash: scanner.LinkDigest("/etc"), Mode: 0o777, IsLink: true, Link: "/etc"})
	dir := t.TempDir()
	res, l := run(t, f, dir, Options{Concurrency: 1}) // in listing order: the link first
	if got, err := os.Readlink(filepath.Join(dir, "linkdir")); err != nil || got != "dir" {
		t.Fatalf("linkdir: %q, %v", got, err)
	}
	if got, err := os.Readlink(filepath.Join(dir, "out")); err != nil || got != "/etc" {
		t.Fatalf("out: %q, %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "dir", "planted.txt")); err == nil {
		t.Fatal("written through the link linkdir into dir")
	}
	if err := l.failed["linkdir/planted.txt"]; err == nil || !strings.Contains(err.Error(), "linkdir is a symlink") || res.Failed != 1 || res.Restored != 3 {
		t.Fatalf("result %+v, failed %v", res, l.failed)
	}
}

// A link object that holds bytes is not what a sync writes (verify calls it
// bad metadata): restore refuses it too, rather than make a link and drop
// the bytes (a reviewer's note).
func TestLinkObjectWithBytesIsNotRestored(t *testing.T) {
	f := readertest.NewFake()
	f.Put(manifest.Key("p/", "l"), []byte("bytes"), uploader.ObjectMeta{Size: 5, Hash: scanner.LinkDigest("dir"), Mode: 0o777, IsLink: true, Link: "dir"})
	dir := t.TempDir()
	res, l := run(t, f, dir, Options{Concurrency: 1})
	if _, err := os.Lstat(filepath.Join(dir, "l")); err == nil || res.Failed != 1 || l.failed["l"] == nil {
		t.Fatalf("a link object with 5 bytes: restored (%v), result %+v, failed %v", err, res, l.failed)
	}
}
