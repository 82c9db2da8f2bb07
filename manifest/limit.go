package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DeleteLimit bounds how much one run may delete: a source that is
// missing, empty or unmounted looks like "everything was deleted", and a
// backup tool must not believe it.
type DeleteLimit struct {
	Count   int64   // at most this many objects; 0: no count limit
	Percent float64 // at most this share of the objects, 0-100; 0: no share limit
}

// DefaultDeleteLimit refuses a run that would delete more than half of the
// objects.
var DefaultDeleteLimit = DeleteLimit{Percent: 50}

// ParseDeleteLimit reads "50%" (a share of the objects), "1000" (a count)
// or "100%" / "all" (no limit).
func ParseDeleteLimit(s string) (DeleteLimit, error) {
	s = strings.TrimSpace(s)
	if s == "all" {
		return DeleteLimit{Percent: 100}, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return DeleteLimit{}, fmt.Errorf("--max-delete %q: want a percentage from 0%% to 100%%", s)
		}
		return DeleteLimit{Percent: v}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return DeleteLimit{}, fmt.Errorf("--max-delete %q: want a count (1000) or a percentage (50%%)", s)
	}
	return DeleteLimit{Count: n}, nil
}

func (l DeleteLimit) String() string {
	if l.Count > 0 {
		return strconv.FormatInt(l.Count, 10)
	}
	return strconv.FormatFloat(l.Percent, 'f', -1, 64) + "%"
}

// ErrTooManyDeletes is a run refusing its deletes.
var ErrTooManyDeletes = errors.New("too many deletes")

// check returns an error wrapping ErrTooManyDeletes if deleting n of total
// objects goes over the limit.
func (l DeleteLimit) check(n, total int64) error {
	if n == 0 {
		return nil
	}
	over := false
	if l.Count > 0 && n > l.Count {
		over = true
	}
	if l.Count == 0 && l.Percent < 100 && float64(n) > float64(total)*l.Percent/100 {
		over = true
	}
	if !over {
		return nil
	}
	return fmt.Errorf("%w: refusing to delete %d of the %d objects (%.0f%%), more than --max-delete %s allows; nothing was deleted. "+
		"If the source folder is missing, empty or not mounted, fix that; if the deletions are real, run again with --max-delete %s",
		ErrTooManyDeletes, n, total, 100*float64(n)/float64(max(total, 1)), l, suggest(n, total))
}

// suggest is the smallest --max-delete that lets n of total through.
func suggest(n, total int64) string {
	if total > 0 && n == total {
		return "100%"
	}
	return strconv.FormatInt(n, 10)
}
