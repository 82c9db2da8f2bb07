package uploader

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// fileSlots is how many files are read whole into memory at once within
// the byte budget, as many as the workers of the fixed pool before many
// requests were in flight: with such files memory holds what it held then.
const fileSlots = 8

// spareBytes is the memory small files beyond fileSlots may hold at once:
// 2,000 files of 8 KiB, 16 of 1 MiB. With Go's collector letting the heap
// grow to twice what is live, it costs at most 32 MiB more than a pool of
// eight workers did, whatever is in flight. (Without it, 256 files of
// 1 MiB would hold 128 MiB where eight workers held 8.)
const spareBytes = 16 << 20

// memBudget bounds the file content held in upload buffers.
type memBudget struct {
	size  int64               // of bytes
	bytes *semaphore.Weighted // parts, and the files holding a slot
	slots *semaphore.Weighted // files read whole, fileSlots at once
	spare *semaphore.Weighted // the files beyond those, spareBytes in all
}

func newMemBudget(size int64) *memBudget {
	return &memBudget{
		size:  size,
		bytes: semaphore.NewWeighted(size),
		slots: semaphore.NewWeighted(fileSlots),
		spare: semaphore.NewWeighted(spareBytes),
	}
}

// file waits until a file of n bytes may be read whole: in one of the
// slots and the byte budget, or, while the slots are taken, in the spare
// bytes. Call release when its buffer is no longer needed.
func (m *memBudget) file(ctx context.Context, n int64) (release func(), err error) {
	n = max(n, 1)
	if !m.slots.TryAcquire(1) {
		if m.spare.TryAcquire(n) {
			return func() { m.spare.Release(n) }, nil
		}
		if err := m.slots.Acquire(ctx, 1); err != nil {
			return nil, err
		}
	}
	if err := m.bytes.Acquire(ctx, n); err != nil {
		m.slots.Release(1)
		return nil, err
	}
	return func() {
		m.bytes.Release(n)
		m.slots.Release(1)
	}, nil
}

// part waits until a part of n bytes may be read, and returns what it
// holds of the budget, to give back with Release: a part larger than the
// whole budget (a file over 10,000 parts of the configured size) takes all
// of it, never more, since asking for more would wait forever.
func (m *memBudget) part(ctx context.Context, n int64) (held int64, err error) {
	held = min(n, m.size)
	return held, m.bytes.Acquire(ctx, held)
}

// release gives back what part held.
func (m *memBudget) release(held int64) { m.bytes.Release(held) }
