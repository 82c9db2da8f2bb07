package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// server is what a benchmark measures against: a local Versity S3 Gateway
// (its storage in dir) behind a counting proxy, with a fresh bucket.
type server struct {
	gw     *s3test.Gateway
	proxy  *s3test.Proxy
	bucket string
}

func startServer(ctx context.Context, dir, bucketPrefix string, logf func(string, ...any)) (*server, error) {
	gw, err := s3test.Start(ctx, s3test.Options{Root: filepath.Join(dir, "gateway"), Logf: logf})
	if err != nil {
		return nil, err
	}
	proxy, err := s3test.NewProxy(gw.Endpoint)
	if err != nil {
		gw.Stop()
		return nil, err
	}
	s := &server{gw: gw, proxy: proxy, bucket: fmt.Sprintf("%s-%d", bucketPrefix, time.Now().Unix())}
	if err := gw.CreateBucket(ctx, s.bucket); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *server) close() {
	s.proxy.Close()
	s.gw.Stop()
}
