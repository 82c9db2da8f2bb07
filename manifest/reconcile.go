package manifest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The manifest is a cache of the bucket: what is deleted or replaced
// behind cloudkeeper's back makes it lie. Reconciling compares it with a
// listing of the bucket and edits it to say what the bucket holds (a
// Repair), so that the next diff makes the bucket match the tree again
// with the changes it always makes.

// Listed is an object as a listing of the bucket shows it, its key mapped
// back to a path (see PathOfKey).
type Listed struct {
	Path string
	Key  string
	Size int64
	ETag string // without quotes
}

// Retagged is a row whose object the listing shows with the row's size but
// another ETag than the one recorded: rewritten since, with the same
// content or not; only its metadata can tell.
type Retagged struct {
	Entry
	Listed Listed
}

// Drift is how the manifest differs from a listing.
type Drift struct {
	Missing  []string   // rows whose object the listing does not have
	Resized  []string   // rows whose object has another size
	Retagged []Retagged // rows whose object has another ETag (same size)
	Unknown  []Listed   // objects the manifest has no row for
}

// Listing holds a listing of the bucket beside the manifest, to compare
// them: a temporary table on a connection of its own, so that the listing
// of a million keys costs disk, not memory. Add the listed objects, then
// ask for the Drift; Close it when done.
type Listing struct {
	m    *DB
	conn *sql.Conn
	tx   *sql.Tx // the open batch of Add
	ins  *sql.Stmt
	n    int
}

// listBatch is how many listed objects one transaction inserts.
const listBatch = 1000

// NewListing starts an empty listing. The manifest must be writable (a
// dry run uses a Copy).
func (m *DB) NewListing(ctx context.Context) (*Listing, error) {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	// A listing whose Close failed to drop it may be left on this
	// pooled connection.
	_, err = conn.ExecContext(ctx, `DROP TABLE IF EXISTS temp.listed; CREATE TEMP TABLE listed (
		path TEXT NOT NULL PRIMARY KEY, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL) WITHOUT ROWID`)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("manifest %s: listing: %w", m.path, err)
	}
	return &Listing{m: m, conn: conn}, nil
}

// Add records one listed object.
func (l *Listing) Add(ctx context.Context, o Listed) error {
	if l.tx == nil {
		tx, err := l.conn.BeginTx(ctx, nil)
		if err != nil {
			return l.err(err)
		}
		if l.ins, err = tx.PrepareContext(ctx, "INSERT OR REPLACE INTO temp.listed(path, key, size, etag) VALUES (?, ?, ?, ?)"); err != nil {
			tx.Rollback()
			return l.err(err)
		}
		l.tx = tx
	}
	if _, err := l.ins.ExecContext(ctx, o.Path, o.Key, o.Size, o.ETag); err != nil {
		return l.err(fmt.Errorf("%s: %w", o.Key, err))
	}
	if l.n++; l.n%listBatch == 0 {
		return l.flush()
	}
	return nil
}

func (l *Listing) flush() error {
	if l.tx == nil {
		return nil
	}
	l.ins.Close()
	err := l.tx.Commit()
	l.tx, l.ins = nil, nil
	return l.err(err)
}

func (l *Listing) err(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("manifest %s: listing: %w", l.m.path, err)
}

// Drift compares the listing with the manifest. Paths for which skip
// returns true (excluded from the backup) are left out on both sides.
func (l *Listing) Drift(ctx context.Context, skip func(path string) bool) (Drift, error) {
	var d Drift
	if err := l.flush(); err != nil {
		return d, err
	}
	keep := func(p string) bool { return skip == nil || !skip(p) }
	paths := func(where string) ([]string, error) {
		var out []string
		err := l.each(ctx, "SELECT o.path FROM objects o "+where+" ORDER BY o.path", func(r rowScanner) error {
			var p string
			if err := r.Scan(&p); err != nil {
				return err
			}
			if keep(p) {
				out = append(out, p)
			}
			return nil
		})
		return out, err
	}
	var err error
	if d.Missing, err = paths("WHERE NOT EXISTS (SELECT 1 FROM temp.listed l WHERE l.path = o.path)"); err != nil {
		return d, err
	}
	if d.Resized, err = paths("JOIN temp.listed l ON l.path = o.path WHERE l.size != o.size"); err != nil {
		return d, err
	}
	cols := "o." + strings.ReplaceAll(entryColumns, ", ", ", o.")
	err = l.each(ctx, "SELECT "+cols+", l.key, l.etag FROM objects o JOIN temp.listed l ON l.path = o.path "+
		"WHERE l.size = o.size AND o.etag != '' AND l.etag != o.etag ORDER BY o.path", func(r rowScanner) error {
		var rt Retagged
		e, err := scanEntry(withMore{r, []any{&rt.Listed.Key, &rt.Listed.ETag}})
		if err != nil {
			return err
		}
		rt.Entry, rt.Listed.Path, rt.Listed.Size = e, e.Path, e.Stat.Size
		if keep(e.Path) {
			d.Retagged = append(d.Retagged, rt)
		}
		return nil
	})
	if err != nil {
		return d, err
	}
	err = l.each(ctx, "SELECT l.path, l.key, l.size, l.etag FROM temp.listed l "+
		"WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.path = l.path) ORDER BY l.path", func(r rowScanner) error {
		var o Listed
		if err := r.Scan(&o.Path, &o.Key, &o.Size, &o.ETag); err != nil {
			return err
		}
		if keep(o.Path) {
			d.Unknown = append(d.Unknown, o)
		}
		return nil
	})
	return d, err
}

