package main

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// dupTree has one content in four files, another in two, a third once, and
// two small equal files (below manifest.DefaultDupCopyMin): each file with
// its own mtime and mode.
func dupTree() scantest.Dir {
	at := func(y int) time.Time { return time.Date(y, 3, 4, 5, 6, 7, 123456789, time.UTC) }
	a := strings.Repeat("content a ", 1000)
	b := strings.Repeat("content b ", 1000)
	return scantest.Dir{
		"a":      scantest.Dir{"dup.bin": scantest.File{Content: a, Mode: 0o644, Mtime: at(2001)}},
		"b":      scantest.Dir{"dup.bin": scantest.File{Content: a, Mode: 0o600, Mtime: at(2002)}},
		"c":      scantest.Dir{"copy.bin": scantest.File{Content: a, Mode: 0o755, Mtime: at(2003)}},
		"d":      scantest.Dir{"dup.bin": scantest.File{Content: a, Mode: 0o640, Mtime: at(2004)}},
		"e":      scantest.Dir{"other.bin": scantest.File{Content: b, Mtime: at(2005)}},
		"f":      scantest.Dir{"other.bin": scantest.File{Content: b, Mtime: at(2006)}},
		"g":      scantest.Dir{"one.bin": scantest.File{Content: strings.Repeat("content c ", 1000)}},
		"s1.txt": scantest.File{Content: "small", Mtime: at(2007)},
		"s2.txt": scantest.File{Content: "small", Mtime: at(2008)},
	}
}

// changedPaths are the paths the change lines of out write to, in order.
func changedPaths(out string) []string {
	var paths []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "add":
			paths = append(paths, f[1])
		case len(f) > 3 && f[0] == "copy":
			paths = append(paths, f[3])
		}
	}
	return paths
}

// checkOwnMetadata asserts that each file's object, if it has one, carries
// the file's own mtime and mode, not those of the file it was copied from.
func (e *env) checkOwnMetadata() {
	e.t.Helper()
	objs := gwtestObjects(e.t, e)
	for rel := range scantest.Files(e.t, e.src) {
		fi, err := os.Stat(e.path(rel))
		if err != nil {
			e.t.Fatal(err)
		}
		o, ok := objs[manifest.Key(e.prefix, rel)]
		if !ok {
			continue
		}
		md := o.Metadata
		if md["mtime"] != uploader.FormatMtime(fi.ModTime().UnixNano()) || md["mode"] != uploader.FormatMode(fi.Mode()) {
			e.t.Errorf("%s: object has mtime %s, mode %s; the file %s, %s", rel, md["mtime"], md["mode"],
				uploader.FormatMtime(fi.ModTime().UnixNano()), uploader.FormatMode(fi.Mode()))
		}
	}
}

// A first run over a tree with duplicates uploads each content once and
// copies it on the server to the other paths once S3 confirmed the upload
// (the uploads are slowed down: a copy sent before would find no source);
// the dry run says so line for line and predicts the requests exactly.
func TestSyncDuplicatesAreUploadedOnce(t *testing.T) {
	e := newEnv(t, dupTree())
	dry := e.sync(0, "--dry-run")
	want := []string{
		"add     a/dup.bin (9.8 KiB)", "add     e/other.bin (9.8 KiB)", "add     g/one.bin (9.8 KiB)",
		"add     s1.txt (5 B)", "add     s2.txt (5 B)",
		"copy    a/dup.bin -> b/dup.bin", "copy    a/dup.bin -> c/copy.bin", "copy    a/dup.bin -> d/dup.bin",
		"copy    e/other.bin -> f/other.bin",
	}
	if !slices.Equal(dry.lines(), want) {
		t.Fatalf("dry run\n got %q\nwant %q", dry.lines(), want)
	}
	if paths := changedPaths(dry.stdout); !slices.IsSorted(paths) {
		t.Fatalf("the dry run's lines are not in the diff's order: %q", paths)
	}
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" {
			return &s3test.Fault{Delay: 300 * time.Millisecond}
		}
		return nil
	})
	real := e.sync(0)
	e.wantOps(map[string]int64{"PutObject": 5, "CopyObject": 4})
	if !slices.Equal(real.lines(), want) || real.summary() != dry.summary() ||
		real.requests() != strings.Replace(dry.requests(), "would send", "sent", 1) {
		t.Fatalf("real run\n%s\ndry run\n%s", real.stdout, dry.stdout)
	}
	if strings.Contains(real.stderr, "uploaded instead") {
		t.Fatalf("a copy found no source:\n%s", real.stderr)
	}
	e.checkBucketIsTree()
	e.checkOwnMetadata()
	e.proxy.SetFault(nil)
	if r := e.sync(0); len(r.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("second run: %q, %v", r.lines(), e.ops())
	}
}

// When the upload of a content fails, its duplicates are not copied from
// the missing object: each uploads its own file, and the run exits 3
// naming the one that failed; the next run backs it up (as a copy of a
// duplicate now in the bucket).
func TestSyncDuplicatesOfAFailedUploadUploadThemselves(t *testing.T) {
	e := newEnv(t, dupTree())
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" && strings.HasSuffix(r.URL.Path, "/a/dup.bin") {
			return &s3test.Fault{Status: 500, Code: "InternalError"}
		}
		return nil
	})
	r := e.sync(3, "--retries", "2", "--retry-max-wait", "10ms")
	if !strings.Contains(r.stderr, "change failed op=add path=a/dup.bin") {
		t.Fatalf("the failed upload is not reported:\n%s", r.stderr)
	}
	if n := strings.Count(r.stderr, "a/dup.bin, whose content it has, was not written: uploaded instead"); n != 3 {
		t.Fatalf("%d duplicates say they were uploaded instead, want 3:\n%s", n, r.stderr)
	}
	if ops := e.ops(); ops["CopyObject"] != 1 { // e/other.bin -> f/other.bin
		t.Fatalf("requests %v: a copy was sent from the missing object", ops)
	}
	for _, l := range []string{"add     b/dup.bin (9.8 KiB)", "add     c/copy.bin (9.8 KiB)", "add     d/dup.bin (9.8 KiB)"} {
		if !slices.Contains(r.lines(), l) {
			t.Fatalf("no %q in\n%s", l, r.stdout)
		}
	}
	objs := gwtestObjects(t, e)
	if _, ok := objs[manifest.Key(e.prefix, "a/dup.bin")]; ok || len(objs) != 8 {
		t.Fatalf("bucket has %q", scantest.Keys(objs))
	}
	e.checkOwnMetadata()

	e.proxy.SetFault(nil)
	r = e.sync(0)
	if !slices.Equal(r.lines(), []string{"copy    b/dup.bin -> a/dup.bin"}) {
		t.Fatalf("next run: %q", r.lines())
	}
	e.checkBucketIsTree()
	e.checkOwnMetadata()
}
