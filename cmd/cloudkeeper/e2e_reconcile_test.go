package main

// End-to-end tests of the reconcile: objects deleted, overwritten or
// planted behind cloudkeeper's back are repaired by sync --reconcile, on
// a schedule (--reconcile-every), or after verify --repair.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// drift does to the bucket what someone with access to it could: deletes
// deleted.txt, overwrites corrupt.txt with other bytes of the same size
// (and their own, true, x-amz-meta-blake3), plants extra.txt, which the
// tree does not have.
func (e *env) drift() {
	e.t.Helper()
	if _, err := gw.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String(e.prefix + "deleted.txt")}); err != nil {
		e.t.Fatal(err)
	}
	e.plant(e.prefix+"corrupt.txt", "OTHER bytes!!!", selfDescribing("OTHER bytes!!!"))
	e.plant(e.prefix+"extra.txt", "planted", selfDescribing("planted"))
}

func driftTree() scantest.Dir {
	return scantest.Dir{
		"deleted.txt": scantest.File{Content: "to be deleted"},
		"corrupt.txt": scantest.File{Content: "original bytes"},
		"fine.txt":    scantest.File{Content: "fine"},
		"sub":         scantest.Dir{"fine2.txt": scantest.File{Content: "fine too"}},
	}
}

// The manifest is a cache of the bucket, and sync trusts it: what goes
// wrong behind its back stays wrong. sync --reconcile lists the prefix
// once and repairs it all: uploads what is missing or differs, deletes
// what the tree does not have, and adopts an object whose file the tree
// has with the same content, without uploading it.
func TestSyncReconcile(t *testing.T) {
	e := newEnv(t, driftTree())
	e.sync(0)
	e.drift()

	// The bug: a plain sync, even --rehash, believes the manifest.
	for _, args := range [][]string{nil, {"--rehash"}} {
		r := e.sync(0, args...)
		if len(r.lines()) != 0 || e.ops()["PutObject"] != 0 {
			t.Fatalf("sync %q repaired something: %q, %v", args, r.lines(), e.ops())
		}
	}
	objs := gwtestObjects(t, e)
	if _, ok := objs[e.prefix+"deleted.txt"]; ok || string(objs[e.prefix+"corrupt.txt"].Body) != "OTHER bytes!!!" || objs[e.prefix+"extra.txt"].Body == nil {
		t.Fatalf("the drift is not in the bucket: %q", scantest.Keys(objs))
	}

	// A file the tree has, planted in the bucket with its content (by
	// another machine backing up the same folder, say).
	scantest.Write(t, e.src, "adopted.txt", "already there")
	e.plant(e.prefix+"adopted.txt", "already there", selfDescribing("already there"))
	want := []string{"add     deleted.txt (13 B)", "delete  extra.txt", "modify  corrupt.txt (14 B)"}

	// A dry run says what it would repair, and changes nothing.
	manifestBefore := sha(t, e.manifestPath())
	bucketBefore := gwtestObjects(t, e)
	dry := e.sync(0, "--reconcile", "--dry-run")
	if !slices.Equal(dry.lines(), want) {
		t.Fatalf("dry run printed %q, want %q\n%s", dry.lines(), want, dry.stderr)
	}
	if ops := e.ops(); ops["PutObject"]+ops["CopyObject"]+ops["DeleteObjects"] != 0 || ops["ListObjectsV2"] != 1 {
		t.Fatalf("dry run sent %v", ops)
	}
	if sha(t, e.manifestPath()) != manifestBefore {
		t.Fatal("the dry run changed the manifest")
	}
	if after := gwtestObjects(t, e); !slices.Equal(scantest.Keys(after), scantest.Keys(bucketBefore)) {
		t.Fatal("the dry run changed the bucket")
	}

	r := e.sync(0, "--reconcile")
	if !slices.Equal(r.lines(), want) {
		t.Fatalf("sync --reconcile printed %q, want %q\n%s", r.lines(), want, r.stderr)
	}
	for _, l := range []string{"path=deleted.txt", "path=corrupt.txt", "path=extra.txt", "path=adopted.txt",
		"missing=1 differ=1 adopted=1 extra=1"} {
		if !strings.Contains(r.stderr, l) {
			t.Errorf("no %q in stderr:\n%s", l, r.stderr)
		}
	}
	// One listing; a HEAD for each object the manifest does not know
	// (extra, adopted) and for the one whose ETag changed (corrupt); two
	// uploads, none of them adopted.txt's.
	ops := e.ops()
	if ops["ListObjectsV2"] != 1 || ops["HeadObject"] != 3 || ops["PutObject"] != 2 || ops["DeleteObjects"] != 1 || ops["GetObject"] != 0 {
		t.Fatalf("requests %v", ops)
	}
	e.checkBucketIsTree()
	if r := e.sync(0); len(r.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("the sync after the reconcile: %q, %v", r.lines(), e.ops())
	}
	if r := e.sync(0, "--reconcile"); len(r.lines()) != 0 || e.ops()["HeadObject"] != 0 || !strings.Contains(r.stderr, "missing=0 differ=0 adopted=0 extra=0") {
		t.Fatalf("a second reconcile: %q, %v\n%s", r.lines(), e.ops(), r.stderr)
	}

	// status says when the last reconcile ran and what it found.
	st := e.cmdWant(0, "status", e.baseArgs()...)
	if line := lineWith(st.stdout, "reconciled:"); !strings.Contains(line, "ago): nothing to repair") {
		t.Errorf("status: %q\n%s", line, st.stdout)
	}
	e.drift()
	e.sync(0, "--reconcile", "--max-delete", "100%")
	st = e.cmdWant(0, "status", append(e.baseArgs(), "--json")...)
	var js struct {
		Reconciled *struct {
			At                              string
			Missing, Differ, Adopted, Extra int64
		} `json:"last_reconcile"`
	}
	if err := json.Unmarshal([]byte(st.stdout), &js); err != nil || js.Reconciled == nil || js.Reconciled.At == "" ||
		js.Reconciled.Missing != 1 || js.Reconciled.Differ != 1 || js.Reconciled.Adopted != 0 || js.Reconciled.Extra != 1 {
		t.Errorf("status --json: %+v %v\n%s", js.Reconciled, err, st.stdout)
	}
	st = e.cmdWant(0, "status", e.baseArgs()...)
	if line := lineWith(st.stdout, "reconciled:"); !strings.Contains(line, "1 missing, 1 differing, 1 extra") {
		t.Errorf("status: %q", line)
	}
	e.checkBucketIsTree()
}

