package uploader

import "testing"

// A target travels in a header value: printable ASCII, no space at its
// ends; whatever else it holds is percent-encoded and comes back as it was.
func TestLinkTargetRoundTrip(t *testing.T) {
	for target, want := range map[string]string{
		"file.txt":         "file.txt",
		"../a b/c":         "../a b/c",
		"/abs/path":        "/abs/path",
		"café":             "caf%C3%A9",
		"100%":             "100%25",
		" edge ":           "%20edge%20",
		"tab\there\nline":  "tab%09here%0Aline",
		"\xff\xfe not utf": "%FF%FE not utf",
		"a+b=c&d?e#f":      "a+b=c&d?e#f",
	} {
		got := FormatLinkTarget(target)
		if got != want {
			t.Errorf("FormatLinkTarget(%q) = %q, want %q", target, got, want)
		}
		back, err := ParseLinkTarget(got)
		if err != nil || back != target {
			t.Errorf("ParseLinkTarget(%q) = %q, %v; want %q", got, back, err, target)
		}
	}
	for _, bad := range []string{"", "%00", "a%0", "%zz"} {
		if _, err := ParseLinkTarget(bad); err == nil {
			t.Errorf("ParseLinkTarget(%q): no error", bad)
		}
	}
}
