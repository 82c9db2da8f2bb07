package suggest

import "testing"

func TestClosest(t *testing.T) {
	commands := []string{"sync", "watch", "status", "verify", "restore", "manifest", "demo", "bench", "completion"}
	flags := []string{"dry-run", "n", "json", "rehash", "reconcile", "reconcile-every", "source"}
	for _, c := range []struct {
		word       string
		candidates []string
		want       string
	}{
		{"sycn", commands, "sync"},     // swapped neighbours
		{"synk", commands, "sync"},     // one substitution
		{"syn", commands, "sync"},      // one deletion
		{"stauts", commands, "status"}, // a swap in a longer word
		{"restor", commands, "restore"},
		{"verfiy", commands, "verify"},
		{"dryrun", flags, "dry-run"},
		{"dry_run", flags, "dry-run"},
		{"reconcil", flags, "reconcile"},
		{"sorce", flags, "source"},
		{"frobnicate", commands, ""}, // nothing near
		{"xy", commands, ""},
		{"x", flags, ""}, // one edit from "n", but nothing says it was meant
		{"snyc", commands, "sync"},
		{"abcd", commands, ""}, // two edits from "demo" is too far for four letters
		{"", commands, ""},
	} {
		if got := Closest(c.word, c.candidates); got != c.want {
			t.Errorf("Closest(%q) = %q, want %q", c.word, got, c.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"sync", "sync", 0}, {"sycn", "sync", 1}, {"sync", "", 4}, {"", "", 0},
		{"kitten", "sitting", 3}, {"ca", "abc", 3}, {"dryrun", "dry-run", 1}, {"ü", "u", 1},
	} {
		if got := distance(c.a, c.b); got != c.want {
			t.Errorf("distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
