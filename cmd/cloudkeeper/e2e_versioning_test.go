package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// histories reads the manifest's history of paths: a line a version, with
// what a rebuild can know of it (not the run that wrote it, nor when it
// ran).
func (e *env) histories(paths ...string) string {
	e.t.Helper()
	var lines []string
	for _, p := range paths {
		for _, v := range e.history(p) {
			lines = append(lines, fmt.Sprintf("%s %d %x %s %s current=%v", v.Path, v.Size, v.Hash[:4], v.VersionID, v.HistoryKey, v.Current()))
		}
	}
	return strings.Join(lines, "\n")
}

// afterASecond waits for the clock's next whole second: the gateway's
// LastModified has whole seconds, and a rebuilt history tells apart only
// the runs they separate.
func afterASecond() time.Time {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
	return now
}

// Manifest deleted: rebuilt from a bucket with versioning, it has the
// history of every path (each version's hash and version id, as the runs
// recorded them) and the tree as each run left it.
func TestManifestRebuildRestoresTheHistory(t *testing.T) {
	e := newVersionedEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "one"}, "gone.txt": scantest.File{Content: "bye"}})
	e.sync(0)
	firstEnded := afterASecond()
	scantest.Write(t, e.src, "doc.txt", "two, longer")
	e.sync(0)
	afterASecond()
	scantest.Write(t, e.src, "doc.txt", "three")
	os.Remove(e.path("gone.txt"))
	e.sync(0, "--max-delete", "100%")
	want := e.histories("doc.txt", "gone.txt")
	if strings.Count(want, "doc.txt") != 3 || strings.Count(want, "gone.txt") != 1 {
		t.Fatalf("the runs recorded:\n%s", want)
	}

	os.Remove(e.manifestPath())
	e.proxy.Reset()
	r := e.cmdWant(0, "manifest rebuild", e.baseArgs()...)
	if r.stdout != "manifest rebuilt from the bucket: 1 object (5 B); history: 3 old versions\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	// A HEAD for the current object and for each old version; one listing
	// of objects, one of versions.
	if ops := e.ops(); ops["HeadObject"] != 4 || ops["ListObjectsV2"] != 1 || ops["ListObjectVersions"] != 1 || ops["GetBucketVersioning"] != 1 {
		t.Errorf("requests %v", ops)
	}
	if got := e.histories("doc.txt", "gone.txt"); got != want {
		t.Errorf("rebuilt history:\n%s\nwant, as the runs recorded it:\n%s", got, want)
	}
	db := e.openManifest()
	defer db.Close()
	var then []string
	err := db.TreeAt(context.Background(), firstEnded, "", func(v manifest.Version) error {
		then = append(then, fmt.Sprintf("%s %d", v.Path, v.Size))
		return nil
	})
	if err != nil || strings.Join(then, ",") != "doc.txt 3,gone.txt 3" {
		t.Errorf("the tree as the first run left it, from the rebuilt manifest: %q, %v", then, err)
	}
	// restore --at reads that tree: the rebuilt manifest has no run, its
	// history is the tree at the time asked.
	dir, r := e.restoreAt(0, "--at", firstEnded.Format(time.RFC3339Nano))
	if got := scantest.Files(t, dir); len(got) != 2 || got["doc.txt"] != "one" || got["gone.txt"] != "bye" {
		t.Errorf("restore --at the end of run 1 after the rebuild: %q\n%s", got, r.stderr)
	}
	if s := e.sync(0); len(s.lines()) != 0 || e.ops()["PutObject"] != 0 {
		t.Errorf("the sync after the rebuild: %q, %v", s.stdout, e.ops())
	}
}

// status says the bucket's versioning: enabled after the first run; a
// bucket whose versioning was suspended since, once a reconcile found it,
// with a warning of that reconcile; a bucket without versioning.
func TestStatusSaysTheVersioning(t *testing.T) {
	e := newVersionedEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	e.sync(0)
	if e.sync(0); !e.onlyBucketCheck() {
		t.Errorf("a run with nothing to do in a bucket with versioning sent %v", e.ops())
	}
	if line := lineWith(e.cmdWant(0, "status", e.baseArgs()...).stdout, "history:"); !strings.Contains(line, "versioning enabled (checked 20") {
		t.Errorf("status: %q", line)
	}
	if err := gw.SetVersioning(context.Background(), e.bucket, types.BucketVersioningStatusSuspended); err != nil {
		t.Fatal(err)
	}
	r := e.sync(0, "--reconcile")
	if w := lineWith(r.stderr, "suspended"); !strings.Contains(w, "WARN") || !strings.Contains(w, "--keep") {
		t.Errorf("the reconcile that found versioning suspended logged:\n%s", r.stderr)
	}
	if line := lineWith(e.cmdWant(0, "status", e.baseArgs()...).stdout, "history:"); !strings.Contains(line, "versioning SUSPENDED") {
		t.Errorf("status: %q", line)
	}

	plain := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	plain.sync(0)
	if line := lineWith(plain.cmdWant(0, "status", plain.baseArgs()...).stdout, "history:"); !strings.Contains(line, "off (the bucket has no versioning") {
		t.Errorf("status of a backup into a bucket without versioning: %q", line)
	}
}
