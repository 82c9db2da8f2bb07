package uploader

import (
	"context"
	"strconv"
	"sync"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// requestCounter counts the requests an S3 client sends, by operation. Its
// middleware sits at the end of the SDK's Finalize step, after the retryer
// and the signer, so it sees every attempt that goes out: retries count.
type requestCounter struct {
	mu sync.Mutex
	r  manifest.Requests
}

// add adds r to the counts.
func (c *requestCounter) add(r manifest.Requests) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r = c.r.Plus(r)
}

// snapshot is a copy of the counts.
func (c *requestCounter) snapshot() manifest.Requests {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r.Plus(manifest.Requests{})
}

// bodyOps are the operations whose request body is file content.
var bodyOps = map[string]bool{"PutObject": true, "UploadPart": true}

// middleware adds the counting step to an S3 client's stack.
func (c *requestCounter) middleware(stack *middleware.Stack) error {
	count := middleware.FinalizeMiddlewareFunc("cloudkeeperCountRequests",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			r := manifest.Requests{}
			op := middleware.GetOperationName(ctx)
			r.Add(op, 1)
			if req, ok := in.Request.(*smithyhttp.Request); ok && bodyOps[op] {
				r.Bytes = contentBytes(req)
			}
			c.add(r)
			return next.HandleFinalize(ctx, in)
		})
	return stack.Finalize.Add(count, middleware.After)
}

// contentBytes is the file content req carries: its body's length, or,
// for a body the SDK sends aws-chunked (with a trailing checksum, which
// AWS gets by default over HTTPS), the length it declares decoded.
func contentBytes(req *smithyhttp.Request) int64 {
	if v := req.Header.Get("X-Amz-Decoded-Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return max(req.ContentLength, 0)
}

// Requests are the requests b has sent so far, by operation, retries
// included, and the file content they carried; with the requests its
// DryRun would have sent.
func (b *S3) Requests() manifest.Requests { return b.requests.snapshot() }

// uploadRequests are the requests Upload sends for a file of size bytes
// when nothing fails: one PutObject, or a multipart upload. S3.Upload and
// DryRun.Upload both follow it.
func (b *S3) uploadRequests(size int64) manifest.Requests {
	r := manifest.Requests{Bytes: size}
	if !b.uploadsInParts(size) {
		r.Add("PutObject", 1)
		return r
	}
	r.Add("CreateMultipartUpload", 1)
	r.Add("UploadPart", partCount(size, b.uploadPartSize(size)))
	r.Add("CompleteMultipartUpload", 1)
	return r
}

// copyRequests are the requests Copy sends to copy from to o.Key when
// nothing fails (an error: it sends none); S3.Copy and DryRun.Copy both
// follow it.
func (b *S3) copyRequests(from string, o Object) (manifest.Requests, error) {
	var r manifest.Requests
	inParts, err := b.copiesInParts(from, o)
	switch {
	case err != nil:
		return r, err
	case inParts:
		r.Add("CreateMultipartUpload", 1)
		r.Add("UploadPartCopy", partCount(o.Size, b.copyPartSize(o.Size)))
		r.Add("CompleteMultipartUpload", 1)
	default:
		r.Add("CopyObject", 1)
	}
	return r, nil
}

// uploadsInParts reports whether a file of size bytes is uploaded in parts.
func (b *S3) uploadsInParts(size int64) bool { return size > b.partSize }

// uploadPartSize is the part size of a multipart upload of size bytes: the
// configured one, or larger if it would take more than maxParts parts.
func (b *S3) uploadPartSize(size int64) int64 {
	return max(b.partSize, (size+b.maxParts-1)/b.maxParts)
}

// copiesInParts reports whether copying from to o.Key takes a multipart
// copy, or an error if Copy refuses it (ErrCopyTooLarge).
func (b *S3) copiesInParts(from string, o Object) (bool, error) {
	if o.Size <= b.maxCopy {
		return false, nil
	}
	if from == o.Key {
		return false, ErrCopyTooLarge // a metadata refresh of a huge object is not worth a full copy
	}
	return true, nil
}

// copyPartSize is the part size of a multipart copy of size bytes.
func (b *S3) copyPartSize(size int64) int64 { return max(b.copyPart, (size+maxParts-1)/maxParts) }

// partCount is the number of parts of size bytes in parts of partSize.
func partCount(size, partSize int64) int64 { return (size + partSize - 1) / partSize }

// DryRun is the Bucket of a dry run: nothing is sent or written, no file
// is read, and every call succeeds, but each counts the requests its S3
// would send for the same call when nothing fails (S3.Requests), from the
// rules S3 follows itself; an Upload reads the manifest's record of an
// upload a killed run left (Upload.Resumes), which S3 would continue.
// Build it with S3.DryRun.
type DryRun struct{ s3 *S3 }

var _ Bucket = DryRun{}

// DryRun is the dry run's Bucket for b.
func (b *S3) DryRun() DryRun { return DryRun{s3: b} }

// Upload counts the upload's requests: with u.Resumes, those of
// continuing the upload a killed run left, from what the manifest
// recorded (see resumeRequests).
func (d DryRun) Upload(ctx context.Context, u Upload) (Written, error) {
	r := d.s3.uploadRequests(u.Size)
	var kept int64
	if u.Resumes != nil && d.s3.uploadsInParts(u.Size) {
		rec, ok, err := u.Resumes.PartialUpload(ctx, u.Key)
		if err != nil {
			return Written{}, err
		}
		if ok {
			r, kept = d.s3.resumeRequests(u, rec)
		}
	}
	d.s3.requests.add(r)
	return Written{Sent: u.Size - kept, Kept: kept}, nil
}

// resumeRequests are the requests Upload sends for u when the manifest
// records rec, an upload of its key a killed run left, and the bytes it
// does not send (kept). They are told from the record, without asking S3
// (a dry run sends nothing but its bucket check): rec is taken to hold
// the parts recorded. If rec may be continued (see resume), they are a
// ListParts, the parts not recorded and the Complete; if not, its abort
// and a whole upload.
func (b *S3) resumeRequests(u Upload, rec manifest.PartialUpload) (r manifest.Requests, kept int64) {
	partSize := b.uploadPartSize(u.Size)
	if rec.Same(u.stat(), u.Hash, partSize) {
		listed := map[int32]manifest.Part{}
		for _, p := range rec.Parts {
			listed[p.Number] = p
		}
		if parts, ok := keptParts(rec, listed, u.Size); ok {
			kept = keptBytes(parts)
			r = manifest.Requests{Bytes: u.Size - kept}
			r.Add("ListParts", 1)
			r.Add("UploadPart", partCount(u.Size, partSize)-int64(len(parts)))
			r.Add("CompleteMultipartUpload", 1)
			return r, kept
		}
	}
	r = b.uploadRequests(u.Size)
	r.Add("AbortMultipartUpload", 1)
	return r, 0
}

// Copy counts the copy's requests, or returns the error S3.Copy would
// return before sending any (ErrCopyTooLarge).
func (d DryRun) Copy(_ context.Context, from string, o Object) (Written, error) {
	r, err := d.s3.copyRequests(from, o)
	d.s3.requests.add(r)
	return Written{}, err
}

// Delete counts one DeleteObjects.
func (d DryRun) Delete(_ context.Context, keys []string) ([]KeyError, error) {
	if len(keys) > 0 {
		var r manifest.Requests
		r.Add("DeleteObjects", 1)
		d.s3.requests.add(r)
	}
	return nil, nil
}
