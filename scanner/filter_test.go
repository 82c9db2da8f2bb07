package scanner

import "testing"

func TestFilterExcluded(t *testing.T) {
	f, err := NewFilter([]string{"*.tmp", "node_modules", "/cache/**/*.bin", "logs/", "docs/draft*"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"a.tmp":                    true,
		"deep/er/b.tmp":            true,
		"a.tmpx":                   false,
		"node_modules/x/y.js":      true,
		"src/node_modules/y.js":    true,
		"src/node_modules_old/y":   false,
		"cache/x.bin":              true,
		"cache/a/b/c.bin":          true,
		"cache/a/b/c.txt":          false,
		"other/cache/x.bin":        false,
		"logs/today.txt":           true, // logs/ is a folder pattern
		"logs":                     false,
		"sub/logs/today.txt":       true,
		"docs/draft1.md":           true,
		"docs/final.md":            false,
		"x/docs/draft1.md":         false, // anchored
		"docs/drafts/chapter1.txt": true,  // under an excluded folder
	} {
		if got := f.Excluded(path); got != want {
			t.Errorf("Excluded(%q) = %v, want %v", path, got, want)
		}
	}
	var none *Filter
	if none.Excluded("a.tmp") {
		t.Error("a nil filter excludes nothing")
	}
}

func TestFilterRejectsBadPatterns(t *testing.T) {
	for _, p := range []string{"[", "a/[b", "/"} {
		if _, err := NewFilter([]string{p}); err == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
}
