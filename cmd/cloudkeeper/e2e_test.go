package main

// End-to-end tests: the built cloudkeeper binary against a real S3 server
// (the Versity S3 Gateway, started here on a free loopback port), through a
// proxy that counts requests by operation and bytes uploaded.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

var (
	binPath string // the cloudkeeper binary under test
	gw      *s3test.Gateway
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cloudkeeper-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the unprivileged-user test runs the binary too
	binPath = filepath.Join(dir, "cloudkeeper")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building cloudkeeper:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	gw, err = s3test.Start(ctx, s3test.Options{Versioning: true, Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the S3 gateway:", err)
		return 1
	}
	defer gw.Stop()
	return m.Run()
}

// env is one backup setup: a source tree, a state folder for the manifest,
// a bucket, and a counting proxy in front of the gateway.
type env struct {
	t      *testing.T
	src    string
	state  string
	bucket string
	prefix string
	proxy  *s3test.Proxy
	// cmd adjusts each command before it runs.
	cmd func(*exec.Cmd)
}

func newEnv(t *testing.T, tree scantest.Dir) *env {
	t.Helper()
	return newEnvIn(t, tree, gwtest.Bucket(t, gw))
}

// newVersionedEnv is newEnv with a bucket that has versioning on.
func newVersionedEnv(t *testing.T, tree scantest.Dir) *env {
	t.Helper()
	return newEnvIn(t, tree, gwtest.VersionedBucket(t, gw))
}

func newEnvIn(t *testing.T, tree scantest.Dir, bucket string) *env {
	t.Helper()
	proxy, err := s3test.NewProxy(gw.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	e := &env{t: t, src: t.TempDir(), state: t.TempDir(), bucket: bucket, prefix: "laptop/", proxy: proxy}
	scantest.Create(t, e.src, tree)
	return e
}

type result struct {
	stdout, stderr string
	code           int
}

// lines returns the change lines of stdout, sorted, without the summary.
func (r result) lines() []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if l != "" && !strings.Contains(l, "unchanged") && !isRequestsLine(l) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// summary is the summary line of the changes: the last line but for the
// requests line.
func (r result) summary() string {
	ls := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for i := len(ls) - 1; i > 0 && isRequestsLine(ls[i]); i-- {
		ls = ls[:i]
	}
	return ls[len(ls)-1]
}

// requests is the summary's requests line ("sent ...", "would send ...").
func (r result) requests() string {
	ls := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if l := ls[len(ls)-1]; isRequestsLine(l) {
		return l
	}
	return ""
}

func isRequestsLine(l string) bool {
	return strings.HasPrefix(l, "sent ") || strings.HasPrefix(l, "would send ")
}

func (e *env) baseArgs() []string {
	return []string{"--source", e.src, "--bucket", e.bucket, "--prefix", e.prefix, "--endpoint", e.proxy.URL}
}

func (e *env) environ() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.state,
		"XDG_STATE_HOME=" + e.state,
		"AWS_ACCESS_KEY_ID=" + gw.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + gw.SecretKey,
	}
}

// run runs cloudkeeper with args as they are.
func (e *env) run(args ...string) result {
	e.t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = e.environ()
	cmd.Dir = e.state
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if e.cmd != nil {
		e.cmd(cmd)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, gw.SecretKey) {
			e.t.Fatalf("the secret key appears in the output:\n%s", out)
		}
	}
	return r
}

