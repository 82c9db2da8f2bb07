package s3test_test

// TestServersDiffer pins down where the two servers the contract tests run
// on, versitygw and moto, answer the same request differently (and a few
// places where they agree, which the uploader relies on). The README's
// "Tests" section lists the same differences. If a row fails after an
// upgrade of either server, the uploader's assumptions need a second look.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// probe is one request (or a few) sent to a server; it returns what the
// server answered, in a few words.
type probe struct {
	name string
	run  func(t *testing.T, p *prober) string
	want map[s3test.Server]string // by server
}

// prober is a server, a client of it that never retries, and a bucket.
type prober struct {
	g      *s3test.Gateway
	c      *s3.Client
	bucket string
}

// outcome is "ok" or err's S3 error code (or its text if it has none).
func outcome(err error) string {
	var api smithy.APIError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &api):
		return api.ErrorCode()
	}
	return err.Error()
}

func (p *prober) put(key, body string, edit func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
	in := &s3.PutObjectInput{Bucket: &p.bucket, Key: aws.String(key), Body: strings.NewReader(body)}
	if edit != nil {
		edit(in)
	}
	return p.c.PutObject(context.Background(), in)
}

// newProber starts server (skipping if it is moto and not installed) and
// creates a bucket on it.
func newProber(t *testing.T, server s3test.Server) *prober {
	t.Helper()
	g, err := s3test.Start(context.Background(), s3test.Options{Server: server, Versioning: true})
	if errors.Is(err, s3test.ErrNoMoto) {
		t.Skipf("not run on moto: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop() })
	p := &prober{g: g, c: g.Client(func(o *s3.Options) { o.RetryMaxAttempts = 1 }), bucket: "probe"}
	if err := g.CreateBucket(context.Background(), p.bucket); err != nil {
		t.Fatal(err)
	}
	return p
}

// with is p on a new bucket: with Object Lock if versioning is "locked",
// else with versioning Enabled or Suspended.
func (p *prober) with(t *testing.T, name string, versioning types.BucketVersioningStatus) *prober {
	t.Helper()
	ctx := context.Background()
	var err error
	if versioning == "locked" {
		err = p.g.CreateLockedBucket(ctx, name)
	} else if err = p.g.CreateBucket(ctx, name); err == nil {
		err = p.g.SetVersioning(ctx, name, versioning)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &prober{g: p.g, c: p.c, bucket: name}
}

func TestServersDiffer(t *testing.T) {
	for _, server := range []s3test.Server{s3test.Versitygw, s3test.Moto} {
		t.Run(string(server), func(t *testing.T) {
			plain := newProber(t, server)
			for _, pr := range probes {
				t.Run(pr.name, func(t *testing.T) {
					if got, want := pr.run(t, plain), pr.want[server]; got != want {
						t.Errorf("%s answers %q, want %q", server, got, want)
					}
				})
			}
		})
	}
}

var probes = []probe{
	{"signature is checked", func(t *testing.T, p *prober) string {
		status, _ := rawRequest(t, p.g, "GET", p.g.Endpoint+"/"+p.bucket+"?list-type=2", nil, nil, "127.0.0.1:1")
		return fmt.Sprint(status)
	}, map[s3test.Server]string{s3test.Versitygw: "403", s3test.Moto: "200"}},
	{"copy onto itself without REPLACE", func(t *testing.T, p *prober) string {
		if _, err := p.put("self", "x", nil); err != nil {
			t.Fatal(err)
		}
		_, err := p.c.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: &p.bucket, Key: aws.String("self"), CopySource: aws.String(p.bucket + "/self")})
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "InvalidRequest", s3test.Moto: "InvalidRequest"}},
	{"DeleteObjects without a checksum", func(t *testing.T, p *prober) string {
		doc := []byte(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>k</Key></Object></Delete>`)
		status, body := rawRequest(t, p.g, "POST", p.g.Endpoint+"/"+p.bucket+"?delete", doc, nil, "")
		return fmt.Sprint(status, " ", errorCode(body))
	}, map[s3test.Server]string{s3test.Versitygw: "400 InvalidRequest", s3test.Moto: "200 "}},
	{"PutObject with a wrong Content-MD5", func(t *testing.T, p *prober) string {
		_, err := p.put("md5-bad", "body", func(in *s3.PutObjectInput) { in.ContentMD5 = aws.String(md5sum([]byte("other"))) })
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "BadDigest", s3test.Moto: "ok"}},
	{"PutObject with a wrong x-amz-checksum-crc32c", func(t *testing.T, p *prober) string {
		_, err := p.put("crc-bad", "body", func(in *s3.PutObjectInput) { in.ChecksumCRC32C = aws.String(crc32c([]byte("other"))) })
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "BadDigest", s3test.Moto: "ok"}},
	{"a key under an object's key", func(t *testing.T, p *prober) string {
		if _, err := p.put("file", "x", nil); err != nil {
			t.Fatal(err)
		}
		_, err := p.put("file/under", "x", nil)
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "ObjectParentIsFile", s3test.Moto: "ok"}},
	{"a key over other keys' prefix", func(t *testing.T, p *prober) string {
		if _, err := p.put("dir/x", "x", nil); err != nil {
			t.Fatal(err)
		}
		_, err := p.put("dir", "x", nil)
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "ExistingObjectIsDirectory", s3test.Moto: "ok"}},
	{"a key with // and .. in it", func(t *testing.T, p *prober) string {
		if _, err := p.put("clean//a/../b", "x", nil); err != nil {
			return outcome(err)
		}
		out, err := p.c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &p.bucket, Prefix: aws.String("clean")})
		if err != nil || len(out.Contents) != 1 {
			t.Fatalf("%v %+v", err, out)
		}
		return "listed as " + aws.ToString(out.Contents[0].Key)
	}, map[s3test.Server]string{s3test.Versitygw: "listed as clean/b", s3test.Moto: "listed as clean//a/../b"}},
	{"reads and copies of a DEEP_ARCHIVE object", func(t *testing.T, p *prober) string {
		ctx := context.Background()
		if _, err := p.put("cold", "x", func(in *s3.PutObjectInput) { in.StorageClass = types.StorageClassDeepArchive }); err != nil {
			t.Fatal(err)
		}
		_, get := p.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.bucket, Key: aws.String("cold")})
		_, cp := p.c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &p.bucket, Key: aws.String("cold-copy"), CopySource: aws.String(p.bucket + "/cold")})
		mpu, err := p.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &p.bucket, Key: aws.String("cold-parts")})
		if err != nil {
			t.Fatal(err)
		}
		_, part := p.c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: &p.bucket, Key: aws.String("cold-parts"), UploadId: mpu.UploadId,
			PartNumber: aws.Int32(1), CopySource: aws.String(p.bucket + "/cold")})
		return fmt.Sprintf("get %s, copy %s, part copy %s", outcome(get), outcome(cp), outcome(part))
	}, map[s3test.Server]string{s3test.Versitygw: "get ok, copy ok, part copy ok",
		s3test.Moto: "get InvalidObjectState, copy ObjectNotInActiveTierError, part copy ok"}},
	{"HeadBucket of a legacy name (capitals, _)", func(t *testing.T, p *prober) string {
		_, err := p.c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("Legacy_Bucket")})
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) {
			return fmt.Sprint(re.HTTPStatusCode())
		}
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "400", s3test.Moto: "404"}},
	{"metadata keys sent in capitals", func(t *testing.T, p *prober) string {
		status, body := rawRequest(t, p.g, "PUT", p.g.Endpoint+"/"+p.bucket+"/meta", []byte("x"), map[string]string{"X-Amz-Meta-BLAKE3": "b3"}, "")
		if status != 200 {
			t.Fatalf("PUT: %d %s", status, body)
		}
		out, err := p.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &p.bucket, Key: aws.String("meta")})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(out.Metadata)
	}, map[s3test.Server]string{s3test.Versitygw: "map[blake3:b3]", s3test.Moto: "map[blake3:b3]"}},
	{"a multipart part under 5 MiB, not the last", func(t *testing.T, p *prober) string {
		return outcome(smallPartUpload(t, p))
	}, map[s3test.Server]string{s3test.Versitygw: "EntityTooSmall", s3test.Moto: "EntityTooSmall"}},
	{"ETag of a 2-part upload", func(t *testing.T, p *prober) string {
		out := completeUpload(t, p, "etag", 5<<20, 1)
		etag := strings.Trim(aws.ToString(out.ETag), `"`)
		return fmt.Sprintf("%d hex digits-%s", len(etag[:strings.IndexByte(etag, '-')]), etag[strings.IndexByte(etag, '-')+1:])
	}, map[s3test.Server]string{s3test.Versitygw: "32 hex digits-2", s3test.Moto: "32 hex digits-2"}},
	{"version id of a PutObject without versioning", func(t *testing.T, p *prober) string {
		out, err := p.put("unversioned", "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%q", aws.ToString(out.VersionId))
	}, map[s3test.Server]string{s3test.Versitygw: `""`, s3test.Moto: `""`}},
	{"ListObjectVersions of an object written without versioning", func(t *testing.T, p *prober) string {
		if _, err := p.put("listed-unversioned", "x", nil); err != nil {
			t.Fatal(err)
		}
		return versionsOf(t, p, "listed-unversioned")
	}, map[s3test.Server]string{s3test.Versitygw: `"null" latest`, s3test.Moto: `"null" latest`}},
	{"PutObject with versioning suspended: version id", func(t *testing.T, p *prober) string {
		p = p.with(t, "suspended", types.BucketVersioningStatusSuspended)
		out, err := p.put("k", "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%q, listed %s", aws.ToString(out.VersionId), versionsOf(t, p, "k"))
	}, map[s3test.Server]string{s3test.Versitygw: `"", listed "null" latest`, s3test.Moto: `"", listed "null" latest`}},
	{"DeleteObjects of a version id never written", func(t *testing.T, p *prober) string {
		p = p.with(t, "versioned", types.BucketVersioningStatusEnabled)
		if _, err := p.put("k", "x", nil); err != nil {
			t.Fatal(err)
		}
		out, err := p.c.DeleteObjects(context.Background(), &s3.DeleteObjectsInput{Bucket: &p.bucket, Delete: &types.Delete{
			Objects: []types.ObjectIdentifier{{Key: aws.String("k"), VersionId: aws.String("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")}}}})
		if err != nil {
			return outcome(err)
		}
		if len(out.Errors) > 0 {
			return "error " + aws.ToString(out.Errors[0].Code)
		}
		return fmt.Sprintf("%d deleted", len(out.Deleted))
	}, map[s3test.Server]string{s3test.Versitygw: "error InvalidArgument", s3test.Moto: "1 deleted"}},
	{"retention of a multipart upload asking for one", func(t *testing.T, p *prober) string {
		p = p.with(t, "locked", "locked")
		until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		ctx := context.Background()
		mpu, err := p.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &p.bucket, Key: aws.String("mp"),
			ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: &until})
		if err != nil {
			return outcome(err)
		}
		part, err := p.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &p.bucket, Key: aws.String("mp"), UploadId: mpu.UploadId, PartNumber: aws.Int32(1),
			Body: strings.NewReader("x"), ContentMD5: aws.String(md5sum([]byte("x")))})
		if err != nil {
			t.Fatal(err)
		}
		done, err := p.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &p.bucket, Key: aws.String("mp"), UploadId: mpu.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: part.ETag}}}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &p.bucket, Key: aws.String("mp"), VersionId: done.VersionId})
		return "delete of the version: " + outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "delete of the version: AccessDenied", s3test.Moto: "delete of the version: ok"}},
	{"GetObjectRetention of a retained version", func(t *testing.T, p *prober) string {
		p = p.with(t, "retained", "locked")
		until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		out, err := p.put("k", "x", func(in *s3.PutObjectInput) {
			in.ObjectLockMode, in.ObjectLockRetainUntilDate, in.ContentMD5 = types.ObjectLockModeGovernance, &until, aws.String(md5sum([]byte("x")))
		})
		if err != nil {
			t.Fatal(err)
		}
		ret, err := p.c.GetObjectRetention(context.Background(), &s3.GetObjectRetentionInput{Bucket: &p.bucket, Key: aws.String("k"), VersionId: out.VersionId})
		if err != nil {
			return outcome(err)
		}
		if ret.Retention == nil {
			return "no retention" // moto answers with the object's body
		}
		return fmt.Sprintf("%s, until equal: %v", ret.Retention.Mode, aws.ToTime(ret.Retention.RetainUntilDate).Equal(until))
	}, map[s3test.Server]string{s3test.Versitygw: "GOVERNANCE, until equal: true", s3test.Moto: "no retention"}},
	{"CopyObject asking for a retention", func(t *testing.T, p *prober) string {
		p = p.with(t, "copied", "locked")
		if _, err := p.put("src", "x", func(in *s3.PutObjectInput) { in.ContentMD5 = aws.String(md5sum([]byte("x"))) }); err != nil {
			t.Fatal(err)
		}
		until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		_, err := p.c.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: &p.bucket, Key: aws.String("dst"), CopySource: aws.String(p.bucket + "/src"),
			ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: &until})
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "ok", s3test.Moto: "MissingUploadObjectWithObjectLockHeaders"}},
	{"ListObjectVersions with EncodingType url, one a page", func(t *testing.T, p *prober) string {
		p = p.with(t, "markers", types.BucketVersioningStatusEnabled)
		for range 2 {
			if _, err := p.put("a b", "x", nil); err != nil {
				t.Fatal(err)
			}
		}
		out, err := p.c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: &p.bucket, EncodingType: types.EncodingTypeUrl, MaxKeys: aws.Int32(1)})
		if err != nil || len(out.Versions) != 1 {
			t.Fatalf("%v %+v", err, out)
		}
		return fmt.Sprintf("%q %q, next key marker %q", out.EncodingType, aws.ToString(out.Versions[0].Key), aws.ToString(out.NextKeyMarker))
	}, map[s3test.Server]string{s3test.Versitygw: `"" "a b", next key marker "a b"`, s3test.Moto: `"" "a b", next key marker "a b"`}},
	{"ListObjectsV2 with EncodingType url", func(t *testing.T, p *prober) string {
		if _, err := p.put("enc/a b", "x", nil); err != nil {
			t.Fatal(err)
		}
		out, err := p.c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &p.bucket, Prefix: aws.String("enc/"), EncodingType: types.EncodingTypeUrl})
		if err != nil || len(out.Contents) != 1 {
			t.Fatalf("%v %+v", err, out)
		}
		return fmt.Sprintf("%q %q", out.EncodingType, aws.ToString(out.Contents[0].Key))
	}, map[s3test.Server]string{s3test.Versitygw: `"" "enc/a b"`, s3test.Moto: `"url" "enc/a%20b"`}},
	{"HeadObject in a missing bucket", func(t *testing.T, p *prober) string {
		_, err := p.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("no-such-bucket"), Key: aws.String("k")})
		return outcome(err)
	}, map[s3test.Server]string{s3test.Versitygw: "NotFound", s3test.Moto: "NotFound"}},
}

