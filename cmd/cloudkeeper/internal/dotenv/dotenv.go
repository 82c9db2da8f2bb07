// Package dotenv reads the settings of the original daemon: a .env file
// (KEY=VALUE lines) and its intervals, a number and a unit in two
// variables (S3_BACKUP_INTERVAL=24, S3_BACKUP_INTERVAL_UNIT=hours).
package dotenv

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// Var is one setting of a .env file, with its line number.
type Var struct {
	Key, Value string
	Line       int
}

// ParseLines reads a .env file: KEY=VALUE lines, optionally prefixed with
// "export ", values bare (a " #" starts a comment), in single quotes
// (literal) or in double quotes (with \n, \t, \" and \\ escapes). Blank
// lines and lines starting with '#' are ignored. A malformed line is an
// error naming the file and line. Unknown keys are fine, as in any .env.
// Every setting is kept in file order, with its line.
func ParseLines(path string) ([]Var, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vars []Var
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(strings.TrimSuffix(sc.Text(), "\r"))
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok {
			return nil, fmt.Errorf("%s:%d: expected KEY=VALUE, found no '='", path, n)
		}
		if !envKey.MatchString(key) {
			return nil, fmt.Errorf("%s:%d: %q is not a valid variable name", path, n, key)
		}
		v, err := parseValue(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %v", path, n, key, err)
		}
		vars = append(vars, Var{Key: key, Value: v, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return vars, nil
}

func parseValue(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	switch q := v[0]; q {
	case '\'', '"':
		end := -1
		for i := 1; i < len(v); i++ {
			if q == '"' && v[i] == '\\' {
				i++
				continue
			}
			if v[i] == q {
				end = i
				break
			}
		}
		if end < 0 {
			return "", fmt.Errorf("unterminated %c quote", q)
		}
		if rest := strings.TrimSpace(v[end+1:]); rest != "" && !strings.HasPrefix(rest, "#") {
			return "", fmt.Errorf("unexpected %q after the closing quote", rest)
		}
		inner := v[1:end]
		if q == '\'' {
			return inner, nil
		}
		return strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\"`, `"`, `\\`, `\`).Replace(inner), nil
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v, nil
}

// Interval reads the original .env's intervals: a number and a unit
// (hour(s), minute(s), second(s); default hours), or a Go duration ("10m").
func Interval(value, unit string) (time.Duration, error) {
	if d, err := time.ParseDuration(value); err == nil && unit == "" {
		return d, nil
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	per := map[string]time.Duration{
		"": time.Hour, "h": time.Hour, "hour": time.Hour, "hours": time.Hour,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	}[strings.ToLower(strings.TrimSpace(unit))]
	if per == 0 {
		return 0, fmt.Errorf("unknown unit: want hours, minutes or seconds")
	}
	return time.Duration(n * float64(per)), nil
}