// sync runs "cloudkeeper sync" on this env, after resetting the proxy's
// counters, and fails the test on an unexpected exit status.
func (e *env) sync(wantCode int, args ...string) result {
	e.t.Helper()
	e.proxy.Reset()
	r := e.run(append(append([]string{"sync"}, e.baseArgs()...), args...)...)
	if r.code != wantCode {
		e.t.Fatalf("sync %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, wantCode, r.stdout, r.stderr)
	}
	return r
}

func (e *env) path(rel string) string { return filepath.Join(e.src, filepath.FromSlash(rel)) }

// checkBucketIsTree asserts that the bucket's objects under the prefix are
// exactly the source's regular files, with their bytes and their BLAKE3 in
// x-amz-meta-blake3.
func (e *env) checkBucketIsTree() {
	e.t.Helper()
	e.checkObjectsAreTree(gwtest.Objects(e.t, gw.Client(), e.bucket, e.prefix))
}

// checkObjectsAreTree asserts that objs are exactly the source's regular
// files, as checkBucketIsTree says.
func (e *env) checkObjectsAreTree(objs map[string]gwtest.Object) {
	e.t.Helper()
	files := scantest.Files(e.t, e.src)
	want := map[string]string{}
	for rel, content := range files {
		want[manifest.Key(e.prefix, rel)] = content
	}
	if !slices.Equal(scantest.Keys(objs), scantest.Keys(want)) {
		e.t.Fatalf("bucket keys\n got %q\nwant %q", scantest.Keys(objs), scantest.Keys(want))
	}
	for k, content := range want {
		o := objs[k]
		if string(o.Body) != content {
			e.t.Errorf("%s: bucket has %d bytes that differ from the file's %d", k, len(o.Body), len(content))
		}
		if sum := blake3.Sum256(o.Body); o.Metadata["blake3"] != fmt.Sprintf("%x", sum) {
			e.t.Errorf("%s: x-amz-meta-blake3 %q is not the hash of its bytes", k, o.Metadata["blake3"])
		}
	}
}

func (e *env) ops() map[string]int64 { return e.proxy.Stats().ByOp }

// onlyBucketCheck reports whether the last run sent only the one request
// every run makes: the HeadBucket that proves the bucket is there and the
// credentials work.
func (e *env) onlyBucketCheck() bool {
	st := e.proxy.Stats()
	return st.Requests == 1 && st.ByOp["HeadBucket"] == 1
}

func (e *env) wantOps(want map[string]int64) {
	e.t.Helper()
	st := e.proxy.Stats()
	got := map[string]int64{}
	for op, n := range st.ByOp {
		if n != 0 && op != "HeadBucket" && op != "ListObjectsV2" && op != "GetBucketVersioning" { // the checks of a run
			got[op] = n
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Fatalf("S3 requests %v, want %v", got, want)
	}
}

// numberedTree is a tree of n files, d000/f00000.txt to d000/f00099.txt,
// d001/f00100.txt and so on, file(i) the i-th.
func numberedTree(n int, file func(i int) scantest.File) scantest.Dir {
	tree := scantest.Dir{}
	for i := range n {
		dir := fmt.Sprintf("d%03d", i/100)
		if tree[dir] == nil {
			tree[dir] = scantest.Dir{}
		}
		tree[dir].(scantest.Dir)[fmt.Sprintf("f%05d.txt", i)] = file(i)
	}
	return tree
}

func bigContent(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + i/7)
	}
	return string(b)
}

