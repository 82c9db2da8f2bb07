package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

// eventLines is the stdout of "watch --json": it keeps the event lines,
// decoded, and skips the changes and summaries.
type eventLines struct {
	mu      sync.Mutex
	partial []byte
	events  []mirror.Event
	errs    []error
}

func (l *eventLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := l.partial[:i]
		if bytes.HasPrefix(line, []byte(`{"event"`)) {
			var ev mirror.Event
			if err := json.Unmarshal(line, &ev); err != nil {
				l.errs = append(l.errs, fmt.Errorf("event %s: %w", line, err))
			}
			l.events = append(l.events, ev)
		}
		l.partial = l.partial[i+1:]
	}
}

// waitFor polls until an event matches, and returns it.
func (l *eventLines) waitFor(t *testing.T, what string, match func(mirror.Event) bool) mirror.Event {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		if len(l.errs) > 0 {
			t.Fatal(l.errs)
		}
		for _, ev := range l.events {
			if match(ev) {
				l.mu.Unlock()
				return ev
			}
		}
		if time.Now().After(deadline) {
			defer l.mu.Unlock()
			t.Fatalf("no %s among the events %+v", what, l.events)
		}
		l.mu.Unlock()
	}
}

// watch --json tells a program what it does, one JSON object per line: it
// watches, a push begins (full at start-up, scoped for an edit, with its
// reason), a push ends with its counts and result, it stops.
func TestWatchJSONEvents(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	out := &eventLines{}
	e.cmd = func(c *exec.Cmd) { c.Stdout = out }
	w := e.watch(t, nil, "--json", "--push-interval", "300ms", "--persist-interval", "100ms")
	e.cmd = nil

	ev := out.waitFor(t, "watching", func(ev mirror.Event) bool { return ev.Event == "watching" })
	if ev.Source != e.src || ev.Hybrid == nil || !*ev.Hybrid || ev.Watched == nil || !*ev.Watched {
		t.Errorf("watching event %+v: want the source, hybrid and watched", ev)
	}
	out.waitFor(t, "full push at start-up", func(ev mirror.Event) bool {
		return ev.Event == "push" && ev.Kind == "full" && ev.Reason == "start-up"
	})
	ev = out.waitFor(t, "end of the start-up push", func(ev mirror.Event) bool {
		return ev.Event == "pushed" && ev.Reason == "start-up"
	})
	if ev.Result != "success" || ev.ExitCode == nil || *ev.ExitCode != 0 || ev.Counts == nil || ev.Counts.Add != 1 {
		t.Errorf("start-up pushed %+v: want success with 1 add", ev)
	}

	content := "beta, written while watched"
	scantest.Write(t, e.src, "b.txt", content)
	ev = out.waitFor(t, "scoped push", func(ev mirror.Event) bool { return ev.Event == "push" && ev.Kind == "scoped" })
	if ev.Reason != "dirty" || ev.Dirty == nil || *ev.Dirty < 1 || ev.Scopes == nil || *ev.Scopes != 1 {
		t.Errorf("scoped push %+v: want reason dirty, the dirty path, one scope", ev)
	}
	ev = out.waitFor(t, "end of the scoped push", func(ev mirror.Event) bool { return ev.Event == "pushed" && ev.Kind == "scoped" })
	if ev.Result != "success" || ev.Counts == nil || ev.Counts.Add != 1 || ev.Counts.Bytes != int64(len(content)) {
		t.Errorf("scoped pushed %+v: want success with 1 add of b.txt's bytes", ev)
	}

	w.stop(t)
	ev = out.waitFor(t, "stopped", func(ev mirror.Event) bool { return ev.Event == "stopped" })
	if ev.Dirty == nil || *ev.Dirty != 0 {
		t.Errorf("stopped %+v: want 0 dirty paths left", ev)
	}
}
