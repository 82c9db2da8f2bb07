package manifest

import (
	"context"
	"fmt"
	"time"
)

// The manifest is a cache of the bucket, and a run can be killed between
// S3 applying a change and the manifest recording it. So the change is
// announced first: before a request that changes a key goes out, the key
// is marked in doubt, durably; recording S3's answer clears the mark. A
// run that finds marks left (a kill, a crash, a lost answer) asks S3 what
// it really holds at those keys, and only those, and settles each one.

// MinPartSize is the smallest part S3 accepts in a multipart upload: an
// object smaller than this is never written in parts.
const MinPartSize = 5 << 20

// Intent is a key about to change on S3, by its path.
type Intent struct {
	Path string
	// Multipart is set when the change may start a multipart upload,
	// whose parts are billed until it is completed or aborted.
	Multipart bool
	// Since is when the intent was marked (set by Intend; Doubts reads
	// it back), and Settled whether a run has settled it already.
	Since   time.Time
	Settled bool
	// Answered (read by Doubts) is set when the intent was marked by a
	// run that went to its end (exit 0 or 3): every request it sent was
	// answered, none can still be on its way.
	Answered bool
}

// IntentFor is the intent of writing e's object.
func IntentFor(e Entry) Intent {
	return Intent{Path: e.Path, Multipart: e.Stat.Size >= MinPartSize}
}

// Intend marks paths in doubt, in one transaction that is committed when
// it returns.
func (m *DB) Intend(ctx context.Context, intents []Intent) error {
	if len(intents) == 0 {
		return nil
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	// A path settled once and marked again keeps its settled state and
	// its time: a request of the killed run may still arrive, this run's
	// record must not end that watch, and nor may it extend it. So does
	// a path whose settle failed: its time is still the killed run's.
	st, err := tx.PrepareContext(ctx, `INSERT INTO doubt(path, multipart, since_ns) VALUES (?, ?, ?)
		ON CONFLICT(path) DO UPDATE SET multipart = max(multipart, excluded.multipart),
			since_ns = CASE WHEN settled OR settle_failed THEN since_ns ELSE excluded.since_ns END`)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer st.Close()
	now := time.Now().UnixNano()
	for _, in := range intents {
		if _, err := st.ExecContext(ctx, in.Path, in.Multipart, now); err != nil {
			return fmt.Errorf("manifest %s: mark %q in doubt: %w", m.path, in.Path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: commit: %w", m.path, err)
	}
	return nil
}

// Doubts returns the paths in doubt, in path order.
func (m *DB) Doubts(ctx context.Context) ([]Intent, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT path, multipart, since_ns, settled,
		EXISTS (SELECT 1 FROM runs WHERE exit_code IN (0, 3) AND started_ns <= since_ns AND ended_ns >= since_ns)
		FROM doubt ORDER BY path`)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []Intent
	for rows.Next() {
		var in Intent
		var since int64
		if err := rows.Scan(&in.Path, &in.Multipart, &since, &in.Settled, &in.Answered); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		in.Since = time.Unix(0, since)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return out, nil
}

// Found is what S3 holds at a path that was in doubt: the object, as its
// own metadata describes it, or nothing.
type Found struct {
	Path   string
	Object *Entry // nil: the bucket has no object there
	// Watch keeps the path in doubt, settled, so that the next runs look
	// again: a request the killed run sent may still be on its way.
	Watch bool
}

// Settle records what S3 holds at paths that were in doubt and clears
// their marks, in one transaction. A missing object drops the row. An
// object whose size and BLAKE3 are the row's keeps the row (the change
// never went out, or changed nothing). Any other object replaces the row
// with found.Object, whose stat is the object's and not the file's: the
// next diff hashes the file, uploads it if its content differs, and
// deletes the object if the file is gone.
func (m *DB) Settle(ctx context.Context, found []Found) error {
	if len(found) == 0 {
		return nil
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	now := time.Now().UnixNano()
	for _, f := range found {
		row, has, err := getEntry(ctx, tx, f.Path)
		if err != nil {
			return fmt.Errorf("manifest %s: settle %q: %w", m.path, f.Path, err)
		}
		switch {
		case f.Object == nil:
			_, err = tx.ExecContext(ctx, "DELETE FROM objects WHERE path = ?", f.Path)
		case has && row.Hash == f.Object.Hash && row.Stat.Size == f.Object.Stat.Size:
			if v := f.Object.VersionID; v != "" && v != row.VersionID {
				// The same bytes, written again: a new version.
				_, err = tx.ExecContext(ctx, "UPDATE objects SET version_id = ?, uploaded_ns = ? WHERE path = ?", v, now, f.Path)
			}
		default:
			e := *f.Object
			e.Path = f.Path
			if e.UploadedNs == 0 {
				e.UploadedNs = now
			}
			_, err = tx.ExecContext(ctx, putEntrySQL, entryArgs(e)...)
		}
		if err == nil {
			err = followObject(ctx, tx, f.Path, now)
		}
		if err == nil && f.Watch {
			_, err = tx.ExecContext(ctx, "UPDATE doubt SET settled = 1, settle_failed = 0 WHERE path = ?", f.Path)
		} else if err == nil {
			_, err = tx.ExecContext(ctx, "DELETE FROM doubt WHERE path = ?", f.Path)
		}
		if err != nil {
			return fmt.Errorf("manifest %s: settle %q: %w", m.path, f.Path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: commit: %w", m.path, err)
	}
	return nil
}

// SettleFailed marks paths whose settle failed (S3 could not be asked), in
// one transaction: they stay in doubt until a settle succeeds, though this
// run records an answer for them. Writing a key again settles nothing of
// what the interrupted run may have left at it: a multipart upload whose
// creation the kill kept from being recorded is found only by listing the
// key's uploads.
func (m *DB) SettleFailed(ctx context.Context, paths []string) error {
	return m.eachPath(ctx, "keep in doubt", "UPDATE doubt SET settle_failed = 1 WHERE path = ?", paths)
}
