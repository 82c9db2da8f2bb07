package manifest

import (
	"errors"
	"os"
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

// Under systemd without User= there is no $HOME: the state folder is
// systemd's $STATE_DIRECTORY, or /var/lib/cloudkeeper for root; a run must
// not fail for want of a home folder.
func TestStateDir(t *testing.T) {
	noHome := func() (string, error) { return "", errors.New("$HOME is not defined") }
	home := func() (string, error) { return "/home/me", nil }
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, c := range []struct {
		name   string
		getenv func(string) string
		home   func() (string, error)
		euid   int
		want   string
	}{
		{"systemd StateDirectory", env("STATE_DIRECTORY", "/var/lib/cloudkeeper", "XDG_STATE_HOME", "/x"), home, 0, "/var/lib/cloudkeeper"},
		{"several state folders", env("STATE_DIRECTORY", "/var/lib/a:/var/lib/b"), noHome, 1000, "/var/lib/a"},
		{"XDG_STATE_HOME", env("XDG_STATE_HOME", "/state"), home, 1000, "/state/cloudkeeper"},
		{"home", env(), home, 1000, "/home/me/.local/state/cloudkeeper"},
		{"root without a home", env(), noHome, 0, "/var/lib/cloudkeeper"},
	} {
		got, err := stateDir(c.getenv, c.home, c.euid)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := stateDir(env(), noHome, 1000); err == nil {
		t.Error("a user without a home folder nor a state folder: no error")
	}
}

// A manifest a systemd unit wrote in its state folder is found by a
// command run by hand, whose own state folder has none; the one in the
// command's own folder wins when both exist.
func TestFindDefaultLooksInEveryStateFolder(t *testing.T) {
	home, system := t.TempDir(), t.TempDir()
	own := filepath.Join(home, ".local", "state", "cloudkeeper", "b-0123.db")
	dirs := stateDirs(func(string) string { return "" }, func() (string, error) { return home, nil }, system)
	if got := findIn(own, dirs); got != own {
		t.Errorf("no manifest anywhere: %s, want the command's own %s", got, own)
	}
	systemd := filepath.Join(system, "b-0123.db")
	if err := os.WriteFile(systemd, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := findIn(own, dirs); got != systemd {
		t.Errorf("only systemd's: %s, want %s", got, systemd)
	}
	os.MkdirAll(filepath.Dir(own), 0o700)
	os.WriteFile(own, nil, 0o600)
	if got := findIn(own, dirs); got != own {
		t.Errorf("both: %s, want the command's own %s", got, own)
	}
}
