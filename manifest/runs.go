package manifest

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Counts is what a sync did, the one type for it: the applier counts the
// changes (uploader.Summary is this type), the mirror adds the diff's
// unchanged files and errors, the manifest records it in a Run, and the
// command prints it (its JSON names are those of the summary line, status
// and notifications).
type Counts struct {
	Add       int64 `json:"add"`
	Modify    int64 `json:"modify"`
	Rename    int64 `json:"rename"`
	Copy      int64 `json:"copy"`
	Delete    int64 `json:"delete"`
	Unchanged int64 `json:"unchanged"` // files whose object is up to date
	Bytes     int64 `json:"bytes"`     // uploaded
	Errors    int64 `json:"errors"`    // paths or keys that failed
}

// Uploads is the number of objects uploaded (adds and modifies).
func (c Counts) Uploads() int64 { return c.Add + c.Modify }

// Changes is the number of changes applied (touches are not counted).
func (c Counts) Changes() int64 { return c.Add + c.Modify + c.Rename + c.Copy + c.Delete }

// Run is the record of one sync.
type Run struct {
	ID       int64
	Started  time.Time
	Ended    time.Time // zero while running, or if the run was killed
	ExitCode int
	Counts
	// Requests are the S3 requests the run sent.
	Requests Requests
	Message  string // why it failed, if it did
	// Interrupted: a signal stopped it (its exit status is that of a
	// failure).
	Interrupted bool
}

// Outcome is how a run ended, in the words of the JSON summary line and
// of status.
type Outcome string

const (
	Success     Outcome = "success"     // exit status 0: everything applied
	Incomplete  Outcome = "incomplete"  // exit status 3: some paths failed
	Failure     Outcome = "failure"     // a fatal error: nothing or only part applied
	Interrupted Outcome = "interrupted" // stopped by a signal: only part applied
)

// OutcomeOf is the outcome of a run that ended with exit status code
// (0 success, 3 incomplete, any other a failure), or was interrupted.
func OutcomeOf(code int, interrupted bool) Outcome {
	switch {
	case interrupted:
		return Interrupted
	case code == 0:
		return Success
	case code == 3:
		return Incomplete
	default:
		return Failure
	}
}

// Outcome is how the run ended; "" if it did not (still running, or
// killed).
func (r Run) Outcome() Outcome {
	if !r.Finished() {
		return ""
	}
	return OutcomeOf(r.ExitCode, r.Interrupted)
}

// Finished reports whether the run ended (rather than being killed).
func (r Run) Finished() bool { return !r.Ended.IsZero() }

// Duration is how long a finished run took.
func (r Run) Duration() time.Duration {
	if !r.Finished() {
		return 0
	}
	return r.Ended.Sub(r.Started)
}

// StartRun records that a sync starts now and returns its ID.
func (m *DB) StartRun(ctx context.Context, start time.Time) (int64, error) {
	res, err := m.db.ExecContext(ctx, "INSERT INTO runs(started_ns) VALUES (?)", start.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("manifest %s: record run: %w", m.path, err)
	}
	return res.LastInsertId()
}

// EndRun records how run r.ID ended.
func (m *DB) EndRun(ctx context.Context, r Run) error {
	_, err := m.db.ExecContext(ctx, `UPDATE runs SET ended_ns = ?, exit_code = ?, adds = ?, modifies = ?, renames = ?,
		copies = ?, deletes = ?, unchanged = ?, bytes = ?, errors = ?, message = ?, interrupted = ?, requests = ?, bytes_sent = ? WHERE id = ?`,
		r.Ended.UnixNano(), r.ExitCode, r.Add, r.Modify, r.Rename, r.Copy, r.Delete, r.Unchanged,
		r.Bytes, r.Errors, r.Message, r.Interrupted, encodeRequests(r.Requests), r.Requests.Bytes, r.ID)
	if err != nil {
		return fmt.Errorf("manifest %s: record run: %w", m.path, err)
	}
	return nil
}

// Runs returns the last n runs, newest first (n < 0: all of them).
func (m *DB) Runs(ctx context.Context, n int) ([]Run, error) {
	return m.queryRuns(ctx, "ORDER BY id DESC LIMIT ?", n)
}

// LastEnded returns the last run that ended (one killed has not).
func (m *DB) LastEnded(ctx context.Context) (Run, bool, error) {
	return m.lastRun(ctx, "ended_ns IS NOT NULL")
}

// LastSuccess returns the last run that ended with exit status 0.
func (m *DB) LastSuccess(ctx context.Context) (Run, bool, error) {
	return m.lastRun(ctx, "exit_code = 0 AND ended_ns IS NOT NULL")
}

// lastRun returns the last run that matches the condition where.
func (m *DB) lastRun(ctx context.Context, where string) (Run, bool, error) {
	return m.oneRun(ctx, "WHERE "+where+" ORDER BY id DESC LIMIT 1")
}

func (m *DB) queryRuns(ctx context.Context, tail string, args ...any) ([]Run, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT id, started_ns, ended_ns, exit_code, adds, modifies, renames, copies,
		deletes, unchanged, bytes, errors, message, interrupted, requests, bytes_sent FROM runs `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var started int64
		var ended, code sql.NullInt64
		var requests string
		var sent int64
		if err := rows.Scan(&r.ID, &started, &ended, &code, &r.Add, &r.Modify, &r.Rename, &r.Copy,
			&r.Delete, &r.Unchanged, &r.Bytes, &r.Errors, &r.Message, &r.Interrupted, &requests, &sent); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		var err error
		if r.Requests, err = decodeRequests(requests, sent); err != nil {
			return nil, fmt.Errorf("manifest %s: run %d: %w", m.path, r.ID, err)
		}
		r.Started = time.Unix(0, started)
		if ended.Valid {
			r.Ended = time.Unix(0, ended.Int64)
		}
		r.ExitCode = int(code.Int64)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return out, nil
}

// RunByID returns run id; ok is false if the manifest has no such run.
func (m *DB) RunByID(ctx context.Context, id int64) (Run, bool, error) {
	return m.oneRun(ctx, "WHERE id = ?", id)
}

// LastEndedBy returns the last run that ended at or before at: the one
// whose tree a restore to at brings back.
func (m *DB) LastEndedBy(ctx context.Context, at time.Time) (Run, bool, error) {
	return m.oneRun(ctx, "WHERE ended_ns IS NOT NULL AND ended_ns <= ? ORDER BY ended_ns DESC, id DESC LIMIT 1", at.UnixNano())
}

// FirstEnded returns the first run that ended.
func (m *DB) FirstEnded(ctx context.Context) (Run, bool, error) {
	return m.oneRun(ctx, "WHERE ended_ns IS NOT NULL ORDER BY ended_ns, id LIMIT 1")
}

func (m *DB) oneRun(ctx context.Context, tail string, args ...any) (Run, bool, error) {
	runs, err := m.queryRuns(ctx, tail, args...)
	if err != nil || len(runs) == 0 {
		return Run{}, false, err
	}
	return runs[0], true, nil
}
