package uploader

import (
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// OnEachTestS3 runs test on each test server (versitygw, then moto, which
// skips if it is not installed) with an S3 on a fresh bucket and a way to
// put objects straight into it, for tests outside the package.
func OnEachTestS3(t *testing.T, test func(t *testing.T, s *S3, put func(t *testing.T, key string, body []byte, o *Object))) {
	onEachServer(t, func(t *testing.T, g *s3test.Gateway) {
		tb := newTestBucketOn(t, g)
		test(t, tb.S3, func(t *testing.T, key string, body []byte, o *Object) {
			t.Helper()
			var md map[string]string
			if o != nil {
				md = o.Metadata()
			}
			tb.put(t, key, string(body), md)
		})
	})
}
