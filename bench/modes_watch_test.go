package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

// Lines of a hybrid `cloudkeeper watch --json`, as it printed them: its
// start-up sync, a scoped push, a periodic rescan, then the stop.
var recordedWatch = []string{
	`{"event":"watching","time":"2026-12-03T07:59:27.5302492Z","source":"/tmp/src","hybrid":true,"watched":true}`,
	`{"event":"push","time":"2026-12-03T07:59:27.530365983Z","kind":"full","reason":"start-up","dirty":0}`,
	`{"op":"add","path":"a.txt","size":5}`,
	`{"summary":{"add":1,"modify":0,"rename":0,"copy":0,"delete":0,"unchanged":0,"bytes":5,"errors":0,"hashed_files":1,"hashed_bytes":5}}`,
	`{"event":"pushed","time":"2026-12-03T07:59:27.598304139Z","kind":"full","reason":"start-up","dirty":0,"result":"success","exit_code":0,"counts":{"add":1,"modify":0,"rename":0,"copy":0,"delete":0,"unchanged":0,"bytes":5,"errors":0}}`,
	`{"event":"push","time":"2026-12-03T07:59:27.900199817Z","kind":"scoped","reason":"dirty","dirty":1,"scopes":1}`,
	`{"op":"add","path":"b.txt","size":27}`,
	`{"summary":{"add":1,"modify":0,"rename":0,"copy":0,"delete":0,"unchanged":0,"bytes":27,"errors":0,"hashed_files":1,"hashed_bytes":27}}`,
	`{"event":"pushed","time":"2026-12-03T07:59:27.960084617Z","kind":"scoped","reason":"dirty","dirty":1,"scopes":1,"result":"success","exit_code":0,"counts":{"add":1,"modify":0,"rename":0,"copy":0,"delete":0,"unchanged":0,"bytes":27,"errors":0}}`,
	`{"event":"push","time":"2026-12-03T07:59:28.100000000Z","kind":"full","reason":"rescan","dirty":0}`,
	`{"summary":{"add":0,"modify":0,"rename":0,"copy":0,"delete":0,"unchanged":2,"bytes":0,"errors":0,"hashed_files":0,"hashed_bytes":0}}`,
	`{"event":"pushed","time":"2026-12-03T07:59:28.200000000Z","kind":"full","reason":"rescan","dirty":0,"result":"success","exit_code":0,"counts":{"add":0,"modify":0,"rename":0,"copy":0,"delete":0,"unchanged":2,"bytes":0,"errors":0}}`,
	`{"event":"stopped","time":"2026-12-03T07:59:28.975103492Z","dirty":0}`,
}

func newTestWatchProc(t *testing.T) *watchProc {
	log, err := os.Create(filepath.Join(t.TempDir(), "watch.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return &watchProc{log: log}
}

// The bench follows a watch by its events: ready once watching (events
// only) or once the start-up sync ended (hybrid); each push counted as it
// begins and ends; a rescan known by its reason; the change lines kept for
// the paths reported.
func TestWatchEventStream(t *testing.T) {
	for _, hybrid := range []bool{false, true} {
		w := newTestWatchProc(t)
		var readyAt int
		for i, line := range recordedWatch {
			before := time.Now()
			if w.stdoutLine(line, hybrid) && readyAt == 0 {
				readyAt = i + 1
			}
			switch i + 1 {
			case 2: // the start-up push has begun
				if !w.pushing() {
					t.Errorf("hybrid %v: not pushing after %s", hybrid, line)
				}
			case 5: // and ended
				if n, last := w.pushCount(); n != 1 || last.Before(before) || w.pushing() {
					t.Errorf("hybrid %v: after %s: %d pushes, last at %v, pushing %v", hybrid, line, n, last, w.pushing())
				}
				if w.rescannedSince(time.Time{}) {
					t.Errorf("hybrid %v: the start-up sync taken for a rescan", hybrid)
				}
			case 10: // a rescan begun, not ended
				if w.rescannedSince(time.Time{}) {
					t.Errorf("hybrid %v: a rescan that has not ended counts", hybrid)
				}
			}
		}
		if want := map[bool]int{false: 1, true: 5}[hybrid]; readyAt != want {
			t.Errorf("hybrid %v: ready at line %d, want %d", hybrid, readyAt, want)
		}
		if n, _ := w.pushCount(); n != 3 || w.pushing() || !w.rescannedSince(time.Time{}) {
			t.Errorf("hybrid %v: %d pushes, pushing %v, rescanned %v; want 3 ended, the rescan among them", hybrid, n, w.pushing(), w.rescannedSince(time.Time{}))
		}
		if got := w.reported(); len(got) != 2 || !got["a.txt"] || !got["b.txt"] {
			t.Errorf("hybrid %v: reported %v, want a.txt and b.txt", hybrid, got)
		}
		b, _ := os.ReadFile(w.log.Name())
		if strings.Count(string(b), "BENCH push ended") != 3 {
			t.Errorf("hybrid %v: the log does not note each push's end:\n%s", hybrid, b)
		}
	}
}

func TestDecodeEvent(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		want mirror.Event
	}{
		{recordedWatch[5], true, mirror.Event{Event: "push", Kind: "scoped", Reason: "dirty"}},
		{recordedWatch[9], true, mirror.Event{Event: "push", Kind: "full", Reason: "rescan"}},
		{`{"op":"add","path":"a.txt","size":5}`, false, mirror.Event{}},
		{`{"summary":{"add":1}}`, false, mirror.Event{}},
		{`{"event":`, false, mirror.Event{Event: ""}},
	} {
		got, ok := decodeEvent(c.line)
		if ok != c.ok || (ok && (got.Event != c.want.Event || got.Kind != c.want.Kind || got.Reason != c.want.Reason)) {
			t.Errorf("%s: %+v %v, want %+v %v", c.line, got, ok, c.want, c.ok)
		}
	}
}
