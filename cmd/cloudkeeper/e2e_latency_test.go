package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// smallTree is n files of about 1 KiB in one folder.
func smallTree(n int) scantest.Dir {
	dir := scantest.Dir{}
	for i := range n {
		dir[fmt.Sprintf("f%04d.txt", i)] = scantest.File{Content: strings.Repeat(fmt.Sprintf("file %d\n", i), 128)}
	}
	return scantest.Dir{"docs": dir}
}

// Over a real network each request costs a round trip: with default
// settings, uploads, server-side copies (a folder moved) and HEADs
// (verify) of small objects keep many requests in flight, not eight.
func TestSmallObjectsKeepManyRequestsInFlight(t *testing.T) {
	const files, want = 200, 100
	e := newEnv(t, smallTree(files))
	e.proxy.SetDelay(200 * time.Millisecond)
	check := func(what string) {
		t.Helper()
		if got := e.proxy.Stats().MaxInFlight; got < want {
			t.Errorf("%s of %d small files: at most %d requests in flight, want at least %d", what, files, got, want)
		}
	}
	r := e.sync(0)
	if !strings.Contains(r.summary(), fmt.Sprintf("%d uploads", files)) {
		t.Fatalf("summary: %s", r.summary())
	}
	check("the first sync")

	if err := os.Rename(e.path("docs"), e.path("papers")); err != nil {
		t.Fatal(err)
	}
	r = e.sync(0)
	if got := e.ops()["CopyObject"]; got != files {
		t.Fatalf("the move sent %d CopyObject, want %d\n%s", got, files, r.stdout)
	}
	check("the move")

	e.cmdWant(0, "verify", e.bucketArgs()...)
	if got := e.ops()["HeadObject"]; got < files {
		t.Fatalf("verify sent %d HeadObject, want %d", got, files)
	}
	check("verify")
	e.checkBucketIsTree()
}

func TestConcurrencyFlag(t *testing.T) {
	e := newEnv(t, smallTree(40))
	e.proxy.SetDelay(100 * time.Millisecond)
	e.sync(0, "--concurrency", "4")
	if got := e.proxy.Stats().MaxInFlight; got > 4 {
		t.Errorf("--concurrency 4: %d requests in flight at once", got)
	}
	r := e.run(append([]string{"sync", "--concurrency", "many"}, e.baseArgs()...)...)
	if r.code != 2 || !strings.Contains(r.stderr, `--concurrency "many": want auto or 1 to 1024`) {
		t.Errorf("--concurrency many: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run("sync", "--help")
	if !strings.Contains(r.stdout, `(default: "auto")`) {
		t.Errorf("sync --help does not say the default is auto:\n%s", r.stdout)
	}
}
