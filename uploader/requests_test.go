package uploader

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// byOp is the proxy's count without the operations that saw no request.
func byOp(st s3test.Stats) map[string]int64 {
	out := map[string]int64{}
	for op, n := range st.ByOp {
		if n > 0 {
			out[op] = n
		}
	}
	return out
}

// The requests S3 counts are those the server saw, operation by operation,
// and its DryRun counts the same for the same calls without sending any:
// a single PUT, a multipart upload, a copy, a copy in parts, a metadata
// refresh too large to copy (no request), a delete batch.
func TestRequestsCountedAsSentAndAsADryRunPredicts(t *testing.T) {
	tb := newTestBucket(t, func(c *S3Config) { c.MaxSingleCopy, c.CopyPartSize = 6<<20, 5<<20 })
	ctx := context.Background()
	small := localFile(t, "small", 10, "p/small")
	big := localFile(t, "big", 12<<20+5, "p/big")
	calls := func(b Bucket) {
		t.Helper()
		for _, u := range []Upload{small, big} {
			if _, err := b.Upload(ctx, u); err != nil {
				t.Fatalf("upload %s: %v", u.Key, err)
			}
		}
		smallCopy, bigCopy := small.Object, big.Object
		smallCopy.Key, bigCopy.Key = "p/small2", "p/big2"
		if _, err := b.Copy(ctx, small.Key, smallCopy); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Copy(ctx, big.Key, bigCopy); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Copy(ctx, big.Key, big.Object); !errors.Is(err, ErrCopyTooLarge) {
			t.Fatalf("refresh of a large object: %v, want ErrCopyTooLarge", err)
		}
		if _, err := b.Delete(ctx, []string{"p/small2", "p/big2"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Check(ctx); err != nil {
		t.Fatal(err)
	}
	calls(tb.S3)
	sent, seen := tb.Requests(), byOp(tb.proxy.Stats())
	want := map[string]int64{"HeadBucket": 1, "PutObject": 1, "CreateMultipartUpload": 2, "UploadPart": 3,
		"CompleteMultipartUpload": 2, "CopyObject": 1, "UploadPartCopy": 3, "DeleteObjects": 1}
	if fmt.Sprint(sent.ByOp) != fmt.Sprint(want) || fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("requests counted %v, seen by the server %v, want %v", sent.ByOp, seen, want)
	}
	if sent.Bytes != small.Size+big.Size {
		t.Errorf("bytes sent %d, want %d", sent.Bytes, small.Size+big.Size)
	}

	dry := newTestBucket(t, func(c *S3Config) { c.MaxSingleCopy, c.CopyPartSize = 6<<20, 5<<20 })
	calls(dry.DryRun())
	if st := dry.proxy.Stats(); st.Requests != 0 {
		t.Fatalf("the dry run sent %v", st.ByOp)
	}
	delete(want, "HeadBucket") // the dry run's bucket check is a real request, not made here
	if got := dry.Requests(); fmt.Sprint(got.ByOp) != fmt.Sprint(want) || got.Bytes != sent.Bytes {
		t.Fatalf("dry run predicts %v, %d bytes; the real calls sent %v, %d bytes", got.ByOp, got.Bytes, sent.ByOp, sent.Bytes)
	}
}

// Every attempt counts: a PUT answered 500 once and then retried is two
// PutObject requests, as the server saw them.
func TestRequestsCountRetries(t *testing.T) {
	tb := newTestBucket(t, func(c *S3Config) { c.MaxAttempts, c.MaxBackoff = 3, 1 })
	var failed atomic.Bool
	tb.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" && failed.CompareAndSwap(false, true) {
			return &s3test.Fault{Status: 500, Code: "InternalError"}
		}
		return nil
	})
	if _, err := tb.Upload(context.Background(), localFile(t, "f", 100, "k")); err != nil {
		t.Fatal(err)
	}
	got, seen := tb.Requests().ByOp, byOp(tb.proxy.Stats())
	if got["PutObject"] != 2 || fmt.Sprint(got) != fmt.Sprint(seen) {
		t.Fatalf("requests counted %v, seen by the server %v, want 2 PutObject", got, seen)
	}
}

// A body sent aws-chunked (AWS over HTTPS, with a trailing checksum) is
// longer on the wire than the file content it carries: the content is
// what is counted, as the dry run counts it.
func TestContentBytesOfAnAWSChunkedBody(t *testing.T) {
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	req.ContentLength = 5<<20 + 86
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(5<<20))
	if got := contentBytes(req); got != 5<<20 {
		t.Errorf("aws-chunked: %d bytes counted, want %d", got, 5<<20)
	}
	plain := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	plain.ContentLength = 1234
	if got := contentBytes(plain); got != 1234 {
		t.Errorf("plain body: %d bytes counted, want 1234", got)
	}
}
