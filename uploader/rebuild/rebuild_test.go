package rebuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/readertest"
)

var id = manifest.Identity{Source: "/src", Bucket: "b", Prefix: "p/"}

func options(dir string) Options {
	return Options{Manifest: filepath.Join(dir, "m.db"), Identity: id, Prefix: "p/", Concurrency: 3}
}

// rows reads the manifest at path: path → size, mode and hash.
func rows(t *testing.T, path string) map[string]manifest.Entry {
	t.Helper()
	db, err := manifest.OpenReadOnly(path, id)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := db.Rows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := map[string]manifest.Entry{}
	for e, ok := r.Next(); ok; e, ok = r.Next() {
		m[e.Path] = e
	}
	return m
}

// The manifest gets a row for each object that describes itself; keys
// that name no path and objects without a hash are left out and
// reported; one with a bad mode is kept; a failing read is counted.
func TestRebuildsFromWhatDescribesItself(t *testing.T) {
	f := readertest.NewFake()
	f.Put("p/a", []byte("alpha"), readertest.Meta([]byte("alpha"), 42, 0o600))
	f.Put("p/d/b", []byte("b"), readertest.Meta([]byte("b"), 43, 0o755))
	m := readertest.Meta([]byte("c"), 44, 0o644)
	m.ModeErr = errors.New("bad mode")
	f.Put("p/badmode", []byte("c"), m)
	f.Put("p/nohash", []byte("x"), readertest.NoMeta(1))
	f.Put("p/../escape", []byte("x"), readertest.Meta([]byte("x"), 1, 0o644))
	f.Put("p/unreadable", []byte("u"), readertest.Meta([]byte("u"), 1, 0o644))
	f.Put("p/folder/", nil, readertest.NoMeta(0))
	f.Err = func(op, key string) error {
		if key == "p/unreadable" {
			return errors.New("connection reset")
		}
		return nil
	}
	var mu sync.Mutex
	var leftOut, kept, failed []string
	o := options(t.TempDir())
	o.LeftOut = func(key, path string, _ error) { mu.Lock(); leftOut = append(leftOut, key+"|"+path); mu.Unlock() }
	o.Kept = func(path string, _ error) { mu.Lock(); kept = append(kept, path); mu.Unlock() }
	o.Failed = func(path string, _ error) { mu.Lock(); failed = append(failed, path); mu.Unlock() }
	res, err := Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(leftOut)
	if res != (Result{Objects: 3, Bytes: 7, LeftOut: 2, Failed: 1}) || !slices.Equal(leftOut, []string{"p/../escape|", "p/nohash|nohash"}) ||
		!slices.Equal(kept, []string{"badmode"}) || !slices.Equal(failed, []string{"unreadable"}) {
		t.Errorf("%+v, left out %q, kept %q, failed %q", res, leftOut, kept, failed)
	}
	got := rows(t, o.Manifest)
	if e := got["a"]; len(got) != 3 || e.Stat.Size != 5 || e.Stat.MtimeNs != 42 || e.Stat.Mode.Perm() != 0o600 || e.Hash != readertest.Meta([]byte("alpha"), 0, 0).Hash {
		t.Errorf("rows %+v", got)
	}
	if _, err := os.Lstat(o.Manifest + ".rebuild"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary manifest is left: %v", err)
	}
}

// A manifest that opens fine is refused without Force, and moved aside
// with it; a damaged one is moved aside and reported.
func TestOldManifestIsKeptOrMovedAside(t *testing.T) {
	f := readertest.NewFake()
	f.Put("p/a", []byte("a"), readertest.Meta([]byte("a"), 1, 0o644))
	o := options(t.TempDir())
	if _, err := Run(context.Background(), f, o); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), f, o); err == nil || !strings.Contains(err.Error(), "opens fine") {
		t.Errorf("second rebuild: %v, want refused", err)
	}
	var moved []string
	o.MovedAside = func(old string) { moved = append(moved, old) }
	o.Force = true
	if _, err := Run(context.Background(), f, o); err != nil || len(moved) != 1 {
		t.Fatalf("forced rebuild: %v, moved %q", err, moved)
	}
	if _, err := os.Stat(moved[0]); err != nil {
		t.Errorf("old manifest: %v", err)
	}
	os.WriteFile(o.Manifest, []byte("not SQLite at all, not at all"), 0o600)
	os.Remove(o.Manifest + "-wal")
	os.Remove(o.Manifest + "-shm")
	damaged := false
	o.Force, o.Damaged = false, func() { damaged = true }
	if _, err := Run(context.Background(), f, o); err != nil || !damaged || len(moved) != 2 || len(rows(t, o.Manifest)) != 1 {
		t.Errorf("damaged: %v, reported %v, moved %q", err, damaged, moved)
	}
	if b, _ := os.ReadFile(moved[1]); !strings.HasPrefix(string(b), "not SQLite") {
		t.Errorf("the damaged file kept aside holds %q", b)
	}
}

// A rebuild that fails, or finds the manifest in use, changes nothing.
func TestFailedRebuildChangesNothing(t *testing.T) {
	f := readertest.NewFake()
	f.Put("p/a", []byte("a"), readertest.Meta([]byte("a"), 1, 0o644))
	o := options(t.TempDir())
	os.WriteFile(o.Manifest, []byte("damaged"), 0o600)
	f.Err = func(op, key string) error { return &uploader.FatalError{Msg: "access denied"} }
	if _, err := Run(context.Background(), f, o); !uploader.IsFatal(err) {
		t.Errorf("Run = %v, want the fatal error", err)
	}
	if b, _ := os.ReadFile(o.Manifest); string(b) != "damaged" {
		t.Errorf("manifest now holds %q", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(o.Manifest))
	for _, e := range ents {
		if e.Name() != "m.db" && e.Name() != "m.db.lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	lock, err := manifest.Lock(o.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	f.Err = nil
	if _, err := Run(context.Background(), f, o); !errors.Is(err, manifest.ErrLocked) {
		t.Errorf("Run while locked = %v", err)
	}
}
