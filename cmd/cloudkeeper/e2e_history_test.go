package main

// End-to-end tests of the history of a bucket with versioning: history,
// runs, and restore --at / --run, which fetch each file by its version.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// restoreAt runs "restore --to DIR" with args (--at, --run, --path) and
// wants exit status want; it returns DIR.
func (e *env) restoreAt(want int, args ...string) (string, result) {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), "restored")
	r := e.cmdWant(want, "restore", append(append(e.baseArgs(), "--to", dir), args...)...)
	return dir, r
}

// wantOnlyGets asserts that the last command sent n GETs and, but for the
// bucket check, nothing else: no listing of any kind.
func (e *env) wantOnlyGets(n int64) {
	e.t.Helper()
	want := map[string]int64{"HeadBucket": 1, "GetObject": n}
	if got := e.seen(); fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Fatalf("S3 requests %v, want %v (no ListObjects*, no ListObjectVersions, which the proxy counts as Other)", got, want)
	}
}

// after is an RFC 3339 time just after now, between two runs.
func after() string {
	at := time.Now()
	time.Sleep(time.Millisecond)
	return at.Format(time.RFC3339Nano)
}

// Ransomware: every file of a 2,000-file tree overwritten with random
// bytes and synced; restore --at a time between the two runs gives the
// original tree back, bytes, names, mtimes and modes, with one GET per
// file and no listing.
func TestRestoreAtAfterRansomware(t *testing.T) {
	base := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	e := newVersionedEnv(t, numberedTree(2000, func(i int) scantest.File {
		return scantest.File{
			Content: fmt.Sprintf("file %d: %s", i, strings.Repeat("x", i%50)),
			Mtime:   base.Add(time.Duration(i) * 7919 * time.Millisecond), Mode: []os.FileMode{0o644, 0o600, 0o755}[i%3],
		}
	}))
	e.sync(0, "--concurrency", "16")
	original := treeState(t, e.src)
	between := after()
	for rel := range scantest.Files(t, e.src) {
		scantest.Write(t, e.src, rel, rand.Text()) // encrypted, as ransomware leaves it
	}
	if r := e.sync(0, "--concurrency", "16"); !strings.HasPrefix(r.summary(), "2,000 uploads") {
		t.Fatalf("the overwrite run: %q", r.summary())
	}
	dir, _ := e.restoreAt(0, "--at", between, "--concurrency", "16")
	e.wantOnlyGets(2000)
	compareTrees(t, treeState(t, dir), original)
}

// historyVersion is a version as history --json prints it.
type historyVersion struct {
	Run       int64      `json:"run"`
	Replaced  *time.Time `json:"replaced"`
	Size      int64      `json:"size"`
	BLAKE3    string     `json:"blake3"`
	VersionID string     `json:"version_id"`
}

