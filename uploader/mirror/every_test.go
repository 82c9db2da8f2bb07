package mirror

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Runs never overlap; one longer than the interval is followed at once;
// the schedule stops with its context, after the run in flight.
func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running, runs atomic.Int32
	var nexts []time.Time
	var ends []time.Time
	Every(ctx, 20*time.Millisecond, func(context.Context) {
		if running.Add(1) != 1 {
			t.Error("two runs at once")
		}
		n := runs.Add(1)
		if n == 1 {
			time.Sleep(50 * time.Millisecond) // longer than the interval
		}
		if n == 3 {
			cancel()
		}
		ends = append(ends, time.Now())
		running.Add(-1)
	}, func(next time.Time) { nexts = append(nexts, next) })
	if runs.Load() != 3 {
		t.Fatalf("%d runs, want 3 (the third cancels)", runs.Load())
	}
	if len(nexts) != 2 {
		t.Fatalf("waiting called %d times, want 2 (not after the cancelled run)", len(nexts))
	}
	if !nexts[0].Before(ends[0]) {
		t.Errorf("the run after a long one is due at %v, after the long one ended (%v): it should start at once", nexts[0], ends[0])
	}
}
