package uploader

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/bwlimit"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// rateWithin fails unless bytes in took is within share of limit.
func rateWithin(t *testing.T, what string, bytes int64, took time.Duration, limit int64, share float64) {
	t.Helper()
	rate := float64(bytes) / took.Seconds()
	t.Logf("%s: %d bytes in %v: %.0f B/s, limit %d B/s (%+.1f%%)", what, bytes, took.Round(time.Millisecond), rate, limit, 100*(rate/float64(limit)-1))
	if rate < float64(limit)*(1-share) || rate > float64(limit)*(1+share) {
		t.Errorf("%s: %.0f B/s at the proxy, want %d B/s ± %.0f%%", what, rate, limit, 100*share)
	}
}

// Uploads in parts and small files, on concurrent workers, share one
// limit: 6 MiB at 1 MiB/s reach the proxy in 6 s.
func TestUploadHoldsTheBandwidthLimit(t *testing.T) {
	const limit = 1 << 20
	lim := bwlimit.New(bwlimit.Constant(limit))
	tb := newTestBucket(t, func(c *S3Config) { c.Bandwidth = lim })
	ups := []Upload{localFile(t, "parts", 5<<20+512<<10, "parts")} // two parts
	for i := range 8 {
		ups = append(ups, localFile(t, fmt.Sprint("small", i), 64<<10, fmt.Sprint("small", i)))
	}
	ctx := context.Background()
	if err := tb.Check(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Go(func() {
			if _, err := tb.Upload(ctx, u); err != nil {
				t.Errorf("upload %s: %v", u.Key, err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	st := tb.proxy.Stats()
	if st.BytesUploaded != 6<<20 || st.ByOp["UploadPart"] != 2 || st.ByOp["PutObject"] != 8 {
		t.Fatalf("proxy saw %+v, want 6 MiB in 2 parts and 8 PutObject", st)
	}
	rateWithin(t, "6 MiB", st.BytesUploaded, took, limit, 0.12)
}

// A body sent again takes from the limit again, once: a PutObject of
// 1 MiB answered 503 once (after its body was read, as S3 does) sends
// 2 MiB over the wire, 2 s at 1 MiB/s, neither 1 s (the retry bypassing
// the limit) nor 3 s (a body counted twice).
func TestRetryTakesFromTheLimitOnce(t *testing.T) {
	const limit = 1 << 20
	lim := bwlimit.New(bwlimit.Constant(limit))
	tb := newTestBucket(t, func(c *S3Config) { c.Bandwidth = lim; c.MaxAttempts = 2; c.MaxBackoff = time.Millisecond })
	var faulted atomic.Bool
	tb.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" && faulted.CompareAndSwap(false, true) {
			return &s3test.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}
		}
		return nil
	})
	u := localFile(t, "one", 1<<20, "one")
	ctx := context.Background()
	if err := tb.Check(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := tb.Upload(ctx, u); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if st := tb.proxy.Stats(); st.ByOp["PutObject"] != 2 || st.BytesUploaded != 1<<20 {
		t.Fatalf("proxy saw %+v, want 2 PutObject attempts, 1 MiB forwarded", st)
	}
	rateWithin(t, "1 MiB sent twice", 2<<20, took, limit, 0.15)
}