// errorCode is the <Code> of an S3 error document, or "".
func errorCode(body string) string {
	_, rest, ok := strings.Cut(body, "<Code>")
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(rest, "</Code>")
	return code
}

// smallPartUpload completes an upload whose first part is 1 MiB.
func smallPartUpload(t *testing.T, p *prober) error {
	_, err := tryCompleteUpload(t, p, "small-part", 1<<20, 1)
	return err
}

// completeUpload uploads key in two parts of first and last bytes.
func completeUpload(t *testing.T, p *prober, key string, first, last int) *s3.CompleteMultipartUploadOutput {
	out, err := tryCompleteUpload(t, p, key, first, last)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tryCompleteUpload(t *testing.T, p *prober, key string, first, last int) (*s3.CompleteMultipartUploadOutput, error) {
	t.Helper()
	ctx := context.Background()
	mpu, err := p.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &p.bucket, Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, size := range []int{first, last} {
		n := aws.Int32(int32(i + 1))
		out, err := p.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &p.bucket, Key: aws.String(key), UploadId: mpu.UploadId, PartNumber: n, Body: strings.NewReader(strings.Repeat("p", size))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: n, ETag: out.ETag})
	}
	return p.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &p.bucket, Key: aws.String(key), UploadId: mpu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
}

// versionsOf lists key's versions: id, and "latest" or "old".
func versionsOf(t *testing.T, p *prober, key string) string {
	t.Helper()
	out, err := p.c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: &p.bucket, Prefix: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, v := range out.Versions {
		s = append(s, fmt.Sprintf("%q %s", aws.ToString(v.VersionId), map[bool]string{true: "latest", false: "old"}[aws.ToBool(v.IsLatest)]))
	}
	return strings.Join(s, ", ")
}
