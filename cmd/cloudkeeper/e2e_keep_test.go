package main

// History without versioning (issue 13): with --keep, a sync copies each
// object it overwrites or deletes into the history area beside the mirror
// before the write goes out, and records the copy in the manifest.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

var keepArgs = []string{"--keep", "90d", "--max-delete", "100%"}

// historyArea is where the history copies of this env go (written out, not
// taken from the code under test).
func (e *env) historyArea() string { return e.prefix + `\history/` }

// historyKey is where run (its start read from the manifest) copies
// path's object.
func (e *env) historyKey(run int64, path string) string {
	e.t.Helper()
	db := e.openManifest()
	defer db.Close()
	r, ok, err := db.RunByID(context.Background(), run)
	if err != nil || !ok {
		e.t.Fatalf("run %d: %v, %v", run, ok, err)
	}
	return manifest.HistoryKey(e.prefix, run, r.Started, path)
}

// checkMirrorIsTree asserts that the bucket's objects under the prefix,
// but for the history area, are the source's files, and returns the
// history area's.
func (e *env) checkMirrorIsTree() map[string]gwtest.Object {
	e.t.Helper()
	mirror := gwtest.Objects(e.t, gw.Client(), e.bucket, e.prefix)
	history := map[string]gwtest.Object{}
	for k, o := range mirror {
		if strings.HasPrefix(k, e.historyArea()) {
			history[k] = o
			delete(mirror, k)
		}
	}
	e.checkObjectsAreTree(mirror)
	return history
}

// wantKept asserts that the ended version v of path is kept at the key of
// the run that ended it, in history, with body.
func (e *env) wantKept(history map[string]gwtest.Object, path string, v manifest.Version, body string) {
	e.t.Helper()
	key := e.historyKey(v.EndedRun, path)
	if v.Current() || v.HistoryKey != key {
		e.t.Fatalf("version of %s: %+v; want one ended by a run, kept at %q", path, v, key)
	}
	o, ok := history[key]
	if !ok || string(o.Body) != body {
		e.t.Fatalf("history copy %s: %q (there: %v); want %q", key, o.Body, ok, body)
	}
	md := o.Metadata
	if md["blake3"] != fmt.Sprintf("%x", blake3.Sum256([]byte(body))) || md["key"] != e.prefix+path ||
		md["run"] != strconv.FormatInt(v.EndedRun, 10) || md["replaced"] == "" || md["mtime"] == "" || md["mode"] != "0644" {
		e.t.Errorf("history copy %s describes itself as %v", key, md)
	}
}

// With --keep, a file overwritten twice and a file deleted leave their old
// bytes in the history area, one CopyObject each and nothing sent from this
// machine; the manifest's history names each copy; a no-change run still
// sends one request; verify, a reconcile, restore and a rebuild pass over
// the history area.
func TestSyncKeepCopiesWhatItReplaces(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}, "gone.txt": scantest.File{Content: "bye"},
		"stay.txt": scantest.File{Content: "stays"}})
	e.sync(0, keepArgs...)
	scantest.Write(t, e.src, "doc.txt", "v2, longer")
	e.sync(0, keepArgs...)
	e.wantOps(map[string]int64{"CopyObject": 1, "PutObject": 1})
	scantest.Write(t, e.src, "doc.txt", "v3")
	if err := os.Remove(e.path("gone.txt")); err != nil {
		t.Fatal(err)
	}
	e.sync(0, keepArgs...)
	e.wantOps(map[string]int64{"CopyObject": 2, "PutObject": 1, "DeleteObjects": 1})

	history := e.checkMirrorIsTree()
	doc, gone := e.history("doc.txt"), e.history("gone.txt")
	if len(history) != 3 || len(doc) != 3 || len(gone) != 1 || !doc[2].Current() || doc[2].HistoryKey != "" {
		t.Fatalf("history area %q; versions of doc.txt %+v, of gone.txt %+v", scantest.Keys(history), doc, gone)
	}
	e.wantKept(history, "doc.txt", doc[0], "v1")
	e.wantKept(history, "doc.txt", doc[1], "v2, longer")
	e.wantKept(history, "gone.txt", gone[0], "bye")

	e.sync(0, keepArgs...)
	if !e.onlyBucketCheck() {
		t.Fatalf("a no-change run with --keep sent %v", e.ops())
	}
	e.verifyGood()
	if r := e.sync(0, append(keepArgs, "--reconcile")...); len(r.lines()) != 0 || !strings.Contains(r.stderr, "missing=0 differ=0 adopted=0 extra=0") ||
		strings.Contains(r.stderr, "history") {
		t.Fatalf("a reconcile: %q\n%s", r.lines(), r.stderr)
	}
	if kept := e.checkMirrorIsTree(); len(kept) != 3 {
		t.Fatalf("after the reconcile, the history area holds %q", scantest.Keys(kept))
	}
	to := filepath.Join(t.TempDir(), "restored")
	e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to)...)
	if got, want := scantest.Keys(treeState(t, to)), scantest.Keys(treeState(t, e.src)); !slices.Equal(got, want) {
		t.Fatalf("restored %q, want %q", got, want)
	}
	if err := os.Remove(e.manifestPath()); err != nil {
		t.Fatal(err)
	}
	r := e.cmdWant(0, "manifest rebuild", e.baseArgs()...)
	if r.stdout != "manifest rebuilt from the bucket: 2 objects (7 B); history: 3 old versions\n" || e.ops()["HeadObject"] != 5 {
		t.Fatalf("rebuild: %q %v\n%s", r.stdout, e.ops(), r.stderr)
	}
	if s := e.sync(0, keepArgs...); len(s.lines()) != 0 {
		t.Fatalf("sync after the rebuild: %q", s.stdout)
	}
}

