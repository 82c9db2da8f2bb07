package mirror

import (
	"context"
	"time"
)

// Every calls run now and then once every interval, until ctx ends; before
// each wait it calls waiting (if not nil) with the time of the next run. A
// run that takes longer than the interval is followed by the next at once:
// never two at a time. It returns when ctx ends, after the run in flight.
func Every(ctx context.Context, every time.Duration, run func(context.Context), waiting func(next time.Time)) {
	for {
		next := time.Now().Add(every)
		run(ctx)
		if ctx.Err() != nil {
			return
		}
		if waiting != nil {
			waiting(next)
		}
		select {
		case <-time.After(time.Until(next)):
		case <-ctx.Done():
			return
		}
	}
}