// TestSyncLifecycle walks a backup through the changes of a working day,
// checking after each run that the bucket equals the tree and that each
// kind of change costs what it should.
func TestSyncLifecycle(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"a.txt": scantest.File{Content: "alpha"},
		"docs": scantest.Dir{
			"report.pdf": scantest.File{Content: bigContent(2_200_000)},
			"notes.txt":  scantest.File{Content: "notes"},
		},
		"photos": scantest.Dir{
			"img001.jpg": scantest.File{Content: "jpeg one"},
			"img002.jpg": scantest.File{Content: "jpeg two"},
			"raw":        scantest.Dir{"big.raw": scantest.File{Content: bigContent(20 << 20)}},
		},
		"empty": scantest.Dir{"nested": scantest.Dir{}},
	})

	t.Run("initial sync", func(t *testing.T) {
		e.t = t
		r := e.sync(0)
		want := []string{
			"add     a.txt (5 B)", "add     docs/notes.txt (5 B)", "add     docs/report.pdf (2.1 MiB)",
			"add     photos/img001.jpg (8 B)", "add     photos/img002.jpg (8 B)", "add     photos/raw/big.raw (20.0 MiB)",
		}
		if !slices.Equal(r.lines(), want) {
			t.Fatalf("got %q", r.lines())
		}
		if r.summary() != "6 uploads (22.1 MiB), 0 renames, 0 copies, 0 deletes; 0 files unchanged" {
			t.Fatalf("summary %q", r.summary())
		}
		e.checkBucketIsTree()
	})

	t.Run("no change: one S3 request, the bucket check", func(t *testing.T) {
		e.t = t
		r := e.sync(0)
		if len(r.lines()) != 0 || r.summary() != "0 uploads (0 B), 0 renames, 0 copies, 0 deletes; 6 files unchanged" {
			t.Fatalf("got %q", r.stdout)
		}
		if !e.onlyBucketCheck() {
			t.Fatalf("S3 requests on a run with nothing to do: %v, want one HeadBucket", e.ops())
		}
	})

	t.Run("edit", func(t *testing.T) {
		e.t = t
		scantest.Write(t, e.src, "docs/notes.txt", "notes, and more notes")
		r := e.sync(0)
		if !slices.Equal(r.lines(), []string{"modify  docs/notes.txt (21 B)"}) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"PutObject": 1})
		e.checkBucketIsTree()
	})

	t.Run("same-size edit within the same second, mtime unchanged", func(t *testing.T) {
		e.t = t
		scantest.Write(t, e.src, "fast.txt", "aaaa")
		e.sync(0)
		fi, _ := os.Stat(e.path("fast.txt"))
		scantest.Write(t, e.src, "fast.txt", "bbbb")
		// As on a file system with coarse timestamps: the same mtime.
		os.Chtimes(e.path("fast.txt"), fi.ModTime(), fi.ModTime())
		r := e.sync(0)
		if !slices.Equal(r.lines(), []string{"modify  fast.txt (4 B)"}) {
			t.Fatalf("got %q", r.lines())
		}
		e.checkBucketIsTree()
	})

	t.Run("touch uploads nothing", func(t *testing.T) {
		e.t = t
		later := time.Now().Add(time.Hour)
		os.Chtimes(e.path("a.txt"), later, later)
		r := e.sync(0)
		if len(r.lines()) != 0 {
			t.Fatalf("got %q", r.lines())
		}
		// The object's x-amz-meta-mtime follows, by a copy onto itself.
		e.wantOps(map[string]int64{"CopyObject": 1})
		if st := e.proxy.Stats(); st.BytesUploaded != 0 {
			t.Fatalf("%d bytes uploaded for a touch", st.BytesUploaded)
		}
		o := gwtest.Objects(t, gw.Client(), e.bucket, e.prefix+"a.txt")[e.prefix+"a.txt"]
		if want := fmt.Sprintf("%d.%09d", later.Unix(), later.Nanosecond()); o.Metadata["mtime"] != want {
			t.Fatalf("mtime metadata %q, want %q", o.Metadata["mtime"], want)
		}
	})

	t.Run("rename a file: server-side copy, no upload", func(t *testing.T) {
		e.t = t
		os.Rename(e.path("docs/report.pdf"), e.path("docs/report-final.pdf"))
		r := e.sync(0)
		if !slices.Equal(r.lines(), []string{"rename  docs/report.pdf -> docs/report-final.pdf"}) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"CopyObject": 1, "DeleteObjects": 1})
		if st := e.proxy.Stats(); st.BytesUploaded != 0 {
			t.Fatalf("%d bytes uploaded for a rename", st.BytesUploaded)
		}
		e.checkBucketIsTree()
	})

	t.Run("move a folder: renames, no upload, one delete batch", func(t *testing.T) {
		e.t = t
		os.MkdirAll(e.path("archive/2024"), 0o755)
		os.Rename(e.path("photos"), e.path("archive/2024/photos"))
		r := e.sync(0)
		want := []string{
			"rename  photos/img001.jpg -> archive/2024/photos/img001.jpg",
			"rename  photos/img002.jpg -> archive/2024/photos/img002.jpg",
			"rename  photos/raw/big.raw -> archive/2024/photos/raw/big.raw",
		}
		if !slices.Equal(r.lines(), want) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"CopyObject": 3, "DeleteObjects": 1})
		if st := e.proxy.Stats(); st.BytesUploaded != 0 {
			t.Fatalf("%d bytes uploaded for a move", st.BytesUploaded)
		}
		e.checkBucketIsTree()
	})

	t.Run("copy", func(t *testing.T) {
		e.t = t
		scantest.Write(t, e.src, "b/logo.txt", "alpha")
		r := e.sync(0)
		if !slices.Equal(r.lines(), []string{"copy    a.txt -> b/logo.txt"}) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"CopyObject": 1})
		e.checkBucketIsTree()
	})

	t.Run("delete a file", func(t *testing.T) {
		e.t = t
		os.Remove(e.path("fast.txt"))
		r := e.sync(0)
		if !slices.Equal(r.lines(), []string{"delete  fast.txt"}) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"DeleteObjects": 1})
		e.checkBucketIsTree()
	})

	t.Run("delete a folder: its objects go with it", func(t *testing.T) {
		e.t = t
		os.RemoveAll(e.path("archive"))
		r := e.sync(0)
		want := []string{"delete  archive/2024/photos/img001.jpg", "delete  archive/2024/photos/img002.jpg", "delete  archive/2024/photos/raw/big.raw"}
		if !slices.Equal(r.lines(), want) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"DeleteObjects": 1})
		e.checkBucketIsTree()
	})

	t.Run("empty folders are not pushed", func(t *testing.T) {
		e.t = t
		os.MkdirAll(e.path("new/empty/folder"), 0o755)
		r := e.sync(0)
		if len(r.lines()) != 0 || !e.onlyBucketCheck() {
			t.Fatalf("got %q, %v", r.lines(), e.ops())
		}
		e.checkBucketIsTree()
	})
}