// Without --keep, an overwrite and a delete send what they always did,
// and nothing goes to the history area.
func TestSyncWithoutKeepCopiesNoHistory(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}, "gone.txt": scantest.File{Content: "bye"}})
	e.sync(0)
	scantest.Write(t, e.src, "doc.txt", "v2")
	e.sync(0)
	e.wantOps(map[string]int64{"PutObject": 1})
	os.Remove(e.path("gone.txt"))
	e.sync(0, "--max-delete", "100%")
	e.wantOps(map[string]int64{"DeleteObjects": 1})
	e.checkBucketIsTree()
	if doc := e.history("doc.txt"); len(doc) != 1 || doc[0].HistoryKey != "" {
		t.Fatalf("versions of doc.txt: %+v, want the current one only", doc)
	}
}

// killApplied runs sync and kills it once S3 answered the first request of
// op, before the answer is relayed: S3 applied it, the run cannot have
// recorded it (killAfter's window, without racing a record made at once).
func (e *env) killApplied(op string, args ...string) {
	e.t.Helper()
	e.killOn(op, func(kill func()) *s3test.Fault { return &s3test.Fault{Applied: kill} }, args...)
}

// Killed right after S3 made a history copy, before the manifest recorded
// it (and so before the overwrite or delete went out): the next
// run finds the copy and records it on the version it keeps, makes no
// second one, and the bucket and the manifest agree.
func TestSyncKilledAfterHistoryCopy(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}, "gone.txt": scantest.File{Content: "bye"}})
	e.sync(0, keepArgs...)
	scantest.Write(t, e.src, "doc.txt", "v2, longer")
	e.killApplied("CopyObject", keepArgs...)
	r := e.sync(0, keepArgs...)
	if !strings.Contains(r.stderr, "history_copies_recorded=1") {
		t.Fatalf("the run after the kill recorded no history copy:\n%s", r.stderr)
	}
	// A HEAD for the copy and one for doc.txt, in doubt too; no copy.
	e.wantOps(map[string]int64{"HeadObject": 2, "PutObject": 1})
	history := e.checkMirrorIsTree()
	doc := e.history("doc.txt")
	if len(history) != 1 || len(doc) != 2 {
		t.Fatalf("history area %q; versions of doc.txt %+v", scantest.Keys(history), doc)
	}
	// The copy was made by the killed run, and kept its version.
	if key := e.historyKey(doc[0].EndedRun-1, "doc.txt"); doc[0].HistoryKey != key || string(history[key].Body) != "v1" {
		t.Fatalf("version v1: %+v; want it kept at %s", doc[0], key)
	}

	os.Remove(e.path("gone.txt"))
	e.killApplied("CopyObject", keepArgs...)
	if r := e.sync(0, keepArgs...); !strings.Contains(r.stderr, "history_copies_recorded=1") {
		t.Fatalf("the run after the second kill recorded no history copy:\n%s%s\n%q %+v", r.stdout, r.stderr, scantest.Keys(e.checkMirrorIsTree()), e.history("gone.txt"))
	}
	history = e.checkMirrorIsTree()
	gone := e.history("gone.txt")
	if len(history) != 2 || len(gone) != 1 || gone[0].Current() || string(history[gone[0].HistoryKey].Body) != "bye" {
		t.Fatalf("history area %q; versions of gone.txt %+v", scantest.Keys(history), gone)
	}
	e.verifyGood()
}

