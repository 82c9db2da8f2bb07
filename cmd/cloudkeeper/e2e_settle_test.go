package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// killAfter runs sync and kills it with SIGKILL the moment the proxy has
// relayed S3's answer to the first request of operation op: S3 has
// applied the change, cloudkeeper has not recorded it. It fails the test
// if the run ended without such a request.
func (e *env) killAfter(op string, args ...string) {
	e.t.Helper()
	e.killOn(op, func(kill func()) *s3test.Fault { return &s3test.Fault{Answered: kill} }, args...)
}

// killOn runs sync with the fault made by fault on the requests of
// operation op, given the kill of killWhen.
func (e *env) killOn(op string, fault func(kill func()) *s3test.Fault, args ...string) {
	e.t.Helper()
	e.killWhen(op, func(r *http.Request, kill func()) *s3test.Fault {
		if s3test.Operation(r) != op {
			return nil
		}
		return fault(kill)
	}, args...)
}

// killWhen runs sync with the proxy's fault set to fault, which is given
// a kill that sends SIGKILL to the run (at most once), and fails the test
// if the run ended without being killed (what names the kill awaited).
func (e *env) killWhen(what string, fault func(r *http.Request, kill func()) *s3test.Fault, args ...string) {
	e.t.Helper()
	e.killCommandWhen("sync", what, fault, args...)
}

// killCommandWhen is killWhen for the command name.
func (e *env) killCommandWhen(name, what string, fault func(r *http.Request, kill func()) *s3test.Fault, args ...string) {
	e.t.Helper()
	cmd := exec.Command(binPath, append(append([]string{name}, e.baseArgs()...), args...)...)
	cmd.Env = e.environ()
	var once sync.Once
	kills := make(chan bool, 1)
	kill := func() { once.Do(func() { kills <- cmd.Process.Kill() == nil }) }
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault { return fault(r, kill) })
	defer e.proxy.SetFault(nil)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	cmd.Wait()
	killed := false
	select {
	case killed = <-kills:
	case <-time.After(5 * time.Second): // the run ended without such a request
	}
	if !killed {
		e.t.Fatalf("the run sent no %s to be killed after:\n%s", what, out.String())
	}
}

// wantSettled fails the test unless the run settled keys left in doubt,
// with want among its counts: the kill did open the window.
func wantSettled(t *testing.T, r result, want string) {
	t.Helper()
	if !strings.Contains(r.stderr, "settled them from what S3 holds") || !strings.Contains(r.stderr, want) {
		t.Fatalf("the run after the kill settled nothing (want %s):\n%s", want, r.stderr)
	}
}

