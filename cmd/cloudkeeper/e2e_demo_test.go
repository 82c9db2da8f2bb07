package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The demo is the README's first command: it must show each step's
// changes, the renamed folder as server-side copies, and a last run with
// nothing to do; and what the bucket then holds.
func TestDemo(t *testing.T) {
	out, err := exec.Command(binPath, "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	steps := strings.Split(string(out), "\n### ")
	want := []struct{ step, line string }{
		{"1. preview", "5 uploads (488.3 KiB), 0 renames, 0 copies, 0 deletes; 0 files unchanged"},
		{"2. back it up", "5 uploads (488.3 KiB), 0 renames, 0 copies, 0 deletes; 0 files unchanged"},
		{"3. edit", "rename  photos/2024/beach.jpg -> photos/summer-2024/beach.jpg"},
		{"3. edit", "1 upload (28 B), 2 renames, 0 copies, 1 delete; 1 file unchanged"},
		{"4. apply", "1 upload (28 B), 2 renames, 0 copies, 1 delete; 1 file unchanged"},
		{"5. nothing changed", "0 uploads (0 B), 0 renames, 0 copies, 0 deletes; 4 files unchanged"},
		{"the bucket now holds", "laptop/photos/summer-2024/beach.jpg    293.0 KiB"},
	}
	for _, w := range want {
		found := false
		for _, s := range steps {
			if strings.HasPrefix(s, w.step) && strings.Contains(s, w.line) {
				found = true
			}
		}
		if !found {
			t.Errorf("step %q does not say %q:\n%s", w.step, w.line, out)
		}
	}
	if strings.Contains(steps[len(steps)-1], "budget.csv") {
		t.Errorf("the deleted file is still in the bucket:\n%s", steps[len(steps)-1])
	}
}
