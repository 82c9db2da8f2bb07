package uploader

import (
	"context"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// AutoConcurrency is the most S3 requests in flight when the caller sets no
// cap: as many as s5cmd keeps. A small object's request is almost all round
// trip, so at 80 ms per request 256 in flight send about 3,200 a second,
// near S3's documented 3,500 PUT/s per prefix, above which it answers
// 503 SlowDown and the limit backs off (see Inflight). Large objects are
// bounded by the byte budget (S3Config.MemoryBudget), not by this number.
const AutoConcurrency = 256

// Inflight limits the S3 requests in flight, adapting the limit to the
// server: additive increase, multiplicative decrease (as TCP does with its
// window). A throttled answer (503 SlowDown, 429) halves the limit, once
// per round of requests: the answers to requests sent before the last
// decrease do not decrease it again, so a burst of 503s to all those in
// flight counts once. Every round of answers (as many as the limit) adds
// a 32nd of the maximum, so that a limit halved a few times is back within
// a few dozen rounds (a few seconds at 80 ms), never above its maximum. It
// is safe for concurrent use.
type Inflight struct {
	// Changed, if set, is told of every new limit (under a lock: it must
	// not call back into the Inflight).
	Changed func(limit int)

	mu      sync.Mutex
	max     int
	limit   int
	credit  int // answers since the last additive step
	inUse   int
	epoch   int // counts decreases
	waiters []chan struct{}
}

// NewInflight is a limit of n requests in flight, starting at n.
func NewInflight(n int) *Inflight {
	n = max(n, 1)
	return &Inflight{max: n, limit: n}
}

// Limit is the current limit.
func (l *Inflight) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// Acquire waits for a slot, and returns the epoch to give Release.
func (l *Inflight) Acquire(ctx context.Context) (int, error) {
	l.mu.Lock()
	if l.inUse < l.limit && len(l.waiters) == 0 {
		l.inUse++
		defer l.mu.Unlock()
		return l.epoch, nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.epoch, nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return 0, ctx.Err()
			}
		}
		// Granted meanwhile: give the slot back.
		l.inUse--
		l.wake()
		return 0, ctx.Err()
	}
}

// Release gives back a slot taken at epoch, saying whether the server
// answered that it is overloaded.
func (l *Inflight) Release(epoch int, throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse--
	old := l.limit
	switch {
	case throttled && epoch == l.epoch:
		l.epoch++
		l.limit = max(l.limit/2, 1)
		l.credit = 0
	case throttled:
	case l.limit < l.max:
		if l.credit++; l.credit >= l.limit {
			l.credit = 0
			l.limit = min(l.limit+max(l.max/32, 1), l.max)
		}
	}
	if l.limit != old && l.Changed != nil {
		l.Changed(l.limit)
	}
	l.wake()
}

// wake hands free slots to the waiters, first come first served.
func (l *Inflight) wake() {
	for l.inUse < l.limit && len(l.waiters) > 0 {
		close(l.waiters[0])
		l.waiters = l.waiters[1:]
		l.inUse++
	}
}

// limitedClient is an HTTP client that sends each attempt of a request
// (retries included) within an Inflight: from sending it until its answer's
// headers arrive.
type limitedClient struct {
	next aws.HTTPClient
	l    *Inflight
}

func (c limitedClient) Do(r *http.Request) (*http.Response, error) {
	epoch, err := c.l.Acquire(r.Context())
	if err != nil {
		return nil, err
	}
	resp, err := c.next.Do(r)
	c.l.Release(epoch, err == nil && throttledStatus(resp.StatusCode))
	return resp, err
}

// throttledStatus reports whether an HTTP status says the server sheds load:
// S3's 503 SlowDown, and the 429 some S3-compatible servers send.
func throttledStatus(code int) bool {
	return code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests
}
