package uploader

import (
	"context"
	"testing"
)

// Beyond the eight files read whole, as a pool of eight workers read them,
// only small files are read at once, within the spare bytes; larger ones
// wait for a slot.
func TestMemBudgetSpareBytesForSmallFilesOnly(t *testing.T) {
	m := newMemBudget(128 << 20)
	ctx := context.Background()
	var releases []func()
	for range fileSlots {
		r, err := m.file(ctx, 4<<20)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	done, cancel := context.WithCancel(ctx)
	cancel() // whatever must wait fails at once
	var small []func()
	for i := range spareBytes / (8 << 10) {
		r, err := m.file(done, 8<<10)
		if err != nil {
			t.Fatalf("small file %d beyond the slots: %v", i, err)
		}
		small = append(small, r)
	}
	if _, err := m.file(done, 8<<10); err == nil {
		t.Fatal("a small file beyond the spare bytes did not wait")
	}
	small[0]()
	if _, err := m.file(done, 16<<20); err == nil {
		t.Fatal("a 16 MiB file with the slots taken did not wait")
	}
	releases[0]()
	r, err := m.file(ctx, 16<<20)
	if err != nil {
		t.Fatalf("a 16 MiB file with a slot free: %v", err)
	}
	r()
}
