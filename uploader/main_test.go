package uploader

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// gw is the real S3 server (Versity S3 Gateway) these tests talk to over
// HTTP with the real SDK; one per test binary.
var gw *s3test.Gateway

func TestMain(m *testing.M) { gwtest.Main(m, &gw) }

// testBucket is a fresh bucket behind a counting proxy, and an S3 Bucket
// on it.
type testBucket struct {
	*S3
	name  string
	proxy *s3test.Proxy
}

func newTestBucket(t testing.TB, mod ...func(*S3Config)) *testBucket {
	t.Helper()
	name := gwtest.Bucket(t, gw)
	proxy, err := s3test.NewProxy(gw.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg := S3Config{
		Bucket:      name,
		Endpoint:    proxy.URL,
		Credentials: credentials.NewStaticCredentialsProvider(gw.AccessKey, gw.SecretKey, ""),
		Concurrency: 4,
		PartSize:    5 << 20, // S3's smallest part size
		MaxAttempts: 1,
	}
	for _, f := range mod {
		f(&cfg)
	}
	b, err := NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testBucket{S3: b, name: cfg.Bucket, proxy: proxy}
}

// objects returns the bucket's objects, read with a client of its own.
func (tb *testBucket) objects(t *testing.T) map[string]gwtest.Object {
	t.Helper()
	return gwtest.Objects(t, gw.Client(), tb.name, "")
}
