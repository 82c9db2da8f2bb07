package manifest

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "/": "", "backups": "backups/", "backups/": "backups/", "/a/b//": "a/b/",
	} {
		if got := NormalizePrefix(in); got != want {
			t.Errorf("NormalizePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapePathIsReversibleAndValidUTF8(t *testing.T) {
	for _, c := range []struct{ path, key string }{
		{"docs/report.pdf", "docs/report.pdf"},
		{"café/naïve.txt", "café/naïve.txt"},
		{"new\nline", `new\x0aline`},
		{`back\slash`, `back\\slash`},
		{`lit\x41`, `lit\\x41`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"tab\there\x7f", `tab\x09here\x7f`},
		{"trunc\xe2\x82", `trunc\xe2\x82`},
	} {
		key := EscapePath(c.path)
		if key != c.key {
			t.Errorf("EscapePath(%q) = %q, want %q", c.path, key, c.key)
		}
		if !utf8.ValidString(key) {
			t.Errorf("EscapePath(%q) = %q is not UTF-8", c.path, key)
		}
		back, err := UnescapePath(key)
		if err != nil || back != c.path {
			t.Errorf("UnescapePath(%q) = %q, %v; want %q", key, back, err, c.path)
		}
	}
	if _, err := UnescapePath(`dangling\`); err == nil {
		t.Error("a dangling backslash must not decode")
	}
}

func FuzzEscapePath(f *testing.F) {
	f.Add("a/b")
	f.Add("x\\y\x00\xff")
	f.Fuzz(func(t *testing.T, p string) {
		k := EscapePath(p)
		if !utf8.ValidString(k) {
			t.Fatalf("not UTF-8: %q", k)
		}
		back, err := UnescapePath(k)
		if err != nil || back != p {
			t.Fatalf("round trip %q -> %q -> %q, %v", p, k, back, err)
		}
	})
}

// Keys read from the bucket map back to paths only if Key writes them: a
// listing can never name a path outside the source, and two keys never
// name one path.
func TestPathOfKey(t *testing.T) {
	for _, c := range []struct {
		key  string
		size int64
		path string // "" : refused
	}{
		{"pre/docs/a.txt", 5, "docs/a.txt"},
		{`pre/new\x0aline`, 5, "new\nline"},
		{`pre/back\\slash`, 5, `back\slash`},
		{"pre/dir/", 0, ""}, // a folder marker
		{"pre/dir/", 3, ""}, // an empty component
		{"pre/", 1, ""},
		{"other/a.txt", 1, ""},
		{"pre/../up", 1, ""},
		{"pre/./dot", 1, ""},
		{"pre//abs", 1, ""},
		{`pre/\x2fetc`, 1, ""},
		{`pre/nul\x00`, 1, ""},
		{`pre/\x41`, 1, ""}, // "A" escaped: not canonical, would alias pre/A
		{`pre/bad\xzz`, 1, ""},
	} {
		p, err := PathOfKey("pre/", c.key, c.size)
		if c.path != "" {
			if err != nil || p != c.path {
				t.Errorf("PathOfKey(%q) = %q, %v; want %q", c.key, p, err, c.path)
			}
			continue
		}
		if err == nil {
			t.Errorf("PathOfKey(%q) = %q, want an error", c.key, p)
		}
		if marker := c.size == 0 && c.key == "pre/dir/"; marker != errors.Is(err, ErrFolderMarker) {
			t.Errorf("PathOfKey(%q): %v, folder marker %v", c.key, err, marker)
		}
	}
}

// CheckPath accepts what a scan produces and refuses what could leave the
// folder; every path it accepts round-trips through a key.
func TestCheckPath(t *testing.T) {
	for _, p := range []string{"a", "docs/report.pdf", "a b/c\nd", "..x/y..", ".hidden/.x", "évé/\xff"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v, want nil", p, err)
		}
		if got, err := PathOfKey("pre/", Key("pre/", p), 1); err != nil || got != p {
			t.Errorf("PathOfKey(Key(%q)) = %q, %v", p, got, err)
		}
	}
	for p, want := range map[string]string{
		"":          "an empty path",
		"/etc/x":    "an absolute path",
		"a//b":      "an empty component",
		"a/":        "an empty component",
		"./a":       `a "." component`,
		"a/../../b": `a ".." component`,
		"..":        `a ".." component`,
		"a\x00b":    "a NUL byte",
	} {
		if err := CheckPath(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckPath(%q) = %v, want %q", p, err, want)
		}
	}
}

// The longest path that fits is backed up; one byte more is refused with
// its length, counted in its key form (escapes included).
func TestCheckKeyLen(t *testing.T) {
	prefix := "laptop/"
	fits := strings.Repeat("a", MaxKeyLen-len(prefix))
	if err := CheckKeyLen(prefix, fits); err != nil {
		t.Errorf("a key of exactly %d bytes: %v", MaxKeyLen, err)
	}
	if err := CheckKeyLen(prefix, fits+"b"); err == nil || !strings.Contains(err.Error(), "1025 bytes") {
		t.Errorf("a key of %d bytes: %v, want its length named", MaxKeyLen+1, err)
	}
	// "\n" is four bytes in its key (\x0a): a path that fits as bytes may not.
	escaped := strings.Repeat("a", MaxKeyLen-len(prefix)-1) + "\n"
	if err := CheckKeyLen(prefix, escaped); err == nil {
		t.Errorf("a path of %d bytes whose key is %d: no error", len(escaped), len(Key(prefix, escaped)))
	}
}
