package s3test_test

// These tests pin down how versitygw v1.8.0 behaves where the uploader
// depends on it, or where it differs from AWS S3. If one fails after an
// upgrade, the uploader's assumptions need a second look.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// rawRequest sends a request signed with SigV4 by hand, so that it carries
// exactly the given headers and no SDK-added checksums. If host is not
// empty, the Host header is changed to it after signing.
func rawRequest(t *testing.T, g *s3test.Gateway, method, url string, body []byte, header map[string]string, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: g.AccessKey, SecretAccessKey: g.SecretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, "s3", g.Region, time.Now()); err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func crc32c(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

func md5sum(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestVersitygwQuirks(t *testing.T) {
	ctx := context.Background()
	g := gwtest.Start(t)
	bucket := gwtest.Bucket(t, g)
	c := g.Client(func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	put := func(key, body string, edit func(*s3.PutObjectInput)) error {
		in := &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: strings.NewReader(body)}
		if edit != nil {
			edit(in)
		}
		_, err := c.PutObject(ctx, in)
		return err
	}
	exists := func(key string) bool {
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String(key)})
		return err == nil
	}
	wantCode := func(t *testing.T, err error, code string) {
		t.Helper()
		if got, _ := apiError(t, err); got != code {
			t.Errorf("got %v, want %s", err, code)
		}
	}

	// SigV4 covers the Host header. versitygw checks the signature
	// against the Host it receives and does not compare that Host with
	// its own address: that is why the proxy forwards Host unchanged
	// (TestProxyCountsAndFaults shows signing for the proxy works) and
	// why it must not rewrite it to the gateway's address.
	t.Run("HostHeaderIsSigned", func(t *testing.T) {
		status, body := rawRequest(t, g, "GET", g.Endpoint+"/"+bucket+"?list-type=2", nil, nil, "127.0.0.1:1")
		if status != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
			t.Errorf("request with Host changed after signing: %d %s, want 403 SignatureDoesNotMatch", status, body)
		}
		status, body = rawRequest(t, g, "GET", g.Endpoint+"/"+bucket+"?list-type=2", nil, nil, "")
		if status != 200 {
			t.Errorf("the same request unchanged: %d %s", status, body)
		}
	})

	// User metadata keys come back lower-case, whatever case was sent
	// (versitygw stores them lower-cased, like AWS); '_' and '-' are
	// kept. The SDK strips the x-amz-meta- prefix: header
	// x-amz-meta-blake3 is Metadata["blake3"].
	t.Run("MetadataKeysLowerCase", func(t *testing.T) {
		status, body := rawRequest(t, g, "PUT", g.Endpoint+"/"+bucket+"/meta", []byte("x"),
			map[string]string{"X-Amz-Meta-Blake3": "b3", "X-Amz-Meta-MTime_NS": "123", "x-amz-meta-Mode-Bits": "644"}, "")
		if status != 200 {
			t.Fatalf("PUT: %d %s", status, body)
		}
		out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("meta")})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"blake3": "b3", "mtime_ns": "123", "mode-bits": "644"}
		if len(out.Metadata) != len(want) {
			t.Errorf("metadata %v, want %v", out.Metadata, want)
		}
		for k, v := range want {
			if out.Metadata[k] != v {
				t.Errorf("metadata %v, want %v", out.Metadata, want)
				break
			}
		}
	})

	// CopyObject onto itself with MetadataDirective REPLACE rewrites the
	// metadata and keeps the body: the way to update metadata in place.
	// Without REPLACE it is refused with InvalidRequest, as on AWS.
	t.Run("CopyToSelfReplacesMetadata", func(t *testing.T) {
		if err := put("self", "body", func(in *s3.PutObjectInput) { in.Metadata = map[string]string{"blake3": "old", "keep": "1"} }); err != nil {
			t.Fatal(err)
		}
		_, err := c.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: &bucket, Key: aws.String("self"), CopySource: aws.String(bucket + "/self"),
			MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"blake3": "new"},
		})
		if err != nil {
			t.Fatal(err)
		}
		got := gwtest.Objects(t, c, bucket, "self")["self"]
		if string(got.Body) != "body" || len(got.Metadata) != 1 || got.Metadata["blake3"] != "new" {
			t.Errorf("after copy to self: body %q metadata %v, want body and only blake3=new", got.Body, got.Metadata)
		}
		_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &bucket, Key: aws.String("self"), CopySource: aws.String(bucket + "/self")})
		wantCode(t, err, "InvalidRequest")
	})

	// DeleteObjects needs Content-MD5 or an x-amz-checksum-* header; with
	// neither it fails with InvalidRequest. The SDK, even with
	// RequestChecksumCalculation WhenRequired, adds x-amz-checksum-crc32
	// to it, which versitygw accepts; a wrong Content-MD5 is BadDigest.
	t.Run("DeleteObjectsNeedsChecksum", func(t *testing.T) {
		for _, k := range []string{"del/1", "del/2", "del/3"} {
			if err := put(k, "x", nil); err != nil {
				t.Fatal(err)
			}
		}
		doc := func(key string) []byte {
			return []byte(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>` + key + `</Key></Object></Delete>`)
		}
		url := g.Endpoint + "/" + bucket + "?delete"
		status, body := rawRequest(t, g, "POST", url, doc("del/1"), nil, "")
		if status != 400 || !strings.Contains(body, "InvalidRequest") || !exists("del/1") {
			t.Errorf("DeleteObjects without checksum: %d %s, want 400 InvalidRequest", status, body)
		}
		status, body = rawRequest(t, g, "POST", url, doc("del/1"), map[string]string{"Content-MD5": md5sum([]byte("wrong"))}, "")
		if status != 400 || !strings.Contains(body, "BadDigest") || !exists("del/1") {
			t.Errorf("DeleteObjects with a wrong Content-MD5: %d %s, want 400 BadDigest", status, body)
		}
		status, body = rawRequest(t, g, "POST", url, doc("del/1"), map[string]string{"Content-MD5": md5sum(doc("del/1"))}, "")
		if status != 200 || exists("del/1") {
			t.Errorf("DeleteObjects with Content-MD5: %d %s, want 200 and the object gone", status, body)
		}
		status, body = rawRequest(t, g, "POST", url, doc("del/2"), map[string]string{"X-Amz-Checksum-Crc32c": crc32c(doc("del/2"))}, "")
		if status != 200 || exists("del/2") {
			t.Errorf("DeleteObjects with x-amz-checksum-crc32c: %d %s, want 200 and the object gone", status, body)
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{
			Objects: []types.ObjectIdentifier{{Key: aws.String("del/3")}, {Key: aws.String("del/never-existed")}},
		}})
		if err != nil || len(out.Errors) != 0 || len(out.Deleted) != 2 || exists("del/3") {
			t.Errorf("DeleteObjects with the SDK: %v, %+v", err, out)
		}
	})

	// PutObject and UploadPart verify both Content-MD5 and
	// x-amz-checksum-crc32c, answering 400 BadDigest to a mismatch and
	// storing nothing. A correct CRC32C is stored and returned by
	// HeadObject with ChecksumMode ENABLED. UploadPart checks a CRC32C
	// header even when CreateMultipartUpload declared no algorithm.
	t.Run("BodyChecksumsVerified", func(t *testing.T) {
		body := []byte("checked body")
		wantCode(t, put("md5-bad", string(body), func(in *s3.PutObjectInput) { in.ContentMD5 = aws.String(md5sum([]byte("other"))) }), "BadDigest")
		wantCode(t, put("crc-bad", string(body), func(in *s3.PutObjectInput) { in.ChecksumCRC32C = aws.String(crc32c([]byte("other"))) }), "BadDigest")
		if exists("md5-bad") || exists("crc-bad") {
			t.Error("an object with a bad checksum was stored")
		}
		if err := put("md5-ok", string(body), func(in *s3.PutObjectInput) { in.ContentMD5 = aws.String(md5sum(body)) }); err != nil {
			t.Error(err)
		}
		if err := put("crc-ok", string(body), func(in *s3.PutObjectInput) { in.ChecksumCRC32C = aws.String(crc32c(body)) }); err != nil {
			t.Fatal(err)
		}
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("crc-ok"), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil || aws.ToString(head.ChecksumCRC32C) != crc32c(body) {
			t.Errorf("HeadObject ChecksumCRC32C = %q (%v), want %q", aws.ToString(head.ChecksumCRC32C), err, crc32c(body))
		}

		mpu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String("mpu")})
		if err != nil {
			t.Fatal(err)
		}
		defer c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: aws.String("mpu"), UploadId: mpu.UploadId})
		part := func(edit func(*s3.UploadPartInput)) error {
			in := &s3.UploadPartInput{Bucket: &bucket, Key: aws.String("mpu"), UploadId: mpu.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(body)}
			edit(in)
			_, err := c.UploadPart(ctx, in)
			return err
		}
		wantCode(t, part(func(in *s3.UploadPartInput) { in.ContentMD5 = aws.String(md5sum([]byte("other"))) }), "BadDigest")
		wantCode(t, part(func(in *s3.UploadPartInput) { in.ChecksumCRC32C = aws.String(crc32c([]byte("other"))) }), "BadDigest")
		if err := part(func(in *s3.UploadPartInput) { in.ChecksumCRC32C = aws.String(crc32c(body)) }); err != nil {
			t.Error(err)
		}
	})

	// The posix backend maps keys to paths, so unlike AWS a key cannot be
	// both an object and a "directory" of other keys: putting "f/x" when
	// "f" is an object fails with 409 ObjectParentIsFile, and putting "d"
	// when "d/x" exists fails with 409 ExistingObjectIsDirectory. Deleting
	// the last key under a directory removes the directory, after which
	// the other put works. A backup that replaces a file by a folder (or
	// the reverse) must delete before it uploads.
	t.Run("FileDirectoryConflict", func(t *testing.T) {
		if err := put("f", "file", nil); err != nil {
			t.Fatal(err)
		}
		wantCode(t, put("f/x", "under a file", nil), "ObjectParentIsFile")
		if err := put("d/x", "in a directory", nil); err != nil {
			t.Fatal(err)
		}
		wantCode(t, put("d", "over a directory", nil), "ExistingObjectIsDirectory")
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String("d/x")}); err != nil {
			t.Fatal(err)
		}
		if err := put("d", "now a file", nil); err != nil {
			t.Errorf("put d after deleting d/x: %v", err)
		}
	})
}
