package uploader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// localFile writes size bytes to a file and returns an Upload of it with
// the hash and stat the scanner would give.
func localFile(t testing.TB, name string, size int, key string) Upload {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*31 + size)
	}
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	d, st, err := scanner.HashFile(scanner.OS{}, p)
	if err != nil {
		t.Fatal(err)
	}
	return Upload{Object: Object{Key: key, Size: st.Size, Hash: d, MtimeNs: st.MtimeNs, Mode: st.Mode}, Path: p}
}

func TestUploadWritesBytesAndMetadata(t *testing.T) {
	onEachServer(t, testUploadWritesBytesAndMetadata)
}

func testUploadWritesBytesAndMetadata(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	// Every upload request carries a Content-MD5 for the server to check,
	// and none of the SDK's default checksums, which many S3-compatible
	// servers reject (aws-chunked bodies with trailers) or do not know.
	var mu sync.Mutex
	var unchecked []string
	tb.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		op := s3test.Operation(r)
		if op != "PutObject" && op != "UploadPart" {
			return nil
		}
		bad := r.Header.Get("Content-MD5") == "" || strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") ||
			r.Header.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD"
		for h := range r.Header {
			bad = bad || strings.HasPrefix(strings.ToLower(h), "x-amz-checksum-") || strings.HasPrefix(strings.ToLower(h), "x-amz-sdk-checksum")
		}
		if bad {
			mu.Lock()
			unchecked = append(unchecked, fmt.Sprintf("%s %s %v", op, r.URL.Path, r.Header))
			mu.Unlock()
		}
		return nil
	})
	ups := []Upload{
		localFile(t, "empty", 0, "p/empty"),
		localFile(t, "small", 10, "p/small"),
		localFile(t, "twoparts", 5<<20+3, "p/two parts+odd&name"),
		localFile(t, "threeparts", 12<<20, "p/three"),
	}
	var total int64
	for _, u := range ups {
		if _, err := tb.Upload(ctx, u); err != nil {
			t.Fatalf("upload %s: %v", u.Key, err)
		}
		total += u.Size
	}
	if len(unchecked) > 0 {
		t.Errorf("uploads without Content-MD5, or with SDK checksums or a signed payload: %q", unchecked)
	}
	objs := tb.objects(t)
	for _, u := range ups {
		o, ok := objs[u.Key]
		if !ok {
			t.Fatalf("%s missing; have %v", u.Key, objs)
		}
		if int64(len(o.Body)) != u.Size || scanner.Digest(blake3.Sum256(o.Body)) != u.Hash {
			t.Errorf("%s: %d bytes, wrong content", u.Key, len(o.Body))
		}
		if o.Metadata[MetaBLAKE3] != u.Hash.String() {
			t.Errorf("%s: blake3 metadata %q, want %s", u.Key, o.Metadata[MetaBLAKE3], u.Hash)
		}
		if ns, err := ParseMtime(o.Metadata[MetaMtime]); err != nil || ns != u.MtimeNs {
			t.Errorf("%s: mtime metadata %q = %d, %v; want %d", u.Key, o.Metadata[MetaMtime], ns, err, u.MtimeNs)
		}
		if o.Metadata[MetaMode] != "0640" {
			t.Errorf("%s: mode metadata %q", u.Key, o.Metadata[MetaMode])
		}
	}
	st := tb.proxy.Stats()
	if st.ByOp["PutObject"] != 2 || st.ByOp["CreateMultipartUpload"] != 2 || st.ByOp["UploadPart"] != 5 || st.ByOp["CompleteMultipartUpload"] != 2 {
		t.Errorf("requests %v", st.ByOp)
	}
	if st.BytesUploaded != total {
		t.Errorf("uploaded %d bytes, want %d", st.BytesUploaded, total)
	}
}

// A file whose bytes no longer hash to what the scan recorded is not
// written: a single PUT is never sent, and a multipart upload is aborted
// before it completes, leaving neither an object nor orphan parts.
func TestUploadOfChangedFileWritesNothing(t *testing.T) {
	onEachServer(t, testUploadOfChangedFileWritesNothing)
}

func testUploadOfChangedFileWritesNothing(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	for _, size := range []int{100, 11 << 20} {
		u := localFile(t, "f", size, fmt.Sprintf("changed-%d", size))
		// The file changes after it was hashed: same size, other bytes.
		f, _ := os.OpenFile(u.Path, os.O_WRONLY, 0)
		f.WriteAt([]byte("CHANGED"), int64(size/2))
		f.Close()
		_, err := tb.Upload(ctx, u)
		if !errors.Is(err, scanner.ErrChanged) || !strings.Contains(err.Error(), "changed during upload, will retry next run") {
			t.Fatalf("size %d: got %v, want a changed-during-upload error", size, err)
		}
	}
	grown := localFile(t, "g", 100, "grown")
	os.WriteFile(grown.Path, make([]byte, 200), 0o644)
	if _, err := tb.Upload(ctx, grown); !errors.Is(err, scanner.ErrChanged) {
		t.Fatalf("grown file: got %v", err)
	}
	if objs := tb.objects(t); len(objs) != 0 {
		t.Fatalf("objects written: %v", objs)
	}
	noOrphanParts(t, tb)
	if st := tb.proxy.Stats(); st.ByOp["PutObject"] != 0 || st.ByOp["AbortMultipartUpload"] != 1 || st.ByOp["CompleteMultipartUpload"] != 0 {
		t.Fatalf("requests %v", st.ByOp)
	}
}

