// Package human formats numbers, sizes and untrusted keys for people, on
// one line: "20,114", "2.1 MiB", "3 files", a key quoted when it holds
// anything but printable characters.
package human

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Count is n with the word that fits it: "1 file", "20,114 files".
func Count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Thousands(n) + " " + many
}

// Thousands formats n with comma separators: 20114 -> "20,114".
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// Bytes formats a size in IEC units with one decimal: "2.1 MiB".
func Bytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return "" // unreachable
}

// Key is how a key read from the bucket is shown on one line: as it is,
// or quoted if it holds anything but printable characters.
func Key(k string) string {
	if utf8.ValidString(k) && !strings.ContainsFunc(k, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return k
	}
	return strconv.Quote(k)
}
