package uploader

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// Every way of writing an object carries the retention: one PutObject, a
// multipart upload, one CopyObject, a copy in parts. Not even the
// credentials that wrote a version can delete it, and DeleteVersions
// reports it as locked.
func TestLockEveryWrite(t *testing.T) {
	onEachServer(t, testLockEveryWrite)
}

func testLockEveryWrite(t *testing.T, g *s3test.Gateway) {
	if g.Server == s3test.Moto {
		// s3test.TestServersDiffer pins these down.
		t.Skip("moto 5.2.1 ignores the retention of a multipart upload, refuses a CopyObject asking for one, and has no GetObjectRetention")
	}
	tb := newTestBucketOn(t, g, func(c *S3Config) {
		c.Bucket = gwtest.LockedBucket(t, g)
		c.Lock, c.MaxSingleCopy, c.CopyPartSize = 24*time.Hour, 6<<20, 5<<20
	})
	ctx := context.Background()
	small, big := localFile(t, "small", 10, "small"), localFile(t, "big", 12<<20+5, "big")
	var written = map[string]Written{}
	var err error
	start := time.Now()
	if written["small"], err = tb.Upload(ctx, small); err != nil {
		t.Fatal(err)
	}
	if written["big"], err = tb.Upload(ctx, big); err != nil {
		t.Fatal(err)
	}
	smallCopy, bigCopy := small.Object, big.Object
	smallCopy.Key, bigCopy.Key = "small-copy", "big-copy"
	if written["small-copy"], err = tb.Copy(ctx, small.Key, smallCopy); err != nil {
		t.Fatal(err)
	}
	if written["big-copy"], err = tb.Copy(ctx, big.Key, bigCopy); err != nil {
		t.Fatal(err)
	}
	if st := tb.proxy.Stats(); st.ByOp["PutObject"] != 1 || st.ByOp["CopyObject"] != 1 || st.ByOp["UploadPartCopy"] != 3 || st.ByOp["UploadPart"] != 3 {
		t.Fatalf("requests %v: not one write of each kind", st.ByOp)
	}
	var refs []VersionRef
	for key, w := range written {
		if w.VersionID == "" || w.RetainUntil.Before(start.Add(24*time.Hour-time.Second)) || w.RetainUntil.After(time.Now().Add(24*time.Hour)) {
			t.Errorf("%s: written %+v, want a version retained a day", key, w)
			continue
		}
		ret, err := g.Client().GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(tb.name), Key: aws.String(key), VersionId: aws.String(w.VersionID)})
		if err != nil || ret.Retention == nil || ret.Retention.Mode != types.ObjectLockRetentionModeGovernance || !aws.ToTime(ret.Retention.RetainUntilDate).Equal(w.RetainUntil) {
			t.Errorf("%s: retention %+v, %v; want GOVERNANCE until %v", key, ret, err, w.RetainUntil)
		}
		if _, err := g.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(tb.name), Key: aws.String(key), VersionId: aws.String(w.VersionID)}); err == nil {
			t.Errorf("%s: the locked version %s was deleted", key, w.VersionID)
		}
		refs = append(refs, VersionRef{Key: key, VersionID: w.VersionID})
	}
	failed, err := tb.DeleteVersions(ctx, refs)
	if err != nil || len(failed) != len(refs) {
		t.Fatalf("DeleteVersions of locked versions: %v, %v", failed, err)
	}
	for _, f := range failed {
		if !f.Locked {
			t.Errorf("%v: not reported as locked", f)
		}
	}
}

func TestLockNeedsObjectLockOnTheBucket(t *testing.T) {
	onEachServer(t, testLockNeedsObjectLockOnTheBucket)
}

func testLockNeedsObjectLockOnTheBucket(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g, func(c *S3Config) { c.Lock = time.Hour })
	_, err := tb.Upload(context.Background(), localFile(t, "f", 10, "f"))
	var fe *FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "bucket "+tb.name+" has no Object Lock") {
		t.Fatalf("upload with Lock to a bucket without Object Lock: %v", err)
	}
	if objs := tb.objects(t); len(objs) != 0 {
		t.Errorf("written: %d objects", len(objs))
	}
}
