package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Reading the bucket back: listings and the metadata cloudkeeper wrote,
// for verify, restore and rebuilding the manifest. Everything read here
// comes from the server and is untrusted: keys may be anything, metadata
// may be missing or malformed.

// Reader is what restore, verify and a manifest rebuild read of the
// bucket: a listing, and each object's metadata or content. *S3 is the
// implementation; the contract every implementation keeps is tested
// against the real gateway (reader_test.go), and a fake of it serves the
// unit tests of the packages above.
type Reader interface {
	// List calls fn for every object whose key starts with prefix, in
	// the order the server lists them; keys are untrusted. An error of
	// fn ends the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Head returns the size and metadata of the object at key; a
	// missing key is an error wrapping ErrNotFound.
	Head(ctx context.Context, key string) (ObjectMeta, error)
	// Get returns the content of the object at key, to read and close,
	// with its size and metadata; errors are those of Head.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectMeta, error)
}

var _ Reader = (*S3)(nil)

// ObjectInfo is an object as a listing shows it.
type ObjectInfo struct {
	Key          string // as stored, URL-decoded if the server encoded it; untrusted
	Size         int64
	LastModified time.Time
	ETag         string // without its quotes
}

// ObjectMeta is what HeadObject or GetObject tell of an object: its size
// and its metadata (x-amz-meta-blake3, -mtime, -mode), parsed. Each value
// comes with an error that says why it is not usable (missing or
// malformed); the value is valid only when its error is nil.
type ObjectMeta struct {
	Size     int64
	Hash     scanner.Digest
	HashErr  error
	MtimeNs  int64
	MtimeErr error
	Mode     fs.FileMode
	ModeErr  error
	// VersionID is the object's version, in a bucket with versioning;
	// "" without.
	VersionID string
	// Metadata is all of the object's x-amz-meta-*, by lower-case name
	// without the prefix: a history copy's (HistoryOf) among them.
	Metadata map[string]string
	// Link is, for a symlink's object (x-amz-meta-symlink), its target;
	// IsLink says it is one, LinkErr why its target is not usable.
	Link    string
	IsLink  bool
	LinkErr error
}

// Err returns the first of HashErr, MtimeErr, ModeErr and LinkErr that is not nil:
// nil means the object describes itself completely.
func (m ObjectMeta) Err() error {
	for _, err := range []error{m.HashErr, m.MtimeErr, m.ModeErr, m.LinkErr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Entry is the manifest row of the object at path as it describes
// itself: its size, and its hash, mtime and mode where its metadata has
// them (a zero hash otherwise, which no file has, so the file is uploaded
// again), with no stat of a local file, so that the diff hashes the file.
func (m ObjectMeta) Entry(path string) manifest.Entry {
	e := manifest.Entry{Path: path, Stat: scanner.Stat{Size: m.Size}, VersionID: m.VersionID}
	if m.HashErr == nil {
		e.Hash = m.Hash
	}
	if m.MtimeErr == nil {
		e.Stat.MtimeNs = m.MtimeNs
	}
	if m.ModeErr == nil {
		e.Stat.Mode = m.Mode
	}
	if m.IsLink {
		e.Stat.Mode |= fs.ModeSymlink // manifest.Entry.IsLink
	}
	return e
}

// ErrNotFound is a key the bucket does not have.
var ErrNotFound = errors.New("no such key")

// listPageSize is how many keys a ListObjectsV2 request asks for: S3's
// maximum.
const listPageSize = 1000

// List calls fn for every object whose key starts with prefix, page by
// page (ListObjectsV2), in the order the server lists them. It asks for
// URL-encoded keys (which S3 needs to list keys that XML cannot carry) and
// decodes them if the server did encode them; servers that ignore the
// request send keys as they are. Keys are untrusted: a server could even
// return one outside prefix. An error of fn ends the listing and is
// returned.
func (b *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return b.list(ctx, prefix, listPageSize, fn)
}

// HasObjects reports whether any object's key starts with prefix: one
// request for one key.
func (b *S3) HasObjects(ctx context.Context, prefix string) (bool, error) {
	found := false
	errFound := errors.New("found")
	err := b.list(ctx, prefix, 1, func(ObjectInfo) error {
		found = true
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return false, err
	}
	return found, nil
}

func (b *S3) list(ctx context.Context, prefix string, pageSize int32, fn func(ObjectInfo) error) error {
	if err := b.Check(ctx); err != nil {
		return err
	}
	where := fmt.Sprintf("s3://%s/%s", b.bucket, prefix)
	in := &s3.ListObjectsV2Input{
		Bucket:       aws.String(b.bucket),
		Prefix:       aws.String(prefix),
		EncodingType: types.EncodingTypeUrl,
		MaxKeys:      aws.Int32(pageSize),
	}
	for {
		out, err := b.client.ListObjectsV2(ctx, in)
		if err != nil {
			return b.opError("list", where, err)
		}
		for _, o := range out.Contents {
			key, err := listedKey(aws.ToString(o.Key), out.EncodingType)
			if err != nil {
				return fmt.Errorf("list %s: %w", where, err)
			}
			info := ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ETag: unquote(o.ETag)}
			if o.LastModified != nil {
				info.LastModified = *o.LastModified
			}
			if err := fn(info); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		// A server that says there is more without a new place to go on
		// from would have us list forever.
		next := aws.ToString(out.NextContinuationToken)
		if next == "" || next == aws.ToString(in.ContinuationToken) {
			return fmt.Errorf("list %s: the server says the listing goes on but gives no new continuation token", where)
		}
		in.ContinuationToken = aws.String(next)
	}
}

// listedKey decodes a key of a listing if the server URL-encoded it.
func listedKey(key string, enc types.EncodingType) (string, error) {
	if enc != types.EncodingTypeUrl {
		return key, nil
	}
	k, err := url.QueryUnescape(key)
	if err != nil {
		return "", fmt.Errorf("key %q is not URL-encoded, although the server says it is: %w", key, err)
	}
	return k, nil
}

// EachObject lists the objects under prefix and calls fn for each on up to
// n goroutines at once, while the listing goes on (never more than n
// objects are waiting or running). fn must handle the failures of its own
// object (report them, count them) and return an error only to end the
// whole walk: a fatal error, or ctx's. EachObject returns that error, or
// the listing's, once every fn started has returned.
func EachObject(ctx context.Context, r Reader, prefix string, n int, fn func(context.Context, ObjectInfo) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(n, 1))
	err := r.List(gctx, prefix, func(o ObjectInfo) error {
		if err := gctx.Err(); err != nil {
			return err
		}
		g.Go(func() error { return fn(gctx, o) })
		return nil
	})
	if ferr := g.Wait(); ferr != nil {
		return ferr // the cause; the listing only saw the cancellation
	}
	return err
}

// EachObject is EachObject of this bucket.
func (b *S3) EachObject(ctx context.Context, prefix string, n int, fn func(context.Context, ObjectInfo) error) error {
	return EachObject(ctx, b, prefix, n, fn)
}

// Head returns the size and metadata of the object at key. A key the
// bucket does not have is an error wrapping ErrNotFound; other errors are
// those of opError (one line naming the key; fatal ones stay fatal).
func (b *S3) Head(ctx context.Context, key string) (ObjectMeta, error) {
	return b.HeadVersion(ctx, key, "")
}

// Get returns the content of the object at key, to read and close, with
// its size and metadata. Errors are those of Head; errors while reading
// the body are the SDK's, and do not name the key.
func (b *S3) Get(ctx context.Context, key string) (io.ReadCloser, ObjectMeta, error) {
	return b.GetVersion(ctx, key, "")
}

// GetVersion is Get of one version of the object at key ("": the current
// one), in a bucket with versioning.
func (b *S3) GetVersion(ctx context.Context, key, version string) (io.ReadCloser, ObjectMeta, error) {
	if err := b.Check(ctx); err != nil {
		return nil, ObjectMeta{}, err
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key), VersionId: versionParam(version)})
	if err != nil {
		return nil, ObjectMeta{}, b.readError("get", versionedKey(key, version), err)
	}
	m := parseMeta(aws.ToInt64(out.ContentLength), out.Metadata)
	m.VersionID = versionOf(out.VersionId)
	return out.Body, m, nil
}

