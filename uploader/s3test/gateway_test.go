package s3test_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// newProxy starts a proxy in front of g, closed when the test ends, and a
// client that goes through it and never retries, so that each call is
// exactly one request.
func newProxy(t *testing.T, g *s3test.Gateway) (*s3test.Proxy, *s3.Client) {
	t.Helper()
	p, err := s3test.NewProxy(g.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	c := g.Client(func(o *s3.Options) {
		o.BaseEndpoint = aws.String(p.URL)
		o.RetryMaxAttempts = 1
	})
	return p, c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// apiError returns err's S3 error code and HTTP status, or fails the test.
func apiError(t *testing.T, err error) (code string, status int) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) {
		t.Fatalf("got %v, want an S3 API error", err)
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	return api.ErrorCode(), status
}

func TestProxyCountsAndFaults(t *testing.T) {
	ctx := context.Background()
	g := gwtest.Start(t)
	bucket := gwtest.Bucket(t, g)
	p, c := newProxy(t, g)

	// PutObject with user metadata, read back through the proxy. The body
	// is above the SDK's 2 MiB Expect: 100-continue threshold, which the
	// proxy must pass through too.
	body := randomBytes(3<<20 + 17)
	meta := map[string]string{"blake3": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", "mtime-ns": "1700000000123456789"}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("dir/file one+€.bin"), Body: bytes.NewReader(body), Metadata: meta,
	}); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Requests != 1 || st.ByOp["PutObject"] != 1 || st.BytesUploaded != int64(len(body)) {
		t.Errorf("after PutObject: %+v, want 1 PutObject of %d bytes", st, len(body))
	}

	got := gwtest.Objects(t, c, bucket, "dir/")
	if len(got) != 1 {
		t.Fatalf("objects: %v keys, want 1", len(got))
	}
	obj := got["dir/file one+€.bin"]
	if !bytes.Equal(obj.Body, body) {
		t.Errorf("body read back differs (%d bytes, want %d)", len(obj.Body), len(body))
	}
	for k, v := range meta {
		if obj.Metadata[k] != v {
			t.Errorf("Metadata[%q] = %q, want %q (all: %v)", k, obj.Metadata[k], v, obj.Metadata)
		}
	}
	st = p.Stats()
	if st.ByOp["ListObjectsV2"] != 1 || st.ByOp["GetObject"] != 1 || st.BytesUploaded != int64(len(body)) {
		t.Errorf("after reading back: %+v, want 1 ListObjectsV2, 1 GetObject, no more bytes", st)
	}

	// CopyObject and DeleteObjects, classified and moving no counted bytes.
	p.Reset()
	if _, err := c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &bucket, Key: aws.String("copy"), CopySource: aws.String(bucket + "/dir/file%20one%2B%E2%82%AC.bin"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{
		Objects: []types.ObjectIdentifier{{Key: aws.String("copy")}, {Key: aws.String("dir/file one+€.bin")}},
	}}); err != nil {
		t.Fatal(err)
	}
	st = p.Stats()
	if want := map[string]int64{"CopyObject": 1, "DeleteObjects": 1}; st.Requests != 2 || !equalCounts(st.ByOp, want) || st.BytesUploaded != 0 {
		t.Errorf("after copy and delete: %+v, want %v and no bytes", st, want)
	}
	if left := gwtest.Objects(t, c, bucket, ""); len(left) != 0 {
		t.Errorf("objects left after DeleteObjects: %v", len(left))
	}

	// A 503 SlowDown reaches the SDK as that error, and nothing is stored.
	p.Reset()
	p.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" {
			return &s3test.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}
		}
		return nil
	})
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("slow"), Body: bytes.NewReader(body)})
	if code, status := apiError(t, err); code != "SlowDown" || status != 503 {
		t.Errorf("faulted PutObject: code %q status %d, want SlowDown 503", code, status)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("slow")}); err == nil {
		t.Error("faulted PutObject reached the gateway")
	}
	st = p.Stats()
	if st.Requests != 2 || st.ByOp["PutObject"] != 1 || st.ByOp["HeadObject"] != 1 || st.BytesUploaded != 0 {
		t.Errorf("after fault: %+v, want the faulted PutObject counted but no bytes", st)
	}

	// Without a fault, the same request goes through again.
	p.SetFault(nil)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("slow"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

func TestProxyFaultKinds(t *testing.T) {
	ctx := context.Background()
	g := gwtest.Start(t)
	bucket := gwtest.Bucket(t, g)
	p, c := newProxy(t, g)
	put := func(c *s3.Client, key string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader("data")})
		return err
	}

	t.Run("ResetConnection", func(t *testing.T) {
		p.SetFault(func(*http.Request) *s3test.Fault { return &s3test.Fault{Reset: true} })
		defer p.SetFault(nil)
		err := put(c, "reset")
		var api smithy.APIError
		if err == nil || errors.As(err, &api) {
			t.Fatalf("PutObject over a reset connection: %v, want a transport error", err)
		}
	})

	// Answered runs once the target applied the request and its answer
	// is on its way: the object is there when it is called. The client
	// may have its answer before the call, so the test waits for it.
	t.Run("Answered", func(t *testing.T) {
		answered := make(chan error, 2)
		p.SetFault(func(r *http.Request) *s3test.Fault {
			if s3test.Operation(r) != "PutObject" {
				return nil
			}
			return &s3test.Fault{Answered: func() {
				_, err := g.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("answered")})
				answered <- err
			}}
		})
		defer p.SetFault(nil)
		if err := put(c, "answered"); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-answered:
			if err != nil {
				t.Fatalf("when Answered was called the object was not there: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Answered was not called")
		}
		if len(answered) != 0 {
			t.Fatal("Answered called twice for one request")
		}
	})

	t.Run("DefaultCode", func(t *testing.T) {
		p.SetFault(func(*http.Request) *s3test.Fault { return &s3test.Fault{Status: 500} })
		defer p.SetFault(nil)
		if code, status := apiError(t, put(c, "500")); code != "InternalError" || status != 500 {
			t.Errorf("got %s %d, want InternalError 500", code, status)
		}
	})

	t.Run("Delay", func(t *testing.T) {
		const delay = 300 * time.Millisecond
		p.SetFault(func(*http.Request) *s3test.Fault { return &s3test.Fault{Delay: delay} })
		defer p.SetFault(nil)
		start := time.Now()
		if err := put(c, "delayed"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < delay {
			t.Errorf("delayed PutObject took %v, want at least %v", d, delay)
		}
	})

	t.Run("RetriedBySDK", func(t *testing.T) {
		// The first attempt fails, the SDK's standard retryer retries,
		// and the proxy sees both attempts.
		var n atomic.Int32
		p.SetFault(func(r *http.Request) *s3test.Fault {
			if s3test.Operation(r) == "PutObject" && n.Add(1) == 1 {
				return &s3test.Fault{Status: 503, Code: "SlowDown"}
			}
			return nil
		})
		defer p.SetFault(nil)
		p.Reset()
		retrying := g.Client(func(o *s3.Options) { o.BaseEndpoint = aws.String(p.URL) })
		if err := put(retrying, "retried"); err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.ByOp["PutObject"] != 2 || st.BytesUploaded != 4 {
			t.Errorf("stats %+v, want 2 PutObject attempts and 4 bytes forwarded", st)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		p.Reset()
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if err := put(c, "concurrent/"+string(rune('a'+i))); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if st := p.Stats(); st.Requests != 16 || st.ByOp["PutObject"] != 16 || st.BytesUploaded != 16*4 {
			t.Errorf("stats %+v, want 16 PutObject of 4 bytes", st)
		}
	})
}

func equalCounts(got, want map[string]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestOperation sends each kind of request with the real SDK through the
// proxy and checks how the proxy names it.
func TestOperation(t *testing.T) {
	ctx := context.Background()
	g := gwtest.Start(t)
	bucket := gwtest.Bucket(t, g)
	p, c := newProxy(t, g)
	key := "a dir/obj+1 ü?.txt"
	copySource := bucket + "/a%20dir/obj%2B1%20%C3%BC%3F.txt" // URL-encoded, as S3 wants
	part := randomBytes(5 << 20)                              // every part but the last must be >= 5 MiB
	var uploadID, abortID *string
	var etag1, etag2 *string
	other := bucket + "-x"

	steps := []struct {
		op    string
		bytes int
		call  func() error
	}{
		{"ListBuckets", 0, func() error { _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); return err }},
		{"CreateBucket", 0, func() error { _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &other}); return err }},
		{"HeadBucket", 0, func() error { _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); return err }},
		{"PutObject", 5, func() error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("hello")})
			return err
		}},
		{"HeadObject", 0, func() error { _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key}); return err }},
		{"GetObject", 0, func() error {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
			if err == nil {
				_, err = io.Copy(io.Discard, out.Body)
				out.Body.Close()
			}
			return err
		}},
		{"CopyObject", 0, func() error {
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("copy"), CopySource: &copySource})
			return err
		}},
		{"ListObjectsV2", 0, func() error { _, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket}); return err }},
		{"ListObjects", 0, func() error {
			_, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: &bucket, Prefix: aws.String("a ")})
			return err
		}},
		{"CreateMultipartUpload", 0, func() error {
			out, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String("mp")})
			if err == nil {
				uploadID = out.UploadId
			}
			return err
		}},
		{"UploadPart", len(part), func() error {
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: aws.String("mp"), UploadId: uploadID, PartNumber: aws.Int32(1), Body: bytes.NewReader(part)})
			if err == nil {
				etag1 = out.ETag
			}
			return err
		}},
		{"UploadPartCopy", 0, func() error {
			out, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &bucket, Key: aws.String("mp"), UploadId: uploadID, PartNumber: aws.Int32(2), CopySource: &copySource})
			if err == nil {
				etag2 = out.CopyPartResult.ETag
			}
			return err
		}},
		{"ListParts", 0, func() error {
			_, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: &bucket, Key: aws.String("mp"), UploadId: uploadID})
			return err
		}},
		{"ListMultipartUploads", 0, func() error {
			_, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
			return err
		}},
		{"CompleteMultipartUpload", 0, func() error {
			_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &bucket, Key: aws.String("mp"), UploadId: uploadID,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
					{ETag: etag1, PartNumber: aws.Int32(1)}, {ETag: etag2, PartNumber: aws.Int32(2)},
				}}})
			return err
		}},
		{"CreateMultipartUpload", 0, func() error {
			out, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String("aborted")})
			if err == nil {
				abortID = out.UploadId
			}
			return err
		}},
		{"AbortMultipartUpload", 0, func() error {
			_, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: aws.String("aborted"), UploadId: abortID})
			return err
		}},
		{"GetBucketVersioning", 0, func() error {
			_, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &bucket})
			return err
		}},
		{"ListObjectVersions", 0, func() error {
			_, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket})
			return err
		}},
		{"Other", 0, func() error { // PutObjectTagging
			_, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: &bucket, Key: &key, Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}})
			return err
		}},
		{"Other", 0, func() error { // GetObjectTagging
			_, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: &bucket, Key: &key})
			return err
		}},
		{"DeleteObject", 0, func() error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
			return err
		}},
		{"DeleteObjects", 0, func() error {
			_, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String("mp")}, {Key: aws.String("copy")}}}})
			return err
		}},
		{"DeleteBucket", 0, func() error { _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &other}); return err }},
	}
	for i, s := range steps {
		p.Reset()
		if err := s.call(); err != nil {
			t.Fatalf("step %d (%s): %v", i, s.op, err)
		}
		st := p.Stats()
		if st.Requests != 1 || st.ByOp[s.op] != 1 || st.BytesUploaded != int64(s.bytes) {
			t.Errorf("step %d: stats %+v, want one %s and %d bytes uploaded", i, st, s.op, s.bytes)
		}
	}
	if objs := gwtest.Objects(t, c, bucket, ""); len(objs) != 0 {
		t.Errorf("%d objects left", len(objs))
	}
}

