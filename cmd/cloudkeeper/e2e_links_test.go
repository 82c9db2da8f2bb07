package main

// End-to-end tests of --links: symlinks kept as links (an empty object
// whose x-amz-meta-symlink is the target), restored as links, verified;
// and without it, the one line a run sums its skipped symlinks up in.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// TestSyncLinks backs up a relative, an absolute, a dangling link and a
// link to a folder (whose files are not uploaded through it), then a
// changed target (one modify), restores them, and verifies them.
func TestSyncLinks(t *testing.T) {
	outside := t.TempDir()
	tree := scantest.Dir{
		"file.txt": scantest.File{Content: "file"},
		"dir":      scantest.Dir{"d.txt": scantest.File{Content: "in dir"}},
		"rel":      scantest.Symlink{Target: "file.txt"},
		"sub":      scantest.Dir{"up": scantest.Symlink{Target: "../dir/d.txt"}},
		"abs":      scantest.Symlink{Target: outside},
		"dangling": scantest.Symlink{Target: "nowhere at all"},
		"linkdir":  scantest.Symlink{Target: "dir"},
		"uni":      scantest.Symlink{Target: "café/ü 100%"},
	}
	e := newEnv(t, tree)
	r := e.sync(0, "--links")
	want := []string{
		"add     abs (symlink)", "add     dangling (symlink)", "add     dir/d.txt (6 B)", "add     file.txt (4 B)",
		"add     linkdir (symlink)", "add     rel (symlink)", "add     sub/up (symlink)", "add     uni (symlink)",
	}
	if !slices.Equal(r.lines(), want) {
		t.Fatalf("--links: %q\n%s", r.lines(), r.stderr)
	}
	if strings.Contains(r.stderr, "skipped") {
		t.Errorf("a link kept is not skipped:\n%s", r.stderr)
	}
	targets := map[string]string{"rel": "file.txt", "sub/up": "../dir/d.txt", "abs": outside, "dangling": "nowhere at all", "linkdir": "dir", "uni": "café/ü 100%"}
	checkLinkObjects(t, e, targets)

	if r := e.sync(0, "--links"); len(r.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("second run: %q, %v", r.lines(), e.ops())
	}

	// A new target is a modification of that one path: one PutObject.
	relink(t, e.path("rel"), "dir/d.txt")
	r = e.sync(0, "--links")
	if !slices.Equal(r.lines(), []string{"modify  rel (symlink)"}) {
		t.Fatalf("changed target: %q\n%s", r.lines(), r.stderr)
	}
	e.wantOps(map[string]int64{"PutObject": 1})
	targets["rel"] = "dir/d.txt"

	// A file replaced by a link to where it moved: the new file is
	// uploaded (the object that held its content becomes the link), and
	// the link is a link, not a copy of the file.
	if err := os.Rename(e.path("file.txt"), e.path("moved.txt")); err != nil {
		t.Fatal(err)
	}
	relink(t, e.path("file.txt"), "moved.txt")
	r = e.sync(0, "--links")
	if !slices.Equal(r.lines(), []string{"add     moved.txt (4 B)", "modify  file.txt (symlink)"}) {
		t.Fatalf("file replaced by a link: %q\n%s", r.lines(), r.stderr)
	}
	targets["file.txt"] = "moved.txt"
	checkLinkObjects(t, e, targets)

	if r := e.run(append(append([]string{"sync"}, e.baseArgs()...), "--links", "--follow-symlinks")...); r.code != 2 || !strings.Contains(r.stderr, "--links") {
		t.Fatalf("--links with --follow-symlinks: exit %d\n%s", r.code, r.stderr)
	}

	to := filepath.Join(t.TempDir(), "restored")
	e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to)...)
	for rel, target := range targets {
		got, err := os.Readlink(filepath.Join(to, rel))
		if err != nil || got != target {
			t.Errorf("restored %s: readlink %q, %v; want %q", rel, got, err, target)
		}
	}
	if b, err := os.ReadFile(filepath.Join(to, "dir", "d.txt")); err != nil || string(b) != "in dir" {
		t.Errorf("restored dir/d.txt: %q, %v", b, err)
	}

	e.cmdWant(0, "verify", e.baseArgs()...)
	e.cmdWant(0, "verify", append(e.baseArgs(), "--deep")...)

	// A manifest rebuilt from the bucket knows the links for links: the
	// next run reads each target and finds it the same.
	if err := os.RemoveAll(filepath.Join(e.state, "cloudkeeper")); err != nil {
		t.Fatal(err)
	}
	e.cmdWant(0, "manifest rebuild", e.baseArgs()...)
	if r := e.sync(0, "--links"); len(r.lines()) != 0 {
		t.Fatalf("after a rebuild: %q\n%s", r.lines(), r.stderr)
	}
	e.wantOps(map[string]int64{})

	// The target changed in the bucket, its hash kept.
	ctx := context.Background()
	c := gw.Client()
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("laptop/linkdir")})
	if err != nil {
		t.Fatal(err)
	}
	md := head.Metadata
	md["symlink"] = "/etc"
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &e.bucket, Key: aws.String("laptop/linkdir"), CopySource: aws.String(e.bucket + "/laptop/linkdir"),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: md,
	}); err != nil {
		t.Fatal(err)
	}
	r = e.cmdWant(1, "verify", e.baseArgs()...)
	if !strings.Contains(r.stdout, "mismatch linkdir: its target /etc hashes to "+scanner.LinkDigest("/etc").String()+", not to its x-amz-meta-blake3 "+scanner.LinkDigest("dir").String()) {
		t.Errorf("verify after the target changed in the bucket:\n%s", r.stdout)
	}
}