// A history copy that fails keeps its overwrite and its delete from going
// out: the run is incomplete, the bucket still holds the old bytes, and the
// next run keeps them and applies the changes.
func TestSyncKeepFailedCopyHoldsTheChange(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}, "gone.txt": scantest.File{Content: "bye"}})
	e.sync(0, keepArgs...)
	scantest.Write(t, e.src, "doc.txt", "v2, longer")
	os.Remove(e.path("gone.txt"))
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "CopyObject" {
			return &s3test.Fault{Status: http.StatusBadRequest, Code: "InvalidRequest"}
		}
		return nil
	})
	e.sync(3, keepArgs...)
	e.proxy.SetFault(nil)
	e.wantOps(map[string]int64{"CopyObject": 2})
	if objs := gwtest.Objects(t, gw.Client(), e.bucket, e.prefix); len(objs) != 2 || string(objs["laptop/doc.txt"].Body) != "v1" {
		t.Fatalf("after the failed copies the bucket holds %q", scantest.Keys(objs))
	}
	e.sync(0, keepArgs...)
	e.wantOldestKept(2, map[string]oldest{"doc.txt": {2, "v1"}, "gone.txt": {1, "bye"}})
}

// A file moved onto another: both objects it replaces are kept, the one
// overwritten at the new key and the one deleted at the old.
func TestSyncKeepRenameOntoAFile(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "moves"}, "b.txt": scantest.File{Content: "replaced"}})
	e.sync(0, keepArgs...)
	if err := os.Rename(e.path("a.txt"), e.path("b.txt")); err != nil {
		t.Fatal(err)
	}
	if r := e.sync(0, keepArgs...); !slices.Equal(r.lines(), []string{"rename  a.txt -> b.txt"}) {
		t.Fatalf("sync: %q", r.lines())
	}
	e.wantOps(map[string]int64{"CopyObject": 3, "DeleteObjects": 1})
	e.wantOldestKept(2, map[string]oldest{"a.txt": {1, "moves"}, "b.txt": {2, "replaced"}})
}

// oldest is what a path's history must be: how many versions, the oldest
// of them kept with body.
type oldest struct {
	versions int
	body     string
}

// wantOldestKept asserts that the mirror is the tree, that the history
// area holds n copies, and that each path's history is as want says.
func (e *env) wantOldestKept(n int, want map[string]oldest) {
	e.t.Helper()
	history := e.checkMirrorIsTree()
	if len(history) != n {
		e.t.Fatalf("history area %q, want %d copies", scantest.Keys(history), n)
	}
	for path, w := range want {
		vs := e.history(path)
		if len(vs) != w.versions {
			e.t.Fatalf("versions of %s: %+v, want %d", path, vs, w.versions)
		}
		e.wantKept(history, path, vs[0], w.body)
	}
}

// Killed as its history copy went out, which lands only after the next run
// looked for it and copied the version again (a request still on its way):
// the runs that follow look again, and delete the copy that keeps nothing.
func TestSyncKilledHistoryCopyLandingLate(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}})
	e.sync(0, keepArgs...)
	scantest.Write(t, e.src, "doc.txt", "v2, longer")
	e.killWhen("CopyObject", func(r *http.Request, kill func()) *s3test.Fault {
		if s3test.Operation(r) != "CopyObject" {
			return nil
		}
		kill()
		return &s3test.Fault{Reset: true}
	}, keepArgs...)
	e.sync(0, keepArgs...)
	doc := e.history("doc.txt")
	if len(doc) != 2 {
		t.Fatalf("versions of doc.txt %+v", doc)
	}
	late := e.historyKey(doc[0].EndedRun-1, "doc.txt")
	if doc[0].HistoryKey == late {
		t.Fatalf("the copy that never landed is recorded: %+v", doc[0])
	}
	e.plant(late, "v1", selfDescribing("v1"))
	if r := e.sync(0, keepArgs...); !strings.Contains(r.stderr, "history_copies_deleted=1") {
		t.Fatalf("the run after the late copy deleted nothing:\n%s", r.stderr)
	}
	e.wantOldestKept(1, map[string]oldest{"doc.txt": {2, "v1"}})
}

