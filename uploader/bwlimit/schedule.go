package bwlimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Schedule is the limit in force at each time of day: one rate all day
// ("1M"), or rates that change at times of day ("08:00,1M 23:00,off"),
// each in force from its time until the next one, the last one wrapping
// over midnight until the first. Times are in the location of the clock's
// times (local time for the real clock). The zero Schedule is no limit.
type Schedule struct {
	slots []slot // sorted by time of day, at least one when set
}

// slot is a rate in force from a time of day.
type slot struct {
	hour, minute int
	rate         int64 // bytes per second; 0 no limit
}

// Constant is the schedule of one rate all day, in bytes per second; 0 is
// no limit.
func Constant(bytesPerSecond int64) Schedule {
	if bytesPerSecond <= 0 {
		return Schedule{}
	}
	return Schedule{slots: []slot{{rate: bytesPerSecond}}}
}

// Off reports whether the schedule never limits.
func (s Schedule) Off() bool {
	for _, sl := range s.slots {
		if sl.rate > 0 {
			return false
		}
	}
	return true
}

// ParseSchedule reads a rate (see ParseRate) or a day schedule: entries
// HH:MM,RATE separated by spaces, in increasing order of time.
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, ",:") {
		r, err := ParseRate(s)
		if err != nil {
			return Schedule{}, err
		}
		return Constant(r), nil
	}
	var sched Schedule
	for _, entry := range strings.Fields(s) {
		sl, err := parseSlot(entry)
		if err != nil {
			return Schedule{}, fmt.Errorf("bandwidth schedule %q: %w", s, err)
		}
		if n := len(sched.slots); n > 0 && sl.minutes() <= sched.slots[n-1].minutes() {
			return Schedule{}, fmt.Errorf("bandwidth schedule %q: %q is not after the time before it: list the times in increasing order", s, entry)
		}
		sched.slots = append(sched.slots, sl)
	}
	return sched, nil
}

// parseSlot reads "08:00,1M".
func parseSlot(entry string) (slot, error) {
	at, r, ok := strings.Cut(entry, ",")
	hh, mm, okTime := strings.Cut(at, ":")
	h, herr := strconv.Atoi(hh)
	m, merr := strconv.Atoi(mm)
	if !ok || !okTime || herr != nil || merr != nil || len(mm) != 2 || h < 0 || h > 23 || m < 0 || m > 59 {
		return slot{}, fmt.Errorf("%q: want HH:MM,RATE (e.g. 08:00,1M)", entry)
	}
	rate, err := ParseRate(r)
	if err != nil {
		return slot{}, err
	}
	return slot{hour: h, minute: m, rate: rate}, nil
}

func (sl slot) minutes() int { return sl.hour*60 + sl.minute }

// binary are the units of ParseRate: 1024-based, as rclone's --bwlimit.
var binary = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
}

// ParseRate reads a rate in bytes per second: "512K", "10M", "1.5M",
// "1G" (K, M, G are 2^10, 2^20, 2^30, as in rclone; KiB, MiB, GiB and a
// trailing B are taken too), plain bytes ("65536"), or "off" or "0" for
// no limit (0 returned).
func ParseRate(s string) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return 0, nil
	}
	num := strings.TrimRight(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
	mult, okUnit := binary[strings.ToLower(s[len(num):])]
	v, err := strconv.ParseFloat(num, 64)
	if !okUnit || err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bandwidth limit %q: want bytes per second, e.g. 512K, 10M, 1.5M (K, M, G are 1024-based), or off", orig)
	}
	bytes := v * mult
	if v > 0 && bytes < 1 {
		return 0, fmt.Errorf("bandwidth limit %q: below 1 byte per second", orig)
	}
	if bytes > math.MaxInt64/2 {
		return 0, errors.New("bandwidth limit " + strconv.Quote(orig) + ": too large")
	}
	return int64(bytes), nil
}

// At is the rate in force at t (bytes per second, 0 no limit) and the
// next time it may change (zero if never).
func (s Schedule) At(t time.Time) (rate int64, next time.Time) {
	if len(s.slots) == 0 {
		return 0, time.Time{}
	}
	if len(s.slots) == 1 && s.slots[0].minutes() == 0 {
		return s.slots[0].rate, time.Time{}
	}
	y, mo, d := t.Date()
	on := func(day int, sl slot) time.Time { return time.Date(y, mo, day, sl.hour, sl.minute, 0, 0, t.Location()) }
	rate = s.slots[len(s.slots)-1].rate // yesterday's last slot, until today's first
	next = on(d+1, s.slots[0])
	for _, sl := range s.slots {
		if at := on(d, sl); at.After(t) {
			next = at
			break
		}
		rate = sl.rate
	}
	return rate, next
}

// String is the schedule as ParseSchedule reads it: "1M", or
// "08:00,1M 23:00,off".
func (s Schedule) String() string {
	if len(s.slots) == 0 {
		return "off"
	}
	if len(s.slots) == 1 && s.slots[0].minutes() == 0 {
		return FormatRate(s.slots[0].rate)
	}
	parts := make([]string, len(s.slots))
	for i, sl := range s.slots {
		parts[i] = fmt.Sprintf("%02d:%02d,%s", sl.hour, sl.minute, FormatRate(sl.rate))
	}
	return strings.Join(parts, " ")
}

// FormatRate is a rate as ParseRate reads it: "1M", "1.5M", "512K", "100",
// "off".
func FormatRate(r int64) string {
	if r <= 0 {
		return "off"
	}
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if r >= u.size {
			return strconv.FormatFloat(float64(r)/float64(u.size), 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(r, 10)
}