func TestStartStop(t *testing.T) {
	ctx := context.Background()
	g, err := s3test.Start(ctx, s3test.Options{AccessKey: "AKIDCLOUDKEEPERTEST", SecretKey: "cloudkeeper-test-secret", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if g.AccessKey != "AKIDCLOUDKEEPERTEST" || g.SecretKey != "cloudkeeper-test-secret" || g.Region != "us-east-1" ||
		!strings.HasPrefix(g.Endpoint, "http://127.0.0.1:") {
		t.Errorf("gateway %+v", g)
	}
	if err := g.CreateBucket(ctx, "bucket-one"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(g.Root, "bucket-one")); err != nil || !fi.IsDir() {
		t.Errorf("bucket folder: %v", err)
	}
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(g.Root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary root left behind: %v", err)
	}
	if _, err := http.Get(g.Endpoint); err == nil {
		t.Error("gateway still answers after Stop")
	}
}

// TestPersistentRoot: a caller-chosen root outlives the gateway, and a new
// gateway on it serves the same objects with their metadata.
func TestPersistentRoot(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	opts := s3test.Options{Root: root, AccessKey: "AKIDCLOUDKEEPERTEST", SecretKey: "cloudkeeper-test-secret"}
	g, err := s3test.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if err := g.CreateBucket(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("keep"), Key: aws.String("a/b"), Body: strings.NewReader("kept"), Metadata: map[string]string{"blake3": "x"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "keep", "a", "b")); err != nil || string(b) != "kept" {
		t.Fatalf("object file after Stop: %q, %v", b, err)
	}

	g2, err := s3test.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Stop()
	got := gwtest.Objects(t, g2.Client(), "keep", "")
	if o := got["a/b"]; len(got) != 1 || string(o.Body) != "kept" || o.Metadata["blake3"] != "x" {
		t.Errorf("objects on restart: %+v", got)
	}
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, script string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailureQuotesLog(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "broken-versitygw")
	writeScript(t, bin, "echo 'posix: something is badly wrong' >&2\nexit 3\n")
	_, err := s3test.Start(context.Background(), s3test.Options{Binary: bin})
	if err == nil || !strings.Contains(err.Error(), "something is badly wrong") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Start with a failing binary: %v, want the exit status and log tail", err)
	}
}

// TestStartRetriesTakenPort: when the port is taken between Start's probe
// and the gateway's bind, Start tries another one.
func TestStartRetriesTakenPort(t *testing.T) {
	realBin, err := s3test.Find(context.Background(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "versitygw")
	writeScript(t, bin, `if [ ! -e "$0.failed" ]; then
	: > "$0.failed"
	echo 'failed to bind listener: listen tcp 127.0.0.1:1: bind: address already in use' >&2
	exit 1
fi
exec '`+realBin+`' "$@"
`)
	g, err := s3test.Start(context.Background(), s3test.Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if _, err := os.Stat(bin + ".failed"); err != nil {
		t.Error("the first launch did not happen")
	}
	if err := g.CreateBucket(context.Background(), "after-retry"); err != nil {
		t.Error(err)
	}
}