func (e *env) verifyGood() {
	e.t.Helper()
	r := e.run(append([]string{"verify"}, e.baseArgs()...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "the backup is good") {
		e.t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Killed right after S3 confirmed a delete: the manifest still has the
// row. The user puts the file back: the next run must upload it, not call
// it unchanged (its object is gone).
func TestSyncKilledAfterDeleteConfirmed(t *testing.T) {
	e := newEnv(t, scantest.Dir{"keep.txt": scantest.File{Content: "keep"}, "doc.txt": scantest.File{Content: "the document"},
		"other.txt": scantest.File{Content: "other"}})
	e.sync(0)
	trash := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.Rename(e.path("doc.txt"), trash); err != nil {
		t.Fatal(err)
	}
	e.killAfter("DeleteObjects")
	// Put back from the trash: same inode, size and mtime.
	if err := os.Rename(trash, e.path("doc.txt")); err != nil {
		t.Fatal(err)
	}
	wantSettled(t, e.sync(0), "objects_gone=1")
	e.checkBucketIsTree()
	e.verifyGood()
}

// Killed right after S3 confirmed an upload, then the file is deleted: the
// next run must delete the object it never recorded.
func TestSyncKilledAfterUploadConfirmed(t *testing.T) {
	e := newEnv(t, scantest.Dir{"keep.txt": scantest.File{Content: "keep"}, "other.txt": scantest.File{Content: "other"}})
	e.sync(0)
	scantest.Write(t, e.src, "new.txt", "a new file")
	e.killAfter("PutObject")
	os.Remove(e.path("new.txt"))
	wantSettled(t, e.sync(0), "objects_found=1")
	e.checkBucketIsTree()
	e.verifyGood()
	// And the same with a file that stays, modified since.
	scantest.Write(t, e.src, "later.txt", "first bytes")
	e.killAfter("PutObject")
	scantest.Write(t, e.src, "later.txt", "second bytes, longer")
	e.sync(0)
	e.checkBucketIsTree()
	e.verifyGood()
}

// A multipart upload started by a killed run is aborted by a later run,
// even when the run right after the kill failed.
func TestSyncAbortsMultipartUploadsAfterAFailedRun(t *testing.T) {
	e := newEnv(t, scantest.Dir{"small.txt": scantest.File{Content: "small"}})
	e.sync(0)
	scantest.Write(t, e.src, "big.bin", bigContent(20<<20+1))
	e.killAfter("CreateMultipartUpload")
	if n := multipartUploads(t, e); n != 1 {
		t.Fatalf("%d multipart uploads after the kill, want 1", n)
	}
	// The next run fails: the server refuses every request.
	e.proxy.SetFault(func(*http.Request) *s3test.Fault {
		return &s3test.Fault{Status: http.StatusForbidden, Code: "AccessDenied"}
	})
	e.sync(1)
	e.proxy.SetFault(nil)
	e.sync(0)
	e.checkBucketIsTree()
	if n := multipartUploads(t, e); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
}

// A run with no local change still proves that the bucket is there and
// the credentials work: one request, and a clear failure if not.
func TestSyncQuietRunChecksTheBucket(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	e.sync(0)
	e.sync(0)
	if st := e.proxy.Stats(); st.Requests != 1 || st.ByOp["HeadBucket"] != 1 {
		t.Fatalf("a no-change run sent %v, want one HeadBucket", st.ByOp)
	}
	e.sync(0, "--dry-run")
	if st := e.proxy.Stats(); st.Requests != 1 || st.ByOp["HeadBucket"] != 1 {
		t.Fatalf("a dry run sent %v, want one HeadBucket", st.ByOp)
	}
	// A change waits: a failed run, dry or not, must not show it as done
	// or to be done.
	scantest.Write(t, e.src, "b.txt", "beta")
	for _, c := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"wrong secret", "AWS_SECRET_ACCESS_KEY=wrong-secret", nil, "rejected the credentials"},
		{"missing bucket", "", []string{"--bucket", "no-such-bucket-here"}, "does not exist"},
		{"dry run, wrong secret", "AWS_SECRET_ACCESS_KEY=wrong-secret", []string{"--dry-run"}, "rejected the credentials"},
		{"dry run, missing bucket", "", []string{"--dry-run", "--bucket", "no-such-bucket-here"}, "does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			old := e.cmd
			defer func() { e.cmd = old }()
			if c.env != "" {
				e.cmd = func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, c.env) }
			}
			r := e.sync(1, c.args...)
			if !strings.Contains(r.stderr, c.want) || strings.Count(r.stderr, "ERROR") != 1 {
				t.Fatalf("want one ERROR line saying %q, stderr:\n%s", c.want, r.stderr)
			}
			// Nothing was applied: no change line, and no summary of
			// zeros that reads like a run that went well.
			if r.stdout != "" {
				t.Fatalf("a failed run printed on stdout:\n%s", r.stdout)
			}
		})
	}
	e.t = t
	r := e.run("status", "--source", e.src, "--bucket", e.bucket, "--prefix", e.prefix, "--endpoint", e.proxy.URL)
	// The newest run is listed first: it failed, it is not "ok".
	if _, runs, _ := strings.Cut(r.stdout, "CHANGES\n"); !strings.Contains(strings.SplitN(runs, "\n", 2)[0], "failed") {
		t.Fatalf("status after failed runs:\n%s", r.stdout)
	}
}

// A lost manifest: the refused run leaves no manifest behind, so the
// advice it prints (manifest rebuild) works, and nothing is uploaded again.
func TestSyncLostManifestRebuildAdviceWorks(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "beta"}})
	m := filepath.Join(e.state, "m.db")
	e.sync(0, "--manifest", m)
	os.Remove(m)
	r := e.sync(1, "--manifest", m)
	if !strings.Contains(r.stderr, "cloudkeeper manifest rebuild") {
		t.Fatalf("stderr %s", r.stderr)
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal", ".lock"} {
		if _, err := os.Lstat(m + suffix); err == nil {
			t.Errorf("the refused run left %s behind", m+suffix)
		}
	}
	rb := e.run(append([]string{"manifest", "rebuild", "--manifest", m}, e.baseArgs()...)...)
	if rb.code != 0 {
		t.Fatalf("manifest rebuild: exit %d\n%s%s", rb.code, rb.stdout, rb.stderr)
	}
	e.sync(0, "--manifest", m)
	if st := e.proxy.Stats(); st.ByOp["PutObject"] != 0 {
		t.Fatalf("after the rebuild the run sent %v", st.ByOp)
	}
}

