package main

// End-to-end tests of reading the backup back: restore, verify and
// manifest rebuild, with the built binary against the real gateway.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

// bucketArgs are the settings that name the backup, without the source.
func (e *env) bucketArgs() []string {
	return []string{"--bucket", e.bucket, "--prefix", e.prefix, "--endpoint", e.proxy.URL}
}

// cmdWant runs "cloudkeeper NAME ARGS..." (name may be two words, as
// "manifest rebuild") after resetting the proxy's counters, and fails the
// test on an exit status other than want.
func (e *env) cmdWant(want int, name string, args ...string) result {
	e.t.Helper()
	e.proxy.Reset()
	r := e.run(append(strings.Fields(name), args...)...)
	if r.code != want {
		e.t.Fatalf("%s %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, args, r.code, want, r.stdout, r.stderr)
	}
	return r
}

// manifestPath is the one manifest sync made in the state folder.
func (e *env) manifestPath() string {
	e.t.Helper()
	dbs, _ := filepath.Glob(filepath.Join(e.state, "cloudkeeper", "*.db"))
	if len(dbs) != 1 {
		e.t.Fatalf("manifests in the state folder: %q", dbs)
	}
	return dbs[0]
}

// plant writes an object straight to the gateway, as anyone with access to
// the bucket could.
func (e *env) plant(key, body string, md map[string]string) {
	e.t.Helper()
	_, err := gw.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.bucket), Key: aws.String(key), Body: strings.NewReader(body), Metadata: md,
	})
	if err != nil {
		e.t.Fatalf("plant %q: %v", key, err)
	}
}

// selfDescribing is the metadata cloudkeeper would give body.
func selfDescribing(body string) map[string]string {
	return map[string]string{"blake3": fmt.Sprintf("%x", blake3.Sum256([]byte(body))), "mtime": "1600000000.000000000", "mode": "0644"}
}

// fileState is what a restore must give back of a file.
type fileState struct {
	content string
	mtimeNs int64
	mode    fs.FileMode
}

// treeState reads every entry under root: regular files with their state,
// anything else by its type, so that a stray symlink or temporary file
// shows.
func treeState(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fileState{mode: fi.Mode()}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st.content, st.mtimeNs = string(b), fi.ModTime().UnixNano()
		}
		if !fi.IsDir() {
			out[filepath.ToSlash(rel)] = st
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t *testing.T, got, want map[string]fileState) {
	t.Helper()
	if !slices.Equal(scantest.Keys(got), scantest.Keys(want)) {
		t.Fatalf("restored\n %q\nwant\n %q", scantest.Keys(got), scantest.Keys(want))
	}
	for p, w := range want {
		g := got[p]
		if g.content != w.content || g.mtimeNs != w.mtimeNs || g.mode != w.mode {
			t.Errorf("%q: %d bytes (same: %v), mtime %d, mode %v; want %d bytes, mtime %d, mode %v",
				p, len(g.content), g.content == w.content, g.mtimeNs, g.mode, len(w.content), w.mtimeNs, w.mode)
		}
	}
}