// A restore never writes through a link restored: a file under a path
// whose parent is a link to a folder is refused, and nothing is written
// into the folder the link leads to. (One bucket of the gateway cannot
// hold both "linkdir" and "linkdir/planted.txt": a second backup restored
// into the same folder brings the file; restore's own test has both in one
// listing.)
func TestRestoreDoesNotWriteThroughALink(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"dir":     scantest.Dir{"d.txt": scantest.File{Content: "in dir"}},
		"linkdir": scantest.Symlink{Target: "dir"},
	})
	e.sync(0, "--links")
	to := filepath.Join(t.TempDir(), "restored")
	e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to)...)
	e.plant("other/linkdir/planted.txt", "planted", selfDescribing("planted"))
	e.plant("other/fine.txt", "fine", selfDescribing("fine"))
	r := e.cmdWant(3, "restore", "--bucket", e.bucket, "--prefix", "other/", "--endpoint", e.proxy.URL, "--to", to)
	if _, err := os.Lstat(filepath.Join(to, "dir", "planted.txt")); err == nil {
		t.Fatalf("the restore wrote through the link linkdir:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "path=linkdir/planted.txt") || !strings.Contains(r.stderr, "linkdir is a symlink: not written through it") {
		t.Errorf("stderr does not name the refused path:\n%s", r.stderr)
	}
	if got, err := os.Readlink(filepath.Join(to, "linkdir")); err != nil || got != "dir" {
		t.Errorf("linkdir: %q, %v", got, err)
	}
	r = e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to)...)
	if !strings.Contains(r.stdout, "2 already there") {
		t.Errorf("restore again: %s", r.stdout)
	}
}

// Turning --links off makes the links' objects deletions, as a file that
// became a symlink is (and as rclone sync without -l deletes the
// .rclonelink objects of links it now skips): the bucket mirrors what the
// run backs up. --max-delete bounds them, the history keeps them.
func TestSyncLinksTurnedOff(t *testing.T) {
	tree := scantest.Dir{"l": scantest.Symlink{Target: "a.txt"}}
	for _, n := range []string{"a.txt", "b.txt", "c.txt"} {
		tree[n] = scantest.File{Content: n}
	}
	e := newEnv(t, tree)
	e.sync(0, "--links")
	r := e.sync(0)
	if !slices.Equal(r.lines(), []string{"delete  l"}) || !strings.Contains(r.stderr, "1 symlink skipped") {
		t.Fatalf("--links off: %q\n%s", r.lines(), r.stderr)
	}
	e.checkBucketIsTree()
}

// Without --links, a run sums its skipped symlinks up in one line; -v
// names each.
func TestSyncSkippedSymlinksSummedUp(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"a.txt": scantest.File{Content: "alpha"},
		"l1":    scantest.Symlink{Target: "a.txt"},
		"l2":    scantest.Symlink{Target: "nowhere"},
		"sub":   scantest.Dir{"l3": scantest.Symlink{Target: ".."}},
	})
	const sum = "3 symlinks skipped (--links keeps them, --follow-symlinks follows them)"
	r := e.sync(0)
	if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.Contains(r.stderr, sum) {
		t.Fatalf("stderr, want one line %q:\n%s", sum, r.stderr)
	}
	r = e.sync(0, "-v")
	for _, l := range []string{"l1", "l2", "sub/l3"} {
		if !strings.Contains(r.stderr, "skipped path="+l+" reason=\"symlink not followed") {
			t.Errorf("-v: no line for %s:\n%s", l, r.stderr)
		}
	}
	if strings.Count(r.stderr, sum) != 1 {
		t.Errorf("-v: no summary line:\n%s", r.stderr)
	}
}

