package manifest

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// The history area keeps, in a bucket without versioning, a copy of each
// object a run overwrites or deletes: <prefix>\history/<start>-<run>/<escaped
// path>, start the run's start in UTC (20261203T155834Z): run numbers
// start again at 1 in a manifest rebuilt or made anew, and its copies must
// not land over those of the runs before. No source path has a key there: EscapePath writes a backslash of
// a name as `\\`, so an escaped path never starts with `\h`; the area
// stays beside the mirror, under its prefix, and reads as folders by run.
const historyArea = `\history/`

// HistoryArea is where the history copies of the mirror at prefix go.
func HistoryArea(prefix string) string { return prefix + historyArea }

// HistoryKey is the key of the copy that keeps path's object as run,
// started at started, replaced it.
func HistoryKey(prefix string, run int64, started time.Time, path string) string {
	return HistoryArea(prefix) + started.UTC().Format("20060102T150405Z") + "-" + strconv.FormatInt(run, 10) + "/" + EscapePath(path)
}

// ErrHistoryKey is a key in the history area (see HistoryArea): a kept
// copy of an old version, not the object of a file; listings of the
// mirror pass over it.
var ErrHistoryKey = errors.New("a history copy")

// IsHistoryKey reports whether key is in the history area of the mirror
// at prefix.
func IsHistoryKey(prefix, key string) bool {
	return strings.HasPrefix(key, HistoryArea(prefix))
}
