package uploader

import (
	"context"
	"fmt"
	"math"
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

// BenchmarkUploadAtBandwidthLimit is the manual measurement of the README:
// 40 MiB (two files in parts, 256 small files) uploaded by 8 workers at
// 1 MiB/s, the rate at the proxy over every 30 s window of the transfer.
//
//	go test ./uploader -run '^$' -bench UploadAtBandwidthLimit -benchtime 1x
func BenchmarkUploadAtBandwidthLimit(b *testing.B) {
	const limit = 1 << 20
	for range b.N {
		tb := newTestBucket(b, func(c *S3Config) { c.Bandwidth = bwlimit.New(bwlimit.Constant(limit)) })
		ups := []Upload{localFile(b, "a", 12<<20, "a"), localFile(b, "b", 12<<20, "b")}
		for i := range 256 {
			ups = append(ups, localFile(b, fmt.Sprint("s", i), 64<<10, fmt.Sprint("s", i)))
		}
		ctx := context.Background()
		if err := tb.Check(ctx); err != nil {
			b.Fatal(err)
		}
		samples := sampleUploads(tb.proxy, func() {
			work := make(chan Upload)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for u := range work {
						if _, err := tb.Upload(ctx, u); err != nil {
							b.Errorf("upload %s: %v", u.Key, err)
						}
					}
				})
			}
			for _, u := range ups {
				work <- u
			}
			close(work)
			wg.Wait()
		})
		lo, hi := windowRates(samples, 30*time.Second)
		first, last := samples[0], samples[len(samples)-1]
		overall := float64(last.bytes-first.bytes) / last.at.Sub(first.at).Seconds()
		b.Logf("40 MiB at 1 MiB/s: %v, overall %.0f B/s (%+.1f%%); 30 s windows %.0f to %.0f B/s (%+.1f%% to %+.1f%%)",
			last.at.Sub(first.at).Round(time.Millisecond), overall, 100*(overall/limit-1), lo, hi, 100*(lo/limit-1), 100*(hi/limit-1))
		b.ReportMetric(lo/limit, "min30s/limit")
		b.ReportMetric(hi/limit, "max30s/limit")
	}
}

type sample struct {
	at    time.Time
	bytes int64
}

// sampleUploads runs f, sampling the proxy's uploaded bytes every 100 ms.
func sampleUploads(p *s3test.Proxy, f func()) []sample {
	done := make(chan struct{})
	out := make(chan []sample)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		s := []sample{{time.Now(), p.Stats().BytesUploaded}}
		for {
			select {
			case <-done:
				out <- append(s, sample{time.Now(), p.Stats().BytesUploaded})
				return
			case now := <-tick.C:
				s = append(s, sample{now, p.Stats().BytesUploaded})
			}
		}
	}()
	f()
	close(done)
	return <-out
}

// windowRates are the lowest and highest rates over windows of d that
// start at a sample.
func windowRates(s []sample, d time.Duration) (lo, hi float64) {
	lo = math.Inf(1)
	for i, j := 0, 0; i < len(s); i++ {
		for j < len(s) && s[j].at.Sub(s[i].at) < d {
			j++
		}
		if j == len(s) {
			break
		}
		r := float64(s[j].bytes-s[i].bytes) / s[j].at.Sub(s[i].at).Seconds()
		lo, hi = min(lo, r), max(hi, r)
	}
	return lo, hi
}
