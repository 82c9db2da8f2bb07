package logtext

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// A cron mail shows these lines: the message unquoted, values quoted only
// when they would not read as one token.
func TestTextLines(t *testing.T) {
	var b strings.Builder
	log, err := New(&b, "text", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("not shown")
	log.Error("cannot back up", "path", "docs/a b.txt", "error", "permission denied")
	log.With("run", 7).WithGroup("s3").Warn("slow", "key", "laptop/x", "empty", "")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{
		` ERROR cannot back up path="docs/a b.txt" error="permission denied"`,
		` WARN slow run=7 s3.key=laptop/x s3.empty=""`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		// Each line starts with the time, "2026-12-03 09:10:11".
		if len(lines[i]) < 19 || lines[i][19:] != w {
			t.Errorf("line %d: %q, want the time then %q", i, lines[i], w)
		}
	}
}

func TestJSONLinesAndFormats(t *testing.T) {
	var b strings.Builder
	log, err := New(&b, "JSON", slog.LevelWarn)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("not shown")
	log.Warn("left out", "key", "k\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil || rec["msg"] != "left out" || rec["key"] != "k\n" {
		t.Errorf("%q: %v, %v", b.String(), rec, err)
	}
	if _, err := New(&b, "xml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), "want text or json") {
		t.Errorf("format xml: %v, want an error naming the formats", err)
	}
}
