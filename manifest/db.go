package manifest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"
)

// Identity says which source and which bucket a manifest describes. A
// manifest opened for another identity is refused: trusting it would skip
// uploads that the bucket does not have.
type Identity struct {
	Source   string // absolute path of the source folder
	Endpoint string // "" for AWS
	Bucket   string
	Prefix   string // normalized, see NormalizePrefix
}

func (id Identity) String() string {
	s := fmt.Sprintf("%s -> s3://%s/%s", id.Source, id.Bucket, id.Prefix)
	if id.Endpoint != "" {
		s += " at " + id.Endpoint
	}
	return s
}

func (id Identity) settings() map[string]string {
	return map[string]string{"source": id.Source, "endpoint": id.Endpoint, "bucket": id.Bucket, "prefix": id.Prefix}
}

// DB is an open manifest.
type DB struct {
	db   *sql.DB
	path string
	lock *os.File // exclusive flock held while a writable manifest is open
	// created is set when Open made the file: a run that fails before
	// it wrote anything removes it again (Abandon).
	created bool
	// madeDirs are the folders Open made for the file, deepest first,
	// which Abandon removes too.
	madeDirs []string
	// remove is a folder Close removes: that of a Copy.
	remove string

	// Point queries the diff makes for each new file, prepared once.
	prepOnce sync.Once
	prepErr  error
	byHash   *sql.Stmt
	byInode  *sql.Stmt
}

// ErrLocked means another cloudkeeper process has the manifest open for
// writing.
var ErrLocked = errors.New("another cloudkeeper run is using this manifest")

