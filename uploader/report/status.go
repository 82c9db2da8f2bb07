package report

import (
	"context"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// Status is what a manifest says of its backup: what it holds, the last
// runs, whether the last success is too old, and the last reconcile.
type Status struct {
	Manifest    string     `json:"manifest"`
	Source      string     `json:"source"`
	Bucket      string     `json:"bucket"`
	Prefix      string     `json:"prefix"`
	Endpoint    string     `json:"endpoint,omitempty"`
	Objects     int64      `json:"objects"`
	Bytes       int64      `json:"bytes"`
	LastSuccess *time.Time `json:"last_success"`
	MaxAge      string     `json:"max_age"`
	Stale       bool       `json:"stale"`
	// LastRun is the last run that ended (null: none did); status shows
	// it when it is not a success.
	LastRun *StatusRun `json:"last_run"`
	// LastReconcile is null if the manifest was never reconciled.
	LastReconcile *Reconcile `json:"last_reconcile"`
	// Versioning is the bucket's versioning as last checked (the first
	// run, a reconcile); null if it never was.
	Versioning *Versioning `json:"versioning"`
	Runs       []StatusRun `json:"runs"`
}

// Versioning is the bucket's versioning status (enabled, suspended,
// never) and when it was checked.
type Versioning struct {
	Status  manifest.VersioningStatus `json:"status"`
	Checked time.Time                 `json:"checked"`
}

// Reconcile is the last reconcile: when it listed the bucket, and what it
// found for the run to repair.
type Reconcile struct {
	At time.Time `json:"at"`
	Findings
}

// Findings are the counts of what a reconcile, or verify --repair, found
// for the next run to repair.
type Findings struct {
	Missing int64 `json:"missing"` // uploaded again
	Differ  int64 `json:"differ"`  // uploaded again
	Adopted int64 `json:"adopted"` // kept, or uploaded again if the file differs
	Extra   int64 `json:"extra"`   // deleted
}

// FindingsOf are the counts of r.
func FindingsOf(r manifest.Reconciled) Findings {
	return Findings{Missing: r.Missing, Differ: r.Differ, Adopted: r.Adopted, Extra: r.Extra}
}

// StatusRun is one run of the manifest's record.
type StatusRun struct {
	ID        int64      `json:"id"` // what restore --run takes
	Started   time.Time  `json:"started"`
	Ended     *time.Time `json:"ended"` // null: still running, or killed
	DurationS float64    `json:"duration_s"`
	ExitCode  *int       `json:"exit_code"`
	manifest.Counts
	// Requests are the S3 requests the run sent, retries included
	// (empty for runs recorded before cloudkeeper counted them).
	Requests manifest.Requests `json:"requests"`
	Message  string            `json:"message,omitempty"`
	// Result is how it ended: success, incomplete, failure or
	// interrupted; "" if it did not (null Ended).
	Result manifest.Outcome `json:"result"`
}

// StatusRunOf is the record r as status (and runs) show it.
func StatusRunOf(r manifest.Run) StatusRun {
	sr := StatusRun{ID: r.ID, Started: r.Started, Counts: r.Counts, Requests: r.Requests, Message: r.Message, Result: r.Outcome()}
	if r.Finished() {
		ended, code := r.Ended, r.ExitCode
		sr.Ended, sr.ExitCode, sr.DurationS = &ended, &code, r.Duration().Seconds()
	}
	return sr
}

// Stale says whether a backup whose last success ended at last (ok false:
// none ever) is older than maxAge at now.
func Stale(last time.Time, ok bool, maxAge time.Duration, now time.Time) bool {
	return !ok || now.Sub(last) > maxAge
}

// ReadStatus reads the status of t's backup from its manifest db (at
// path), with its last runs (at most runs), stale if the last success is
// older than maxAge at now. It reads the manifest alone: no S3 request.
func ReadStatus(ctx context.Context, db *manifest.DB, path string, t Target, maxAge time.Duration, runs int, now time.Time) (Status, error) {
	st := Status{Manifest: path, Source: t.Source, Bucket: t.Bucket, Prefix: t.Prefix, Endpoint: t.Endpoint, MaxAge: maxAge.String()}
	var err error
	if st.Objects, st.Bytes, err = db.Count(ctx); err != nil {
		return st, err
	}
	last, ok, err := db.LastSuccess(ctx)
	if err != nil {
		return st, err
	}
	st.Stale = Stale(last.Ended, ok, maxAge, now)
	if ok {
		st.LastSuccess = &last.Ended
	}
	if lastRun, ok, err := db.LastEnded(ctx); err != nil {
		return st, err
	} else if ok {
		sr := StatusRunOf(lastRun)
		st.LastRun = &sr
	}
	rec, ok, err := db.LastReconciled(ctx)
	if err != nil {
		return st, err
	}
	if ok {
		st.LastReconcile = &Reconcile{At: rec.At, Findings: FindingsOf(rec)}
	}
	if v, ok, err := db.Versioning(ctx); err != nil {
		return st, err
	} else if ok {
		st.Versioning = &Versioning{Status: v.Status, Checked: v.Checked}
	}
	rs, err := db.Runs(ctx, runs)
	if err != nil {
		return st, err
	}
	st.Runs = []StatusRun{}
	for _, r := range rs {
		st.Runs = append(st.Runs, StatusRunOf(r))
	}
	return st, nil
}