// A copy, rename or metadata refresh whose source object is gone uploads
// the local file instead of failing on every run, and the source whose
// object is gone is uploaded by the next run.
func TestSyncCopySourceGone(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha content"}, "t.txt": scantest.File{Content: "touched"},
		"src.txt": scantest.File{Content: "source content"}, "keep.txt": scantest.File{Content: "keep"}})
	e.sync(0)
	ctx := context.Background()
	for _, k := range []string{"a.txt", "t.txt", "src.txt"} {
		if _, err := gw.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &e.bucket, Key: aws.String(e.prefix + k)}); err != nil {
			t.Fatal(err)
		}
	}
	os.Rename(e.path("a.txt"), e.path("moved.txt"))        // a rename of a.txt
	scantest.Write(t, e.src, "copy.txt", "source content") // a copy of src.txt, which stays
	later := time.Now().Add(time.Hour)
	os.Chtimes(e.path("t.txt"), later, later) // a metadata refresh of t.txt
	r := e.sync(0)
	if n := strings.Count(r.stderr, "uploaded instead of copied"); n != 3 {
		t.Fatalf("%d fallbacks reported, want 3:\n%s", n, r.stderr)
	}
	// src.txt's row was trusted wrongly: the next run asks S3 and puts
	// its content back, from copy.txt's object now.
	r = e.sync(0)
	if !slices.Equal(r.lines(), []string{"copy    copy.txt -> src.txt"}) {
		t.Fatalf("the run after: %q\n%s", r.lines(), r.stderr)
	}
	e.checkBucketIsTree()
	e.verifyGood()
	if r := e.sync(0); len(r.lines()) != 0 || !e.onlyBucketCheck() {
		t.Fatalf("then: %q, %v", r.lines(), e.ops())
	}
}

// A multipart upload a killed run started and never recorded, whose key
// the next run cannot settle (S3 keeps refusing the listing of its
// uploads), stays in doubt though that run writes the key again (a new
// multipart upload, a put, a copy) or deletes it: the run after lists the
// key's uploads and aborts it (a reviewer's find: recording the write
// cleared the doubt, and the upload was left in the bucket for good).
func TestSyncUnsettledKeyStaysInDoubtThoughWritten(t *testing.T) {
	const other = "other content, for a copy: " // made 8 KiB, over DupCopyMin
	for _, c := range []struct {
		name   string
		change func(e *env) // the file at the key, before the second run
		op     string       // the request that second run writes the key with
	}{
		{"multipart again", func(*env) {}, "CompleteMultipartUpload"},
		{"put", func(e *env) { scantest.Write(e.t, e.src, "big.bin", "small again") }, "PutObject"},
		{"copy", func(e *env) { scantest.Write(e.t, e.src, "big.bin", strings.Repeat(other, 8<<10/len(other)+1)) }, "CopyObject"},
		{"delete", func(e *env) { os.Remove(e.path("big.bin")) }, "DeleteObjects"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, scantest.Dir{"big.bin": scantest.File{Content: "small at first"},
				"other.bin": scantest.File{Content: strings.Repeat(other, 8<<10/len(other)+1)}})
			m := filepath.Join(e.state, "m.db")
			e.sync(0, "--manifest", m)
			scantest.Write(t, e.src, "big.bin", bigContent(6<<20))
			e.killAfter("CreateMultipartUpload", "--manifest", m, "--part-size", "5")
			if n := multipartUploads(t, e); n != 1 {
				t.Fatalf("%d multipart uploads after the kill, want 1", n)
			}
			key := e.prefix + "big.bin"
			e.forgetUpload(m, key)
			e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
				if s3test.Operation(r) == "ListMultipartUploads" && r.URL.Query().Get("prefix") == key {
					return &s3test.Fault{Status: http.StatusInternalServerError}
				}
				return nil
			})
			c.change(e)
			r := e.sync(3, "--manifest", m, "--part-size", "5", "--retries", "2", "--retry-max-wait", "10ms")
			e.proxy.SetFault(nil)
			if !strings.Contains(r.stderr, "could not settle a key left in doubt") || e.ops()[c.op] == 0 {
				t.Fatalf("the second run did not fail to settle big.bin, then write it with %s (%v):\n%s", c.op, e.ops(), r.stderr)
			}
			if n := multipartUploads(t, e); n != 1 {
				t.Fatalf("%d multipart uploads after the second run, want the killed run's", n)
			}
			e.sync(0, "--manifest", m, "--part-size", "5")
			if n := multipartUploads(t, e); n != 0 {
				t.Fatalf("%d multipart uploads left behind by the run after", n)
			}
			e.checkBucketIsTree()
		})
	}
}

// forgetUpload drops the manifest at m's record of the multipart upload of
// key, if the record beat the kill that followed S3's answer: the upload is
// then one whose answer the kill cut off, as it most often is.
func (e *env) forgetUpload(m, key string) {
	e.t.Helper()
	u, ok := e.recordedUpload(m, key)
	if !ok {
		return
	}
	db, err := manifest.Open(m, e.identity())
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	if err := db.ForgetUpload(context.Background(), key, u.UploadID); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("the record of upload %s beat the kill: forgotten", u.UploadID)
}
