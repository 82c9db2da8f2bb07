package uploader

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// Versions is what reads a bucket's versioning and its old versions: a
// reconcile, to record the one and the ids of current objects, and a
// manifest rebuild, to write the history again. *S3 implements it.
type Versions interface {
	// Versioning asks the bucket's versioning status.
	Versioning(ctx context.Context) (manifest.VersioningStatus, error)
	// ListVersions calls fn for every version and delete marker under
	// prefix: by key, and within a key newest first; keys are untrusted.
	ListVersions(ctx context.Context, prefix string, fn func(ObjectVersion) error) error
	// HeadVersion is Head of one version of the object at key.
	HeadVersion(ctx context.Context, key, versionID string) (ObjectMeta, error)
}

var _ Versions = (*S3)(nil)

// ObjectVersion is one version of an object, or a delete marker, as a
// listing of versions shows it.
type ObjectVersion struct {
	Key          string // URL-decoded if the server encoded it; untrusted
	VersionID    string // as S3 answered it: "null" for a version written without versioning
	Latest       bool   // the key's current version (or delete marker)
	DeleteMarker bool
	Size         int64
	LastModified time.Time
	ETag         string // without quotes; "" for a delete marker
}

// Versioning asks the bucket's versioning status (GetBucketVersioning):
// one request.
func (b *S3) Versioning(ctx context.Context) (manifest.VersioningStatus, error) {
	if err := b.Check(ctx); err != nil {
		return "", err
	}
	out, err := b.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(b.bucket)})
	if err != nil {
		return "", b.opError("versioning of", "s3://"+b.bucket, err)
	}
	switch out.Status {
	case types.BucketVersioningStatusEnabled:
		return manifest.VersioningEnabled, nil
	case types.BucketVersioningStatusSuspended:
		return manifest.VersioningSuspended, nil
	}
	return manifest.VersioningNever, nil
}

// ListVersions calls fn for every version and delete marker whose key
// starts with prefix (ListObjectVersions, 1,000 a request), by key and,
// within a key, newest first. An error of fn ends the listing.
func (b *S3) ListVersions(ctx context.Context, prefix string, fn func(ObjectVersion) error) error {
	if err := b.Check(ctx); err != nil {
		return err
	}
	where := fmt.Sprintf("s3://%s/%s", b.bucket, prefix)
	in := &s3.ListObjectVersionsInput{Bucket: aws.String(b.bucket), Prefix: aws.String(prefix), EncodingType: types.EncodingTypeUrl, MaxKeys: aws.Int32(listPageSize)}
	for {
		out, err := b.client.ListObjectVersions(ctx, in)
		if err != nil {
			return b.opError("list versions of", where, err)
		}
		page, err := versionsPage(out)
		if err != nil {
			return fmt.Errorf("list versions of %s: %w", where, err)
		}
		for _, v := range page {
			if err := fn(v); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		key, id, err := nextVersionsMarker(out)
		if err != nil {
			return fmt.Errorf("list versions of %s: %w", where, err)
		}
		if key == "" || key == aws.ToString(in.KeyMarker) && id == aws.ToString(in.VersionIdMarker) {
			return fmt.Errorf("list versions of %s: the server says the listing goes on but gives no new place to go on from", where)
		}
		in.KeyMarker, in.VersionIdMarker = aws.String(key), aws.String(id)
	}
}

// nextVersionsMarker is where the listing goes on from: S3 URL-encodes
// NextKeyMarker too when it encodes the keys (EncodingType url), and takes
// KeyMarker as the key itself.
func nextVersionsMarker(out *s3.ListObjectVersionsOutput) (key, id string, err error) {
	key, err = listedKey(aws.ToString(out.NextKeyMarker), out.EncodingType)
	return key, aws.ToString(out.NextVersionIdMarker), err
}

// versionsPage is one page of ListObjectVersions, its versions and delete
// markers (which the SDK gives apart) merged back into S3's order: by key,
// newest first, the latest first of all.
func versionsPage(out *s3.ListObjectVersionsOutput) ([]ObjectVersion, error) {
	var page []ObjectVersion
	add := func(key, id *string, latest *bool, modified *time.Time, v ObjectVersion) error {
		k, err := listedKey(aws.ToString(key), out.EncodingType)
		if err != nil {
			return err
		}
		v.Key, v.VersionID, v.Latest = k, aws.ToString(id), aws.ToBool(latest)
		if modified != nil {
			v.LastModified = *modified
		}
		page = append(page, v)
		return nil
	}
	for _, o := range out.Versions {
		if err := add(o.Key, o.VersionId, o.IsLatest, o.LastModified, ObjectVersion{Size: aws.ToInt64(o.Size), ETag: unquote(o.ETag)}); err != nil {
			return nil, err
		}
	}
	for _, d := range out.DeleteMarkers {
		if err := add(d.Key, d.VersionId, d.IsLatest, d.LastModified, ObjectVersion{DeleteMarker: true}); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(page, func(a, b ObjectVersion) int {
		if c := cmp.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		if a.Latest != b.Latest {
			if a.Latest {
				return -1
			}
			return 1
		}
		return b.LastModified.Compare(a.LastModified)
	})
	return page, nil
}

// HeadVersion is Head of one version of the object at key ("": the
// current one).
func (b *S3) HeadVersion(ctx context.Context, key, versionID string) (ObjectMeta, error) {
	if err := b.Check(ctx); err != nil {
		return ObjectMeta{}, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key), VersionId: versionParam(versionID)})
	if err != nil {
		return ObjectMeta{}, b.readError("head", versionedKey(key, versionID), err)
	}
	m := parseMeta(aws.ToInt64(out.ContentLength), out.Metadata)
	m.VersionID = versionOf(out.VersionId)
	return m, nil
}

// versionParam is a request's VersionId: none for "", the current
// version.
func versionParam(versionID string) *string {
	if versionID == "" {
		return nil
	}
	return aws.String(versionID)
}

// versionedKey names one version of key in messages.
func versionedKey(key, versionID string) string {
	if versionID == "" {
		return key
	}
	return key + " version " + versionID
}
