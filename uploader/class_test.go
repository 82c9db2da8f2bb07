package uploader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// writeOps are the requests that make an object and so must carry the
// headers; UploadPart and UploadPartCopy take them from their
// CreateMultipartUpload.
var writeOps = []string{"PutObject", "CreateMultipartUpload", "CopyObject"}

const (
	hdrSSE    = "X-Amz-Server-Side-Encryption"
	hdrKMSKey = "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"
	hdrClass  = "X-Amz-Storage-Class"
)

// writeEveryWay writes an object of each way: one PutObject, a multipart
// upload, one CopyObject, a copy in parts (CreateMultipartUpload and
// UploadPartCopy), and returns the keys written.
func writeEveryWay(t *testing.T, tb *testBucket) []string {
	t.Helper()
	ctx := context.Background()
	small, big := localFile(t, "small", 10, "small"), localFile(t, "big", 12<<20+5, "big")
	for _, u := range []Upload{small, big} {
		if _, err := tb.Upload(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	smallCopy, bigCopy := small.Object, big.Object
	smallCopy.Key, bigCopy.Key = "small-copy", "big-copy"
	for _, c := range []Object{smallCopy, bigCopy} {
		if _, err := tb.Copy(ctx, c.Key[:len(c.Key)-len("-copy")], c); err != nil {
			t.Fatal(err)
		}
	}
	st := tb.proxy.Stats()
	if st.ByOp["PutObject"] != 1 || st.ByOp["CopyObject"] != 1 || st.ByOp["CreateMultipartUpload"] != 2 || st.ByOp["UploadPartCopy"] != 3 {
		t.Fatalf("requests %v: not one write of each kind", st.ByOp)
	}
	return []string{"small", "big", "small-copy", "big-copy"}
}

// Every write asks for the encryption and the storage class: a copy too,
// since S3 keeps neither on a copy unless asked. versitygw takes them (no
// write is refused) but ignores them: v1.8.0's posix backend answers
// STANDARD and no encryption to HeadObject, so the headers are checked at
// the proxy; moto keeps them, so there HeadObject must answer them too.
func TestEncryptionAndClassOnEveryWrite(t *testing.T) {
	onEachServer(t, testEncryptionAndClassOnEveryWrite)
}

func testEncryptionAndClassOnEveryWrite(t *testing.T, g *s3test.Gateway) {
	for _, c := range []struct {
		name   string
		sse    types.ServerSideEncryption
		kmsKey string
		class  types.StorageClass
	}{
		{"AES256", types.ServerSideEncryptionAes256, "", types.StorageClassStandardIa},
		{"KMS", types.ServerSideEncryptionAwsKms, "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", types.StorageClassGlacierIr},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTestBucketOn(t, g, func(cfg *S3Config) {
				cfg.SSE, cfg.SSEKMSKeyID, cfg.StorageClass = c.sse, c.kmsKey, c.class
				cfg.MaxSingleCopy, cfg.CopyPartSize = 6<<20, 5<<20
			})
			rec := s3test.Record(tb.proxy, writeOps...)
			keys := writeEveryWay(t, tb)
			seen := rec.Seen()
			if len(seen) != 4 {
				t.Fatalf("writes seen: %+v", seen)
			}
			for _, w := range seen {
				sse, kmsKey, class := w.Header.Get(hdrSSE), w.Header.Get(hdrKMSKey), w.Header.Get(hdrClass)
				if sse != string(c.sse) || kmsKey != c.kmsKey || class != string(c.class) {
					t.Errorf("%s %s: x-amz-server-side-encryption %q, kms key %q, x-amz-storage-class %q; want %q, %q, %q",
						w.Op, w.Path, sse, kmsKey, class, c.sse, c.kmsKey, c.class)
				}
			}
			for _, key := range keys {
				h, err := g.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(tb.name), Key: aws.String(key)})
				if err != nil {
					t.Fatalf("head %s: %v", key, err)
				}
				got := fmt.Sprintf("storage class %q, encryption %q, KMS key %q", h.StorageClass, h.ServerSideEncryption, aws.ToString(h.SSEKMSKeyId))
				if want := fmt.Sprintf("storage class %q, encryption %q, KMS key %q", c.class, c.sse, c.kmsKey); g.Server == s3test.Moto && got != want {
					t.Errorf("%s: %s answers %s, want %s", key, g.Server, got, want)
				}
				t.Logf("%s: %s answers %s", key, g.Server, got)
			}
		})
	}
}

