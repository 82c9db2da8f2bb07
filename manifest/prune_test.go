package manifest

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// addVersions writes n versions of path straight into the table, one a
// day from start, each replaced a day after it was written (the last one
// current if current), with version ids path#a, path#b...
func addVersions(t *testing.T, m *DB, path string, start time.Time, n int, current bool, lockedUntil time.Time) {
	t.Helper()
	for i := range n {
		written := start.Add(time.Duration(i) * 24 * time.Hour)
		var ended any = written.Add(24 * time.Hour).UnixNano()
		if current && i == n-1 {
			ended = nil
		}
		_, err := m.db.Exec(`INSERT INTO versions(path, run, written_ns, ended_ns, size, blake3, mtime_ns, mode, version_id, retain_until_ns)
			VALUES (?, ?, ?, ?, 10, zeroblob(32), 0, 420, ?, ?)`, path, i+1, written.UnixNano(), ended, path+"#"+string(rune('a'+i)), unixOrZero(lockedUntil))
		if err != nil {
			t.Fatal(err)
		}
	}
}

// openPruneTest is a new manifest, and the day its versions start.
func openPruneTest(t *testing.T) (*DB, time.Time) {
	m, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/src", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func versionIDs(vs []OldVersion) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.VersionID)
	}
	return out
}

func TestPrunePlanKeepsByAgeOrCount(t *testing.T) {
	m, start := openPruneTest(t)
	ctx := context.Background()
	// a: 5 versions, a#e current; non-current a#a..a#d ended on Jan 2..5.
	addVersions(t, m, "a", start, 5, true, time.Time{})
	// gone: deleted; 2 non-current, ended Jan 2 and 3.
	addVersions(t, m, "gone", start, 2, false, time.Time{})
	// locked: 3 versions, the old ones locked until Feb 1.
	addVersions(t, m, "locked", start, 3, true, start.AddDate(0, 1, 0))
	now := start.AddDate(0, 0, 10) // Jan 11

	for _, c := range []struct {
		name         string
		keep         Keep
		remove, lock []string
		kept         int64
	}{
		{name: "count 2", keep: Keep{Count: 2}, remove: []string{"a#a", "a#b"}, kept: 6},
		{name: "age 7d: kept if ended after Jan 4", keep: Keep{Age: 7 * 24 * time.Hour}, remove: []string{"a#a", "a#b", "a#c", "gone#a", "gone#b"}, lock: []string{"locked#a", "locked#b"}, kept: 1},
		{name: "age 30d: nothing past it", keep: Keep{Age: 30 * 24 * time.Hour}, kept: 8},
		{name: "7d or 1", keep: Keep{Age: 7 * 24 * time.Hour, Count: 1}, remove: []string{"a#a", "a#b", "a#c", "gone#a"}, lock: []string{"locked#a"}, kept: 3},
	} {
		plan, err := m.PrunePlan(ctx, c.keep, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := versionIDs(plan.Remove); !slices.Equal(got, c.remove) {
			t.Errorf("%s: remove %v, want %v", c.name, got, c.remove)
		}
		if got := versionIDs(plan.Locked); !slices.Equal(got, c.lock) {
			t.Errorf("%s: locked %v, want %v", c.name, got, c.lock)
		}
		if plan.Kept != c.kept {
			t.Errorf("%s: kept %d, want %d", c.name, plan.Kept, c.kept)
		}
		for _, v := range plan.Remove {
			if v.Current() {
				t.Errorf("%s: current version %s in the plan", c.name, v.VersionID)
			}
		}
	}
	if _, err := m.PrunePlan(ctx, Keep{}, now); err == nil {
		t.Error("PrunePlan with no keep: no error")
	}
	// After the locks end, the locked versions go like the others.
	plan, err := m.PrunePlan(ctx, Keep{Count: 1}, start.AddDate(0, 2, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := versionIDs(plan.Remove); !slices.Equal(got, []string{"a#a", "a#b", "a#c", "gone#a", "locked#a"}) {
		t.Errorf("after the locks: remove %v", got)
	}
}

func TestPruneMarksAreWeighedByTheNextKeep(t *testing.T) {
	m, start := openPruneTest(t)
	ctx := context.Background()
	addVersions(t, m, "a", start, 4, true, time.Time{})
	now := start.AddDate(0, 0, 10)
	plan, err := m.PrunePlan(ctx, Keep{Count: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int64{plan.Remove[0].ID, plan.Remove[1].ID} // a#a, a#b
	if err := m.MarkPruning(ctx, ids, now); err != nil {
		t.Fatal(err)
	}
	// Killed before S3's answer was recorded; the next prune keeps more.
	plan, err = m.PrunePlan(ctx, Keep{Count: 10}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := versionIDs(plan.Doubt); len(plan.Remove) != 0 || !slices.Equal(got, []string{"a#a", "a#b"}) || plan.Kept != 1 {
		t.Errorf("after a kill: remove %v, in doubt %v, kept %d; want the marked a#a, a#b in doubt, kept 1", versionIDs(plan.Remove), got, plan.Kept)
	}
	plan, err = m.PrunePlan(ctx, Keep{Count: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := versionIDs(plan.Remove); len(plan.Doubt) != 0 || !slices.Equal(got, []string{"a#a", "a#b"}) {
		t.Errorf("after a kill, with the same keep: remove %v, in doubt %v; want a#a, a#b removed", got, versionIDs(plan.Doubt))
	}
	if err := m.UnmarkPruning(ctx, ids[1:]); err != nil {
		t.Fatal(err)
	}
	if err := m.ForgetVersions(ctx, ids[:1]); err != nil {
		t.Fatal(err)
	}
	h, err := m.History(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].VersionID != "a#b" {
		t.Errorf("history after forgetting a#a: %+v", h)
	}
	plan, err = m.PrunePlan(ctx, Keep{Count: 10}, now)
	if err != nil || len(plan.Remove) != 0 {
		t.Errorf("after unmarking: remove %v, %v; want none", versionIDs(plan.Remove), err)
	}
	if _, ok, err := m.LastPruned(ctx); ok || err != nil {
		t.Errorf("LastPruned before any: %v, %v", ok, err)
	}
	if err := m.SetPruned(ctx, now); err != nil {
		t.Fatal(err)
	}
	if at, ok, err := m.LastPruned(ctx); !ok || err != nil || !at.Equal(now) {
		t.Errorf("LastPruned = %v, %v, %v; want %v", at, ok, err, now)
	}
}
