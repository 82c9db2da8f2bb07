package mirror

import (
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// Event is one line of a watch's machine-readable stream (`cloudkeeper
// watch --json`), between the change lines and summaries of its pushes:
// what a program (the bench) reads to follow a watch, instead of matching
// log lines. Its JSON form is the README's; fields are set per Event name.
type Event struct {
	Event string    `json:"event"` // watching, push, pushed, stopped
	Time  time.Time `json:"time"`
	// watching
	Source  string `json:"source,omitempty"`
	Hybrid  *bool  `json:"hybrid,omitempty"`
	Watched *bool  `json:"watched,omitempty"`
	// push and pushed
	Kind   string `json:"kind,omitempty"`   // scoped or full
	Reason string `json:"reason,omitempty"` // see Reason.String
	Detail string `json:"detail,omitempty"` // the watcher's words for lost-events and unwatched
	Dirty  *int   `json:"dirty,omitempty"`  // dirty paths taken (push), left (stopped)
	Scopes *int   `json:"scopes,omitempty"` // what a scoped push scans
	// pushed
	Result   string           `json:"result,omitempty"` // success, incomplete, failure or interrupted
	ExitCode *int             `json:"exit_code,omitempty"`
	Counts   *manifest.Counts `json:"counts,omitempty"`
	Error    string           `json:"error,omitempty"`
}

// String is the reason as events name it: dirty, start-up, rescan,
// no-watch, lost-events, unwatched.
func (r Reason) String() string {
	switch r {
	case Scoped:
		return "dirty"
	case StartUp:
		return "start-up"
	case Rescan:
		return "rescan"
	case NoWatch:
		return "no-watch"
	case LostEvents:
		return "lost-events"
	case Unwatched:
		return "unwatched"
	}
	return "unknown"
}

// WatchingEvent says that a watch began on source: hybrid unless events
// only, watched false if no watch could be set (every push is then a full
// sync).
func WatchingEvent(source string, hybrid, watched bool) Event {
	return Event{Event: "watching", Time: time.Now(), Source: source, Hybrid: &hybrid, Watched: &watched}
}

// PushEvent says that push begins.
func PushEvent(push Push) Event {
	ev := Event{Event: "push", Time: time.Now(), Kind: "full", Reason: push.Full.String(), Detail: push.Detail}
	dirty := len(push.Dirty)
	ev.Dirty = &dirty
	if push.Full == Scoped {
		scopes := len(push.Scopes)
		ev.Kind, ev.Scopes = "scoped", &scopes
	}
	return ev
}

// PushedEvent says that push ended with res.
func PushedEvent(push Push, res Result) Event {
	ev := PushEvent(push)
	ev.Event = "pushed"
	code := res.ExitCode()
	ev.ExitCode, ev.Counts = &code, &res.Counts
	ev.Result = string(res.Outcome())
	if res.Err != nil {
		ev.Error = res.Err.Error()
	}
	return ev
}

// StoppedEvent says that the watch stopped with left dirty paths saved
// for the next one.
func StoppedEvent(left int) Event {
	return Event{Event: "stopped", Time: time.Now(), Dirty: &left}
}