// ext4 hands a freed inode straight to the next file created, and npm, zip
// and reproducible builds stamp files with a fixed mtime: a new file can
// have the inode, size and mtime of one deleted since the last run. It is
// uploaded, not taken for that file moved; a real move is still a
// server-side copy, not an upload.
func TestSyncNewFileOnAFreedInodeIsNotAMove(t *testing.T) {
	stamp := time.Date(1985, 10, 26, 8, 15, 0, 0, time.Local) // touch -t 198510260815
	e := newEnv(t, scantest.Dir{
		"pkg-a.json": scantest.File{Content: `{"name":"a","v":1}`, Mtime: stamp},
		"index.js":   scantest.File{Content: "module.exports = {}", Mtime: stamp},
	})
	// As for a nightly run: the files were written well before it, so
	// their stat is trusted (not racily clean).
	time.Sleep(scanner.RacyWindow + 100*time.Millisecond)
	e.sync(0)

	t.Run("a move is a server-side copy", func(t *testing.T) {
		e.t = t
		os.Rename(e.path("index.js"), e.path("main.js"))
		r := e.sync(0)
		if !slices.Equal(r.lines(), []string{"rename  index.js -> main.js"}) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"CopyObject": 1, "DeleteObjects": 1})
		e.checkBucketIsTree()
	})

	t.Run("a new file on the freed inode is uploaded", func(t *testing.T) {
		e.t = t
		ino := inode(t, e.path("pkg-a.json"))
		os.Remove(e.path("pkg-a.json"))
		scantest.Write(t, e.src, "pkg-b.json", `{"name":"b","v":2}`) // same size, other bytes
		os.Chtimes(e.path("pkg-b.json"), stamp, stamp)
		if got := inode(t, e.path("pkg-b.json")); got != ino {
			t.Skipf("ext4 gave pkg-b.json inode %d, not pkg-a.json's %d (another process took it): nothing to reproduce", got, ino)
		}
		r := e.sync(0)
		if !slices.Equal(r.lines(), []string{"add     pkg-b.json (18 B)", "delete  pkg-a.json"}) {
			t.Fatalf("got %q", r.lines())
		}
		e.wantOps(map[string]int64{"PutObject": 1, "DeleteObjects": 1})
		e.checkBucketIsTree() // pkg-b.json's own bytes
		if r := e.sync(0); len(r.lines()) != 0 {
			t.Fatalf("next run: %q", r.lines())
		}
	})
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// A dry run prints what a run would do and touches neither the bucket nor
// the manifest; the real run then does exactly that.
func TestSyncDryRunTouchesNothing(t *testing.T) {
	e := newEnv(t, scantest.Dir{"keep.txt": scantest.File{Content: "keep"}, "old.txt": scantest.File{Content: "old"}, "mv.txt": scantest.File{Content: "move me"}})
	manifestPath := filepath.Join(e.state, "m.db")

	// No manifest yet: a dry run does not create one. Read-only, it checks
	// the bucket and, as the first run will, that the prefix is empty.
	r := e.sync(0, "--dry-run", "--manifest", manifestPath)
	if st := e.proxy.Stats(); len(r.lines()) != 3 || st.Requests != 2 || st.ByOp["HeadBucket"] != 1 || st.ByOp["ListObjectsV2"] != 1 {
		t.Fatalf("got %q, %v", r.lines(), e.ops())
	}
	if _, err := os.Stat(manifestPath); !os.IsNotExist(err) {
		t.Fatalf("a dry run created the manifest: %v", err)
	}
	e.sync(0, "--manifest", manifestPath)

	os.Remove(e.path("old.txt"))
	os.Rename(e.path("mv.txt"), e.path("moved.txt"))
	scantest.Write(t, e.src, "new.txt", "new")
	scantest.Write(t, e.src, "keep.txt", "kept, but edited")
	before := map[string]string{}
	for _, s := range []string{"", "-wal"} {
		before[s] = sha(t, manifestPath+s)
	}
	bucketBefore := gwtest.Objects(t, gw.Client(), e.bucket, "")

	dry := e.sync(0, "--dry-run", "--manifest", manifestPath)
	want := []string{"add     new.txt (3 B)", "delete  old.txt", "modify  keep.txt (16 B)", "rename  mv.txt -> moved.txt"}
	if !slices.Equal(dry.lines(), want) {
		t.Fatalf("dry run printed %q, want %q", dry.lines(), want)
	}
	if !strings.Contains(dry.stderr, "dry run: nothing was changed") {
		t.Errorf("stderr %q", dry.stderr)
	}
	if !e.onlyBucketCheck() {
		t.Fatalf("dry run sent %v, want only the read-only HeadBucket", e.ops())
	}
	for s, h := range before {
		if sha(t, manifestPath+s) != h {
			t.Fatalf("dry run changed the manifest file %s", manifestPath+s)
		}
	}
	// At rest the manifest is one file: a dry run adds no -wal, -shm or
	// -journal file beside it either.
	for _, f := range manifest.Files(manifestPath)[1:4] {
		if _, err := os.Lstat(f); err == nil {
			t.Fatalf("after the dry run %s exists", f)
		}
	}
	if after := gwtest.Objects(t, gw.Client(), e.bucket, ""); fmt.Sprint(after) != fmt.Sprint(bucketBefore) {
		t.Fatal("dry run changed the bucket")
	}

	js := e.sync(0, "--dry-run", "--json", "--manifest", manifestPath)
	wantJSON := []string{
		`{"op":"add","path":"new.txt","size":3}`,
		`{"op":"delete","path":"old.txt","size":3}`,
		`{"op":"modify","path":"keep.txt","size":16}`,
		`{"op":"rename","path":"moved.txt","from":"mv.txt","size":7}`,
		`{"summary":{"add":1,"modify":1,"rename":1,"copy":0,"delete":1,"unchanged":0,"bytes":19,"errors":0,"hashed_files":N,"hashed_bytes":N,"result":"success","exit_code":0,` +
			`"requests":{"by_op":{"CopyObject":1,"DeleteObjects":1,"HeadBucket":1,"PutObject":2},"bytes_sent":19},"request_total":5,` +
			`"cost":{"prices":"S3 Standard","requests_usd":0.0000154,"early_delete_usd":0,"early_delete_objects":0,"early_delete_bytes":0,` +
			`"storage_class":"STANDARD","min_days":0,"usd":0.0000154}}}`,
	}
	// What was hashed depends on timing: the moved file is read again
	// if it was hashed less than 2 s after it was written (racily clean).
	hashed := regexp.MustCompile(`"hashed_files":[23],"hashed_bytes":(19|26)`)
	got := strings.Split(strings.TrimSpace(hashed.ReplaceAllString(js.stdout, `"hashed_files":N,"hashed_bytes":N`)), "\n")
	sort.Strings(got)
	if !slices.Equal(got, wantJSON) {
		t.Fatalf("--json printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantJSON, "\n"))
	}

	real := e.sync(0, "--manifest", manifestPath)
	if !slices.Equal(real.lines(), want) {
		t.Fatalf("the run did %q, the dry run said %q", real.lines(), want)
	}
	e.checkBucketIsTree()
}

// A run killed with SIGKILL in the middle of its uploads loses nothing: the
// next run uploads exactly what the first did not confirm, nothing twice.
func TestSyncKilledMidRunResumes(t *testing.T) {
	tree := scantest.Dir{}
	for i := range 120 {
		tree[fmt.Sprintf("f%03d.txt", i)] = scantest.File{Content: fmt.Sprintf("file number %d", i)}
	}
	e := newEnv(t, tree)
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" {
			return &s3test.Fault{Delay: 25 * time.Millisecond}
		}
		return nil
	})
	cmd := exec.Command(binPath, append(append([]string{"sync"}, e.baseArgs()...), "--concurrency", "2")...)
	cmd.Env = e.environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Every line the first run printed is a change it recorded: read them
	// all, including those printed between the 30th and the kill.
	first := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "add ") {
			first[sc.Text()] = true
		}
		if len(first) == 30 {
			cmd.Process.Kill()
		}
	}
	cmd.Wait()
	if len(first) < 30 || len(first) >= 120 {
		t.Fatalf("the first run recorded %d uploads before it was killed", len(first))
	}

	e.proxy.SetFault(nil)
	r := e.sync(0)
	second := r.lines()
	for _, l := range second {
		if first[l] {
			t.Errorf("uploaded again after the kill: %s", l)
		}
	}
	// Every PutObject of the second run is one of its printed uploads, none
	// of which the first run had printed. Files printed by neither run were
	// recorded by the first just before the kill, between its commit and
	// its output: uploaded once, and not again.
	if puts := e.proxy.Stats().ByOp["PutObject"]; puts != int64(len(second)) {
		t.Errorf("second run sent %d PutObject for %d uploads", puts, len(second))
	}
	if n := len(first) + len(second); n > 120 || n < 120-16 {
		t.Errorf("%d + %d uploads printed for 120 files", len(first), len(second))
	}
	e.checkBucketIsTree()
}