// historyOf is history --json of path.
func (e *env) historyOf(path string) []historyVersion {
	e.t.Helper()
	r := e.cmdWant(0, "history", append(e.baseArgs(), "--json", path)...)
	var vs []historyVersion
	if err := json.Unmarshal([]byte(r.stdout), &vs); err != nil {
		e.t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	return vs
}

// A file edited 5 times in 5 runs: history lists its 5 versions, with
// their runs, sizes and hashes, and restore --run of each brings back
// each content; runs lists the 5 runs.
func TestHistoryOfAFileEditedFiveTimes(t *testing.T) {
	e := newVersionedEnv(t, scantest.Dir{"other.txt": scantest.File{Content: "unchanged"}})
	var contents []string
	for i := range 5 {
		c := fmt.Sprintf("version %d of the report%s", i+1, strings.Repeat("!", i*10))
		contents = append(contents, c)
		scantest.Write(t, e.src, "docs/report.txt", c)
		e.sync(0)
	}
	vs := e.historyOf("docs/report.txt")
	if len(vs) != 5 {
		t.Fatalf("history lists %d versions, want 5: %+v", len(vs), vs)
	}
	for i, v := range vs {
		c := contents[i]
		if v.Run != int64(i+1) || v.Size != int64(len(c)) || v.BLAKE3 != fmt.Sprintf("%x", blake3.Sum256([]byte(c))) ||
			(v.Replaced == nil) != (i == 4) || v.VersionID == "" {
			t.Errorf("version %d: %+v; want run %d, %d bytes, the hash of %q, current only if last, a version id", i, v, i+1, len(c), c)
		}
	}
	human := e.cmdWant(0, "history", append(e.baseArgs(), "docs/report.txt")...)
	if ls := strings.Split(strings.TrimSpace(human.stdout), "\n"); len(ls) != 6 || !strings.Contains(ls[5], "current") ||
		!strings.Contains(ls[1], "by 2") || !strings.Contains(ls[1], fmt.Sprintf("%x", blake3.Sum256([]byte(contents[0])))[:12]) {
		t.Errorf("history:\n%s", human.stdout)
	}
	for i, v := range vs {
		dir, _ := e.restoreAt(0, "--run", strconv.FormatInt(v.Run, 10), "--path", "docs/report.txt")
		e.wantOnlyGets(1)
		if got := scantest.Files(t, dir); fmt.Sprint(got) != fmt.Sprint(map[string]string{"docs/report.txt": contents[i]}) {
			t.Errorf("restore --run %d: %q, want %q", v.Run, got, contents[i])
		}
	}
	r := e.cmdWant(0, "runs", append(e.baseArgs(), "--json")...)
	var runs []struct {
		ID     int64  `json:"id"`
		Result string `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != 5 || runs[0].ID != 5 || runs[4].ID != 1 || runs[0].Result != "success" {
		t.Fatalf("runs --json: %+v, %v\n%s", runs, err, r.stdout)
	}
	if st := e.proxy.Stats(); st.Requests != 0 {
		t.Errorf("runs sent %d S3 requests, want none", st.Requests)
	}
	if h := e.cmdWant(0, "runs", e.baseArgs()...); !strings.Contains(h.stdout, "    1  ") || !strings.Contains(h.stdout, "RUN  STARTED") {
		t.Errorf("runs:\n%s", h.stdout)
	}
}

// A folder deleted and synced comes back with restore --at a time before
// the deletion, whole or by --path.
func TestRestoreAtBringsBackADeletedFolder(t *testing.T) {
	e := newVersionedEnv(t, scantest.Dir{
		"keep.txt": scantest.File{Content: "kept"},
		"projects": scantest.Dir{"a.txt": scantest.File{Content: "project a"}, "x": scantest.Dir{"b.txt": scantest.File{Content: "project b"}}},
	})
	e.sync(0)
	original := treeState(t, e.src)
	before := after()
	os.RemoveAll(e.path("projects"))
	if r := e.sync(0, "--max-delete", "100%"); !strings.Contains(r.summary(), "2 deletes") {
		t.Fatalf("the deleting run: %q", r.summary())
	}
	dir, _ := e.restoreAt(0, "--at", before)
	e.wantOnlyGets(3)
	compareTrees(t, treeState(t, dir), original)

	dir, _ = e.restoreAt(0, "--at", before, "--path", "projects/")
	delete(original, "keep.txt")
	compareTrees(t, treeState(t, dir), original)

	// Now, the folder is gone: nothing under --path.
	_, r := e.restoreAt(1, "--at", after(), "--path", "projects")
	if !strings.Contains(r.stderr, `nothing to restore: no file at or under --path "projects" in the tree run 2 left`) {
		t.Errorf("stderr %q", r.stderr)
	}
}

// Bad input to history and restore --at / --run: each one line that says
// what is wrong, with its exit status, and no folder made.
func TestRestoreAtBadInput(t *testing.T) {
	e := newVersionedEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	e.sync(0)
	for _, c := range []struct {
		name string
		code int
		args []string
		want string
	}{
		{"--at before the first run", 1, []string{"--at", "2001-01-01"}, "--at 2001-01-01T00:00:00Z is before the first run (it ended 20"},
		{"no run N", 1, []string{"--run", "42"}, "--run 42: the manifest has no run 42 (cloudkeeper runs lists them)"},
		{"--at with --run", 2, []string{"--at", "2001-01-01", "--run", "1"}, "--at and --run both name the point to restore to: give one"},
		{"--at that does not parse", 2, []string{"--at", "yesterday"}, `--at "yesterday": want a time such as 2026-11-20`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			dir, r := e.restoreAt(c.code, c.args...)
			if ls := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(ls) != 1 || !strings.Contains(ls[0], c.want) {
				t.Errorf("stderr %q, want one line with %q", r.stderr, c.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the restore folder was made: %v", err)
			}
		})
	}
	t.Run("a path with no history", func(t *testing.T) {
		e.t = t
		r := e.cmdWant(1, "history", append(e.baseArgs(), "b.txt")...)
		if !strings.Contains(r.stderr, `no history of "b.txt" in the manifest`) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("stderr %q", r.stderr)
		}
	})
}

// A version the history records that the bucket no longer has (its
// versioning suspended since, and the version deleted) is named: the
// other files are restored, the restore exits 3 and says the bucket's
// versioning is off.
func TestRestoreAtVersionGoneAfterVersioningSuspended(t *testing.T) {
	e := newVersionedEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "bravo"}})
	e.sync(0)
	scantest.Write(t, e.src, "a.txt", "alpha, edited")
	e.sync(0)
	vs := e.historyOf("a.txt")
	ctx := context.Background()
	if err := gw.SetVersioning(ctx, e.bucket, types.BucketVersioningStatusSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.prefix + "a.txt"), VersionId: aws.String(vs[0].VersionID)}); err != nil {
		t.Fatal(err)
	}
	dir, r := e.restoreAt(3, "--run", "1")
	if !strings.Contains(r.stderr, "a.txt") || !strings.Contains(r.stderr, "the bucket no longer has this version (run 1's") ||
		!strings.Contains(r.stderr, vs[0].VersionID) || !strings.Contains(r.stderr, "the bucket's versioning is suspended") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if got := scantest.Files(t, dir); fmt.Sprint(got) != fmt.Sprint(map[string]string{"b.txt": "bravo"}) {
		t.Errorf("restored %q, want b.txt alone", got)
	}
}

// The cost of restore --at: N GETs for N files, no listing. It builds a
// tree of CLOUDKEEPER_TEST_RESTORE_FILES files (default 50), backs it up,
// overwrites it all and restores the first run's tree:
//
//	CLOUDKEEPER_TEST_RESTORE_FILES=20000 go test ./cmd/cloudkeeper -run TestRestoreAtCost -v
func TestRestoreAtCost(t *testing.T) {
	n := 50
	if s := os.Getenv("CLOUDKEEPER_TEST_RESTORE_FILES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("CLOUDKEEPER_TEST_RESTORE_FILES=%q: want a number of files", s)
		}
	}
	e := newVersionedEnv(t, numberedTree(n, func(i int) scantest.File { return scantest.File{Content: fmt.Sprintf("file %05d", i)} }))
	e.sync(0, "--concurrency", "16")
	original := treeState(t, e.src)
	between := after()
	for rel := range scantest.Files(t, e.src) {
		scantest.Write(t, e.src, rel, "overwritten")
	}
	e.sync(0, "--concurrency", "16")
	start := time.Now()
	dir, _ := e.restoreAt(0, "--at", between, "--concurrency", "16")
	st := e.proxy.Stats()
	t.Logf("restore --at of %d files: %d requests %v in %v", n, st.Requests, st.ByOp, time.Since(start).Round(time.Millisecond))
	e.wantOnlyGets(int64(n))
	compareTrees(t, treeState(t, dir), original)
}

// A restore to a run whose tree held a version the history no longer
// holds (pruned since) names that file and exits 3, instead of giving a
// partial tree with exit 0 (a reviewer's find).
func TestRestoreRunNamesFilesWhoseVersionIsPruned(t *testing.T) {
	e := newVersionedEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "b1"}})
	e.sync(0)
	e.edit("b.txt", "b2", 2)
	e.sync(0)
	e.edit("b.txt", "b3", 3)
	e.sync(0)
	e.prune(0, "--keep", "1") // b1 goes: b2 is the one old version kept
	dir, r := e.restoreAt(exitIncomplete, "--run", "1")
	if got, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(got) != "alpha" {
		t.Errorf("a.txt restored as %q, %v", got, err)
	}
	if !strings.Contains(r.stderr, "b.txt") || !strings.Contains(r.stderr, "pruned") {
		t.Errorf("restore --run 1 did not name b.txt as pruned:\n%s", r.stderr)
	}
}