// Keys that name no path cloudkeeper would write are reported and left
// alone; excluded paths are left alone as by any sync.
func TestSyncReconcileLeavesForeignKeysAndExcludedPathsAlone(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}, "cache": scantest.Dir{"c.bin": scantest.File{Content: "cached"}}})
	e.sync(0, "--exclude", "cache/")
	e.plant(e.prefix+`\x41-not-canonical`, "foreign", nil)
	e.plant(e.prefix+"cache/planted.bin", "excluded", nil)
	r := e.sync(0, "--reconcile", "--exclude", "cache/")
	if len(r.lines()) != 0 || !strings.Contains(lineWith(r.stderr, "not-canonical"), "not a key cloudkeeper writes") {
		t.Fatalf("got %q\n%s", r.lines(), r.stderr)
	}
	if ops := e.ops(); ops["HeadObject"] != 0 || ops["DeleteObjects"] != 0 {
		t.Fatalf("requests %v", ops)
	}
	if n := len(gwtestObjects(t, e)); n != 3 {
		t.Fatalf("%d objects, want a.txt and the two planted", n)
	}
}

// A normal run reconciles by itself when the last reconcile is older than
// --reconcile-every (default a week); a first run counts as one, and 0
// turns it off.
func TestSyncReconcileEvery(t *testing.T) {
	e := newEnv(t, driftTree())
	e.sync(0)
	st := e.cmdWant(0, "status", e.baseArgs()...)
	if line := lineWith(st.stdout, "reconciled:"); !strings.Contains(line, "nothing to repair") {
		t.Errorf("the first run does not count as a reconcile: %q", line)
	}
	e.drift()
	if r := e.sync(0); len(r.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("a run within the week listed the bucket: %q, %v", r.lines(), e.ops())
	}
	if r := e.sync(0, "--reconcile-every", "0"); len(r.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("--reconcile-every 0 reconciled: %q, %v", r.lines(), e.ops())
	}
	// A reconcile that is due and fails (the listing keeps failing) does
	// not hold the backup back: the run applies its changes, says what
	// failed, exits 3, and the next run reconciles.
	scantest.Write(t, e.src, "new.txt", "new")
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "ListObjectsV2" {
			return &s3test.Fault{Status: 500}
		}
		return nil
	})
	r := e.sync(3, "--reconcile-every", "1ns", "--retries", "1")
	if !slices.Equal(r.lines(), []string{"add     new.txt (3 B)"}) || !strings.Contains(lineWith(r.stderr, "ERROR"), "reconcile") {
		t.Fatalf("a run whose reconcile failed: %q\n%s", r.lines(), r.stderr)
	}
	e.proxy.SetFault(nil)

	e.cmd = func(c *exec.Cmd) { c.Env = append(c.Env, "CLOUDKEEPER_RECONCILE_EVERY=1ns") }
	r = e.sync(0, "--max-delete", "100%")
	want := []string{"add     deleted.txt (13 B)", "delete  extra.txt", "modify  corrupt.txt (14 B)"}
	if !slices.Equal(r.lines(), want) || e.ops()["ListObjectsV2"] != 1 {
		t.Fatalf("a run with the last reconcile older than 1ns: %q, %v\n%s", r.lines(), e.ops(), r.stderr)
	}
	e.checkBucketIsTree()
}

