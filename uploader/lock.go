package uploader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// retention is the Object Lock retention of one write: none (the zero
// value), or mode until a time.
type retention struct {
	mode  types.ObjectLockMode
	until *time.Time
}

// retention is what a write sent now asks for: S3Config.Lock from now.
func (b *S3) retention() retention {
	if b.lock <= 0 {
		return retention{}
	}
	until := time.Now().Add(b.lock).UTC().Truncate(time.Second)
	return retention{mode: b.lockMode, until: &until}
}

// written is w with the retention its write asked for.
func (r retention) written(w Written) Written {
	if r.until != nil {
		w.RetainUntil = *r.until
	}
	return w
}

// checkLock makes sure, with --lock, that the bucket has Object Lock
// enabled: without, S3 refuses every write that asks for a retention (or,
// for some servers, ignores it).
func (b *S3) checkLock(ctx context.Context) error {
	if b.lock <= 0 {
		return nil
	}
	out, err := b.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(b.bucket)})
	var ae smithy.APIError
	if err != nil && !(errors.As(err, &ae) && ae.ErrorCode() == "ObjectLockConfigurationNotFoundError") {
		return &FatalError{Msg: fmt.Sprintf("bucket %s at %s: could not read its Object Lock configuration, which --lock needs", b.bucket, b.where), Err: err}
	}
	if err != nil || out.ObjectLockConfiguration == nil || out.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return &FatalError{Msg: fmt.Sprintf("bucket %s has no Object Lock: --lock needs a bucket created with Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket); use another bucket or leave --lock / CLOUDKEEPER_LOCK off", b.bucket)}
	}
	return nil
}

// VersionRef is one version of an object: its key and S3's version id
// ("": the object at the key, as a history copy in a bucket without
// versioning is).
type VersionRef struct {
	Key, VersionID string
}

// VersionError is a version S3 did not delete. Locked reports a refusal
// for the version's Object Lock retention (AccessDenied); Gone one for a
// version S3 does not have (NoSuchVersion).
type VersionError struct {
	VersionRef
	Err          error
	Locked, Gone bool
}

func (e VersionError) Error() string {
	return fmt.Sprintf("%s (version %s): %v", e.Key, e.VersionID, e.Err)
}

// DeleteVersions deletes up to MaxDeleteBatch versions with one
// DeleteObjects request, and returns those S3 did not delete. A version
// S3 no longer holds counts as deleted: S3 answers so.
func (b *S3) DeleteVersions(ctx context.Context, refs []VersionRef) ([]VersionError, error) {
	objs := make([]types.ObjectIdentifier, len(refs))
	for i, r := range refs {
		objs[i] = types.ObjectIdentifier{Key: aws.String(r.Key)}
		if r.VersionID != "" {
			objs[i].VersionId = aws.String(r.VersionID)
		}
	}
	errs, err := b.deleteObjects(ctx, objs)
	var failed []VersionError
	for _, e := range errs {
		code := aws.ToString(e.Code)
		failed = append(failed, VersionError{
			VersionRef: VersionRef{Key: aws.ToString(e.Key), VersionID: aws.ToString(e.VersionId)},
			Err:        fmt.Errorf("%s: %s", code, aws.ToString(e.Message)),
			Locked:     code == "AccessDenied",
			Gone:       code == "NoSuchVersion" || code == "NoSuchKey",
		})
	}
	return failed, err
}

// VersionGone reports whether S3 no longer has the version at ref (a HEAD
// of it answers 404): deleted by an earlier request, or expired by the
// bucket's lifecycle rules. Servers differ in how they refuse the delete
// of a version they do not have (Versity: InvalidArgument), so a refusal
// is checked this way.
func (b *S3) VersionGone(ctx context.Context, ref VersionRef) (bool, error) {
	if err := b.Check(ctx); err != nil {
		return false, err
	}
	in := &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(ref.Key)}
	if ref.VersionID != "" {
		in.VersionId = aws.String(ref.VersionID)
	}
	_, err := b.client.HeadObject(ctx, in)
	switch err := b.readError("head", ref.Key+" version "+ref.VersionID, err); {
	case err == nil:
		return false, nil
	case errors.Is(err, ErrNotFound):
		return true, nil
	default:
		return false, err
	}
}