// Names that are not valid UTF-8, or hold newlines, backslashes or control
// characters, get keys by a reversible escape.
func TestSyncOddNames(t *testing.T) {
	names := []string{"new\nline.txt", `back\slash.txt`, "bad-\xff-utf8.txt", "tab\there.txt", "ünïcödé.txt", "spaces and + & = ?.txt"}
	tree := scantest.Dir{}
	for i, n := range names {
		tree[n] = scantest.File{Content: fmt.Sprint("content ", i)}
	}
	e := newEnv(t, tree)
	r := e.sync(0)
	if len(r.lines()) != len(names) {
		t.Fatalf("got %q", r.lines())
	}
	for _, l := range r.lines() {
		if strings.ContainsAny(l, "\n\t\xff") {
			t.Errorf("output line not escaped: %q", l)
		}
	}
	e.checkBucketIsTree()
	for k := range gwtest.Objects(t, gw.Client(), e.bucket, e.prefix) {
		back, err := manifest.UnescapePath(strings.TrimPrefix(k, e.prefix))
		if err != nil || !slices.Contains(names, back) {
			t.Errorf("key %q maps back to %q, %v", k, back, err)
		}
	}
	if r := e.sync(0); len(r.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("second run: %q", r.stdout)
	}
}

func gwtestObjects(t *testing.T, e *env) map[string]gwtest.Object {
	return gwtest.Objects(t, gw.Client(), e.bucket, e.prefix)
}