// Open opens the manifest at path for a run that changes the bucket,
// creating it (mode 0600, in a folder of mode 0700) if needed, upgrading its
// schema, and taking an exclusive lock so that two runs never write to it at
// once.
func Open(path string, id Identity) (*DB, error) {
	made := missingDirs(filepath.Dir(path))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("manifest folder: %w", err)
	}
	lock, err := Lock(path)
	if err != nil {
		removeDirs(made)
		return nil, err
	}
	// Create the file ourselves so that it has mode 0600; SQLite gives
	// its -wal and -shm files the same mode.
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	f.Close()
	db, err := openSQL("file:"+escapeURIPath(path)+"?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_txlock=immediate", path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	m := &DB{db: db, path: path, lock: lock, created: errors.Is(statErr, os.ErrNotExist), madeDirs: made}
	if err := m.migrate(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.checkIdentity(id, true); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// OpenReadOnly opens the manifest for a dry run: SQLite refuses every write
// on this connection, so a preview cannot change it. A manifest that does
// not exist yet reads as empty, and is not created.
func OpenReadOnly(path string, id Identity) (*DB, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return openEmpty()
	}
	db, err := openSQL("file:"+escapeURIPath(path)+"?mode=ro&_query_only=1&_busy_timeout=10000", path)
	if err != nil {
		return nil, err
	}
	m := &DB{db: db, path: path}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		m.Close()
		return nil, damaged(path, err)
	}
	if v != len(migrations) {
		m.Close()
		return nil, fmt.Errorf("manifest %s has schema version %d, this cloudkeeper uses %d: run it once without --dry-run to upgrade", path, v, len(migrations))
	}
	if err := m.checkIdentity(id, false); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// openEmpty is an empty manifest in memory, shared by the connections of
// this DB only.
func openEmpty() (*DB, error) {
	var b [8]byte
	rand.Read(b[:])
	db, err := openSQL("file:empty-"+hex.EncodeToString(b[:])+"?mode=memory&cache=shared", "(empty)")
	if err != nil {
		return nil, err
	}
	m := &DB{db: db, path: ":memory:"}
	// Keep one connection open so the in-memory database lives on.
	db.SetMaxIdleConns(4)
	if err := m.migrate(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func openSQL(dsn, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, damaged(path, err)
	}
	return db, nil
}

func escapeURIPath(p string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return r.Replace(p)
}

// Files are the manifest's file at path and its side files (SQLite's
// journals, the lock), which a backup of a tree holding the manifest must
// leave out and a removal must take too.
func Files(path string) []string {
	return []string{path, path + "-wal", path + "-shm", path + "-journal", path + ".lock"}
}

// Created reports whether Open created the manifest's file.
func (m *DB) Created() bool { return m.created }

// Abandon closes a manifest that Open created, removing its files and the
// folders Open made for them (if nothing else is in them): a run refused
// before it changed anything leaves nothing behind, so that the advice it
// gives (rebuild the manifest) works. A manifest that existed is only
// closed.
func (m *DB) Abandon() error {
	if !m.created {
		return m.Close()
	}
	m.db.Close()
	err := removeFiles(m.path)
	m.lock.Close()
	removeDirs(m.madeDirs)
	return err
}

// Path is the file the manifest lives in.
func (m *DB) Path() string { return m.path }

// Close closes the database and releases the lock. A writable manifest is
// left in rollback-journal mode, one file at rest, so that a dry run can
// read it without creating the -wal and -shm files WAL mode needs; the next
// run switches back to WAL.
func (m *DB) Close() error {
	for _, st := range []*sql.Stmt{m.byHash, m.byInode} {
		if st != nil {
			st.Close()
		}
	}
	if m.lock != nil {
		m.db.Exec("PRAGMA journal_mode=DELETE") // best effort: a reader may hold it
	}
	err := m.db.Close()
	if m.lock != nil {
		m.lock.Close()
	}
	if m.remove != "" {
		os.RemoveAll(m.remove)
	}
	return err
}

// ErrDamaged means the manifest file is not a readable SQLite database.
var ErrDamaged = errors.New("damaged")

// damaged turns an SQLite error that means the file is not a usable
// database into one that says what to do.
func damaged(path string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
		return fmt.Errorf("manifest %s is %w (%v): run `cloudkeeper manifest rebuild`, which keeps the damaged file aside and rebuilds the manifest from the bucket", path, ErrDamaged, err)
	}
	return fmt.Errorf("manifest %s: %w", path, err)
}

func (m *DB) migrate() error {
	var v int
	if err := m.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return damaged(m.path, err)
	}
	if v > len(migrations) {
		return fmt.Errorf("manifest %s has schema version %d, newer than this cloudkeeper knows (%d): upgrade cloudkeeper", m.path, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := m.db.Begin()
		if err != nil {
			return fmt.Errorf("manifest %s: %w", m.path, err)
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("manifest %s: migrate to schema %d: %w", m.path, v+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("manifest %s: %w", m.path, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("manifest %s: %w", m.path, err)
		}
	}
	return nil
}

// checkIdentity compares the manifest's recorded identity with id, and
// records id in a new manifest if write is set.
func (m *DB) checkIdentity(id Identity, write bool) error {
	rows, err := m.db.Query("SELECT name, value FROM settings")
	if err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	have := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return fmt.Errorf("manifest %s: %w", m.path, err)
		}
		have[k] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("manifest %s: %w", m.path, err)
	}
	// What is missing a kill left unwritten (before the identity was
	// written in one transaction, a first run killed in Open left part
	// of it): written now, if what is there agrees.
	want, missing := id.settings(), map[string]string{}
	for k, v := range want {
		got, ok := have[k]
		switch {
		case !ok:
			missing[k] = v
		case got != v:
			other := Identity{Source: have["source"], Endpoint: have["endpoint"], Bucket: have["bucket"], Prefix: have["prefix"]}
			return fmt.Errorf("manifest %s records %s, not %s: point --manifest at another file", m.path, other, id)
		}
	}
	if len(missing) == 0 || !write {
		return nil
	}
	return m.inTx(context.Background(), "identity", func(tx *sql.Tx) error {
		for k, v := range missing {
			if _, err := tx.Exec("INSERT INTO settings(name, value) VALUES (?, ?)", k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Count returns the number of objects and their total size.
func (m *DB) Count(ctx context.Context) (objects, bytes int64, err error) {
	err = m.db.QueryRowContext(ctx, "SELECT count(*), coalesce(sum(size), 0) FROM objects").Scan(&objects, &bytes)
	if err != nil {
		err = fmt.Errorf("manifest %s: %w", m.path, err)
	}
	return objects, bytes, err
}
