package manifest

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// historyStmts keep the versions table in step with the objects a
// Writer's commit records: a confirmed write ends the path's current
// version and adds the new one, a delete ends it; an ended version whose
// bytes S3 does not keep (no version id, no history copy) is not history,
// and goes.
type historyStmts struct {
	end, unnull, drop, add *sql.Stmt
}

// dropUnkept deletes the ended versions of a path (its one parameter)
// whose bytes S3 does not keep: no version id, no history copy.
const dropUnkept = "DELETE FROM versions WHERE path = ?1 AND ended_ns IS NOT NULL AND version_id = '' AND history_key = ''"

func prepareHistory(tx *sql.Tx) (*historyStmts, error) {
	h := &historyStmts{}
	var err error
	if h.end, err = tx.Prepare("UPDATE versions SET ended_ns = ?, ended_run = ? WHERE path = ? AND ended_ns IS NULL"); err != nil {
		return nil, err
	}
	// S3 keeps one "null" version a key: a write or a delete without
	// versioning on replaces it, kept or not.
	if h.unnull, err = tx.Prepare("UPDATE versions SET version_id = '' WHERE path = ? AND ended_ns IS NOT NULL AND version_id = 'null'"); err != nil {
		return nil, err
	}
	if h.drop, err = tx.Prepare(dropUnkept); err != nil {
		return nil, err
	}
	if h.add, err = tx.Prepare(`INSERT INTO versions(path, run, written_ns, size, blake3, mtime_ns, mode, etag, version_id, retain_until_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *historyStmts) Close() {
	for _, s := range []*sql.Stmt{h.end, h.unnull, h.drop, h.add} {
		if s != nil {
			s.Close()
		}
	}
}

// replaced ends the current version of path at ns, by run. nullGone: the
// write or delete that replaced it may have replaced S3's "null" version
// of the key too (one made without versioning on, or a delete, whose
// marker's version is not known here), which is then no longer kept.
func (h *historyStmts) replaced(path string, ns, run int64, nullGone bool) error {
	if _, err := h.end.Exec(ns, run, path); err != nil {
		return fmt.Errorf("history of %q: %w", path, err)
	}
	if nullGone {
		if _, err := h.unnull.Exec(path); err != nil {
			return fmt.Errorf("history of %q: %w", path, err)
		}
	}
	if _, err := h.drop.Exec(path); err != nil {
		return fmt.Errorf("history of %q: %w", path, err)
	}
	return nil
}

// written ends the current version of e's path and adds e as the new one.
func (h *historyStmts) written(e Entry, run int64) error {
	if err := h.replaced(e.Path, e.UploadedNs, run, e.VersionID == ""); err != nil {
		return err
	}
	if _, err := h.add.Exec(e.Path, run, e.UploadedNs, e.Stat.Size, e.Hash[:], e.Stat.MtimeNs, uint32(e.Stat.Mode), e.ETag, e.VersionID, e.RetainUntilNs); err != nil {
		return fmt.Errorf("history of %q: %w", e.Path, err)
	}
	return nil
}

// followObject brings the history of path in line with its objects row,
// after a change S3 told of that no run of this manifest made (a settle of
// what an interrupted run left, a reconcile's repair): a current version
// that is not the row's object any more ends at ns; the row's object, if
// its content is known and it is not the current version, becomes it (by
// run 0: not known which wrote it).
func followObject(ctx context.Context, tx *sql.Tx, path string, ns int64) error {
	stmts := []string{
		`UPDATE versions SET ended_ns = ?2, ended_run = 0 WHERE path = ?1 AND ended_ns IS NULL AND NOT EXISTS (
			SELECT 1 FROM objects o WHERE o.path = versions.path AND o.blake3 = versions.blake3 AND o.version_id = versions.version_id)`,
		dropUnkept,
		`INSERT INTO versions(path, run, written_ns, size, blake3, mtime_ns, mode, etag, version_id)
			SELECT path, 0, uploaded_ns, size, blake3, mtime_ns, mode, etag, version_id FROM objects
			WHERE path = ?1 AND blake3 != zeroblob(32) AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.path = ?1 AND v.ended_ns IS NULL)`,
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q, path, ns); err != nil {
			return fmt.Errorf("history of %q: %w", path, err)
		}
	}
	return nil
}

// Version is one version of a path's object, as the history records it.
type Version struct {
	Path string
	// Run is the run that wrote it (0: not known: written before the
	// history began, or found by a settle or a reconcile); Written when
	// S3 confirmed it.
	Run     int64
	Written time.Time
	// Ended is when a write or a delete replaced it, by EndedRun; zero
	// while it is the current version.
	Ended    time.Time
	EndedRun int64
	Size     int64
	Hash     scanner.Digest
	MtimeNs  int64
	Mode     fs.FileMode
	ETag     string
	// VersionID is S3's version (a bucket with versioning); HistoryKey
	// the copy that keeps it (a bucket without). Both "" for a current
	// version written without versioning: the object at its key.
	VersionID, HistoryKey string
}

// Current reports whether v is its path's current version.
func (v Version) Current() bool { return v.Ended.IsZero() }

const versionColumns = "path, run, written_ns, ended_ns, ended_run, size, blake3, mtime_ns, mode, etag, version_id, history_key"

func scanVersion(r rowScanner) (Version, error) {
	var v Version
	var written int64
	var ended, endedRun sql.NullInt64
	var hash []byte
	var mode uint32
	if err := r.Scan(&v.Path, &v.Run, &written, &ended, &endedRun, &v.Size, &hash, &v.MtimeNs, &mode, &v.ETag, &v.VersionID, &v.HistoryKey); err != nil {
		return v, err
	}
	if len(hash) != len(v.Hash) {
		return v, fmt.Errorf("version of %q: blake3 has %d bytes, want %d", v.Path, len(hash), len(v.Hash))
	}
	copy(v.Hash[:], hash)
	v.Written, v.Mode, v.EndedRun = time.Unix(0, written), fs.FileMode(mode), endedRun.Int64
	if ended.Valid {
		v.Ended = time.Unix(0, ended.Int64)
	}
	return v, nil
}

// History returns the versions of path the history holds, oldest first.
func (m *DB) History(ctx context.Context, path string) ([]Version, error) {
	rows, err := m.db.QueryContext(ctx, "SELECT "+versionColumns+" FROM versions WHERE path = ? ORDER BY written_ns, id", path)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: history of %q: %w", m.path, path, err)
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: history of %q: %w", m.path, path, err)
	}
	return out, nil
}

// TreeAt calls fn, in path order, for each version that was current at
// at: the tree the bucket held then, as far as the history knows it. under,
// if not "", keeps only that path and what is below it.
func (m *DB) TreeAt(ctx context.Context, at time.Time, under string, fn func(Version) error) error {
	ns := at.UnixNano()
	q := "SELECT " + versionColumns + " FROM versions WHERE written_ns <= ?1 AND (ended_ns IS NULL OR ended_ns > ?1)"
	args := []any{ns}
	if under != "" {
		q += " AND (path = ?2 OR (path > ?2 || '/' AND path < ?2 || '0'))" // '0' follows '/'
		args = append(args, strings.TrimSuffix(under, "/"))
	}
	rows, err := m.db.QueryContext(ctx, q+" ORDER BY path", args...)
	if err != nil {
		return fmt.Errorf("manifest %s: the tree at %s: %w", m.path, at.Format(time.RFC3339), err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", m.path, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AddVersions records versions that are not current (ended), as a
// rebuild finds them in the bucket: each with its version id.
func (m *DB) AddVersions(ctx context.Context, vs []Version) error {
	return m.inTx(ctx, "history", func(tx *sql.Tx) error {
		for _, v := range vs {
			if v.Current() {
				return fmt.Errorf("%q: version %s is not ended", v.Path, v.VersionID)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO versions(path, run, written_ns, ended_ns, ended_run, size, blake3, mtime_ns, mode, etag, version_id, history_key)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, v.Path, v.Run, v.Written.UnixNano(), v.Ended.UnixNano(), v.EndedRun, v.Size, v.Hash[:],
				v.MtimeNs, uint32(v.Mode), v.ETag, v.VersionID, v.HistoryKey)
			if err != nil {
				return fmt.Errorf("%q: %w", v.Path, err)
			}
		}
		return nil
	})
}

// EndVersion ends the old version versionID of path at at, if it ended
// later: a rebuild that finds a history copy of a version written after it.
func (m *DB) EndVersion(ctx context.Context, path, versionID string, at time.Time) error {
	_, err := m.db.ExecContext(ctx, "UPDATE versions SET ended_ns = ?3 WHERE path = ?1 AND version_id = ?2 AND ended_ns > ?3",
		path, versionID, at.UnixNano())
	if err != nil {
		return fmt.Errorf("manifest %s: history of %q: %w", m.path, path, err)
	}
	return nil
}

// KeepNullVersion records the history copy at key on S3's old "null"
// version of path, which it copied: a rebuild that finds both.
func (m *DB) KeepNullVersion(ctx context.Context, path, key string) error {
	_, err := m.db.ExecContext(ctx, "UPDATE versions SET history_key = ? WHERE path = ? AND version_id = 'null' AND ended_ns IS NOT NULL AND history_key = ''",
		key, path)
	if err != nil {
		return fmt.Errorf("manifest %s: history of %q: %w", m.path, path, err)
	}
	return nil
}

// RunlessHistoryBy reports whether the history has a version written at
// or before at that no recorded run wrote (run 0: rebuilt from the
// bucket, or from before history): the tree at at is known though no run
// had ended by then.
func (m *DB) RunlessHistoryBy(ctx context.Context, at time.Time) (bool, error) {
	var n int
	err := m.db.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM versions WHERE run = 0 AND written_ns <= ? LIMIT 1)", at.UnixNano()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("manifest %s: history: %w", m.path, err)
	}
	return n > 0, nil
}

// Gap is a time a path had a version the history no longer holds: pruned,
// or never kept (replaced where S3 kept no copy of it).
type Gap struct {
	Path   string
	Pruned bool
}

// GapsAt calls fn, in path order, for each path whose version current at
// at the history no longer holds (see TreeAt for under).
func (m *DB) GapsAt(ctx context.Context, at time.Time, under string, fn func(Gap) error) error {
	q := "SELECT path, max(pruned) FROM history_gaps WHERE from_ns <= ?1 AND to_ns > ?1"
	args := []any{at.UnixNano()}
	if under != "" {
		q += " AND (path = ?2 OR (path > ?2 || '/' AND path < ?2 || '0'))"
		args = append(args, strings.TrimSuffix(under, "/"))
	}
	rows, err := m.db.QueryContext(ctx, q+" GROUP BY path ORDER BY path", args...)
	if err != nil {
		return fmt.Errorf("manifest %s: what the history lost at %s: %w", m.path, at.Format(time.RFC3339), err)
	}
	defer rows.Close()
	for rows.Next() {
		var g Gap
		if err := rows.Scan(&g.Path, &g.Pruned); err != nil {
			return fmt.Errorf("manifest %s: %w", m.path, err)
		}
		if err := fn(g); err != nil {
			return err
		}
	}
	return rows.Err()
}