// A file that changes after it was hashed and before it is read for upload
// is not recorded: the run reports it and exits 3, the bucket gets no
// object with bytes other than its x-amz-meta-blake3 (the multipart upload
// is aborted), and the next run uploads the new content.
func TestSyncFileChangedDuringUpload(t *testing.T) {
	e := newEnv(t, scantest.Dir{"other.txt": scantest.File{Content: "backed up first"}})
	e.sync(0)
	size := 17 << 20 // over the part size: read part by part after CreateMultipartUpload
	scantest.Write(t, e.src, "live.log", bigContent(size))
	var once sync.Once
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		// The upload starts after the scan hashed the file and before
		// it reads the first part: change the file then.
		if s3test.Operation(r) == "CreateMultipartUpload" {
			once.Do(func() { scantest.Write(t, e.src, "live.log", strings.Repeat("2", size)) })
		}
		return nil
	})
	r := e.sync(3)
	if !strings.Contains(r.stderr, "live.log: changed during upload, will retry next run") {
		t.Fatalf("stderr %q", r.stderr)
	}
	if objs := gwtestObjects(t, e); len(objs) != 1 {
		t.Fatalf("bucket has %v", scantest.Keys(objs))
	}
	e.proxy.SetFault(nil)
	r = e.sync(0)
	if !slices.Equal(r.lines(), []string{"add     live.log (17.0 MiB)"}) {
		t.Fatalf("got %q", r.lines())
	}
	if n := multipartUploads(t, e); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
	e.checkBucketIsTree()
}

// A file that becomes a folder, and a folder that becomes a file: S3 has no
// folders, but servers that keep objects as files (this gateway, MinIO)
// refuse "a/b" while "a" exists; the old keys go first.
func TestSyncFileBecomesFolderAndBack(t *testing.T) {
	e := newEnv(t, scantest.Dir{"x": scantest.File{Content: "x was a file"}, "d": scantest.Dir{"inner.txt": scantest.File{Content: "inner"}}})
	e.sync(0)
	os.Remove(e.path("x"))
	scantest.Write(t, e.src, "x/now-a-folder.txt", "x is a folder")
	os.RemoveAll(e.path("d"))
	scantest.Write(t, e.src, "d", "d is a file")
	r := e.sync(0, "--max-delete", "100%") // 2 of 3 objects go
	want := []string{"add     d (11 B)", "add     x/now-a-folder.txt (13 B)", "delete  d/inner.txt", "delete  x"}
	if !slices.Equal(r.lines(), want) {
		t.Fatalf("got %q\n%s", r.lines(), r.stderr)
	}
	e.checkBucketIsTree()
}
