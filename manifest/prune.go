package manifest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A prune removes from S3 the non-current versions past the Keep, and
// forgets each in the history only once S3 confirmed its delete. A kill
// between the two would leave the history listing a version S3 no longer
// holds, and a later prune with a longer Keep would never ask again; so
// the versions of a batch are marked first (pruning_ns), durably. The next
// prune deletes a marked version past its Keep as any other (a delete of a
// version S3 no longer has succeeds), and asks S3 of one its Keep keeps
// (PrunePlan.Doubt): forgotten if gone, unmarked and kept if not, since
// the delete may never have reached S3.

// OldVersion is a non-current version, as a prune sees it.
type OldVersion struct {
	ID int64 // its row
	Version
	// RetainUntil is the Object Lock retention it was written with; zero
	// if none is known.
	RetainUntil time.Time
	// Marked: a prune was about to delete it and did not record S3's
	// answer.
	Marked bool
}

// PrunePlan is what a prune at a time does with the history.
type PrunePlan struct {
	// Remove are the versions past the Keep, to delete.
	Remove []OldVersion
	// Doubt are Marked versions the Keep keeps: S3 may have deleted them
	// or not; to ask.
	Doubt []OldVersion
	// Locked are versions past the Keep whose retention has not ended:
	// kept until their RetainUntil.
	Locked []OldVersion
	// Kept counts the non-current versions the Keep keeps.
	Kept int64
}

// PrunePlan sorts the non-current versions the history holds (those S3
// keeps: by version id or as a copy) by keep at now: a version is kept
// while it was replaced less than keep.Age ago or is one of its path's
// keep.Count newest non-current versions. A current version is never in
// the plan. In path order, oldest first.
func (m *DB) PrunePlan(ctx context.Context, keep Keep, now time.Time) (PrunePlan, error) {
	var plan PrunePlan
	if !keep.On() {
		return plan, errors.New("prune: no --keep: it would remove every old version")
	}
	rows, err := m.db.QueryContext(ctx, "SELECT id, "+versionColumns+`, retain_until_ns, pruning_ns,
		ROW_NUMBER() OVER (PARTITION BY path ORDER BY ended_ns DESC, id DESC)
		FROM versions WHERE ended_ns IS NOT NULL AND (version_id != '' OR history_key != '')
		-- S3's "null" version may be the key's current object: never deleted by its id then
		AND NOT (version_id = 'null' AND EXISTS (SELECT 1 FROM versions c WHERE c.path = versions.path AND c.ended_ns IS NULL AND c.version_id IN ('', 'null')))
		ORDER BY path, written_ns, id`)
	if err != nil {
		return plan, fmt.Errorf("manifest %s: prune: %w", m.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var o OldVersion
		var until, marked, newer int64
		o.Version, err = scanVersion(extraScan{rows, []any{&o.ID}, []any{&until, &marked, &newer}})
		if err != nil {
			return plan, fmt.Errorf("manifest %s: prune: %w", m.path, err)
		}
		o.Marked = marked != 0
		if until != 0 {
			o.RetainUntil = time.Unix(0, until)
		}
		kept := keep.Age > 0 && now.Sub(o.Ended) < keep.Age || keep.Count > 0 && newer <= int64(keep.Count)
		switch {
		case kept && o.Marked:
			plan.Doubt = append(plan.Doubt, o)
		case kept:
			plan.Kept++
		case o.RetainUntil.After(now):
			plan.Locked = append(plan.Locked, o)
		default:
			plan.Remove = append(plan.Remove, o)
		}
	}
	if err := rows.Err(); err != nil {
		return plan, fmt.Errorf("manifest %s: prune: %w", m.path, err)
	}
	return plan, nil
}

// extraScan scans columns before and after those scanVersion reads.
type extraScan struct {
	r           rowScanner
	before, aft []any
}

func (e extraScan) Scan(dest ...any) error {
	all := append(append(append([]any{}, e.before...), dest...), e.aft...)
	return e.r.Scan(all...)
}

// MarkPruning marks versions (by ID) about to be deleted, in one
// transaction committed when it returns.
func (m *DB) MarkPruning(ctx context.Context, ids []int64, now time.Time) error {
	return m.updateVersions(ctx, "UPDATE versions SET pruning_ns = ? WHERE ended_ns IS NOT NULL AND id IN ", ids, now.UnixNano())
}

// UnmarkPruning clears the marks of versions S3 refused to delete: they
// stay, and the next prune weighs them by its Keep again.
func (m *DB) UnmarkPruning(ctx context.Context, ids []int64) error {
	return m.updateVersions(ctx, "UPDATE versions SET pruning_ns = 0 WHERE id IN ", ids)
}

// ForgetVersions drops versions S3 confirmed deleted. A current version
// is never dropped.
func (m *DB) ForgetVersions(ctx context.Context, ids []int64) error {
	return m.updateVersions(ctx, "DELETE FROM versions WHERE ended_ns IS NOT NULL AND id IN ", ids)
}

// updateVersions runs q (ending in "id IN ", its other parameters lead)
// for ids, in one transaction.
func (m *DB) updateVersions(ctx context.Context, q string, ids []int64, lead ...any) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	const chunk = 500 // SQLite's bound parameters
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		args := append([]any{}, lead...)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		in := "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
		if _, err := tx.ExecContext(ctx, q+in, args...); err != nil {
			return fmt.Errorf("manifest %s: prune: %w", m.path, err)
		}
		ids = ids[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: prune: %w", m.path, err)
	}
	return nil
}

// SetPruned records at as the time of the last prune.
func (m *DB) SetPruned(ctx context.Context, at time.Time) error {
	_, err := m.db.ExecContext(ctx, "INSERT OR REPLACE INTO settings(name, value) VALUES ('pruned_ns', ?)", strconv.FormatInt(at.UnixNano(), 10))
	if err != nil {
		return fmt.Errorf("manifest %s: record the prune: %w", m.path, err)
	}
	return nil
}

// LastPruned returns the time of the last prune; false if none was
// recorded.
func (m *DB) LastPruned(ctx context.Context) (time.Time, bool, error) {
	var s string
	err := m.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE name = 'pruned_ns'").Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("manifest %s: setting pruned_ns %q: %w", m.path, s, err)
	}
	return time.Unix(0, ns), true, nil
}
