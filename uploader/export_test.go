package uploader

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// NewTestS3 returns an S3 on a fresh bucket of the test gateway, and a
// way to put objects straight into it, for tests outside the package.
func NewTestS3(t *testing.T) (*S3, func(t *testing.T, key string, body []byte, o *Object)) {
	tb := newTestBucket(t)
	return tb.S3, func(t *testing.T, key string, body []byte, o *Object) {
		t.Helper()
		var md map[string]string
		if o != nil {
			md = o.Metadata()
		}
		_, err := gw.Client().PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String(tb.name), Key: aws.String(key), Body: bytes.NewReader(body), Metadata: md,
		})
		if err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
	}
}
