package main

import (
	"path"
	"slices"
	"testing"
)

func TestSplitList(t *testing.T) {
	for _, c := range []struct {
		in   string
		glob bool
		want []string
	}{
		{"*.tmp,node_modules/", true, []string{"*.tmp", "node_modules/"}},
		{" *.tmp , ,\nbuild/out\n\n", true, []string{"*.tmp", "build/out"}},
		{`a\,b,c`, true, []string{`a\,b`, "c"}},
		{`a\\,b`, true, []string{`a\\`, "b"}},
		{`[\,x]*`, true, []string{`[\,x]*`}},
		{`/etc/ex\,cludes,/etc/more`, false, []string{"/etc/ex,cludes", "/etc/more"}},
		{`.no\backup`, false, []string{`.no\backup`}},
		{"", true, nil},
	} {
		if got := splitList(c.in, c.glob); !slices.Equal(got, c.want) {
			t.Errorf("splitList(%q, %v) = %q, want %q", c.in, c.glob, got, c.want)
		}
	}
	// The backslash a glob keeps means a comma to path.Match.
	if ok, err := path.Match(splitList(`a\,b`, true)[0], "a,b"); !ok || err != nil {
		t.Errorf(`a\,b does not match "a,b": %v`, err)
	}
}