func TestCopyGivesNewMetadataWithoutUploading(t *testing.T) {
	onEachServer(t, testCopyGivesNewMetadataWithoutUploading)
}

func testCopyGivesNewMetadataWithoutUploading(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	u := localFile(t, "f", 1000, "dir/a file+with&odd=chars")
	if _, err := tb.Upload(ctx, u); err != nil {
		t.Fatal(err)
	}
	tb.proxy.Reset()
	moved := u.Object
	moved.Key, moved.MtimeNs, moved.Mode = "other/b", 1_700_000_000_123456789, 0o600
	if _, err := tb.Copy(ctx, u.Key, moved); err != nil {
		t.Fatal(err)
	}
	// A copy onto itself refreshes the metadata (a touch).
	self := u.Object
	self.MtimeNs = 1_600_000_000_000000001
	if _, err := tb.Copy(ctx, u.Key, self); err != nil {
		t.Fatal(err)
	}
	objs := tb.objects(t)
	if b := objs["other/b"]; scanner.Digest(blake3.Sum256(b.Body)) != u.Hash || b.Metadata[MetaMtime] != "1700000000.123456789" || b.Metadata[MetaMode] != "0600" {
		t.Errorf("copy: %d bytes, metadata %v", len(b.Body), b.Metadata)
	}
	if a := objs[u.Key]; a.Metadata[MetaMtime] != "1600000000.000000001" || scanner.Digest(blake3.Sum256(a.Body)) != u.Hash {
		t.Errorf("copy to self: metadata %v", a.Metadata)
	}
	if st := tb.proxy.Stats(); st.BytesUploaded != 0 || st.ByOp["CopyObject"] != 2 {
		t.Errorf("requests %v, %d bytes uploaded", st.ByOp, st.BytesUploaded)
	}
}

func TestDeleteBatch(t *testing.T) { onEachServer(t, testDeleteBatch) }

func testDeleteBatch(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	var keys []string
	for i := range 3 {
		u := localFile(t, "f", 10, fmt.Sprintf("k%d", i))
		if _, err := tb.Upload(ctx, u); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, u.Key)
	}
	failed, err := tb.Delete(ctx, append(keys[:2], "never-existed"))
	if err != nil || len(failed) != 0 {
		t.Fatalf("delete: %v %v", failed, err)
	}
	objs := tb.objects(t)
	if len(objs) != 1 || objs["k2"].Body == nil {
		t.Fatalf("left %v", objs)
	}
	if _, err := tb.Delete(ctx, make([]string, MaxDeleteBatch+1)); err == nil {
		t.Fatal("a batch over the limit must be refused")
	}
}

func TestFatalErrorsAreOneLineAndSayWhich(t *testing.T) {
	onEachServer(t, testFatalErrorsAreOneLineAndSayWhich)
}

func testFatalErrorsAreOneLineAndSayWhich(t *testing.T, g *s3test.Gateway) {
	ctx := context.Background()
	u := localFile(t, "f", 10, "k")
	closed := closedPort(t)
	for _, c := range []struct {
		name string
		cfg  func(*S3Config)
		want string
	}{
		{"missing bucket", func(c *S3Config) { c.Bucket = "no-such-bucket-here" }, `bucket "no-such-bucket-here" at http://127.0.0.1:`},
		{"bad secret", func(c *S3Config) {
			c.Credentials = credentials.NewStaticCredentialsProvider(g.AccessKey, "wrong-secret-value", "")
		}, "rejected the credentials"},
		{"unreachable", func(c *S3Config) { c.Endpoint = closed }, "cannot reach S3 at " + closed},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "bad secret" && g.Server == s3test.Moto {
				t.Skip("moto checks no signature: any secret is taken")
			}
			tb := newTestBucketOn(t, g, c.cfg)
			_, err := tb.Upload(ctx, u)
			if !IsFatal(err) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %q, want a one-line fatal error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), g.SecretKey) || strings.Contains(err.Error(), "wrong-secret-value") {
				t.Fatalf("secret in error: %q", err)
			}
		})
	}
}

// closedPort returns the URL of a loopback port that nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// Objects over the single-copy limit (5 GiB on S3; 6 MiB here) are copied
// in parts on the server: no byte goes through the client.
func TestCopyLargeObjectInParts(t *testing.T) { onEachServer(t, testCopyLargeObjectInParts) }