// checkLinkObjects asserts that each link of targets is an empty object
// whose x-amz-meta-symlink is its target (percent-encoded beyond ASCII) and x-amz-meta-blake3 the
// target's LinkDigest, and that nothing was uploaded through a link.
func checkLinkObjects(t *testing.T, e *env, targets map[string]string) {
	t.Helper()
	objs := gwtestObjects(t, e)
	for rel, target := range targets {
		o, ok := objs["laptop/"+rel]
		if !ok {
			t.Errorf("no object for the link %s", rel)
			continue
		}
		if len(o.Body) != 0 || o.Metadata["symlink"] != uploader.FormatLinkTarget(target) || o.Metadata["blake3"] != scanner.LinkDigest(target).String() {
			t.Errorf("link %s: body %q, metadata %v; want target %q", rel, o.Body, o.Metadata, target)
		}
	}
	for k := range objs {
		if strings.HasPrefix(k, "laptop/linkdir/") {
			t.Errorf("uploaded through the link linkdir: %s", k)
		}
	}
}

// relink replaces the link at path with one to target.
func relink(t *testing.T, path, target string) {
	t.Helper()
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// A link's old target is history as a file's old content is: kept by
// versioning, or by --keep's copy (which must carry the target over, as
// the manifest does not keep it), and restore --run makes the old link.
func TestSyncLinksHistory(t *testing.T) {
	for _, c := range []struct {
		name string
		env  func(*testing.T, scantest.Dir) *env
		args []string
	}{{"versioning", newVersionedEnv, nil}, {"keep", newEnv, keepArgs}} {
		t.Run(c.name, func(t *testing.T) {
			e := c.env(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}, "l": scantest.Symlink{Target: "a.txt"}})
			e.sync(0, append([]string{"--links"}, c.args...)...)
			relink(t, e.path("l"), "elsewhere")
			if r := e.sync(0, append([]string{"--links"}, c.args...)...); !slices.Equal(r.lines(), []string{"modify  l (symlink)"}) {
				t.Fatalf("second run: %q\n%s", r.lines(), r.stderr)
			}
			dir, _ := e.restoreAt(0, "--run", "1")
			if got, err := os.Readlink(filepath.Join(dir, "l")); err != nil || got != "a.txt" {
				t.Fatalf("restore --run 1: l is %q, %v; want a link to a.txt", got, err)
			}
		})
	}
}

// A reconcile with --links adopts the object of a link the manifest does
// not know when the tree has the link, and says so (not "deleting it").
func TestReconcileAdoptsALink(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}, "l": scantest.Symlink{Target: "a.txt"}})
	e.sync(0, "--links")
	if err := os.RemoveAll(filepath.Join(e.state, "cloudkeeper")); err != nil {
		t.Fatal(err)
	}
	r := e.sync(0, "--links", "--allow-existing", "--reconcile")
	if len(r.lines()) != 0 || strings.Contains(r.stderr, "deleting it") || !strings.Contains(r.stderr, "path=l") {
		t.Fatalf("reconcile: %q\n%s", r.lines(), r.stderr)
	}
}

// An empty object in an archive storage class needs no thaw: its content
// is all in its metadata, which HEAD reads (GET is refused). A link, or an
// empty file, is restored and verified --deep as any other.
func TestArchivedLinkNeedsNoThaw(t *testing.T) {
	e := newEnv(t, scantest.Dir{"l": scantest.Symlink{Target: "elsewhere"}, "empty": scantest.File{Content: ""}})
	e.sync(0, "--links", "--storage-class", "DEEP_ARCHIVE")
	e.archive("l", "empty")
	e.cmdWant(0, "verify", append(e.baseArgs(), "--deep")...)
	to := filepath.Join(t.TempDir(), "restored")
	r := e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to)...)
	if got, err := os.Readlink(filepath.Join(to, "l")); err != nil || got != "elsewhere" {
		t.Fatalf("l: %q, %v\n%s%s", got, err, r.stdout, r.stderr)
	}
	if fi, err := os.Lstat(filepath.Join(to, "empty")); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		t.Fatalf("empty: %v, %v", fi, err)
	}
}
