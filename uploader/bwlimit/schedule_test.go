package bwlimit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/bwlimit"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"10M": 10 << 20, "512K": 512 << 10, "1.5M": 3 << 19, "1G": 1 << 30, "65536": 65536,
		"512k": 512 << 10, "10MiB": 10 << 20, "10MB": 10 << 20, "100B": 100, " 2M ": 2 << 20,
		"off": 0, "OFF": 0, "0": 0, "0M": 0,
	} {
		got, err := bwlimit.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1M", "10X", "1.2.3M", "M", "0.5", "10M/s", "NaN", "Inf"} {
		if got, err := bwlimit.ParseRate(in); err == nil || !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseRate(%q) = %d, %v; want an error naming the value", in, got, err)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	for in, want := range map[string]string{
		"1M":                            "1M",
		"off":                           "off",
		"0":                             "off",
		"1536K":                         "1.5M",
		"08:00,1M 23:00,off":            "08:00,1M 23:00,off",
		"08:00,512k  12:30,10M 23:59,0": "08:00,512K 12:30,10M 23:59,off",
	} {
		s, err := bwlimit.ParseSchedule(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseSchedule(%q) = %q, %v; want %q", in, s, err, want)
		}
	}
	for in, why := range map[string]string{
		"08:00,1M 07:00,off": `"07:00,off" is not after`,
		"08:00,1M 08:00,2M":  `"08:00,2M" is not after`,
		"8:00 1M":            `"8:00": want HH:MM,RATE`,
		"25:00,1M":           `"25:00,1M": want HH:MM,RATE`,
		"08:60,1M":           `"08:60,1M"`,
		"08:0,1M":            `"08:0,1M"`,
		"Mon-08:00,1M":       `"Mon-08:00,1M"`,
		"08:00,fast":         `"fast"`,
		"08:00,":             `""`,
	} {
		if _, err := bwlimit.ParseSchedule(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseSchedule(%q): %v; want an error with %s", in, err, why)
		}
	}
}

func TestScheduleAt(t *testing.T) {
	s := mustSchedule(t, "08:00,1M 12:00,2M 23:00,off")
	day := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		at   time.Time
		rate int64
		next time.Time
	}{
		{day(2, 0, 0), 0, day(2, 8, 0)},
		{day(2, 7, 59), 0, day(2, 8, 0)},
		{day(2, 8, 0), 1 << 20, day(2, 12, 0)},
		{day(2, 11, 59), 1 << 20, day(2, 12, 0)},
		{day(2, 12, 0), 2 << 20, day(2, 23, 0)},
		{day(2, 23, 30), 0, day(3, 8, 0)},
	} {
		rate, next := s.At(c.at)
		if rate != c.rate || !next.Equal(c.next) {
			t.Errorf("At(%s) = %d, next %s; want %d, next %s", c.at.Format("15:04"), rate, next, c.rate, c.next)
		}
	}
	if rate, next := bwlimit.Constant(1 << 20).At(day(2, 9, 0)); rate != 1<<20 || !next.IsZero() {
		t.Errorf("a constant rate: At = %d, next %s; want 1M, never", rate, next)
	}
}
