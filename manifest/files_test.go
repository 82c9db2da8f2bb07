package manifest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLockIsOpensLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	lock, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Identity{Source: "/src"}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while locked: %v, want ErrLocked", err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock twice: %v, want ErrLocked", err)
	}
	lock.Close()
	db, err := Open(path, Identity{Source: "/src"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while open: %v, want ErrLocked", err)
	}
	db.Close()
}

func TestMoveAsideKeepsEveryFileButTheLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.db")
	for _, s := range []string{"", "-wal", "-shm", ".lock"} {
		os.WriteFile(path+s, []byte(s), 0o600)
	}
	now := time.Unix(1700000000, 0)
	os.WriteFile(path+".old-1700000000", nil, 0o600) // taken
	old, err := MoveAside(path, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := path + ".old-1700000000.1"; old != want {
		t.Fatalf("moved to %s, want %s", old, want)
	}
	for _, s := range []string{"", "-wal", "-shm"} {
		if b, err := os.ReadFile(old + s); err != nil || string(b) != s {
			t.Errorf("%s: %q, %v", old+s, b, err)
		}
		if _, err := os.Lstat(path + s); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there", path+s)
		}
	}
	if _, err := os.Lstat(path + ".lock"); err != nil {
		t.Errorf("the lock moved: %v", err)
	}
}

func TestRenameNeedsTheManifestNotItsSideFiles(t *testing.T) {
	dir := t.TempDir()
	from, to := filepath.Join(dir, "new.db"), filepath.Join(dir, "m.db")
	if err := Rename(from, to); err == nil {
		t.Fatal("Rename of no manifest succeeded")
	}
	os.WriteFile(from, []byte("db"), 0o600)
	os.WriteFile(from+"-wal", []byte("wal"), 0o600)
	os.WriteFile(to+"-shm", []byte("stale"), 0o600)
	os.WriteFile(to+"-journal", []byte("stale"), 0o600)
	if err := Rename(from, to); err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]string{"": "db", "-wal": "wal", "-shm": "", "-journal": ""} {
		if b, _ := os.ReadFile(to + s); string(b) != want {
			t.Errorf("%s holds %q, want %q", to+s, b, want)
		}
	}
}

// staleWAL leaves at path the -wal of a manifest, of the same identity,
// whose file was deleted (a run killed, then its manifest removed by hand):
// the WAL holds the versioning it recorded, not yet checkpointed.
func staleWAL(t *testing.T, path string, id Identity) {
	t.Helper()
	db, err := Open(path, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetVersioning(context.Background(), Versioning{Status: VersioningEnabled, Checked: time.Now()}); err != nil {
		t.Fatal(err)
	}
	wal, err := os.ReadFile(path + "-wal")
	if err != nil || len(wal) == 0 {
		t.Fatalf("no WAL while open: %d bytes, %v", len(wal), err)
	}
	db.Close()
	Remove(path)
	os.WriteFile(path+"-wal", wal, 0o600)
}

// A -wal left beside no manifest is not part of the next one: a new
// manifest, or a rebuilt one put in place, starts empty.
func TestStaleWALIsNotReplayedIntoANewManifest(t *testing.T) {
	id := Identity{Source: "/src"}
	check := func(what, path string) {
		t.Helper()
		db, err := Open(path, id)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if v, ok, err := db.Versioning(context.Background()); err != nil || ok {
			t.Errorf("%s holds what the deleted manifest's WAL recorded: %+v, %v, %v", what, v, ok, err)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.db")
	staleWAL(t, path, id)
	check("a new manifest", path)

	Remove(path)
	staleWAL(t, path, id)
	rebuilt := filepath.Join(dir, "rebuilt.db")
	db, err := Open(rebuilt, id)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := Rename(rebuilt, path); err != nil {
		t.Fatal(err)
	}
	check("a rebuilt manifest put in place", path)
}
