package bench

import (
	"strings"
	"testing"
)

// The ground truth of the comparison: a change the bucket does not show is
// missed; a difference the workload did not make is invented.
func TestCompareState(t *testing.T) {
	before := state{"keep": 1, "edit": 1, "del": 1, "wrongly-deleted": 1}
	tree := state{"keep": 1, "edit": 2, "new": 3, "wrongly-deleted": 1, "new-missed": 4}
	after := state{"keep": 1, "edit": 2, "new": 3, "del": 1, "stray": 9}
	changed := map[string]bool{"edit": true, "del": true, "new": true, "new-missed": true}
	missed, invented := compareState(before, after, tree, changed)
	// missed: del (still there), new-missed (absent); invented: stray,
	// wrongly-deleted.
	if missed != 2 || invented != 2 {
		t.Fatalf("missed %d, invented %d", missed, invented)
	}
}

func TestReportedPaths(t *testing.T) {
	out := strings.Join([]string{
		`{"op":"add","path":"a/b","size":1}`,
		`{"op":"rename","path":"new","from":"old","size":2}`,
		`{"summary":{"add":1}}`,
	}, "\n")
	got := reportedPaths(out)
	if len(got) != 3 || !got["a/b"] || !got["new"] || !got["old"] {
		t.Fatalf("got %v", got)
	}
	missed, invented := compareReported(map[string]bool{"a/b": true, "x": true}, got)
	if missed != 1 || invented != 2 {
		t.Fatalf("missed %d invented %d", missed, invented)
	}
}

func TestReportWritesTableAndChart(t *testing.T) {
	r := &ModesReport{Machine: "m", Setup: "s", Results: []ModeResult{{Mode: "scan", Workload: "idle", WallS: 0.5, PeakRSSBytes: 1 << 20}}}
	var b strings.Builder
	r.Markdown(&b)
	if !strings.Contains(b.String(), "| idle | scan | 0 | 0 | 0.50 |") {
		t.Fatalf("markdown:\n%s", b.String())
	}
	b.Reset()
	r.SVG(&b)
	if !strings.HasPrefix(b.String(), "<svg") || !strings.Contains(b.String(), "idle") {
		t.Fatalf("svg:\n%s", b.String())
	}
	if strings.Contains(b.String(), ">never<") {
		t.Fatalf("a consistent run is drawn as never consistent:\n%s", b.String())
	}
	// A mode that missed changes never made the bucket consistent: the
	// chart must not read as if it merely took long.
	r.Results = append(r.Results, ModeResult{Mode: "events", Workload: "offline", WallS: 120, Missed: 250})
	b.Reset()
	r.Markdown(&b)
	if !strings.Contains(b.String(), "| offline | events | 250 | 0 | never (gave up at 120) |") {
		t.Fatalf("markdown does not say the bucket never matched:\n%s", b.String())
	}
	b.Reset()
	r.SVG(&b)
	if !strings.Contains(b.String(), ">never<") || !strings.Contains(b.String(), ">250<") {
		t.Fatalf("svg does not mark the missed changes:\n%s", b.String())
	}
}
