package human

import "testing"

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Thousands(0), "0"},
		{Thousands(999), "999"},
		{Thousands(1000), "1,000"},
		{Thousands(20114), "20,114"},
		{Thousands(-1234567), "-1,234,567"},
		{Count(1, "file", "files"), "1 file"},
		{Count(0, "file", "files"), "0 files"},
		{Count(4142, "upload", "uploads"), "4,142 uploads"},
		{Bytes(0), "0 B"},
		{Bytes(1023), "1023 B"},
		{Bytes(1024), "1.0 KiB"},
		{Bytes(2202010), "2.1 MiB"},
		{Bytes(5 << 40), "5.0 TiB"},
		{Bytes(3 << 50), "3072.0 TiB"},
		{Key("laptop/docs/a b.txt"), "laptop/docs/a b.txt"},
		{Key("laptop/évé.txt"), "laptop/évé.txt"},
		{Key("laptop/a\nb"), `"laptop/a\nb"`},
		{Key("laptop/\xff"), `"laptop/\xff"`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
