package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DeleteLimit bounds how much one run may delete: a source that is
// missing, empty or unmounted looks like "everything was deleted", and a
// backup tool must not believe it. Make one with MaxDeletes, MaxDeleteShare
// or ParseDeleteLimit. The zero value, and only it, stands for
// DefaultDeleteLimit: a limit of 0 objects or 0% is a limit that was set,
// and allows no delete at all.
type DeleteLimit struct {
	kind    limitKind
	count   int64   // limitCount: at most this many objects
	percent float64 // limitShare: at most this share of the objects, 0-100
}

type limitKind uint8

const (
	limitDefault limitKind = iota // not set: DefaultDeleteLimit
	limitCount
	limitShare
)

// MaxDeletes allows at most n deletes a run; 0 allows none.
func MaxDeletes(n int64) DeleteLimit { return DeleteLimit{kind: limitCount, count: n} }

// MaxDeleteShare allows at most percent (0-100) of the objects to be
// deleted in a run; 0 allows none, 100 any number.
func MaxDeleteShare(percent float64) DeleteLimit {
	return DeleteLimit{kind: limitShare, percent: percent}
}

// DefaultDeleteLimit refuses a run that would delete more than half of the
// objects.
var DefaultDeleteLimit = MaxDeleteShare(50)

// ParseDeleteLimit reads "50%" (a share of the objects), "1000" (a count),
// "0" or "0%" (no delete at all), "100%" or "all" (no limit).
func ParseDeleteLimit(s string) (DeleteLimit, error) {
	s = strings.TrimSpace(s)
	if s == "all" {
		return MaxDeleteShare(100), nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return DeleteLimit{}, fmt.Errorf("--max-delete %q: want a percentage from 0%% to 100%%", s)
		}
		return MaxDeleteShare(v), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return DeleteLimit{}, fmt.Errorf("--max-delete %q: want a count (1000) or a percentage (50%%)", s)
	}
	return MaxDeletes(n), nil
}

// orDefault is l, or DefaultDeleteLimit if l was not set.
func (l DeleteLimit) orDefault() DeleteLimit {
	if l.kind == limitDefault {
		return DefaultDeleteLimit
	}
	return l
}

func (l DeleteLimit) String() string {
	l = l.orDefault()
	if l.kind == limitCount {
		return strconv.FormatInt(l.count, 10)
	}
	return strconv.FormatFloat(l.percent, 'f', -1, 64) + "%"
}

// ErrTooManyDeletes is a run refusing its deletes.
var ErrTooManyDeletes = errors.New("too many deletes")

// check returns an error wrapping ErrTooManyDeletes if deleting n of total
// objects goes over the limit.
func (l DeleteLimit) check(n, total int64) error {
	l = l.orDefault()
	if n == 0 {
		return nil
	}
	over := n > l.count
	if l.kind == limitShare {
		over = l.percent < 100 && float64(n) > float64(total)*l.percent/100
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
