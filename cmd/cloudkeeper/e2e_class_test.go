package main

// Server-side encryption and storage classes (issue 14): --sse,
// --sse-kms-key-id and --storage-class on every write of a run, and what
// a run, verify and restore do with objects in an archive class.

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
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
