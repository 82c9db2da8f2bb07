package manifest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// VersioningStatus is a bucket's versioning, as GetBucketVersioning
// answers it.
type VersioningStatus string

const (
	// VersioningNever: the bucket never had versioning on. S3 keeps no
	// old version: history needs copies (--keep).
	VersioningNever VersioningStatus = "never"
	// VersioningEnabled: S3 keeps every version; the history records
	// their version ids.
	VersioningEnabled VersioningStatus = "enabled"
	// VersioningSuspended: it was on and was turned off. What was kept
	// stays, but a write from then on replaces the object's bytes.
	VersioningSuspended VersioningStatus = "suspended"
)

// Versioning is what the manifest knows of its bucket's versioning: its
// status when it was last checked (the first run, and every reconcile).
type Versioning struct {
	Status  VersioningStatus
	Checked time.Time
}

var versioningSettings = [2]string{"versioning", "versioning_checked_ns"}

// SetVersioning records v as the bucket's versioning.
func (m *DB) SetVersioning(ctx context.Context, v Versioning) error {
	_, err := m.db.ExecContext(ctx, "INSERT OR REPLACE INTO settings(name, value) VALUES (?, ?), (?, ?)",
		versioningSettings[0], string(v.Status), versioningSettings[1], strconv.FormatInt(v.Checked.UnixNano(), 10))
	if err != nil {
		return fmt.Errorf("manifest %s: record the bucket's versioning: %w", m.path, err)
	}
	return nil
}

// Versioning returns the bucket's versioning as last recorded; false if
// it was never checked.
func (m *DB) Versioning(ctx context.Context) (Versioning, bool, error) {
	var status, checked string
	err := m.db.QueryRowContext(ctx, "SELECT a.value, b.value FROM settings a, settings b WHERE a.name = ? AND b.name = ?",
		versioningSettings[0], versioningSettings[1]).Scan(&status, &checked)
	if errors.Is(err, sql.ErrNoRows) {
		return Versioning{}, false, nil
	}
	if err != nil {
		return Versioning{}, false, fmt.Errorf("manifest %s: the bucket's versioning: %w", m.path, err)
	}
	ns, err := strconv.ParseInt(checked, 10, 64)
	if err != nil {
		return Versioning{}, false, fmt.Errorf("manifest %s: setting %s %q: %w", m.path, versioningSettings[1], checked, err)
	}
	return Versioning{Status: VersioningStatus(status), Checked: time.Unix(0, ns)}, true, nil
}

// LatestVersion is the current version of a key as a listing of its
// versions shows it.
type LatestVersion struct {
	Path      string
	Size      int64
	ETag      string // without quotes
	VersionID string
}

// WithoutVersionIDs reports how many current versions have no version id:
// objects written before the manifest recorded them (or while the bucket
// had no versioning).
func (m *DB) WithoutVersionIDs(ctx context.Context) (int64, error) {
	var n int64
	err := m.db.QueryRowContext(ctx, "SELECT count(*) FROM versions WHERE ended_ns IS NULL AND version_id = '' AND history_key = ''").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("manifest %s: versions without an id: %w", m.path, err)
	}
	return n, nil
}

// FillVersionIDs gives the current versions that have no version id, and
// their objects rows, the one a listing shows for their key, where size
// and ETag are those recorded (an object replaced behind cloudkeeper's
// back is another version: not taken). It returns how many it filled.
func (m *DB) FillVersionIDs(ctx context.Context, latest []LatestVersion) (int64, error) {
	var filled int64
	err := m.inTx(ctx, "version ids", func(tx *sql.Tx) error {
		for _, l := range latest {
			if l.VersionID == "" || l.ETag == "" {
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE versions SET version_id = ?1 WHERE path = ?2 AND ended_ns IS NULL
				AND version_id = '' AND history_key = '' AND size = ?3 AND etag = ?4`, l.VersionID, l.Path, l.Size, l.ETag)
			if err != nil {
				return fmt.Errorf("%q: %w", l.Path, err)
			}
			n, _ := res.RowsAffected()
			filled += n
			if _, err := tx.ExecContext(ctx, "UPDATE objects SET version_id = ?1 WHERE path = ?2 AND version_id = '' AND size = ?3 AND etag = ?4",
				l.VersionID, l.Path, l.Size, l.ETag); err != nil {
				return fmt.Errorf("%q: %w", l.Path, err)
			}
		}
		return nil
	})
	return filled, err
}
