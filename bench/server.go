package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/gateway"
)

// server is what a benchmark measures against: a local Versity S3 Gateway
// (its storage in dir) behind a counting proxy, with a fresh bucket.
type server struct {
	gw     *gateway.Gateway
	proxy  *gateway.Proxy
	bucket string
}

func startServer(ctx context.Context, dir, bucketPrefix string, logf func(string, ...any)) (*server, error) {
	gw, err := gateway.Start(ctx, gateway.Options{Root: filepath.Join(dir, "gateway"), Logf: logf})
	if err != nil {
		return nil, err
	}
	proxy, err := gateway.NewProxy(gw.Endpoint)
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
