// Package bwlimit limits the bandwidth of uploads: one token bucket
// (golang.org/x/time/rate) shared by every request of every worker, its
// rate following a Schedule, taken from as request bodies are read onto
// the wire (Limiter.Client wraps an HTTP client).
//
//	lim := bwlimit.New(bwlimit.Constant(1 << 20)) // 1 MiB/s
//	client := lim.Client(http.DefaultClient)
package bwlimit

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Clock is the time a Limiter keeps; tests give a fake one.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t, or with ctx's error when ctx ends first.
	SleepUntil(ctx context.Context, t time.Time) error
}

// RealClock is the system's clock, in local time.
var RealClock Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Limiter is a token bucket of bytes, safe for concurrent use. Its rate
// is the schedule's at the time bytes are asked for, looked up again at
// each change of the schedule and at least once a minute, so a change
// applies to the requests in flight.
type Limiter struct {
	sched Schedule
	clock Clock

	mu      sync.Mutex
	bucket  *rate.Limiter // nil until a rate is first in force
	rate    int64         // bytes per second in force; 0 no limit
	next    time.Time     // when the schedule changes next; zero never
	checked time.Time     // when the schedule was last looked up
}

// New is a limiter following s on the real clock.
func New(s Schedule) *Limiter { return NewWithClock(s, RealClock) }

// NewWithClock is a limiter following s on c.
func NewWithClock(s Schedule, c Clock) *Limiter { return &Limiter{sched: s, clock: c} }

// Schedule is the schedule l follows.
func (l *Limiter) Schedule() Schedule { return l.sched }

// Rate is the limit in force now, in bytes per second; 0 is none.
func (l *Limiter) Rate() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.follow(l.clock.Now())
	return l.rate
}

// burstFor is the bucket's depth at rate r: a twentieth of a second of
// bytes (at least 512, at most 4 MiB), so that a pause does not let a
// burst through that would show over a few seconds, and a change of rate
// reaches the requests in flight within a fraction of a second.
func burstFor(r int64) int {
	return int(min(max(r/20, min(r, 512)), 4<<20))
}

// follow sets the rate in force at now from the schedule, when it may
// have changed. The caller holds l.mu.
func (l *Limiter) follow(now time.Time) {
	due := l.checked.IsZero() || now.Before(l.checked) || now.Sub(l.checked) >= time.Minute ||
		!l.next.IsZero() && !now.Before(l.next)
	if !due {
		return
	}
	r, next := l.sched.At(now)
	l.checked, l.next = now, next
	if r == l.rate {
		return
	}
	switch {
	case r == 0:
		// Off: the bucket stays as it was, unused, until a rate again.
	case l.rate == 0:
		l.bucket = rate.NewLimiter(rate.Limit(r), burstFor(r))
	default:
		l.bucket.SetLimitAt(now, rate.Limit(r))
		l.bucket.SetBurstAt(now, burstFor(r))
	}
	l.rate = r
}

// Wait takes n bytes from the bucket, returning when they may be sent, or
// with ctx's error when ctx ends first (the bytes not sent are given back).
func (l *Limiter) Wait(ctx context.Context, n int) error {
	for n > 0 {
		res, until, took := l.reserve(n)
		if took == 0 {
			return nil // no limit
		}
		if until.After(l.clock.Now()) {
			if err := l.clock.SleepUntil(ctx, until); err != nil {
				res.CancelAt(l.clock.Now())
				return err
			}
		}
		n -= took
	}
	return nil
}

// reserve takes up to n bytes (at most the bucket's depth) from the bucket:
// when they may go, and how many it took (0: no limit in force).
func (l *Limiter) reserve(n int) (res *rate.Reservation, until time.Time, took int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.follow(now)
	if l.rate == 0 {
		return nil, now, 0
	}
	took = min(n, l.bucket.Burst())
	res = l.bucket.ReserveN(now, took)
	return res, now.Add(res.DelayFrom(now)), took
}

// chunk is the most bytes a Reader reads at once: the bucket's depth, so
// that bytes go out evenly rather than in large bursts after long waits.
func (l *Limiter) chunk(want int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate == 0 || l.bucket == nil {
		return want
	}
	return max(1, min(want, l.bucket.Burst()))
}

// Reader is r, each byte read through it taken from the bucket before
// Read returns it; ctx ends the waits.
func (l *Limiter) Reader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r, l: l}
}

type reader struct {
	ctx context.Context
	r   io.Reader
	l   *Limiter
}

func (t *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return t.r.Read(p)
	}
	n, err := t.r.Read(p[:t.l.chunk(len(p))])
	if n > 0 {
		if werr := t.l.Wait(t.ctx, n); werr != nil {
			return 0, werr
		}
	}
	return n, err
}

// Doer sends HTTP requests: an *http.Client, or the AWS SDK's
// aws.HTTPClient.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Client is d with the bodies of the requests it sends limited by l. The
// bytes are taken from the bucket as the transport reads them to write
// them out: a body sent again (a retry, a new attempt of the SDK) takes
// its bytes again, as they cross the network again, and bytes read but
// not sent (a checksum the SDK computes over a body before sending it)
// take nothing.
func (l *Limiter) Client(d Doer) Doer { return limitedClient{d: d, l: l} }

type limitedClient struct {
	d Doer
	l *Limiter
}

func (c limitedClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
		return c.d.Do(req)
	}
	ctx := req.Context()
	limited := req.WithContext(ctx) // a shallow copy: the caller's request is left as it was
	limited.Body = c.l.body(ctx, req.Body)
	if getBody := req.GetBody; getBody != nil {
		limited.GetBody = func() (io.ReadCloser, error) {
			b, err := getBody()
			if err != nil {
				return nil, err
			}
			return c.l.body(ctx, b), nil
		}
	}
	return c.d.Do(limited)
}

// body is rc limited by l.
func (l *Limiter) body(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{l.Reader(ctx, rc), rc}
}
