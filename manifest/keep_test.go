package manifest

import (
	"testing"
	"time"
)

func TestParseKeep(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Keep
		bad  bool
	}{
		{in: "", want: Keep{}},
		{in: "off", want: Keep{}},
		{in: "90d", want: Keep{Age: 90 * 24 * time.Hour}},
		{in: "36h", want: Keep{Age: 36 * time.Hour}},
		{in: "10", want: Keep{Count: 10}},
		{in: "90d,10", want: Keep{Age: 90 * 24 * time.Hour, Count: 10}},
		{in: "10, 30d", want: Keep{Age: 30 * 24 * time.Hour, Count: 10}},
		{in: "0", bad: true},
		{in: "-3d", bad: true},
		{in: "10,20", bad: true},
		{in: "90x", bad: true},
	} {
		got, err := ParseKeep(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("ParseKeep(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.bad)
		}
		if err == nil {
			if again, err := ParseKeep(got.String()); err != nil || again != got {
				t.Errorf("ParseKeep(%q.String() = %q) = %+v, %v", c.in, got.String(), again, err)
			}
		}
	}
}