func testCopyLargeObjectInParts(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g, func(c *S3Config) { c.MaxSingleCopy, c.CopyPartSize = 6<<20, 5<<20 })
	ctx := context.Background()
	u := localFile(t, "big", 12<<20+5, "src/big")
	if _, err := tb.Upload(ctx, u); err != nil {
		t.Fatal(err)
	}
	tb.proxy.Reset()
	dst := u.Object
	dst.Key, dst.MtimeNs = "dst/big", 1_700_000_000_000000000
	if _, err := tb.Copy(ctx, u.Key, dst); err != nil {
		t.Fatal(err)
	}
	st := tb.proxy.Stats()
	if st.ByOp["UploadPartCopy"] != 3 || st.ByOp["CompleteMultipartUpload"] != 1 || st.BytesUploaded != 0 || st.ByOp["CopyObject"] != 0 {
		t.Fatalf("requests %v, %d bytes uploaded", st.ByOp, st.BytesUploaded)
	}
	o := tb.objects(t)["dst/big"]
	if scanner.Digest(blake3.Sum256(o.Body)) != u.Hash || o.Metadata[MetaMtime] != "1700000000.000000000" || o.Metadata[MetaBLAKE3] != u.Hash.String() {
		t.Fatalf("copy: %d bytes, metadata %v", len(o.Body), o.Metadata)
	}
}

// A file so large that 10,000 parts of the configured size do not hold it
// gets parts larger than the whole upload memory budget (above 1.28 TiB
// with the defaults). Such a part takes the whole budget instead of
// waiting forever for more than there is, which held the manifest's lock
// and refused every later run. Here the limit is 2 parts and the budget
// 4 × 5 MiB, so a 50 MiB file needs 25 MiB parts.
func TestUploadPartLargerThanTheMemoryBudget(t *testing.T) {
	tb := newTestBucket(t, func(c *S3Config) { c.Concurrency = 1 })
	tb.S3.maxParts = 2
	u := localFile(t, "huge", 50<<20, "huge")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := tb.Upload(ctx, u); err != nil {
		t.Fatal(err)
	}
	if st := tb.proxy.Stats(); st.ByOp["UploadPart"] != 2 {
		t.Fatalf("requests %v, want 2 parts", st.ByOp)
	}
	if o := tb.objects(t)["huge"]; scanner.Digest(blake3.Sum256(o.Body)) != u.Hash {
		t.Fatalf("object of %d bytes differs from the file", len(o.Body))
	}
}

// faultFS reads through scanner.OS and fails the read of a file once
// failAt bytes of it were read: a disk error in the middle of an upload.
type faultFS struct {
	scanner.OS
	failAt int64
}

var errDisk = errors.New("injected read error")

func (f faultFS) Open(p string) (scanner.File, error) {
	file, err := f.OS.Open(p)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, left: f.failAt}, nil
}

type faultFile struct {
	scanner.File
	left int64
}

func (f *faultFile) Read(b []byte) (int, error) {
	if f.left <= 0 {
		return 0, errDisk
	}
	n, err := f.File.Read(b[:min(int64(len(b)), f.left)])
	f.left -= int64(n)
	return n, err
}

// Upload reads the file through its FS: a symlink is refused unless the FS
// follows them, and a read error (injected through the FS) fails the upload
// with the path and writes nothing, in one PUT or in parts.
func TestUploadReadsThroughItsFS(t *testing.T) {
	tb := newTestBucket(t)
	ctx := context.Background()

	u := localFile(t, "target", 10, "link")
	link := filepath.Join(filepath.Dir(u.Path), "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	u.Path = link
	if _, err := tb.Upload(ctx, u); !errors.Is(err, unix.ELOOP) {
		t.Fatalf("symlink with the default FS: got %v, want ELOOP", err)
	}
	u.FS = scanner.OS{FollowSymlinks: true}
	if _, err := tb.Upload(ctx, u); err != nil {
		t.Fatalf("symlink with a following FS: %v", err)
	}

	for _, size := range []int{100, 11 << 20} {
		u := localFile(t, "f", size, fmt.Sprintf("unreadable-%d", size))
		u.FS = faultFS{failAt: int64(size) - 1}
		_, err := tb.Upload(ctx, u)
		if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), u.Path) {
			t.Fatalf("size %d: got %v, want the injected error with the path", size, err)
		}
	}
	if objs := tb.objects(t); len(objs) != 1 {
		t.Fatalf("objects: %v, want only the link's", objs)
	}
	noOrphanParts(t, tb)
}

// noOrphanParts fails the test if tb's bucket has multipart uploads left.
func noOrphanParts(t *testing.T, tb *testBucket) {
	t.Helper()
	ups, err := tb.gw.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(tb.name)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("orphan multipart uploads: %d", len(ups.Uploads))
	}
}
