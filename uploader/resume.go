package uploader

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// resume returns the upload recorded for u.Key if it may be continued, and
// the parts of it that S3 holds as recorded; "" if there is none to
// continue. It is continued only for the same file (size, mtime, mode,
// inode, device), content (the scan's hash) and part size, and only if
// S3's parts are the recorded ones; a recorded upload that is not
// continued is aborted and forgotten here, before another one is started.
func (b *S3) resume(ctx context.Context, u Upload, partSize int64) (string, map[int32]manifest.Part, error) {
	if u.Resumes == nil {
		return "", nil, nil
	}
	rec, ok, err := u.Resumes.PartialUpload(ctx, u.Key)
	if err != nil || !ok {
		return "", nil, err
	}
	if rec.Same(u.stat(), u.Hash, partSize) {
		listed, err := b.listParts(ctx, u.Key, rec.UploadID)
		if err != nil && !isNoSuchUpload(err) {
			return "", nil, b.opError("list the parts of", u.Key, err)
		}
		if err == nil {
			if kept, ok := keptParts(rec, listed, u.Size); ok {
				return rec.UploadID, kept, nil
			}
		}
	}
	if err := b.sendAbort(ctx, u.Key, rec.UploadID); err != nil {
		return "", nil, b.opError(fmt.Sprintf("abort multipart upload %s of", rec.UploadID), u.Key, err)
	}
	return "", nil, u.Resumes.ForgetUpload(ctx, u.Key, rec.UploadID)
}

// AbortStaleUpload aborts and forgets rec, the multipart upload an
// interrupted run left, unless the file now at its path (st, ok false if
// there is none) is the one it sends and would be uploaded in parts of the
// same size: only such an upload can be continued. It must go before this
// run writes the key another way (one PutObject, a copy, a delete), or a
// Complete of the killed run still on its way could land over that write.
// It reports whether it aborted.
func (b *S3) AbortStaleUpload(ctx context.Context, db *manifest.DB, rec manifest.PartialUpload, st scanner.Stat, ok bool) (bool, error) {
	if ok && rec.SameFile(st) && b.uploadsInParts(st.Size) && b.uploadPartSize(st.Size) == rec.PartSize {
		return false, nil
	}
	if err := b.sendAbort(ctx, rec.Key, rec.UploadID); err != nil {
		return false, b.opError(fmt.Sprintf("abort multipart upload %s of", rec.UploadID), rec.Key, err)
	}
	return true, db.ForgetUpload(ctx, rec.Key, rec.UploadID)
}

// stat is the file's stat as an upload records it: its size is the
// upload's.
func (u Upload) stat() scanner.Stat {
	st := u.Stat
	st.Size = u.Size
	return st
}

// keptParts are the recorded parts of rec that S3 lists as recorded. ok is
// false if a part is not where the recorded upload's layout puts it, or S3
// lists one with another size or ETag than recorded: the upload holds
// bytes this run does not know, and starts over. A part S3 lists but the
// manifest does not know (a kill before its record) is sent again.
func keptParts(rec manifest.PartialUpload, listed map[int32]manifest.Part, size int64) (map[int32]manifest.Part, bool) {
	kept := map[int32]manifest.Part{}
	for _, p := range rec.Parts {
		want := min(rec.PartSize, size-int64(p.Number-1)*rec.PartSize)
		if p.Number < 1 || want <= 0 || p.Size != want {
			return nil, false
		}
		l, ok := listed[p.Number]
		if !ok {
			continue // not there (any more): sent again
		}
		if l.Size != p.Size || l.ETag != p.ETag {
			return nil, false
		}
		kept[p.Number] = p
	}
	return kept, true
}

// keptBytes is the size of the parts kept.
func keptBytes(kept map[int32]manifest.Part) int64 {
	var n int64
	for _, p := range kept {
		n += p.Size
	}
	return n
}