// A history copy of an object large enough to be copied in parts, killed
// with its multipart upload started: the next run aborts that upload.
func TestSyncKilledHistoryCopyInParts(t *testing.T) {
	big := bigContent(manifest.MinPartSize + 1)
	e := newEnv(t, scantest.Dir{"big.bin": scantest.File{Content: big}})
	e.sync(0, keepArgs...)
	scantest.Write(t, e.src, "big.bin", big[1:]+"x")
	e.killApplied("CopyObject", keepArgs...)
	doc := e.history("big.bin")
	// What a kill in the middle of copying it in parts (UploadPartCopy)
	// leaves: an upload no record names.
	key := e.historyKey(doc[0].Run+1, "big.bin")
	if _, err := gw.Client().CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String(e.bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	e.sync(0, keepArgs...)
	if n := multipartUploads(t, e); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
	history := e.checkMirrorIsTree()
	if doc = e.history("big.bin"); len(history) != 1 || len(doc) != 2 || doc[0].HistoryKey != key || string(history[key].Body) != big {
		t.Fatalf("history area %q; versions of big.bin %+v; want the first kept at %s", scantest.Keys(history), doc, key)
	}
}

// Manifest deleted in a bucket without versioning: the rebuild reads the
// history area too (each copy describes itself: its content, the key it
// was at and when it was replaced), from the one listing of the prefix and
// a HEAD a copy, so that history and restore --at work as before.
func TestManifestRebuildRestoresTheHistoryCopies(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "one"}, "gone.txt": scantest.File{Content: "bye"}})
	e.sync(0, keepArgs...)
	firstEnded := afterASecond()
	scantest.Write(t, e.src, "doc.txt", "two, longer")
	e.sync(0, keepArgs...)
	secondEnded := afterASecond()
	scantest.Write(t, e.src, "doc.txt", "three")
	os.Remove(e.path("gone.txt"))
	e.sync(0, keepArgs...)
	want := e.histories("doc.txt", "gone.txt")
	if len(e.history("doc.txt")) != 3 || len(e.history("gone.txt")) != 1 {
		t.Fatalf("the runs recorded:\n%s", want)
	}

	os.Remove(e.manifestPath())
	e.proxy.Reset()
	r := e.cmdWant(0, "manifest rebuild", e.baseArgs()...)
	if r.stdout != "manifest rebuilt from the bucket: 1 object (5 B); history: 3 old versions\n" {
		t.Errorf("stdout %q\n%s", r.stdout, r.stderr)
	}
	if ops := e.ops(); ops["HeadObject"] != 4 || ops["ListObjectsV2"] != 1 {
		t.Errorf("requests %v, want one listing and a HEAD for the object and each copy", ops)
	}
	if got := e.histories("doc.txt", "gone.txt"); got != want {
		t.Errorf("rebuilt history:\n%s\nwant, as the runs recorded it:\n%s", got, want)
	}
	for at, want := range map[time.Time]map[string]string{
		firstEnded:  {"doc.txt": "one", "gone.txt": "bye"},
		secondEnded: {"doc.txt": "two, longer", "gone.txt": "bye"},
	} {
		dir, r := e.restoreAt(0, "--at", at.Format(time.RFC3339Nano))
		if got := scantest.Files(t, dir); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("restore --at %s after the rebuild: %q, want %q\n%s", at.Format(time.RFC3339Nano), got, want, r.stderr)
		}
	}
	if s := e.sync(0, keepArgs...); len(s.lines()) != 0 || e.ops()["PutObject"] != 0 {
		t.Errorf("the sync after the rebuild: %q, %v", s.stdout, e.ops())
	}
	// The next overwrite keeps the current version as before.
	scantest.Write(t, e.src, "doc.txt", "four")
	e.sync(0, keepArgs...)
	e.wantOps(map[string]int64{"CopyObject": 1, "PutObject": 1})
	if h := e.history("doc.txt"); len(h) != 4 || h[2].HistoryKey == "" || !h[3].Current() {
		t.Errorf("history of doc.txt after the next overwrite: %+v", h)
	}
}

// A run killed right after its history copy, then the manifest deleted:
// the rebuilt manifest finds the copy of the current version, which the
// killed run never replaced, keeping that version; the next run's
// overwrite makes no second copy, and nothing of the killed run's WAL
// (left beside the deleted manifest) comes back as doubt.
func TestManifestRebuildAfterAKilledHistoryCopy(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}})
	e.sync(0, keepArgs...)
	scantest.Write(t, e.src, "doc.txt", "v2, longer")
	e.killApplied("CopyObject", keepArgs...)
	os.Remove(e.manifestPath()) // its -wal and -shm stay, as a user's rm *.db leaves them
	e.cmdWant(0, "manifest rebuild", e.baseArgs()...)
	if h := e.history("doc.txt"); len(h) != 1 || !h[0].Current() || h[0].HistoryKey == "" || h[0].Size != 2 {
		t.Fatalf("rebuilt history of doc.txt: %+v; want the current v1, kept by the killed run's copy", h)
	}
	e.sync(0, keepArgs...)
	e.wantOps(map[string]int64{"PutObject": 1})
	if h := e.history("doc.txt"); len(h) != 2 || h[0].Current() || string(e.checkMirrorIsTree()[h[0].HistoryKey].Body) != "v1" {
		t.Fatalf("history of doc.txt after the overwrite: %+v", h)
	}
}
