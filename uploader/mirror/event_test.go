package mirror

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// The events are a wire format (README, Output): programs read these keys.
func TestEventsJSON(t *testing.T) {
	scoped := Push{Full: Scoped, Dirty: []string{"a", "b", "c"}, Scopes: []string{"a"}}
	lost := Push{Full: LostEvents, Detail: "queue overflow", Dirty: []string{"a"}}
	for _, c := range []struct {
		ev   Event
		want []string
	}{
		{WatchingEvent("/src", true, false), []string{`"event":"watching"`, `"source":"/src"`, `"hybrid":true`, `"watched":false`}},
		{PushEvent(scoped), []string{`"event":"push"`, `"kind":"scoped"`, `"reason":"dirty"`, `"dirty":3`, `"scopes":1`}},
		{PushEvent(lost), []string{`"kind":"full"`, `"reason":"lost-events"`, `"detail":"queue overflow"`, `"dirty":1`}},
		{PushedEvent(scoped, Result{Counts: manifest.Counts{Add: 2, Errors: 1}}), []string{`"event":"pushed"`, `"result":"incomplete"`, `"exit_code":3`, `"add":2`}},
		{PushedEvent(lost, Result{Err: errors.New("bucket gone")}), []string{`"result":"failure"`, `"exit_code":1`, `"error":"bucket gone"`}},
		{PushedEvent(lost, Result{}), []string{`"result":"success"`, `"exit_code":0`}},
		{PushedEvent(lost, Result{Err: ErrInterrupted}), []string{`"result":"interrupted"`, `"exit_code":1`, `"error":"interrupted; `}},
		{StoppedEvent(4), []string{`"event":"stopped"`, `"dirty":4`}},
	} {
		b, err := json.Marshal(c.ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: no %s", b, w)
			}
		}
		if c.ev.Event != "pushed" && strings.Contains(string(b), "exit_code") {
			t.Errorf("%s: an exit code before the push ended", b)
		}
	}
	if PushEvent(lost).Scopes != nil {
		t.Error("a full push has scopes")
	}
}