// listParts lists the parts S3 holds of an upload, by number.
func (b *S3) listParts(ctx context.Context, key, uploadID string) (map[int32]manifest.Part, error) {
	parts := map[int32]manifest.Part{}
	in := &s3.ListPartsInput{Bucket: aws.String(b.bucket), Key: aws.String(key), UploadId: aws.String(uploadID)}
	for {
		out, err := b.client.ListParts(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, p := range out.Parts {
			n := aws.ToInt32(p.PartNumber)
			parts[n] = manifest.Part{Number: n, Size: aws.ToInt64(p.Size), ETag: unquote(p.ETag)}
		}
		if !aws.ToBool(out.IsTruncated) {
			return parts, nil
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
}

// createUpload starts a multipart upload of u, with the retention it asked
// for, and records it.
func (b *S3) createUpload(ctx context.Context, u Upload, partSize int64) (string, retention, error) {
	lock := b.retention()
	created, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:         aws.String(b.bucket),
		Key:            aws.String(u.Key),
		Metadata:       u.Metadata(),
		ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: lock.until,
		ServerSideEncryption: b.enc.sse, SSEKMSKeyId: b.enc.kmsKey, StorageClass: b.enc.class,
	})
	if err != nil {
		return "", lock, b.opError("upload", u.Key, err)
	}
	uploadID := aws.ToString(created.UploadId)
	if u.Resumes != nil {
		rec := manifest.PartialUpload{Key: u.Key, UploadID: uploadID, File: u.stat(), Hash: u.Hash, PartSize: partSize}
		if err := u.Resumes.StartUpload(ctx, rec); err != nil {
			b.abort(ctx, u.Key, created.UploadId, &err)
			return "", lock, err
		}
	}
	return uploadID, lock, nil
}

// abortRecorded aborts u's upload, adding its failure to *err, and forgets
// its record once it is aborted.
func (b *S3) abortRecorded(ctx context.Context, u Upload, uploadID string, err *error) {
	aerr := b.sendAbort(ctx, u.Key, uploadID)
	if aerr != nil {
		*err = fmt.Errorf("%w (and aborting the multipart upload %s failed: %v)", *err, uploadID, aerr)
		return
	}
	if u.Resumes != nil {
		if ferr := u.Resumes.ForgetUpload(context.WithoutCancel(ctx), u.Key, uploadID); ferr != nil {
			*err = errors.Join(*err, ferr)
		}
	}
}

// rereadPart reads part p of u from r, which hashes the whole file, and
// checks that its bytes are those S3 holds: that their MD5 is the one
// recorded when the part was sent (S3 listing the recorded ETag says its
// part is that one). A part recorded without its MD5 (by an older
// cloudkeeper) is checked against its ETag if that looks like an MD5, as
// a single PUT's is (not with SSE-KMS or SSE-C: then it is not checked).
func rereadPart(r io.Reader, u Upload, p manifest.Part) error {
	h := md5.New()
	if _, err := io.CopyN(h, r, p.Size); err != nil {
		if errors.Is(err, io.EOF) {
			return changedError{u.Path}
		}
		return fmt.Errorf("read %s: %w", u.Path, err)
	}
	want := p.MD5
	if want == "" && isMD5(p.ETag) {
		want = p.ETag
	}
	if want != "" && !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), want) {
		return fmt.Errorf("%s: part %d of the multipart upload of %s holds other bytes than the file: aborted, the next run starts over", u.Path, p.Number, u.Key)
	}
	return nil
}

// isMD5 reports whether an ETag looks like an MD5 in hex.
func isMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// AbortLeftUploads aborts the multipart uploads the manifest still records
// at the end of a run, and forgets them: uploads a killed run left that
// this run did not continue (the file is gone, excluded, or no longer
// needs uploading). It returns how many it aborted; one whose abort fails
// stays recorded, for the next run, and is told to warn.
func AbortLeftUploads(ctx context.Context, db *manifest.DB, b *S3, warn func(key string, err error)) (int, error) {
	ups, err := db.PartialUploads(ctx)
	if err != nil || len(ups) == 0 {
		return 0, err
	}
	if err := b.Check(ctx); err != nil {
		return 0, err
	}
	n := 0
	for _, u := range ups {
		if err := b.sendAbort(ctx, u.Key, u.UploadID); err != nil {
			warn(u.Key, b.opError(fmt.Sprintf("abort multipart upload %s of", u.UploadID), u.Key, err))
			continue
		}
		if err := db.ForgetUpload(context.WithoutCancel(ctx), u.Key, u.UploadID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
