package uploader

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// smallFiles writes n small files and returns their uploads under p/.
func smallFiles(t *testing.T, n int) []Upload {
	t.Helper()
	dir := t.TempDir()
	ups := make([]Upload, n)
	for i := range ups {
		p := filepath.Join(dir, fmt.Sprintf("f%04d", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("small file %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		d, st, err := scanner.HashFile(scanner.OS{}, p)
		if err != nil {
			t.Fatal(err)
		}
		ups[i] = Upload{Object: Object{Key: fmt.Sprintf("p/f%04d", i), Size: st.Size, Hash: d, MtimeNs: st.MtimeNs, Mode: st.Mode}, Path: p}
	}
	return ups
}

// A server that sheds load (503 SlowDown to one request in five, for a
// while) makes the client keep fewer requests in flight, and more again
// once it stops; every upload completes.
func TestSlowDownLowersTheLimitThenRaisesIt(t *testing.T) {
	var mu sync.Mutex
	var limits []int
	tb := newTestBucket(t, func(c *S3Config) {
		c.Concurrency = 0 // auto
		c.MaxAttempts = 20
		c.MaxBackoff = 20 * time.Millisecond
		c.Limit = func(l int) {
			mu.Lock()
			limits = append(limits, l)
			mu.Unlock()
		}
	})
	tb.proxy.SetDelay(20 * time.Millisecond) // so that many are in flight at once
	const files, faulted = 800, 400          // the first 400 PUTs: 80 answered 503
	var puts, refused atomic.Int64
	tb.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) != "PutObject" {
			return nil
		}
		if n := puts.Add(1); n <= faulted && n%5 == 0 {
			refused.Add(1)
			return &s3test.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}
		}
		return nil
	})
	g, ctx := errgroup.WithContext(context.Background())
	for _, u := range smallFiles(t, files) {
		g.Go(func() error {
			_, err := tb.Upload(ctx, u)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("uploads under SlowDown: %v", err)
	}
	if got := len(tb.objects(t)); got != files {
		t.Fatalf("%d objects, want %d", got, files)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(limits) == 0 {
		t.Fatalf("%d answers were 503 SlowDown and the limit on requests in flight never changed from %d", refused.Load(), AutoConcurrency)
	}
	lowest := slices.Index(limits, slices.Min(limits))
	if limits[lowest] >= AutoConcurrency/2 {
		t.Errorf("limits %v: never below %d", limits, AutoConcurrency/2)
	}
	if slices.Max(limits[lowest:]) <= limits[lowest] {
		t.Errorf("limits %v: never raised again after %d", limits, limits[lowest])
	}
	t.Logf("%d SlowDown, limits %v", refused.Load(), limits)
}

// Inflight halves its limit once for a burst of throttled answers to the
// requests in flight, not once per answer.
func TestInflightHalvesOncePerRound(t *testing.T) {
	l := NewInflight(64)
	ctx := context.Background()
	epochs := make([]int, 64)
	for i := range epochs {
		var err error
		if epochs[i], err = l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range epochs {
		l.Release(e, true)
	}
	if got := l.Limit(); got != 32 {
		t.Fatalf("64 throttled answers to one round: limit %d, want 32", got)
	}
	for range 32 * 4 {
		e, _ := l.Acquire(ctx)
		l.Release(e, false)
	}
	if got := l.Limit(); got <= 32 || got > 64 {
		t.Fatalf("after 4 rounds of answers: limit %d, want above 32, at most 64", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for range l.Limit() {
		l.Acquire(ctx)
	}
	if _, err := l.Acquire(cctx); err == nil {
		t.Fatal("Acquire on a full limit with a cancelled context: no error")
	}
}
