package manifest

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Run is the record of one sync.
type Run struct {
	ID                                                  int64
	Started                                             time.Time
	Ended                                               time.Time // zero while running, or if the run was killed
	ExitCode                                            int
	Adds, Modifies, Renames, Copies, Deletes, Unchanged int64
	Bytes                                               int64 // uploaded
	Errors                                              int64
	Message                                             string // why it failed, if it did
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
		copies = ?, deletes = ?, unchanged = ?, bytes = ?, errors = ?, message = ? WHERE id = ?`,
		r.Ended.UnixNano(), r.ExitCode, r.Adds, r.Modifies, r.Renames, r.Copies, r.Deletes, r.Unchanged,
		r.Bytes, r.Errors, r.Message, r.ID)
	if err != nil {
		return fmt.Errorf("manifest %s: record run: %w", m.path, err)
	}
	return nil
}

// Runs returns the last n runs, newest first.
func (m *DB) Runs(ctx context.Context, n int) ([]Run, error) {
	return m.queryRuns(ctx, "ORDER BY id DESC LIMIT ?", n)
}

// LastSuccess returns the last run that ended with exit status 0.
func (m *DB) LastSuccess(ctx context.Context) (Run, bool, error) {
	runs, err := m.queryRuns(ctx, "WHERE exit_code = 0 AND ended_ns IS NOT NULL ORDER BY id DESC LIMIT 1")
	if err != nil || len(runs) == 0 {
		return Run{}, false, err
	}
	return runs[0], true, nil
}

func (m *DB) queryRuns(ctx context.Context, tail string, args ...any) ([]Run, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT id, started_ns, ended_ns, exit_code, adds, modifies, renames, copies,
		deletes, unchanged, bytes, errors, message FROM runs `+tail, args...)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var started int64
		var ended, code sql.NullInt64
		if err := rows.Scan(&r.ID, &started, &ended, &code, &r.Adds, &r.Modifies, &r.Renames, &r.Copies,
			&r.Deletes, &r.Unchanged, &r.Bytes, &r.Errors, &r.Message); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
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