// versionOf is a VersionId as S3 answered it, "" for none or "null" (an
// object written while the bucket had no versioning on).
func versionOf(v *string) string {
	if s := aws.ToString(v); s != "null" {
		return s
	}
	return ""
}

// readError is opError for reads, with a missing key told apart first: a
// HEAD answer has no body, so its 404 has no error code, which opError
// would take for a missing bucket. The bucket answered Check, so a 404
// here is the key's.
func (b *S3) readError(op, key string, err error) error {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	var re *awshttp.ResponseError
	var ae smithy.APIError
	if errors.As(err, &nf) || errors.As(err, &nk) ||
		errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && !(errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket") {
		return fmt.Errorf("%s %s: %w", op, key, ErrNotFound)
	}
	return b.opError(op, key, err)
}

// maxMtimeSec bounds the seconds of x-amz-meta-mtime: about 10,000 years
// either side of 1970, well inside int64 nanoseconds.
const maxMtimeSec = 1 << 38

// parseMeta reads the user metadata cloudkeeper writes (see
// Object.Metadata). md is as the SDK returns it: keys lower-case, without
// "x-amz-meta-".
func parseMeta(size int64, md map[string]string) ObjectMeta {
	m := ObjectMeta{Size: size, Metadata: md}
	if v, ok := md[MetaBLAKE3]; !ok {
		m.HashErr = errors.New("no x-amz-meta-" + MetaBLAKE3)
	} else if m.Hash, m.HashErr = scanner.ParseDigest(v); m.HashErr != nil {
		m.HashErr = fmt.Errorf("x-amz-meta-%s: %w", MetaBLAKE3, m.HashErr)
	}
	if v, ok := md[MetaMtime]; !ok {
		m.MtimeErr = errors.New("no x-amz-meta-" + MetaMtime)
	} else {
		secs, _, _ := strings.Cut(v, ".")
		if sec, err := strconv.ParseInt(secs, 10, 64); err == nil && (sec > maxMtimeSec || sec < -maxMtimeSec) {
			m.MtimeErr = fmt.Errorf("x-amz-meta-%s %q: out of range", MetaMtime, v)
		} else if m.MtimeNs, m.MtimeErr = ParseMtime(v); m.MtimeErr != nil {
			m.MtimeErr = fmt.Errorf("x-amz-meta-%s: %w", MetaMtime, m.MtimeErr)
		}
	}
	if v, ok := md[MetaMode]; !ok {
		m.ModeErr = errors.New("no x-amz-meta-" + MetaMode)
	} else if m.Mode, m.ModeErr = ParseMode(v); m.ModeErr != nil {
		m.ModeErr = fmt.Errorf("x-amz-meta-%s: %w", MetaMode, m.ModeErr)
	}
	if v, ok := md[MetaLink]; ok {
		m.IsLink = true
		m.Link, m.LinkErr = ParseLinkTarget(v)
	}
	return m
}
