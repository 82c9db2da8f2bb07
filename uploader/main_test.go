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

// moto is the second, independent S3 server the contract tests also run
// on (onEachServer), started by the first of them.
var moto gwtest.Moto

func TestMain(m *testing.M) { gwtest.Main(m, &gw, &moto) }

// onEachServer runs test as two subtests, on versitygw and on moto, which
// skips if moto_server is not installed. The S3 contract tests (put, copy,
// multipart, delete batches, list, head, versions, Object Lock) run so,
// so that a quirk of one server does not pass for S3; the rest of the
// tests, about what the client does, run on versitygw only.
func onEachServer(t *testing.T, test func(t *testing.T, g *s3test.Gateway)) {
	t.Run("versitygw", func(t *testing.T) { test(t, gw) })
	t.Run("moto", func(t *testing.T) { test(t, moto.Start(t)) })
}

// testBucket is a fresh bucket behind a counting proxy, and an S3 Bucket
// on it.
type testBucket struct {
	*S3
	name  string
	proxy *s3test.Proxy
	gw    *s3test.Gateway // the server it is on
}

// newTestBucket is a testBucket on versitygw.
func newTestBucket(t testing.TB, mod ...func(*S3Config)) *testBucket {
	t.Helper()
	return newTestBucketOn(t, gw, mod...)
}

// newTestBucketOn is a testBucket on g.
func newTestBucketOn(t testing.TB, g *s3test.Gateway, mod ...func(*S3Config)) *testBucket {
	t.Helper()
	name := gwtest.Bucket(t, g)
	proxy, err := s3test.NewProxy(g.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	cfg := S3Config{
		Bucket:      name,
		Endpoint:    proxy.URL,
		Credentials: credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, ""),
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
	return &testBucket{S3: b, name: cfg.Bucket, proxy: proxy, gw: g}
}

// objects returns the bucket's objects, read with a client of its own.
func (tb *testBucket) objects(t *testing.T) map[string]gwtest.Object {
	t.Helper()
	return gwtest.Objects(t, tb.gw.Client(), tb.name, "")
}
