package main

import (
	"encoding/json"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

// watchEvent is one line of `watch --json` on stdout, between the change
// lines and summaries of its pushes: what a program (bench) reads to follow
// a watch, instead of matching its log lines.
type watchEvent struct {
	Event string    `json:"event"` // watching, push, pushed, stopped
	Time  time.Time `json:"time"`
	// watching
	Source  string `json:"source,omitempty"`
	Hybrid  *bool  `json:"hybrid,omitempty"`
	Watched *bool  `json:"watched,omitempty"`
	// push and pushed
	Kind   string `json:"kind,omitempty"`   // scoped or full
	Reason string `json:"reason,omitempty"` // see reasonNames
	Detail string `json:"detail,omitempty"` // the watcher's words for lost-events and unwatched
	Dirty  *int   `json:"dirty,omitempty"`  // dirty paths taken (push), left (stopped)
	Scopes *int   `json:"scopes,omitempty"` // what a scoped push scans
	// pushed
	Result   string           `json:"result,omitempty"` // success, incomplete or failure
	ExitCode *int             `json:"exit_code,omitempty"`
	Counts   *manifest.Counts `json:"counts,omitempty"`
	Error    string           `json:"error,omitempty"`
}

// reasonNames are the reasons of a push as `watch --json` names them.
var reasonNames = map[mirror.Reason]string{
	mirror.Scoped:     "dirty",
	mirror.StartUp:    "start-up",
	mirror.Rescan:     "rescan",
	mirror.NoWatch:    "no-watch",
	mirror.LostEvents: "lost-events",
	mirror.Unwatched:  "unwatched",
}

// pushEvent is a push's event: "push" as it begins, "pushed" (with res) as
// it ends.
func pushEvent(name string, push mirror.Push) watchEvent {
	ev := watchEvent{Event: name, Time: time.Now(), Kind: "full", Reason: reasonNames[push.Full], Detail: push.Detail}
	if push.Full == mirror.Scoped {
		ev.Kind = "scoped"
	}
	dirty, scopes := len(push.Dirty), len(push.Scopes)
	ev.Dirty = &dirty
	if push.Full == mirror.Scoped {
		ev.Scopes = &scopes
	}
	return ev
}

// pushedEvent is the end of a push, with its result.
func pushedEvent(push mirror.Push, out outcome) watchEvent {
	ev := pushEvent("pushed", push)
	code := out.exitCode()
	ev.ExitCode, ev.Counts = &code, &out.Counts
	ev.Result = map[int]string{exitOK: "success", exitIncomplete: "incomplete"}[code]
	if ev.Result == "" {
		ev.Result = "failure"
	}
	if out.Err != nil {
		ev.Error = out.Err.Error()
	}
	return ev
}

// event prints ev as a line of JSON, with --json only.
func (p *printer) event(ev watchEvent) {
	if !p.json {
		return
	}
	b, _ := json.Marshal(ev)
	p.println(string(b))
}
