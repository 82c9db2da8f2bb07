package manifest

import (
	"path/filepath"
	"regexp"
	"testing"
)

func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	id := Identity{Source: "/home/me/work", Bucket: "my-backups", Prefix: "laptop/"}
	p, err := DefaultPath(id)
	if err != nil {
		t.Fatal(err)
	}
	// The hash must stay what it was: a changed one would lose every
	// existing manifest.
	if p != "/state/cloudkeeper/my-backups-ba9c2f26b2432bea.db" {
		t.Errorf("DefaultPath = %s", p)
	}
	seen := map[string]bool{p: true}
	for _, other := range []Identity{
		{Source: "/home/me/other", Bucket: "my-backups", Prefix: "laptop/"},
		{Source: "/home/me/work", Endpoint: "http://127.0.0.1:7070", Bucket: "my-backups", Prefix: "laptop/"},
		{Source: "/home/me/work", Bucket: "my-backups", Prefix: "desktop/"},
		{Source: "/home/me/work", Bucket: "other", Prefix: "laptop/"},
	} {
		q, err := DefaultPath(other)
		if err != nil || seen[q] || filepath.Dir(q) != "/state/cloudkeeper" {
			t.Errorf("DefaultPath(%+v) = %s, %v: want a path of its own", other, q, err)
		}
		seen[q] = true
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/me")
	if p, _ := DefaultPath(id); !regexp.MustCompile(`^/home/me/\.local/state/cloudkeeper/my-backups-[0-9a-f]{16}\.db$`).MatchString(p) {
		t.Errorf("without XDG_STATE_HOME: %s", p)
	}
}
