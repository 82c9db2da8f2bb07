package manifest

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Entry is one object the bucket holds, as the manifest records it.
type Entry struct {
	Path       string // relative to the source, '/'-separated
	Hash       scanner.Digest
	Stat       scanner.Stat // the stat the hash was taken under; Stat.Size is the object's size
	HashedNs   int64        // when the hash was taken, Unix ns
	UploadedNs int64        // when S3 confirmed the object, Unix ns
}

const entryColumns = "path, size, blake3, mtime_ns, ctime_ns, inode, dev, mode, hashed_ns, uploaded_ns"

type rowScanner interface{ Scan(dest ...any) error }

func scanEntry(r rowScanner) (Entry, error) {
	var e Entry
	var hash []byte
	var inode, dev int64
	var mode uint32
	err := r.Scan(&e.Path, &e.Stat.Size, &hash, &e.Stat.MtimeNs, &e.Stat.CtimeNs, &inode, &dev, &mode, &e.HashedNs, &e.UploadedNs)
	if err != nil {
		return e, err
	}
	if len(hash) != len(e.Hash) {
		return e, fmt.Errorf("row %q: blake3 has %d bytes, want %d", e.Path, len(hash), len(e.Hash))
	}
	copy(e.Hash[:], hash)
	// SQLite integers are signed; inode and device numbers are stored
	// as their two's complement.
	e.Stat.Inode, e.Stat.Dev, e.Stat.Mode = uint64(inode), uint64(dev), fs.FileMode(mode)
	return e, nil
}

func entryArgs(e Entry) []any {
	return []any{e.Path, e.Stat.Size, e.Hash[:], e.Stat.MtimeNs, e.Stat.CtimeNs,
		int64(e.Stat.Inode), int64(e.Stat.Dev), uint32(e.Stat.Mode), e.HashedNs, e.UploadedNs}
}

// Rows iterates over the manifest in path order (SQLite BINARY collation,
// which is Go's byte-wise string order). It reads from one snapshot: writes
// made while it is open do not show.
type Rows struct {
	rows *sql.Rows
	path string
	err  error
}

// Rows starts an ordered iteration. Close it when done.
func (m *DB) Rows(ctx context.Context) (*Rows, error) {
	rows, err := m.db.QueryContext(ctx, "SELECT "+entryColumns+" FROM objects ORDER BY path")
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return &Rows{rows: rows, path: m.path}, nil
}

// Next returns the next entry, or false at the end or on error (see Err).
func (r *Rows) Next() (Entry, bool) {
	if r.err != nil || !r.rows.Next() {
		return Entry{}, false
	}
	e, err := scanEntry(r.rows)
	if err != nil {
		r.err = fmt.Errorf("manifest %s: %w", r.path, err)
		return Entry{}, false
	}
	return e, true
}

// Err returns the error that ended the iteration, if any.
func (r *Rows) Err() error {
	if r.err != nil {
		return r.err
	}
	if err := r.rows.Err(); err != nil {
		return fmt.Errorf("manifest %s: %w", r.path, err)
	}
	return nil
}

// Close ends the iteration.
func (r *Rows) Close() error { return r.rows.Close() }

// Get returns the entry at path.
func (m *DB) Get(ctx context.Context, path string) (Entry, bool, error) {
	e, err := scanEntry(m.db.QueryRowContext(ctx, "SELECT "+entryColumns+" FROM objects WHERE path = ?", path))
	if err == sql.ErrNoRows {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("manifest %s: get %q: %w", m.path, path, err)
	}
	return e, true, nil
}

// ByHash returns up to limit entries whose content has hash d, in path
// order.
func (m *DB) ByHash(ctx context.Context, d scanner.Digest, limit int) ([]Entry, error) {
	return m.query(ctx, "SELECT "+entryColumns+" FROM objects WHERE blake3 = ? ORDER BY path LIMIT ?", d[:], limit)
}

// ByInode returns the entries last hashed from the file with this inode
// and device.
func (m *DB) ByInode(ctx context.Context, inode, dev uint64) ([]Entry, error) {
	return m.query(ctx, "SELECT "+entryColumns+" FROM objects WHERE inode = ? AND dev = ? LIMIT 16", int64(inode), int64(dev))
}

func (m *DB) query(ctx context.Context, q string, args ...any) ([]Entry, error) {
	rows, err := m.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return out, nil
}
