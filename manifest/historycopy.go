package manifest

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// HistoryCopy is a copy that keeps, in the history area of a bucket
// without versioning, the object a run is about to overwrite or delete.
type HistoryCopy struct {
	Key string // its history key (HistoryKey)
	Of  Entry  // the row of the object copied; a doubt read back has its Path, Hash and Size only
	// Since and Answered, read back by HistoryDoubts, are as an Intent's.
	Since    time.Time
	Answered bool
}

// IntendHistory marks copies in doubt before they go out, in one
// transaction committed when it returns, and returns those to make: a
// copy of a current version that has one already (the run that made it
// was interrupted before its overwrite) is not made again.
func (m *DB) IntendHistory(ctx context.Context, copies []HistoryCopy) ([]HistoryCopy, error) {
	if len(copies) == 0 {
		return nil, nil
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	now := time.Now().UnixNano()
	var need []HistoryCopy
	for _, c := range copies {
		kept, err := keptAlready(ctx, tx, c)
		if err == nil && !kept {
			_, err = tx.ExecContext(ctx, "INSERT OR REPLACE INTO history_doubt(key, path, blake3, size, since_ns) VALUES (?, ?, ?, ?, ?)",
				c.Key, c.Of.Path, c.Of.Hash[:], c.Of.Stat.Size, now)
			need = append(need, c)
		}
		if err != nil {
			return nil, fmt.Errorf("manifest %s: history copy %q: %w", m.path, c.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("manifest %s: commit: %w", m.path, err)
	}
	return need, nil
}

// keptAlready reports whether the current version c would copy has a copy
// already.
func keptAlready(ctx context.Context, q querier, c HistoryCopy) (bool, error) {
	var kept bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM versions WHERE path = ? AND ended_ns IS NULL AND blake3 = ? AND history_key != '')`,
		c.Of.Path, c.Of.Hash[:]).Scan(&kept)
	return kept, err
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// HistoryToMake returns the copies IntendHistory would make, and marks
// nothing: what a dry run counts.
func (m *DB) HistoryToMake(ctx context.Context, copies []HistoryCopy) ([]HistoryCopy, error) {
	var need []HistoryCopy
	for _, c := range copies {
		kept, err := keptAlready(ctx, m.db, c)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: history copy %q: %w", m.path, c.Key, err)
		}
		if !kept {
			need = append(need, c)
		}
	}
	return need, nil
}

// RecordHistory records copies S3 confirmed on the current versions they
// keep and clears their doubt, in one transaction committed when it
// returns: only then may the overwrite or the delete go out. A row with no
// version (written before the history knew it) gets one, by run 0.
func (m *DB) RecordHistory(ctx context.Context, copies []HistoryCopy) error {
	if len(copies) == 0 {
		return nil
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	for _, c := range copies {
		if err := recordCopy(ctx, tx, c); err != nil {
			return fmt.Errorf("manifest %s: history copy %q: %w", m.path, c.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: commit: %w", m.path, err)
	}
	return nil
}

func recordCopy(ctx context.Context, tx *sql.Tx, c HistoryCopy) error {
	e := c.Of
	if _, err := tx.ExecContext(ctx, "DELETE FROM history_doubt WHERE key = ?", c.Key); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, "UPDATE versions SET history_key = ? WHERE path = ? AND ended_ns IS NULL AND blake3 = ?", c.Key, e.Path, e.Hash[:])
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	// The current version is another (unknown content) or none: this
	// copy is the row's object, which becomes the current version.
	if _, err := tx.ExecContext(ctx, "UPDATE versions SET ended_ns = ?, ended_run = 0 WHERE path = ? AND ended_ns IS NULL", time.Now().UnixNano(), e.Path); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, dropUnkept, e.Path); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO versions(path, run, written_ns, size, blake3, mtime_ns, mode, etag, version_id, history_key)
		VALUES (?, 0, ?, ?, ?, ?, ?, ?, '', ?)`, e.Path, e.UploadedNs, e.Stat.Size, e.Hash[:], e.Stat.MtimeNs, uint32(e.Stat.Mode), e.ETag, c.Key)
	return err
}

// HistoryDoubts returns the history copies in doubt, in key order: an
// interrupted run marked them and did not record them.
func (m *DB) HistoryDoubts(ctx context.Context) ([]HistoryCopy, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT key, path, blake3, size, since_ns,
		EXISTS (SELECT 1 FROM runs WHERE exit_code IN (0, 3) AND started_ns <= since_ns AND ended_ns >= since_ns)
		FROM history_doubt ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []HistoryCopy
	for rows.Next() {
		var c HistoryCopy
		var hash []byte
		var since int64
		if err := rows.Scan(&c.Key, &c.Of.Path, &hash, &c.Of.Stat.Size, &since, &c.Answered); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		copy(c.Of.Hash[:], hash)
		c.Since = time.Unix(0, since)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return out, nil
}

// SettleHistory records what S3 holds at a history copy in doubt. found:
// the copy is there, and is recorded on the version of its path with its
// content that has none yet, the current one first; attached is false if
// there is no such version (the copy keeps nothing the history knows: the
// caller deletes it, then settles it again as not found), and the doubt
// stays. Not found: the doubt goes.
func (m *DB) SettleHistory(ctx context.Context, c HistoryCopy, found bool) (attached bool, err error) {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	if found {
		res, err := tx.ExecContext(ctx, `UPDATE versions SET history_key = ?1 WHERE id = (SELECT id FROM versions
			WHERE path = ?2 AND blake3 = ?3 AND history_key = '' AND version_id = '' ORDER BY ended_ns IS NULL DESC, written_ns DESC LIMIT 1)`,
			c.Key, c.Of.Path, c.Of.Hash[:])
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
		}
		if err != nil || n == 0 {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM history_doubt WHERE key = ?", c.Key); err != nil {
		return false, fmt.Errorf("manifest %s: settle history copy %q: %w", m.path, c.Key, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("manifest %s: commit: %w", m.path, err)
	}
	return found, nil
}