// A backup made by sync comes back whole with neither the source nor the
// manifest: names that need escaping, bytes (a multipart object too),
// mtimes to the nanosecond, modes with the setuid bit; and verify --deep
// finds it good from the bucket alone.
func TestRestoreRoundTrip(t *testing.T) {
	at := func(y int, ns int) time.Time { return time.Date(y, 3, 4, 5, 6, 7, ns, time.UTC) }
	e := newEnv(t, scantest.Dir{
		"new\nline.txt":     scantest.File{Content: "a newline in the name", Mode: 0o600, Mtime: at(2001, 123456789)},
		`back\slash.txt`:    scantest.File{Content: "a backslash", Mode: 0o755, Mtime: at(2002, 1)},
		"tab\there":         scantest.File{Content: "a tab", Mode: 0o444, Mtime: at(2003, 999999999)},
		"not-utf8-\xff\xfe": scantest.File{Content: "bytes that are not UTF-8", Mtime: at(1999, 500)},
		"ünïcödé":           scantest.Dir{"日本語.txt": scantest.File{Content: "unicode", Mtime: at(2010, 42)}},
		"setuid-tool":       scantest.File{Content: "#!/bin/sh\n", Mode: 0o755 | fs.ModeSetuid, Mtime: at(2015, 7)},
		"empty":             scantest.File{Mtime: at(2020, 0)},
		"a": scantest.Dir{"b": scantest.Dir{"c": scantest.Dir{
			"deep.txt": scantest.File{Content: "nested", Mode: 0o640, Mtime: at(2021, 314159265)},
		}}},
		"big": scantest.Dir{"multipart.bin": scantest.File{Content: bigContent(17 << 20), Mtime: at(2022, 271828182)}},
	})
	e.sync(0)
	e.checkBucketIsTree()
	if n := e.proxy.Stats().ByOp["CreateMultipartUpload"]; n != 1 {
		t.Fatalf("%d multipart uploads, want 1 (big/multipart.bin)", n)
	}
	want := treeState(t, e.src)
	if want["setuid-tool"].mode&fs.ModeSetuid == 0 || len(want) != 9 {
		t.Fatalf("the test tree is not what it should be: %v", scantest.Keys(want))
	}
	// The laptop is lost: its files and its manifest.
	if err := os.RemoveAll(e.src); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.state, "cloudkeeper")); err != nil {
		t.Fatal(err)
	}

	to := filepath.Join(t.TempDir(), "restored")
	r := e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to)...)
	compareTrees(t, treeState(t, to), want)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	slices.Sort(lines)
	for _, l := range []string{
		`restore back\\slash.txt (11 B)`, `restore new\x0aline.txt (21 B)`, `restore not-utf8-\xff\xfe (24 B)`,
		"restore big/multipart.bin (17.0 MiB)", "restore empty (0 B)", "9 files restored (17.0 MiB)",
	} {
		if _, found := slices.BinarySearch(lines, l); !found {
			t.Errorf("no line %q in\n%s", l, r.stdout)
		}
	}
	if n := e.proxy.Stats().ByOp["GetObject"]; n != 9 {
		t.Errorf("%d GetObject for 9 objects", n)
	}

	// Run again, it finds everything there and leaves it.
	r = e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to)...)
	if r.stdout != "0 files restored (0 B); 9 already there with the same content\n" {
		t.Errorf("second restore printed %q", r.stdout)
	}
	compareTrees(t, treeState(t, to), want)

	r = e.cmdWant(0, "verify", append(e.bucketArgs(), "--deep")...)
	if r.stdout != "9 objects (17.0 MiB) checked in the bucket alone (no manifest), bytes read and hashed: the backup is good\n" {
		t.Errorf("verify --deep printed %q", r.stdout)
	}
}

