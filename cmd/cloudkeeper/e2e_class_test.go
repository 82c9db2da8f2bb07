package main

// Server-side encryption and storage classes (issue 14): --sse,
// --sse-kms-key-id and --storage-class on every write of a run, and what
// a run, verify and restore do with objects in an archive class.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

const testKMSKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// A sync that uploads a small file and a big one (in parts), then renames
// both (server-side copies) and overwrites one with --keep (a history
// copy under \history/ first) asks on every write for the encryption, its
// key and the storage class, from the flags or from the environment. The
// gateway takes them (and ignores them: they are checked at the proxy).
func TestSyncEncryptionAndClassOnEveryWrite(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flags", []string{"--sse", "aws:kms", "--sse-kms-key-id", testKMSKey, "--storage-class", "standard_ia"}, nil},
		{"env", nil, []string{"CLOUDKEEPER_SSE=aws:kms", "CLOUDKEEPER_SSE_KMS_KEY_ID=" + testKMSKey, "CLOUDKEEPER_STORAGE_CLASS=STANDARD_IA"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, scantest.Dir{"small.txt": scantest.File{Content: "small"}, "big.bin": scantest.File{Content: strings.Repeat("b", 6<<20+1)},
				"doc.txt": scantest.File{Content: "v1"}})
			e.cmd = withEnv(c.env...)
			args := append(append([]string{"--part-size", "5"}, keepArgs...), c.args...)
			rec := s3test.Record(e.proxy, "PutObject", "CreateMultipartUpload", "CopyObject", "UploadPart", "UploadPartCopy")
			e.sync(0, args...)
			for _, mv := range [][2]string{{"small.txt", "small-moved.txt"}, {"big.bin", "big-moved.bin"}} {
				if err := os.Rename(e.path(mv[0]), e.path(mv[1])); err != nil {
					t.Fatal(err)
				}
			}
			scantest.Write(t, e.src, "doc.txt", "v2")
			e.sync(0, args...)
			e.wantOps(map[string]int64{"CopyObject": 5, "PutObject": 1, "DeleteObjects": 1}) // 2 renames, 3 history copies (of the renamed and of the overwritten)
			e.checkMirrorIsTree()
			ops := map[string]int{}
			for _, w := range rec.Seen() {
				ops[w.Op]++
				sse, key, class := w.Header.Get("X-Amz-Server-Side-Encryption"), w.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"), w.Header.Get("X-Amz-Storage-Class")
				if w.Op == "UploadPart" || w.Op == "UploadPartCopy" {
					continue // the upload's, from its CreateMultipartUpload
				}
				if sse != "aws:kms" || key != testKMSKey || class != "STANDARD_IA" {
					t.Errorf("%s %s: x-amz-server-side-encryption %q, key %q, x-amz-storage-class %q", w.Op, w.Path, sse, key, class)
				}
			}
			if ops["PutObject"] != 3 || ops["CreateMultipartUpload"] != 1 || ops["UploadPart"] != 2 || ops["CopyObject"] != 5 {
				t.Fatalf("writes seen: %v", ops)
			}
		})
	}
}

// withEnv adds vars to the environment of each command.
func withEnv(vars ...string) func(*exec.Cmd) {
	return func(c *exec.Cmd) { c.Env = append(c.Env, vars...) }
}

// A value S3 would refuse is a usage error, before any request, naming the
// setting and what it takes.
func TestEncryptionAndClassUsageErrors(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sse", "aes"}, `--sse / CLOUDKEEPER_SSE: server-side encryption "aes": want AES256 or aws:kms`},
		{[]string{"--sse-kms-key-id", testKMSKey}, "--sse-kms-key-id / CLOUDKEEPER_SSE_KMS_KEY_ID is the key of --sse aws:kms"},
		{[]string{"--sse", "AES256", "--sse-kms-key-id", testKMSKey}, "--sse-kms-key-id / CLOUDKEEPER_SSE_KMS_KEY_ID is the key of --sse aws:kms"},
		{[]string{"--storage-class", "COLD"}, `--storage-class / CLOUDKEEPER_STORAGE_CLASS: storage class "COLD": want one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE,`},
	} {
		r := e.sync(2, c.args...)
		if !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("sync %q: stderr %q, want one line with %q", c.args, r.stderr, c.want)
		}
		if st := e.proxy.Stats(); st.Requests != 0 {
			t.Errorf("sync %q sent %v", c.args, st.ByOp)
		}
	}
}

