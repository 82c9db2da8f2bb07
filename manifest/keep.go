package manifest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Keep is how long the history keeps versions that are no longer current:
// a non-current version is kept while it stopped being current less than
// Age ago, or is one of its path's Count newest non-current versions
// (either rule keeps it, as restic's --keep-within and --keep-last). The
// zero Keep keeps no history: a sync is a mirror.
type Keep struct {
	Age   time.Duration
	Count int
}

// On reports whether k keeps any history.
func (k Keep) On() bool { return k.Age > 0 || k.Count > 0 }

// String is k as ParseKeep reads it.
func (k Keep) String() string {
	var parts []string
	if k.Age > 0 {
		if k.Age%(24*time.Hour) == 0 {
			parts = append(parts, strconv.FormatInt(int64(k.Age/(24*time.Hour)), 10)+"d")
		} else {
			parts = append(parts, k.Age.String())
		}
	}
	if k.Count > 0 {
		parts = append(parts, strconv.Itoa(k.Count))
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, ",")
}

// ParseKeep reads a retention: an age ("90d", "36h", days or a Go
// duration), a count of versions ("10"), or both ("90d,10"); "off" or ""
// for none.
func ParseKeep(s string) (Keep, error) {
	var k Keep
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return k, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if n, err := strconv.Atoi(part); err == nil {
			if n < 1 || k.Count > 0 {
				return Keep{}, fmt.Errorf("--keep %q: a count of versions is a number from 1, given once", s)
			}
			k.Count = n
			continue
		}
		d, err := ParseAge(part)
		if err != nil || d <= 0 || k.Age > 0 {
			return Keep{}, fmt.Errorf("--keep %q: want an age (90d, 36h), a count of versions (10), or both (90d,10)", s)
		}
		k.Age = d
	}
	return k, nil
}

// ParseAge reads an age: a Go duration ("36h"), or a whole number of
// days ("90d").
func ParseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