// liar is a server that lists, besides what the bucket holds, keys of its
// choosing, and serves them (body and metadata) as if they were objects:
// keys no honest server would give, for a restore to refuse.
func liar(t *testing.T, target, bucket string, lies map[string]string) string {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u) // keeps the Host the client signed for
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.Request.URL.Query().Get("list-type") != "2" {
			return nil
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		body := b.String()
		var extra strings.Builder
		for key, content := range lies {
			fmt.Fprintf(&extra, "<Contents><Key>%s</Key><Size>%d</Size><ETag>\"x\"</ETag><LastModified>2024-01-02T03:04:05.000Z</LastModified></Contents>", key, len(content))
		}
		body = strings.Replace(body, "<Contents>", extra.String()+"<Contents>", 1)
		resp.Body = io.NopCloser(strings.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for key, content := range lies {
			if r.URL.Path == "/"+bucket+"/"+key && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
				for k, v := range selfDescribing(content) {
					w.Header().Set("X-Amz-Meta-"+k, v)
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(content)))
				w.Write([]byte(content))
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Restore trusts no key: keys that would lead outside the folder (through
// escapes the gateway stores, or as a lying server lists them), keys
// outside the prefix, objects whose bytes are not their BLAKE3, and paths
// through a symlink out of the folder are all refused and reported, with
// exit status 3; nothing is written outside the folder, and the good
// objects are restored.
func TestRestoreRefusesUnsafeKeys(t *testing.T) {
	e := newEnv(t, scantest.Dir{"ok.txt": scantest.File{Content: "fine"}, "dir": scantest.Dir{"ok2.txt": scantest.File{Content: "fine too"}}})
	e.sync(0)
	base := t.TempDir()
	to := filepath.Join(base, "restore", "here")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.MkdirAll(to, 0o755)
	if err := os.Symlink(outside, filepath.Join(to, "link")); err != nil {
		t.Fatal(err)
	}

	// What anyone with write access to the bucket can plant. The gateway
	// cleans "a//b" and "a/../b" in keys as it stores them (as a file
	// system would), but keeps backslash escapes as they are. want is the
	// start of the stderr line that reports the key, and why: what else
	// that line says.
	planted := []struct{ key, want, why string }{
		{`laptop/\x2e\x2e/up-by-escape`, `refused key="laptop/\\x2e\\x2e/up-by-escape"`, `a \"..\" component`},
		{`laptop/\x2fetc\x2fcron.d\x2fx`, `refused key="laptop/\\x2fetc\\x2fcron.d\\x2fx"`, "an absolute path"},
		{`laptop/a\x2f\x2e\x2e\x2f\x2e\x2e\x2fx`, `refused key="laptop/a\\x2f\\x2e\\x2e\\x2f`, `a \"..\" component`},
		{`laptop/nul\x00byte`, `refused key="laptop/nul\\x00byte"`, "a NUL byte"},
		{`laptop/bad\xzzescape`, `refused key="laptop/bad\\xzzescape"`, "does not unescape"},
		{`laptop/\x41-not-canonical`, `refused key="laptop/\\x41-not-canonical"`, "not a key cloudkeeper writes"},
		{"laptop/link/through-symlink.txt", "cannot restore path=link/through-symlink.txt", "link is a symlink: not written through it"},
		{"laptop../evil", "", ""},    // outside the prefix: never listed
		{"laptop//abs", "", ""},      // stored as laptop/abs, which is safe
		{"laptop/a/../../x", "", ""}, // stored as x, outside the prefix
	}
	for _, p := range planted {
		e.plant(p.key, "planted "+p.key, selfDescribing("planted "+p.key))
	}
	e.plant("laptop/liar.txt", "other bytes", selfDescribing("the bytes it claims"))
	// What only a lying server can list (and serves, should restore ask).
	lies := []struct{ key, why string }{
		{"laptop/../up", `a \"..\" component`},
		{"laptop/../../../../../tmp/x", `a \"..\" component`},
		{"laptop//abs-path", "an absolute path"},
		{"laptop/a//b", "an empty component"},
		{"laptop/./dot", `a \".\" component`},
		{"laptop/trailing/", "an empty component"},
		{"laptop../evil-sibling", "not under the prefix"},
		{"elsewhere/x", "not under the prefix"},
	}
	lying := map[string]string{}
	for _, l := range lies {
		lying[l.key] = "lie " + l.key
		planted = append(planted, struct{ key, want, why string }{l.key, "refused key=" + l.key + " ", l.why})
	}
	endpoint := liar(t, e.proxy.URL, e.bucket, lying)

	r := e.cmdWant(3, "restore", "--bucket", e.bucket, "--prefix", e.prefix, "--endpoint", endpoint, "--to", to)
	for _, p := range planted {
		if p.want == "" {
			continue
		}
		if line := lineWith(r.stderr, p.want); line == "" || !strings.Contains(line, p.why) {
			t.Errorf("key %q: want a line with %s and %s in stderr:\n%s", p.key, p.want, p.why, r.stderr)
		}
	}
	if line := lineWith(r.stderr, "cannot restore path=liar.txt"); !strings.Contains(line, "not to its x-amz-meta-blake3") {
		t.Errorf("the object whose bytes lie is not reported:\n%s", r.stderr)
	}
	// Nothing outside the folder; inside, the good objects, the symlink,
	// and nothing else (no temporary file, no liar.txt).
	all := treeState(t, base)
	var keys []string
	for p := range all {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	wantKeys := []string{"restore/here/abs", "restore/here/dir/ok2.txt", "restore/here/link", "restore/here/ok.txt"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("files after the restore:\n %q\nwant\n %q\nstderr:\n%s", keys, wantKeys, r.stderr)
	}
	if !strings.Contains(r.stdout, "3 files restored") || !strings.Contains(r.stdout, "failed or refused") {
		t.Errorf("summary %q", r.stdout)
	}
}

// An existing file is left alone, and reported, unless --overwrite; one
// with the object's content is left alone silently. --path restores one
// folder.
func TestRestoreOverwriteAndPath(t *testing.T) {
	old := time.Date(2005, 1, 2, 3, 4, 5, 6, time.UTC)
	e := newEnv(t, scantest.Dir{
		"a.txt":         scantest.File{Content: "from the backup", Mode: 0o640, Mtime: old},
		"same.txt":      scantest.File{Content: "same"},
		"sub":           scantest.Dir{"x.txt": scantest.File{Content: "x"}, "deeper": scantest.Dir{"y.txt": scantest.File{Content: "y"}}},
		"sub-other.txt": scantest.File{Content: "not under sub/"},
	})
	e.sync(0)
	to := t.TempDir()
	scantest.Write(t, to, "a.txt", "a local edit")
	scantest.Write(t, to, "same.txt", "same")

	r := e.cmdWant(3, "restore", append(e.bucketArgs(), "--to", to, "--path", "a.txt")...)
	if got := treeState(t, to)["a.txt"].content; got != "a local edit" {
		t.Fatalf("a.txt overwritten without --overwrite: %q", got)
	}
	if !strings.Contains(r.stderr, "path=a.txt") || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = e.cmdWant(3, "restore", append(e.bucketArgs(), "--to", to)...)
	if !strings.Contains(r.stdout, "3 files restored") || !strings.Contains(r.stdout, "1 already there with the same content; 1 failed or refused") {
		t.Errorf("stdout %q", r.stdout)
	}
	e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", to, "--overwrite")...)
	if st := treeState(t, to)["a.txt"]; st.content != "from the backup" || st.mode != 0o640 || st.mtimeNs != old.UnixNano() {
		t.Fatalf("a.txt after --overwrite: %+v", st)
	}

	only := t.TempDir()
	e.cmdWant(0, "restore", append(e.bucketArgs(), "--to", only, "--path", "/sub/")...)
	if got := scantest.Keys(treeState(t, only)); !slices.Equal(got, []string{"sub/deeper/y.txt", "sub/x.txt"}) {
		t.Fatalf("--path sub restored %q", got)
	}
	r = e.run(append([]string{"restore"}, e.bucketArgs()...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "set --to") {
		t.Errorf("restore without --to: exit %d, %q", r.code, r.stderr)
	}
}

// verify finds what went wrong behind the backup's back, against the
// manifest and from the bucket alone; --deep reads the bytes.
func TestVerify(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"deleted.txt":   scantest.File{Content: "to be deleted"},
		"rewritten.txt": scantest.File{Content: "original bytes"},
		"relabeled.txt": scantest.File{Content: "its metadata changes"},
		"fine.txt":      scantest.File{Content: "fine"},
		"sub":           scantest.Dir{"fine2.txt": scantest.File{Content: "fine too"}},
	})
	e.sync(0)
	verify := func(want int, args ...string) result {
		t.Helper()
		return e.cmdWant(want, "verify", append(e.baseArgs(), args...)...)
	}
	r := verify(0)
	if r.stdout != "5 objects (59 B) checked against the manifest, metadata only: the backup is good\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if ops := e.ops(); ops["ListObjectsV2"] != 1 || ops["HeadObject"] != 5 || ops["GetObject"] != 0 {
		t.Fatalf("requests %v", ops)
	}

	ctx := context.Background()
	c := gw.Client()
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String("laptop/deleted.txt")}); err != nil {
		t.Fatal(err)
	}
	e.plant("laptop/extra.txt", "extra", selfDescribing("extra"))
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &e.bucket, Key: aws.String("laptop/rewritten.txt")})
	if err != nil {
		t.Fatal(err)
	}
	e.plant("laptop/rewritten.txt", "OTHER bytes!!!", head.Metadata) // same size, old metadata
	md := selfDescribing("something else")
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &e.bucket, Key: aws.String("laptop/relabeled.txt"), CopySource: aws.String(e.bucket + "/laptop/relabeled.txt"),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: md,
	}); err != nil {
		t.Fatal(err)
	}
	sumOf := func(s string) string { return fmt.Sprintf("%x", blake3.Sum256([]byte(s))) }

	r = verify(1)
	want := []string{
		"extra    extra.txt: 5 B",
		"mismatch relabeled.txt: x-amz-meta-blake3 is " + sumOf("something else") + ", the manifest says " + sumOf("its metadata changes"),
		"missing  deleted.txt",
		"5 objects (51 B) checked against the manifest, metadata only: 1 missing, 1 extra, 1 mismatched",
	}
	if got := sortedLines(r.stdout); !slices.Equal(got, sortedLines(strings.Join(want, "\n"))) {
		t.Fatalf("verify printed\n%s\nwant\n%s", r.stdout, strings.Join(want, "\n"))
	}

	r = verify(1, "--deep")
	wantDeep := "mismatch rewritten.txt: its bytes hash to " + sumOf("OTHER bytes!!!") + ", not to its x-amz-meta-blake3 " + sumOf("original bytes")
	if !strings.Contains(r.stdout, wantDeep+"\n") || !strings.Contains(r.stdout, "bytes read and hashed: 1 missing, 1 extra, 2 mismatched") {
		t.Fatalf("verify --deep printed\n%s", r.stdout)
	}
	if ops := e.ops(); ops["GetObject"] != 4 || ops["HeadObject"] != 0 {
		t.Errorf("requests %v: want a GetObject per object the manifest has, and no HeadObject", ops)
	}

	r = verify(1, "--json")
	var last struct {
		Summary verifySummary `json:"summary"`
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var first verifyProblem
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Key == "" {
		t.Fatalf("--json printed\n%s", r.stdout)
	}
	if s := last.Summary; s.Good || s.Missing != 1 || s.Extra != 1 || s.Mismatch != 1 || s.Objects != 5 || s.Manifest != e.manifestPath() {
		t.Errorf("--json summary %+v", s)
	}

	// Without a manifest: what the bucket says of itself is all there is.
	// The relabeled object describes itself wrongly, which only its bytes
	// can tell.
	os.Remove(e.manifestPath())
	r = e.cmdWant(0, "verify", e.bucketArgs()...)
	if r.stdout != "5 objects (51 B) checked in the bucket alone (no manifest), metadata only: the backup is good\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	e.plant("laptop/no-metadata.txt", "no metadata", nil)
	r = e.cmdWant(1, "verify", append(e.bucketArgs(), "--deep")...)
	for _, l := range []string{
		"bad      no-metadata.txt: no x-amz-meta-blake3\n",
		wantDeep + "\n",
		"mismatch relabeled.txt: its bytes hash to " + sumOf("its metadata changes") + ", not to its x-amz-meta-blake3 " + sumOf("something else") + "\n",
		"6 objects (62 B) checked in the bucket alone (no manifest), bytes read and hashed: 2 mismatched, 1 bad\n",
	} {
		if !strings.Contains(r.stdout, l) {
			t.Errorf("no line %q in\n%s", l, r.stdout)
		}
	}
}