// archive makes the proxy answer for the objects of paths what S3 answers
// for an object in GLACIER or DEEP_ARCHIVE that is not restored: 403
// InvalidObjectState to a GetObject of it and to a copy from it (versitygw
// keeps no storage class). HEAD and listings work, as on S3.
func (e *env) archive(paths ...string) { e.proxy.SetFault(e.archived(paths...)) }

// archived is the fault function of archive.
func (e *env) archived(paths ...string) func(*http.Request) *s3test.Fault {
	keys := map[string]bool{}
	for _, p := range paths {
		keys["/"+e.bucket+"/"+e.prefix+p] = true
	}
	return func(r *http.Request) *s3test.Fault {
		op := s3test.Operation(r)
		src := r.Header.Get("X-Amz-Copy-Source")
		if op == "GetObject" && keys[r.URL.Path] || (op == "CopyObject" || op == "UploadPartCopy") && keys["/"+strings.TrimPrefix(src, "/")] {
			return &s3test.Fault{Status: http.StatusForbidden, Code: "InvalidObjectState"}
		}
		return nil
	}
}

// An object in an archive class cannot be copied until restored: its
// rename is an upload, said in one line naming the path; a chmod of
// another leaves its metadata as it is (as for an object too large to
// copy). verify without --deep reads only metadata and passes; verify
// --deep and restore name each object that needs a RestoreObject, and how
// to ask for it, and restore puts the others in place.
func TestArchivedObjects(t *testing.T) {
	e := newEnv(t, scantest.Dir{"cold": scantest.Dir{"a.txt": scantest.File{Content: "aaa"}}, "b.txt": scantest.File{Content: "bbb"}, "c.txt": scantest.File{Content: "ccc"}})
	args := []string{"--storage-class", "DEEP_ARCHIVE"}
	e.sync(0, args...)
	e.archive("cold/a.txt", "b.txt")
	if err := os.Rename(e.path("cold/a.txt"), e.path("a-moved.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(e.path("b.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.sync(0, args...)
	if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.Contains(r.stderr, "uploaded instead of copied op=rename path=a-moved.txt") ||
		!strings.Contains(r.stderr, "cold/a.txt is in an archive storage class") {
		t.Fatalf("a rename of an archived object:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	e.wantOps(map[string]int64{"CopyObject": 2, "PutObject": 1, "DeleteObjects": 1}) // the refused copy and chmod, the upload
	e.checkBucketIsTree()
	t.Logf("sync:\n%s%s", r.stdout, r.stderr)

	e.archive("a-moved.txt", "b.txt")
	e.cmdWant(0, "verify", e.baseArgs()...)
	v := e.cmdWant(1, "verify", append(e.baseArgs(), "--deep")...)
	for _, p := range []string{"a-moved.txt", "b.txt"} {
		want := fmt.Sprintf("archived %s: in an archive storage class, not read: request a restore first: aws s3api restore-object --endpoint-url %s --bucket %s --key %s --restore-request Days=7", p, e.proxy.URL, e.bucket, e.prefix+p)
		if !strings.Contains(v.stdout, want) {
			t.Errorf("verify --deep: no line %q:\n%s", want, v.stdout)
		}
	}
	if !strings.Contains(v.stdout, "2 archived (restore them first)") || strings.Contains(v.stdout, "c.txt") {
		t.Errorf("verify --deep:\n%s", v.stdout)
	}

	to := t.TempDir()
	res := e.cmdWant(3, "restore", append(e.bucketArgs(), "--to", to)...)
	t.Logf("verify --deep:\n%s\nrestore:\n%s%s", v.stdout, res.stdout, res.stderr)
	if !strings.Contains(res.stdout, "restore c.txt") || !strings.Contains(res.stderr, "2 objects are in an archive storage class") ||
		!strings.Contains(res.stderr, "aws s3api restore-object --endpoint-url "+e.proxy.URL+" --bucket "+e.bucket+" --key "+e.prefix+"b.txt --restore-request Days=7") {
		t.Errorf("restore:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
}

// With --keep in a bucket without versioning, an archived object cannot be
// copied into the history before it is replaced: the change fails, named,
// and the object stays as it was (nothing of the history is lost).
func TestArchivedObjectKeptWithoutVersioning(t *testing.T) {
	e := newEnv(t, scantest.Dir{"b.txt": scantest.File{Content: "v1"}})
	args := append([]string{"--storage-class", "GLACIER"}, keepArgs...)
	e.sync(0, args...)
	e.archive("b.txt")
	scantest.Write(t, e.src, "b.txt", "v2")
	r := e.sync(3, args...)
	if !strings.Contains(r.stderr, "path=b.txt") || !strings.Contains(r.stderr, "keeping the version it replaces in the history") ||
		!strings.Contains(r.stderr, "in an archive storage class") {
		t.Fatalf("an overwrite of an archived object with --keep:\n%s", r.stderr)
	}
	if objs := gwtest.Objects(t, gw.Client(), e.bucket, e.prefix); len(objs) != 1 || string(objs[e.prefix+"b.txt"].Body) != "v1" {
		t.Fatalf("bucket: %v", scantest.Keys(objs))
	}
}

// restore --thaw DAYS asks S3 (RestoreObject) to restore each archived
// object it meets, and says so, or names the object whose request failed
// with the command to send it by hand. The proxy answers 202 Accepted for
// b.txt, as S3 does; the gateway does not implement RestoreObject
// (NotImplemented), which a.txt gets.
func TestRestoreThawAsksForArchivedObjects(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "aaa"}, "b.txt": scantest.File{Content: "bbb"}, "c.txt": scantest.File{Content: "ccc"}})
	e.sync(0, "--storage-class", "GLACIER")
	archived := e.archived("a.txt", "b.txt")
	var mu sync.Mutex
	asked := map[string]bool{}
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if _, ok := r.URL.Query()["restore"]; ok && r.Method == http.MethodPost {
			mu.Lock()
			asked[strings.TrimPrefix(r.URL.Path, "/"+e.bucket+"/"+e.prefix)] = true
			mu.Unlock()
			if strings.HasSuffix(r.URL.Path, "/b.txt") {
				return &s3test.Fault{Status: http.StatusAccepted}
			}
		}
		return archived(r)
	})
	res := e.cmdWant(3, "restore", append(e.bucketArgs(), "--to", t.TempDir(), "--thaw", "3")...)
	t.Logf("restore --thaw:\n%s%s", res.stdout, res.stderr)
	if len(asked) != 2 || !strings.Contains(res.stdout, "restore c.txt") ||
		!strings.Contains(res.stderr, "INFO asked S3 to restore it from its archive storage class path=b.txt days=3") ||
		!strings.Contains(res.stderr, "path=a.txt") || !strings.Contains(res.stderr, "NotImplemented") ||
		!strings.Contains(res.stderr, "--key "+e.prefix+"a.txt --restore-request Days=3") ||
		!strings.Contains(res.stderr, "2 objects are in an archive storage class: asked S3 to restore 1 of them") {
		t.Fatalf("restore --thaw: asked for %v\nstdout:\n%s\nstderr:\n%s", asked, res.stdout, res.stderr)
	}
	if r := e.run(append([]string{"restore", "--to", t.TempDir(), "--thaw", "-1"}, e.bucketArgs()...)...); r.code != 2 || !strings.Contains(r.stderr, "--thaw -1") {
		t.Fatalf("restore --thaw -1: exit %d\n%s", r.code, r.stderr)
	}
}
