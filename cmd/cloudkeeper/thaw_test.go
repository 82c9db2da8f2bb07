package main

import "testing"

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"laptop/a-b_c.txt": "laptop/a-b_c.txt",
		"a b":              "'a b'",
		"it's":             `'it'\''s'`,
		"new\nline'":       `$'new\nline\''`,
		"":                 "''",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}