// withMore scans a row's first columns as an entry and the rest into more.
type withMore struct {
	r    rowScanner
	more []any
}

func (w withMore) Scan(dest ...any) error { return w.r.Scan(append(dest, w.more...)...) }

func (l *Listing) each(ctx context.Context, q string, fn func(rowScanner) error) error {
	rows, err := l.conn.QueryContext(ctx, q)
	if err != nil {
		return l.err(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return l.err(err)
		}
	}
	return l.err(rows.Err())
}

// RecordETags gives the rows that have no ETag (recorded before ETags
// were, or rebuilt from an old listing) the one the listing shows, where
// the size agrees, and returns how many it gave one. An object replaced
// with the same size before its ETag was first recorded is not noticed:
// only its bytes tell (verify --deep).
func (l *Listing) RecordETags(ctx context.Context) (int64, error) {
	if err := l.flush(); err != nil {
		return 0, err
	}
	res, err := l.conn.ExecContext(ctx, `UPDATE objects SET etag = (SELECT l.etag FROM temp.listed l WHERE l.path = objects.path)
		WHERE etag = '' AND EXISTS (SELECT 1 FROM temp.listed l WHERE l.path = objects.path AND l.size = objects.size AND l.etag != '')`)
	if err != nil {
		return 0, l.err(err)
	}
	n, err := res.RowsAffected()
	return n, l.err(err)
}

// Close drops the listing.
func (l *Listing) Close() error {
	if l.tx != nil {
		l.ins.Close()
		l.tx.Rollback()
		l.tx = nil
	}
	_, err := l.conn.ExecContext(context.Background(), "DROP TABLE IF EXISTS temp.listed")
	if cerr := l.conn.Close(); err == nil {
		err = cerr
	}
	return l.err(err)
}

// Repair edits the manifest to say what the bucket holds, so that the next
// diff repairs the bucket with the changes it always makes.
type Repair struct {
	// Forget: rows whose object is gone. The diff sees the file as new
	// and uploads it (or copies it from an object with its content).
	Forget []string
	// Stale: rows whose object holds other content. Their stat and hash
	// are zeroed: the diff hashes the file and uploads it as a modify, or
	// deletes the object if the file is gone.
	Stale []string
	// Adopt: objects the manifest did not know, as their metadata
	// describes them. They are recorded with a zero stat whatever the
	// entries say, so that the diff hashes the file: the same content
	// sends nothing, other content is uploaded, no file deletes the
	// object.
	Adopt []Entry
	// ETags: rows whose object is unchanged under a new ETag, by path.
	ETags map[string]string
}

// Empty reports whether r changes nothing.
func (r Repair) Empty() bool {
	return len(r.Forget)+len(r.Stale)+len(r.Adopt)+len(r.ETags) == 0
}

