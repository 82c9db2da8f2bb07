package manifest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Entry is one object the bucket holds, as the manifest records it.
type Entry struct {
	Path       string // relative to the source, '/'-separated
	Hash       scanner.Digest
	Stat       scanner.Stat // the stat the hash was taken under; Stat.Size is the object's size
	HashedNs   int64        // when the hash was taken, Unix ns
	UploadedNs int64        // when S3 confirmed the object, Unix ns
	ETag       string       // S3's ETag of the object, without quotes, as its write answered; "" if not known
	VersionID  string       // S3's version of the object, in a bucket with versioning; "" if none or not known
	// RetainUntilNs is the Object Lock retention its write asked for
	// (Unix ns; 0 none or not known): recorded in its version's history,
	// not in its objects row.
	RetainUntilNs int64
}

// IsLink reports whether the object is a symlink kept as a link (sync
// --links): an empty object whose content hash is the target's
// (scanner.LinkDigest), marked so by fs.ModeSymlink in Stat.Mode.
func (e Entry) IsLink() bool { return e.Stat.Mode&fs.ModeSymlink != 0 }

const entryColumns = "path, size, blake3, mtime_ns, ctime_ns, inode, dev, mode, hashed_ns, uploaded_ns, btime_ns, etag, version_id"

type rowScanner interface{ Scan(dest ...any) error }

func scanEntry(r rowScanner) (Entry, error) {
	var e Entry
	var hash []byte
	var inode, dev int64
	var mode uint32
	err := r.Scan(&e.Path, &e.Stat.Size, &hash, &e.Stat.MtimeNs, &e.Stat.CtimeNs, &inode, &dev, &mode, &e.HashedNs, &e.UploadedNs, &e.Stat.BtimeNs, &e.ETag, &e.VersionID)
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
		int64(e.Stat.Inode), int64(e.Stat.Dev), uint32(e.Stat.Mode), e.HashedNs, e.UploadedNs, e.Stat.BtimeNs, e.ETag, e.VersionID}
}

// Rows iterates over the manifest in path order (SQLite BINARY collation,
// which is Go's byte-wise string order). It reads from one snapshot: writes
// made while it is open do not show. Rows are decoded in batches by a
// goroutine of their own, so that reading the manifest overlaps the walk.
type Rows struct {
	batches chan []Entry
	cur     []Entry
	cancel  context.CancelFunc
	err     error // set by the reader before it closes batches
}

// rowBatch is how many rows the reader decodes before handing them over.
const rowBatch = 512

// Rows starts an ordered iteration. Close it when done.
func (m *DB) Rows(ctx context.Context) (*Rows, error) {
	return m.rows(ctx, nil)
}

// span is a stretch of the path order that Rows reads alone: the row at
// from (to ""), or the rows from from up to to, not included.
type span struct{ from, to string }

// rows iterates over the rows in spans, in the order given, or over all
// rows if spans is nil.
func (m *DB) rows(ctx context.Context, spans []span) (*Rows, error) {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Rows{batches: make(chan []Entry, 4), cancel: cancel}
	go func() {
		defer close(r.batches)
		defer conn.Close()
		// The driver's own interface skips database/sql's per-value
		// conversions: a million rows a run.
		err := conn.Raw(func(dc any) error {
			c, ok := dc.(rawConn)
			if !ok {
				return fmt.Errorf("sqlite driver %T cannot query", dc)
			}
			f := feeder{ctx: ctx, out: r.batches, batch: make([]Entry, 0, rowBatch)}
			if spans == nil {
				rows, err := c.Query("SELECT "+entryColumns+" FROM objects ORDER BY path", nil)
				if err != nil {
					return err
				}
				defer rows.Close()
				if err := f.feed(rows); err != nil {
					return err
				}
				return f.flush()
			}
			return f.spans(c, spans)
		})
		if err != nil {
			r.err = damaged(m.path, err)
		}
	}()
	return r, nil
}

// rawConn is what Rows needs of the driver's connection.
type rawConn interface {
	driver.Conn
	Query(string, []driver.Value) (driver.Rows, error)
	Exec(string, []driver.Value) (driver.Result, error)
}

// feeder decodes rows into batches for a Rows.
type feeder struct {
	ctx   context.Context
	out   chan<- []Entry
	batch []Entry
}

// feed decodes rows to their end, handing over each full batch.
func (f *feeder) feed(rows driver.Rows) error {
	vals := make([]driver.Value, entryColumnCount)
	for {
		err := rows.Next(vals)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		e, err := entryFromValues(vals)
		if err != nil {
			return err
		}
		f.batch = append(f.batch, e)
		if len(f.batch) == rowBatch {
			if err := f.flush(); err != nil {
				return err
			}
		}
	}
}

