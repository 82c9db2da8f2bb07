package manifest

import (
	"context"
	"fmt"
	"sort"
)

// SaveDirty records paths that watch saw change and has not pushed yet, so
// that they survive a restart.
func (m *DB) SaveDirty(ctx context.Context, paths []string) error {
	return m.tx(ctx, "INSERT OR IGNORE INTO dirty(path) VALUES (?)", paths)
}

// ClearDirty forgets dirty paths once pushed.
func (m *DB) ClearDirty(ctx context.Context, paths []string) error {
	return m.tx(ctx, "DELETE FROM dirty WHERE path = ?", paths)
}

func (m *DB) tx(ctx context.Context, stmt string, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, stmt)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer st.Close()
	for _, p := range paths {
		if _, err := st.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("manifest %s: dirty %q: %w", m.path, p, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return nil
}

// Dirty returns the dirty paths recorded, sorted.
func (m *DB) Dirty(ctx context.Context) ([]string, error) {
	rows, err := m.db.QueryContext(ctx, "SELECT path FROM dirty ORDER BY path")
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RowsIn is Rows restricted to scopes: the rows at each scope's path and
// under it. The scopes must not overlap (see scanner.Scopes). They are
// read at once: a watch's scopes cover what changed, not the whole tree.
func (m *DB) RowsIn(ctx context.Context, scopes []string) (*Rows, error) {
	q, err := m.db.PrepareContext(ctx, "SELECT "+entryColumns+" FROM objects WHERE path = ? OR (path >= ? AND path < ?) ORDER BY path")
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer q.Close()
	var all []Entry
	for _, s := range scopes {
		// Everything under s sorts between s+"/" and s+"0" ('0' follows '/').
		rows, err := q.QueryContext(ctx, s, s+"/", s+"0")
		if err != nil {
			return nil, damaged(m.path, err)
		}
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("manifest %s: %w", m.path, err)
			}
			all = append(all, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, damaged(m.path, err)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Path < all[j].Path })
	r := &Rows{batches: make(chan []Entry, 1), cancel: func() {}}
	if len(all) > 0 {
		r.batches <- all
	}
	close(r.batches)
	return r, nil
}