// Without the settings, no write sends the headers: the bucket's defaults
// apply.
func TestNoEncryptionHeadersByDefault(t *testing.T) {
	onEachServer(t, testNoEncryptionHeadersByDefault)
}

func testNoEncryptionHeadersByDefault(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g, func(cfg *S3Config) { cfg.MaxSingleCopy, cfg.CopyPartSize = 6<<20, 5<<20 })
	rec := s3test.Record(tb.proxy, writeOps...)
	writeEveryWay(t, tb)
	ops := map[string]bool{}
	for _, w := range rec.Seen() {
		ops[w.Op] = true
	}
	for _, op := range []string{"PutObject", "CreateMultipartUpload", "CopyObject"} {
		if !ops[op] {
			t.Fatalf("the recorder saw no %s (saw %v): the test would look at nothing", op, ops)
		}
	}
	for _, w := range rec.Seen() {
		for _, h := range []string{hdrSSE, hdrKMSKey, hdrClass} {
			if v := w.Header.Get(h); v != "" {
				t.Errorf("%s %s: %s %q", w.Op, w.Path, h, v)
			}
		}
	}
}

func TestKMSKeyNeedsKMS(t *testing.T) {
	_, err := NewS3(context.Background(), S3Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:1", SSE: types.ServerSideEncryptionAes256, SSEKMSKeyID: "k"})
	if !errors.Is(err, ErrKMSKeyWithoutKMS) {
		t.Fatalf("NewS3 with a KMS key and AES256: %v", err)
	}
}

func TestParseStorageClassAndSSE(t *testing.T) {
	if c, err := ParseStorageClass("deep_archive"); err != nil || c != types.StorageClassDeepArchive {
		t.Errorf("deep_archive: %q, %v", c, err)
	}
	if _, err := ParseStorageClass("COLD"); err == nil || err.Error() != `storage class "COLD": want one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, REDUCED_REDUNDANCY, EXPRESS_ONEZONE, OUTPOSTS` {
		t.Errorf("COLD: %v", err)
	}
	if s, err := ParseSSE("AWS:KMS"); err != nil || s != types.ServerSideEncryptionAwsKms {
		t.Errorf("AWS:KMS: %q, %v", s, err)
	}
	if _, err := ParseSSE("aws:kms:dsse"); err == nil {
		t.Error("aws:kms:dsse taken")
	}
}

// An object S3 will not read or copy until restored (403
// InvalidObjectState) is that object's error, ErrArchived, not a fatal
// denied access: for a GetObject, a CopyObject and a copy in parts, which
// is aborted.
func TestArchivedObjectIsItsOwnError(t *testing.T) {
	tb := newTestBucket(t, func(cfg *S3Config) { cfg.MaxSingleCopy, cfg.CopyPartSize = 6<<20, 5<<20 })
	ctx := context.Background()
	small, big := localFile(t, "small", 10, "small"), localFile(t, "big", 12<<20+5, "big")
	for _, u := range []Upload{small, big} {
		if _, err := tb.Upload(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	tb.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		switch s3test.Operation(r) {
		case "GetObject", "CopyObject", "UploadPartCopy":
			return &s3test.Fault{Status: http.StatusForbidden, Code: "InvalidObjectState"}
		}
		return nil
	})
	_, _, err := tb.Get(ctx, "small")
	errs := map[string]error{"get": err}
	for _, o := range []Object{small.Object, big.Object} {
		o.Key += "-copy"
		_, errs["copy "+o.Key] = tb.Copy(ctx, strings.TrimSuffix(o.Key, "-copy"), o)
	}
	for what, err := range errs {
		if !errors.Is(err, ErrArchived) || IsFatal(err) {
			t.Errorf("%s: %v (fatal: %v), want ErrArchived", what, err, IsFatal(err))
		}
	}
	noOrphanParts(t, tb)
}

// An object that a real server keeps in an archive class: its HEAD works,
// its GET and a CopyObject of it are ErrArchived, not fatal. moto answers
// the GET 403 InvalidObjectState and the copy 403
// ObjectNotInActiveTierError, as AWS documents for CopyObject. Once Thaw
// asked for a restore, a first time (202) and a second (200: moto restores
// at once, where S3 takes hours), it reads. versitygw ignores storage
// classes and has no RestoreObject, so this runs on moto only (and
// TestArchivedObjectIsItsOwnError fakes the answers at the proxy).
func TestArchivedObjectOnTheServer(t *testing.T) {
	tb := newTestBucketOn(t, moto.Start(t), func(cfg *S3Config) { cfg.StorageClass = types.StorageClassDeepArchive })
	ctx := context.Background()
	u := localFile(t, "small", 10, "small")
	if _, err := tb.Upload(ctx, u); err != nil {
		t.Fatal(err)
	}
	if m, err := tb.Head(ctx, u.Key); err != nil || m.Hash != u.Hash {
		t.Fatalf("head: %+v, %v", m, err)
	}
	_, _, err := tb.Get(ctx, u.Key)
	errs := map[string]error{"get": err}
	copied := u.Object
	copied.Key = "small-copy"
	_, errs["copy"] = tb.Copy(ctx, u.Key, copied)
	for what, err := range errs {
		if !errors.Is(err, ErrArchived) || IsFatal(err) {
			t.Errorf("%s: %v (fatal: %v), want ErrArchived", what, err, IsFatal(err))
		}
	}
	for _, want := range []bool{false, true} {
		if already, err := tb.Thaw(ctx, VersionRef{Key: u.Key}, 1); err != nil || already != want {
			t.Fatalf("thaw: already %v, %v; want %v", already, err, want)
		}
	}
	body, _, err := tb.Get(ctx, u.Key)
	if err != nil {
		t.Fatalf("get once restored: %v", err)
	}
	body.Close()
}

// S3 restores an object of INTELLIGENT_TIERING's archive tiers without a
// number of days (AWS's RestoreObject reference: a Days there is refused),
// and one of GLACIER or DEEP_ARCHIVE with them: Thaw asks the object's
// class first (HEAD). On moto, which keeps storage classes; the request
// body is what is checked.
func TestThawOfIntelligentTieringSendsNoDays(t *testing.T) {
	for class, wantDays := range map[types.StorageClass]bool{types.StorageClassIntelligentTiering: false, types.StorageClassDeepArchive: true} {
		tb := newTestBucketOn(t, moto.Start(t), func(cfg *S3Config) { cfg.StorageClass = class })
		ctx := context.Background()
		u := localFile(t, "small", 10, "small")
		if _, err := tb.Upload(ctx, u); err != nil {
			t.Fatal(err)
		}
		rec := s3test.Record(tb.proxy, "RestoreObject")
		tb.Thaw(ctx, VersionRef{Key: u.Key}, 3) // moto's answer for an object not archived is not the point
		seen := rec.Seen()
		if len(seen) != 1 {
			t.Fatalf("%s: %d RestoreObject requests, want 1", class, len(seen))
		}
		if got := bytes.Contains(seen[0].Body, []byte("<Days>3</Days>")); got != wantDays {
			t.Errorf("%s: RestoreObject body %s; want Days in it: %v", class, seen[0].Body, wantDays)
		}
	}
}