// flush hands over the batch begun, if any.
func (f *feeder) flush() error {
	if len(f.batch) == 0 {
		return nil
	}
	select {
	case f.out <- f.batch:
		f.batch = make([]Entry, 0, rowBatch)
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

// spans reads the spans one query each, in one read transaction: one
// snapshot, as the single query of a whole iteration reads. A deferred
// one, which takes no write lock.
func (f *feeder) spans(c rawConn, spans []span) (err error) {
	if _, err := c.Exec("BEGIN DEFERRED", nil); err != nil {
		return err
	}
	defer func() {
		if _, rerr := c.Exec("ROLLBACK", nil); rerr != nil {
			// Never back to the pool inside a transaction.
			err = errors.Join(err, rerr, driver.ErrBadConn)
		}
	}()
	at, err := c.Prepare("SELECT " + entryColumns + " FROM objects WHERE path = ?")
	if err != nil {
		return err
	}
	defer at.Close()
	in, err := c.Prepare("SELECT " + entryColumns + " FROM objects WHERE path >= ? AND path < ? ORDER BY path")
	if err != nil {
		return err
	}
	defer in.Close()
	for _, s := range spans {
		var rows driver.Rows
		if s.to == "" {
			rows, err = at.Query([]driver.Value{s.from})
		} else {
			rows, err = in.Query([]driver.Value{s.from, s.to})
		}
		if err != nil {
			return err
		}
		err = f.feed(rows)
		rows.Close()
		if err != nil {
			return err
		}
	}
	return f.flush()
}

// Next returns the next entry, or false at the end or on error (see Err).
func (r *Rows) Next() (Entry, bool) {
	if len(r.cur) == 0 {
		var ok bool
		if r.cur, ok = <-r.batches; !ok {
			return Entry{}, false
		}
	}
	e := r.cur[0]
	r.cur = r.cur[1:]
	return e, true
}

// Err returns the error that ended the iteration, if any. Call it after
// Next returned false.
func (r *Rows) Err() error { return r.err }

// Close ends the iteration.
func (r *Rows) Close() error {
	r.cancel()
	for range r.batches { // let the reader finish and release its connection
	}
	return nil
}

// entryColumnCount is the number of entryColumns.
const entryColumnCount = 13

// entryFromValues decodes a row of entryColumns read through the driver.
func entryFromValues(v []driver.Value) (Entry, error) {
	var e Entry
	path, ok := v[0].(string)
	if !ok {
		return e, fmt.Errorf("path is %T", v[0])
	}
	e.Path = path
	hash, ok := v[2].([]byte)
	if !ok || len(hash) != len(e.Hash) {
		return e, fmt.Errorf("row %q: blake3 is not %d bytes", path, len(e.Hash))
	}
	copy(e.Hash[:], hash)
	var ints [9]int64
	for i, j := range []int{1, 3, 4, 5, 6, 7, 8, 9, 10} {
		n, ok := v[j].(int64)
		if !ok {
			return e, fmt.Errorf("row %q: column %d is %T", path, j, v[j])
		}
		ints[i] = n
	}
	e.Stat = scanner.Stat{Size: ints[0], MtimeNs: ints[1], CtimeNs: ints[2], Inode: uint64(ints[3]), Dev: uint64(ints[4]), Mode: fs.FileMode(ints[5]), BtimeNs: ints[8]}
	e.HashedNs, e.UploadedNs = ints[6], ints[7]
	if e.ETag, ok = v[11].(string); !ok {
		return e, fmt.Errorf("row %q: etag is %T", path, v[11])
	}
	if e.VersionID, ok = v[12].(string); !ok {
		return e, fmt.Errorf("row %q: version_id is %T", path, v[12])
	}
	return e, nil
}

// putEntrySQL records an entry, replacing the row at its path.
var putEntrySQL = "INSERT OR REPLACE INTO objects(" + entryColumns + ") VALUES (?" + strings.Repeat(",?", entryColumnCount-1) + ")"

// Get returns the entry at path.
func (m *DB) Get(ctx context.Context, path string) (Entry, bool, error) {
	e, ok, err := getEntry(ctx, m.db, path)
	if err != nil {
		return Entry{}, false, fmt.Errorf("manifest %s: get %q: %w", m.path, path, err)
	}
	return e, ok, nil
}

func getEntry(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, path string) (Entry, bool, error) {
	e, err := scanEntry(q.QueryRowContext(ctx, "SELECT "+entryColumns+" FROM objects WHERE path = ?", path))
	if err == sql.ErrNoRows {
		return Entry{}, false, nil
	}
	return e, err == nil, err
}

// ByHash returns up to limit entries whose content has hash d, in path
// order.
func (m *DB) ByHash(ctx context.Context, d scanner.Digest, limit int) ([]Entry, error) {
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return m.query(ctx, m.byHash, d[:], limit)
}

// ByInode returns the entries last hashed from the file with this inode
// and device.
func (m *DB) ByInode(ctx context.Context, inode, dev uint64) ([]Entry, error) {
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return m.query(ctx, m.byInode, int64(inode), int64(dev))
}

func (m *DB) prepare() error {
	m.prepOnce.Do(func() {
		if m.byHash, m.prepErr = m.db.Prepare("SELECT " + entryColumns + " FROM objects WHERE blake3 = ? ORDER BY path LIMIT ?"); m.prepErr != nil {
			return
		}
		m.byInode, m.prepErr = m.db.Prepare("SELECT " + entryColumns + " FROM objects WHERE inode = ? AND dev = ? LIMIT 16")
	})
	if m.prepErr != nil {
		return fmt.Errorf("manifest %s: %w", m.path, m.prepErr)
	}
	return nil
}

// Empty reports whether the manifest records no object.
func (m *DB) Empty(ctx context.Context) (bool, error) {
	var any bool
	if err := m.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM objects)").Scan(&any); err != nil {
		return false, fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return !any, nil
}

func (m *DB) query(ctx context.Context, q *sql.Stmt, args ...any) ([]Entry, error) {
	rows, err := q.QueryContext(ctx, args...)
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
