package manifest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

func TestOpenCreatesPrivateManifestAndLocksIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "m.db")
	id := Identity{Source: "/src", Bucket: "b", Prefix: "p/"}
	db, err := Open(path, id)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}
	// A second writer (cron overlapping a slow run) is refused.
	if _, err := Open(path, id); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	// A dry run may still read it.
	ro, err := OpenReadOnly(path, id)
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	db.Close()
	db2, err := Open(path, id)
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	db2.Close()
}

func TestManifestOfAnotherTargetIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := Open(path, Identity{Source: "/src", Bucket: "b", Prefix: "p/"})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, id := range []Identity{
		{Source: "/other", Bucket: "b", Prefix: "p/"},
		{Source: "/src", Bucket: "b2", Prefix: "p/"},
		{Source: "/src", Bucket: "b", Prefix: "q/"},
		{Source: "/src", Bucket: "b", Prefix: "p/", Endpoint: "http://minio:9000"},
	} {
		if _, err := Open(path, id); err == nil || !strings.Contains(err.Error(), "point --manifest at another file") {
			t.Errorf("%v: got %v", id, err)
		}
		if _, err := OpenReadOnly(path, id); err == nil {
			t.Errorf("read-only %v: accepted", id)
		}
	}
}

func TestReadOnlyManifestRefusesWrites(t *testing.T) {
	id := Identity{Source: "/src", Bucket: "b"}
	db, path := newManifest(t, id)
	ro := reopenReadOnly(t, db, path, id)
	w := ro.Writer()
	errc := make(chan error, 1)
	w.Put(context.Background(), Entry{Path: "x", Hash: scanner.Digest{1}}, func(err error) { errc <- err })
	w.Close()
	if err := <-errc; err == nil {
		t.Fatal("a read-only manifest accepted a write")
	}
}

func TestRowsAreInByteOrder(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/s", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := db.Writer()
	paths := []string{"a0", "a/x", "a.txt", "B", "é", "a-b", "\xff"}
	for _, p := range paths {
		w.Put(context.Background(), Entry{Path: p, Stat: scanner.Stat{Inode: 1 << 63, Dev: ^uint64(0)}}, mustCommit(t))
	}
	w.Close()
	rows, err := db.Rows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for e, ok := rows.Next(); ok; e, ok = rows.Next() {
		if e.Stat.Inode != 1<<63 || e.Stat.Dev != ^uint64(0) {
			t.Fatalf("inode/dev do not round-trip: %+v", e.Stat)
		}
		got = append(got, e.Path)
	}
	want := []string{"B", "a-b", "a.txt", "a/x", "a0", "é", "\xff"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// mustCommit is a Journal callback that fails the test on error.
func mustCommit(t testing.TB) func(error) {
	return func(err error) {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestDamagedManifestSaysWhatToDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database at all\n", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, open := range []func(string, Identity) (*DB, error){Open, OpenReadOnly} {
		_, err := open(path, Identity{Source: "/s", Bucket: "b"})
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "cloudkeeper manifest rebuild") || !strings.Contains(err.Error(), path) {
			t.Fatalf("got %v", err)
		}
	}
}

// upgraded is a manifest of schema version (of source /src, bucket b,
// prefix p/) holding the rows inserts put in, opened by this cloudkeeper.
func upgraded(t *testing.T, version int, inserts ...string) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.db")
	old, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	qs := append(migrations[:version:version], fmt.Sprintf("PRAGMA user_version = %d", version),
		"INSERT INTO settings VALUES ('source', '/src'), ('endpoint', ''), ('bucket', 'b'), ('prefix', 'p/')")
	for _, q := range append(qs, inserts...) {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.Close()
	db, err := Open(path, Identity{Source: "/src", Bucket: "b", Prefix: "p/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A manifest of schema 3 (before birth times) is upgraded in place: its
// rows are kept, with a birth time of 0 (unknown).
func TestOldManifestIsUpgraded(t *testing.T) {
	db := upgraded(t, 3, fmt.Sprintf("INSERT INTO objects VALUES ('a.txt', 5, x'%064x', 10, 20, 30, 40, 420, 50, 60)", 1))
	e, ok, err := db.Get(context.Background(), "a.txt")
	want := scanner.Stat{Size: 5, MtimeNs: 10, CtimeNs: 20, Inode: 30, Dev: 40, Mode: 0o644}
	if err != nil || !ok || e.Stat != want || e.HashedNs != 50 || e.UploadedNs != 60 {
		t.Fatalf("row after upgrade: %+v %v %v", e, ok, err)
	}
}

// An intent (a key marked in doubt before its request) and an upload's
// record must survive a power loss, not only a crash of the process: in
// WAL mode that takes synchronous=FULL (NORMAL may roll back the last
// commits when the machine stops). Every connection of the pool has it.
func TestManifestCommitsAreDurable(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/src", Bucket: "b", Prefix: "p/"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var conns []*sql.Conn
	for range 3 {
		c, err := db.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode int
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&mode); err != nil || mode != 2 {
			t.Errorf("PRAGMA synchronous = %d (%v), want 2 (FULL)", mode, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

// A first run killed while Open wrote the manifest's identity left only
// part of it; every run after was refused ("records ... s3:///p/ ... point
// --manifest at another file"), for good. Open writes the identity in one
// transaction, and completes one a kill left partial if what is there
// agrees.
func TestPartialIdentityIsCompleted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	id := Identity{Source: "/src", Bucket: "b", Prefix: "p/", Endpoint: "http://127.0.0.1:9000"}
	db, err := Open(path, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.Exec("DELETE FROM settings WHERE name IN ('bucket', 'prefix')"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, id); err != nil {
		t.Fatalf("a manifest whose identity a kill left partial: %v", err)
	}
	db.Close()
	if _, err := Open(path, Identity{Source: "/src", Bucket: "other", Prefix: "p/", Endpoint: id.Endpoint}); err == nil || !strings.Contains(err.Error(), "point --manifest at another file") {
		t.Fatalf("the completed manifest opened for another bucket: %v", err)
	}
}
