package manifest

import (
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