// Repair applies r in one transaction.
func (m *DB) Repair(ctx context.Context, r Repair) error {
	if r.Empty() {
		return nil
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	exec := func(path, q string, args ...any) error {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("manifest %s: repair %q: %w", m.path, path, err)
		}
		return nil
	}
	for _, p := range r.Forget {
		if err := exec(p, "DELETE FROM objects WHERE path = ?", p); err != nil {
			return err
		}
	}
	for _, p := range r.Stale {
		if err := exec(p, `UPDATE objects SET size = 0, blake3 = zeroblob(32), mtime_ns = 0, ctime_ns = 0, btime_ns = 0, inode = 0, dev = 0,
			mode = 0, hashed_ns = 0, etag = '' WHERE path = ?`, p); err != nil {
			return err
		}
	}
	now := time.Now().UnixNano()
	for _, e := range r.Adopt {
		e.Stat.CtimeNs, e.Stat.Inode, e.Stat.Dev, e.HashedNs = 0, 0, 0, 0
		if e.UploadedNs == 0 {
			e.UploadedNs = now
		}
		if err := exec(e.Path, putEntrySQL, entryArgs(e)...); err != nil {
			return err
		}
	}
	for p, etag := range r.ETags {
		if err := exec(p, "UPDATE objects SET etag = ? WHERE path = ?", etag, p); err != nil {
			return err
		}
	}
	for _, paths := range [][]string{r.Forget, r.Stale, r.adopted()} {
		for _, p := range paths {
			if err := followObject(ctx, tx, p, now); err != nil {
				return fmt.Errorf("manifest %s: repair: %w", m.path, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: commit: %w", m.path, err)
	}
	return nil
}

// Reconciled is the record of the last reconcile: when it listed the
// bucket and what it found to repair.
type Reconciled struct {
	At      time.Time
	Missing int64 // objects gone from the bucket: uploaded again
	Differ  int64 // objects with other content: uploaded again
	Adopted int64 // objects the manifest did not know, whose file the tree has
	Extra   int64 // objects the manifest did not know, whose file the tree does not have: deleted
}

var reconciledSettings = []string{"reconciled_ns", "reconciled_missing", "reconciled_differ", "reconciled_adopted", "reconciled_extra"}

func (r *Reconciled) fields() []*int64 {
	return []*int64{nil, &r.Missing, &r.Differ, &r.Adopted, &r.Extra}
}

// SetReconciled records r as the last reconcile.
func (m *DB) SetReconciled(ctx context.Context, r Reconciled) error {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	defer tx.Rollback()
	for i, f := range r.fields() {
		v := r.At.UnixNano()
		if f != nil {
			v = *f
		}
		if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO settings(name, value) VALUES (?, ?)", reconciledSettings[i], strconv.FormatInt(v, 10)); err != nil {
			return fmt.Errorf("manifest %s: record the reconcile: %w", m.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("manifest %s: record the reconcile: %w", m.path, err)
	}
	return nil
}

// LastReconciled returns the record of the last reconcile; false if none
// was recorded.
func (m *DB) LastReconciled(ctx context.Context) (Reconciled, bool, error) {
	var r Reconciled
	fields := r.fields()
	for i, name := range reconciledSettings {
		var s string
		err := m.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE name = ?", name).Scan(&s)
		if errors.Is(err, sql.ErrNoRows) {
			return Reconciled{}, false, nil
		}
		if err != nil {
			return r, false, fmt.Errorf("manifest %s: %w", m.path, err)
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return r, false, fmt.Errorf("manifest %s: setting %s %q: %w", m.path, name, s, err)
		}
		if fields[i] == nil {
			r.At = time.Unix(0, v)
		} else {
			*fields[i] = v
		}
	}
	return r, true, nil
}

// OpenCopy opens a private, writable copy of the manifest at path (an
// empty one if there is none), for a dry run that must edit the manifest
// to show what a run would do: the manifest itself is only read, through a
// connection SQLite keeps read-only. The copy is a temporary file that
// Close removes.
func OpenCopy(path string, id Identity) (*DB, error) {
	var src *DB
	var err error
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		src, err = openEmpty()
	} else {
		// Not query_only, which refuses VACUUM INTO; mode=ro keeps the
		// file as it is all the same.
		var db *sql.DB
		if db, err = openSQL("file:"+escapeURIPath(path)+"?mode=ro&_busy_timeout=10000", path); err == nil {
			src = &DB{db: db, path: path}
			err = src.checkIdentity(id, false)
		}
	}
	if err != nil {
		if src != nil {
			src.Close()
		}
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cloudkeeper-dry-run-")
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("manifest copy: %w", err)
	}
	tmp := filepath.Join(dir, "manifest.db")
	_, err = src.db.Exec("VACUUM INTO ?", tmp)
	src.Close()
	if err != nil {
		os.RemoveAll(dir)
		return nil, damaged(path, err)
	}
	db, err := openSQL("file:"+escapeURIPath(tmp)+"?_busy_timeout=10000", tmp)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	m := &DB{db: db, path: tmp, remove: dir}
	if err := m.migrate(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// adopted are the paths of Adopt.
func (r Repair) adopted() []string {
	paths := make([]string, len(r.Adopt))
	for i, e := range r.Adopt {
		paths[i] = e.Path
	}
	return paths
}
