package bwlimit_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/bwlimit"
)

// fakeClock stands still until a sleeper moves it to the time it sleeps
// until: concurrent sleepers move it to the latest of their times, as the
// real clock would pass them.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(at string) *fakeClock {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", at, time.UTC)
	if err != nil {
		panic(err)
	}
	return &fakeClock{now: t}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func mustSchedule(t *testing.T, s string) bwlimit.Schedule {
	t.Helper()
	sched, err := bwlimit.ParseSchedule(s)
	if err != nil {
		t.Fatal(err)
	}
	return sched
}

// readAll reads n bytes through the limiter in the transport's 32 KiB
// reads, on workers goroutines sharing it.
func readAll(t *testing.T, l *bwlimit.Limiter, workers, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			got, err := io.CopyBuffer(io.Discard, l.Reader(context.Background(), bytes.NewReader(make([]byte, n))), make([]byte, 32<<10))
			if err != nil || got != int64(n) {
				t.Errorf("read %d bytes, err %v; want %d", got, err, n)
			}
		})
	}
	wg.Wait()
}

// The bytes go at the rate: 8 workers sharing 1 MiB/s take 8 s for 8 MiB,
// not 1 s.
func TestLimiterHoldsTheRateAcrossWorkers(t *testing.T) {
	for _, workers := range []int{1, 8} {
		clock := newFakeClock("2026-01-01 12:00:00")
		start := clock.Now()
		l := bwlimit.NewWithClock(bwlimit.Constant(1<<20), clock)
		readAll(t, l, workers, 8<<20/workers)
		took := clock.Now().Sub(start)
		// The bucket starts with a twentieth of a second of bytes in it.
		if want := 8 * time.Second; took < want-100*time.Millisecond || took > want {
			t.Errorf("%d workers: 8 MiB at 1 MiB/s took %v, want %v less at most the bucket's 50 ms", workers, took, want)
		}
	}
}

func TestLimiterOffSendsAtOnce(t *testing.T) {
	clock := newFakeClock("2026-01-01 12:00:00")
	start := clock.Now()
	readAll(t, bwlimit.NewWithClock(bwlimit.Constant(0), clock), 4, 1<<20)
	if took := clock.Now().Sub(start); took != 0 {
		t.Errorf("with no limit, reading waited %v", took)
	}
}

// The rate in force is the schedule's: off at 07:59:50 (23:00's, wrapped
// over midnight), 1 MiB/s from 08:00, off again from 23:00.
func TestLimiterFollowsTheSchedule(t *testing.T) {
	sched := mustSchedule(t, "08:00,1M 23:00,off")
	clock := newFakeClock("2026-01-01 07:59:50")
	l := bwlimit.NewWithClock(sched, clock)
	if r := l.Rate(); r != 0 {
		t.Errorf("07:59:50: rate %d, want off (23:00's, wrapped over midnight)", r)
	}
	readAll(t, l, 1, 4<<20)
	if got := clock.Now().Format("15:04:05"); got != "07:59:50" {
		t.Errorf("under off, 4 MiB took until %s, want no time", got)
	}
	clock.set(clock.Now().Add(10 * time.Second))
	start := clock.Now()
	readAll(t, l, 1, 4<<20)
	if took := clock.Now().Sub(start); took < 3900*time.Millisecond || took > 4*time.Second {
		t.Errorf("from 08:00 at 1 MiB/s, 4 MiB took %v, want 4 s", took)
	}
	clock.set(time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC))
	if r := l.Rate(); r != 0 {
		t.Errorf("23:00: rate %d, want off", r)
	}
}

// A schedule that is not changing is still looked at again within a
// minute: a clock that jumps (suspend, a time zone change) is followed.
func TestLimiterLooksAgainWhenTheClockJumps(t *testing.T) {
	sched := mustSchedule(t, "08:00,1M 09:00,2M")
	clock := newFakeClock("2026-01-01 08:30:00")
	l := bwlimit.NewWithClock(sched, clock)
	if r := l.Rate(); r != 1<<20 {
		t.Fatalf("08:30: rate %d, want 1M", r)
	}
	clock.set(time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)) // back an hour and a half
	if r := l.Rate(); r != 2<<20 {
		t.Errorf("after the clock went back to 07:00: rate %d, want 2M (09:00's, wrapped)", r)
	}
}

func TestLimiterWaitEndsWithTheContext(t *testing.T) {
	clock := newFakeClock("2026-01-01 12:00:00")
	l := bwlimit.NewWithClock(bwlimit.Constant(1024), clock)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := io.ReadAll(l.Reader(ctx, bytes.NewReader(make([]byte, 4096))))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read under a cancelled context: %v, want context.Canceled", err)
	}
}

// Client limits what crosses the wire: a server receiving 2 MiB at
// 1 MiB/s (real clock; generous bounds for a busy machine: the lower one
// is what matters, that the limit held).
func TestClientLimitsRequestBodies(t *testing.T) {
	var got int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got += n
	}))
	defer srv.Close()
	c := bwlimit.New(bwlimit.Constant(1 << 20)).Client(srv.Client())
	start := time.Now()
	for range 2 {
		req, _ := http.NewRequest(http.MethodPut, srv.URL, bytes.NewReader(make([]byte, 1<<20)))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	took := time.Since(start)
	if got != 2<<20 {
		t.Errorf("server received %d bytes, want %d", got, 2<<20)
	}
	if took < 1900*time.Millisecond || took > 6*time.Second {
		t.Errorf("2 MiB at 1 MiB/s took %v, want about 2 s", took)
	}
}

// A change of rate applies to a transfer in flight: 90 MiB from 08:00
// under "08:00,1M 08:01,2M" is 60 MiB in the first minute, then 30 MiB at
// 2 MiB/s: 75 s.
func TestLimiterChangesTheRateInFlight(t *testing.T) {
	sched := mustSchedule(t, "08:00,1M 08:01,2M")
	clock := newFakeClock("2026-01-01 08:00:00")
	start := clock.Now()
	readAll(t, bwlimit.NewWithClock(sched, clock), 4, 90<<20/4)
	if took := clock.Now().Sub(start); took < 74*time.Second || took > 76*time.Second {
		t.Errorf("90 MiB from 08:00 under %s took %v, want 75 s", sched, took)
	}
}