// lineWith returns the first line of s that contains needle, or "".
func lineWith(s, needle string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, needle) {
			return l
		}
	}
	return ""
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(lines)
	return lines
}

// A lost manifest is rebuilt from the bucket, and the next sync uploads
// and copies nothing: it reads each file once, finds the content the
// bucket has, and records the stat. A damaged manifest stops sync with a
// message that names the rebuild, which moves it aside and fixes it.
func TestManifestRebuild(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"a.txt":        scantest.File{Content: "alpha", Mtime: time.Date(2001, 1, 1, 0, 0, 0, 123, time.UTC)},
		"odd\nname\\x": scantest.File{Content: "odd", Mode: 0o600},
		"tool":         scantest.File{Content: "#!/bin/sh\n", Mode: 0o755 | fs.ModeSetuid},
		"empty":        scantest.File{},
		"d":            scantest.Dir{"e": scantest.Dir{"f.bin": scantest.File{Content: bigContent(100_000)}}},
	})
	e.sync(0)
	path := e.manifestPath()
	os.Remove(path)

	rebuild := func(want int, args ...string) result {
		t.Helper()
		return e.cmdWant(want, "manifest rebuild", append(e.baseArgs(), args...)...)
	}
	r := rebuild(0)
	if r.stdout != "manifest rebuilt from the bucket: 5 objects (97.7 KiB)\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if ops := e.ops(); ops["HeadObject"] != 5 || ops["ListObjectsV2"] != 1 {
		t.Errorf("requests %v", ops)
	}
	s := e.sync(0)
	if len(s.lines()) != 0 || s.summary() != "0 uploads (0 B), 0 renames, 0 copies, 0 deletes; 5 files unchanged" {
		t.Fatalf("sync after the rebuild printed %q", s.stdout)
	}
	if ops := e.ops(); ops["PutObject"] != 0 || ops["CopyObject"] != 0 || ops["CreateMultipartUpload"] != 0 {
		t.Fatalf("sync after the rebuild sent %v", ops)
	}
	// It recorded the stats: the next run sends nothing.
	s = e.sync(0)
	if len(s.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("third sync: %s, %v", s.stdout, e.ops())
	}

	// A manifest that is fine is not replaced, unless --force.
	r = rebuild(1)
	if !strings.Contains(r.stderr, "exists and opens fine") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = rebuild(0, "--force")
	if olds, _ := filepath.Glob(path + ".old-*"); len(olds) != 1 || !strings.Contains(r.stderr, "moved aside") {
		t.Errorf("old manifests %q, stderr %q", olds, r.stderr)
	}

	// Damaged: sync says what to do; rebuild moves it aside and fixes it.
	garbage := bytes.Repeat([]byte("this is not an SQLite database. "), 200)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	s = e.sync(1)
	if !strings.Contains(s.stderr, "cloudkeeper manifest rebuild") {
		t.Fatalf("sync on a damaged manifest: %q", s.stderr)
	}
	r = rebuild(0)
	if !strings.Contains(r.stderr, "damaged") || !strings.Contains(r.stderr, "moved aside") {
		t.Errorf("stderr %q", r.stderr)
	}
	olds, _ := filepath.Glob(path + ".old-*")
	var kept bool
	for _, o := range olds {
		b, _ := os.ReadFile(o)
		kept = kept || bytes.Equal(b, garbage)
	}
	if !kept {
		t.Errorf("the damaged manifest is not kept aside: %q", olds)
	}
	if s := e.sync(0); len(s.lines()) != 0 || e.ops()["PutObject"] != 0 {
		t.Fatalf("sync after rebuilding a damaged manifest: %q %v", s.stdout, e.ops())
	}

	// An object that does not describe itself is left out, and the next
	// sync uploads its file again.
	e.plant("laptop/undescribed.txt", "no metadata", nil)
	scantest.Write(t, e.src, "undescribed.txt", "no metadata")
	r = rebuild(0, "--force")
	if !strings.Contains(r.stdout, "5 objects (97.7 KiB); 1 left out") || !strings.Contains(r.stderr, "path=undescribed.txt") {
		t.Errorf("rebuild: %q %q", r.stdout, r.stderr)
	}
	if s := e.sync(0); !slices.Equal(s.lines(), []string{"add     undescribed.txt (11 B)"}) {
		t.Fatalf("sync after leaving out an object: %q", s.stdout)
	}
	e.checkBucketIsTree()
}