// verify --repair marks in the manifest what verify finds, so that the
// next plain sync repairs it; among them an object whose bytes were
// replaced while its metadata and size stayed, which only verify --deep
// sees: a reconcile sees its new ETag, but its metadata says the content
// is the manifest's, and it only records the new ETag.
func TestVerifyRepair(t *testing.T) {
	e := newEnv(t, driftTree())
	e.sync(0)
	c := gw.Client()
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String(e.prefix + "fine.txt")})
	if err != nil {
		t.Fatal(err)
	}
	e.plant(e.prefix+"fine.txt", "FINE", head.Metadata) // same size, old metadata: it looks right
	r := e.sync(0, "--reconcile")
	if len(r.lines()) != 0 || e.ops()["HeadObject"] != 1 || !strings.Contains(r.stderr, "new_etags=1") || strings.Contains(r.stderr, "path=fine.txt") {
		t.Fatalf("sync --reconcile of an object with a new ETag and its old metadata: %q, %v\n%s", r.lines(), e.ops(), r.stderr)
	}
	e.drift()
	verify := func(want int, args ...string) result {
		t.Helper()
		return e.cmdWant(want, "verify", append(e.baseArgs(), args...)...)
	}
	r = verify(1, "--deep", "--repair")
	for _, l := range []string{"missing  deleted.txt", "extra    extra.txt", "mismatch corrupt.txt", "mismatch fine.txt: its bytes hash to"} {
		if !strings.Contains(r.stdout, l) {
			t.Errorf("no %q in\n%s", l, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "marked 4 objects in the manifest for the next sync to repair: 1 missing, 2 differing, 1 extra") {
		t.Errorf("verify --repair does not say what it marked:\n%s", r.stdout)
	}
	s := e.sync(0, "--max-delete", "100%")
	want := []string{"add     deleted.txt (13 B)", "delete  extra.txt", "modify  corrupt.txt (14 B)", "modify  fine.txt (4 B)"}
	if !slices.Equal(s.lines(), want) {
		t.Fatalf("the sync after verify --repair: %q, want %q", s.lines(), want)
	}
	e.checkBucketIsTree()
	if r := verify(0, "--deep"); !strings.HasSuffix(r.stdout, "the backup is good\n") {
		t.Fatalf("verify --deep after the repair: %s", r.stdout)
	}

	// Without a manifest there is nothing to mark.
	os.Remove(e.manifestPath())
	r = e.cmdWant(2, "verify", append(e.bucketArgs(), "--repair")...)
	if !strings.Contains(r.stderr, "--repair") {
		t.Errorf("verify --repair without a manifest: %q", r.stderr)
	}
}

// What a reconcile costs on a larger tree: one ListObjectsV2 per 1,000
// keys, and HeadObject only for objects the manifest does not know or
// whose ETag changed. It builds a tree of CLOUDKEEPER_TEST_RECONCILE_FILES
// files and uploads it first, so it runs only when asked:
// CLOUDKEEPER_TEST_RECONCILE_FILES=5000 go test ./cmd/cloudkeeper -run TestReconcileCost -v
func TestReconcileCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CLOUDKEEPER_TEST_RECONCILE_FILES"))
	if n < 30 {
		t.Skip("set CLOUDKEEPER_TEST_RECONCILE_FILES to a number of files (30 or more) to measure a reconcile")
	}
	e := newEnv(t, numberedTree(n, func(i int) scantest.File { return scantest.File{Content: fmt.Sprintf("file %05d", i)} }))
	e.sync(0, "--concurrency", "16")
	pages := int64((n + 999) / 1000)
	measure := func(what string, args ...string) {
		t.Helper()
		start := time.Now()
		r := e.sync(0, append([]string{"--reconcile"}, args...)...)
		st := e.proxy.Stats()
		t.Logf("%d files, %s: %d requests %v in %v; %s", n, what, st.Requests, st.ByOp, time.Since(start).Round(time.Millisecond), r.summary())
		if st.ByOp["ListObjectsV2"] != pages {
			t.Errorf("%d ListObjectsV2 for %d keys, want %d", st.ByOp["ListObjectsV2"], n, pages)
		}
	}
	measure("nothing to repair")
	if e.ops()["HeadObject"] != 0 {
		t.Errorf("HeadObject on a reconcile with nothing to repair: %v", e.ops())
	}
	// 10 deleted, 10 overwritten with other bytes of the same size, 10
	// planted: 5 whose file the tree has, with its content, 5 it has not.
	c := gw.Client()
	for i := range 10 {
		key := fmt.Sprintf("%sd%03d/f%05d.txt", e.prefix, i/100, i)
		if _, err := c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key}); err != nil {
			t.Fatal(err)
		}
		e.plant(fmt.Sprintf("%sd%03d/f%05d.txt", e.prefix, (i+10)/100, i+10), fmt.Sprintf("FILE %05d", i+10), selfDescribing(fmt.Sprintf("FILE %05d", i+10)))
	}
	for i := range 5 {
		scantest.Write(t, e.src, fmt.Sprintf("new/same%d.txt", i), "planted")
		e.plant(fmt.Sprintf("%snew/same%d.txt", e.prefix, i), "planted", selfDescribing("planted"))
		e.plant(fmt.Sprintf("%sgone/extra%d.txt", e.prefix, i), "planted", selfDescribing("planted"))
	}
	measure("10 missing, 10 differing, 5 adopted, 5 extra")
	if ops := e.ops(); ops["HeadObject"] != 20 || ops["PutObject"] != 20 || ops["DeleteObjects"] != 1 {
		t.Errorf("requests %v: want a HEAD for each of the 10 rewritten and 10 planted, 20 uploads, one delete", ops)
	}
	e.checkBucketIsTree()
}
