package manifest

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// SaveDirty records paths that watch saw change and has not pushed yet, so
// that they survive a restart.
func (m *DB) SaveDirty(ctx context.Context, paths []string) error {
	return m.eachPath(ctx, "mark dirty", "INSERT OR IGNORE INTO dirty(path) VALUES (?)", paths)
}

// ClearDirty forgets dirty paths once pushed.
func (m *DB) ClearDirty(ctx context.Context, paths []string) error {
	return m.eachPath(ctx, "clear dirty", "DELETE FROM dirty WHERE path = ?", paths)
}

// eachPath runs stmt once for each of paths, in one transaction committed
// when it returns; an error names what was done to which path.
func (m *DB) eachPath(ctx context.Context, what, stmt string, paths []string) error {
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
			return fmt.Errorf("manifest %s: %s %q: %w", m.path, what, p, err)
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
// under it, in path order, read a batch at a time as Rows reads. The
// scopes must not nest (see scanner.Scopes); [""] is every row.
//
// The rows of a scope s are not one stretch of the path order: "s-b" and
// "s.txt" come between s and "s/x". But the row at s and the rows under
// s+"/" each are one, and those of scopes that do not nest do not
// interleave: read in the order of their first paths, they come in path
// order, two queries a scope.
func (m *DB) RowsIn(ctx context.Context, scopes []string) (*Rows, error) {
	spans := make([]span, 0, 2*len(scopes))
	for _, s := range scopes {
		if s == "" {
			return m.Rows(ctx)
		}
		// Everything under s sorts from s+"/" to s+"0" ('0' follows '/').
		spans = append(spans, span{from: s}, span{from: s + "/", to: s + "0"})
	}
	slices.SortFunc(spans, func(a, b span) int { return strings.Compare(a.from, b.from) })
	return m.rows(ctx, spans)
}
