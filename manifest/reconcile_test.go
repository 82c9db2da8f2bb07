package manifest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// put records entries as a sync would have.
func put(t *testing.T, db *DB, es ...Entry) {
	t.Helper()
	w := db.Writer()
	for _, e := range es {
		w.Put(context.Background(), e, mustCommit(t))
	}
	w.Close()
}

// newManifest opens a new manifest for id in a folder of the test's; the
// test closes it.
func newManifest(t *testing.T, id Identity) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := Open(path, id)
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

// reopenReadOnly closes db and opens it again as a dry run does, until the
// test ends.
func reopenReadOnly(t *testing.T, db *DB, path string, id Identity) *DB {
	t.Helper()
	db.Close()
	ro, err := OpenReadOnly(path, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

func listed(path string, size int64, etag string) Listed {
	return Listed{Path: path, Key: "pre/" + path, Size: size, ETag: etag}
}

// A listing of the bucket is compared with the manifest: rows whose object
// is gone, has another size, or another ETag than the one recorded;
// objects the manifest does not know. Excluded paths are left out on both
// sides, and rows without an ETag take the listing's where the size
// agrees.
func TestListingDrift(t *testing.T) {
	ctx := context.Background()
	db, _ := newManifest(t, Identity{Source: "/src", Bucket: "b", Prefix: "pre/"})
	defer db.Close()
	row := func(path string, size int64, etag string) Entry {
		return Entry{Path: path, Hash: scanner.Digest{byte(size)}, Stat: scanner.Stat{Size: size, Inode: 7}, ETag: etag}
	}
	put(t, db, row("same.txt", 4, "e1"), row("gone.txt", 4, "e1"), row("resized.txt", 4, "e1"),
		row("retagged.txt", 4, "e1"), row("untagged.txt", 4, ""), row("untagged-resized.txt", 4, ""),
		row("excluded/row.txt", 4, "e1"))
	l, err := db.NewListing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, o := range []Listed{
		listed("same.txt", 4, "e1"), listed("resized.txt", 5, "e1"), listed("retagged.txt", 4, "e2"),
		listed("untagged.txt", 4, "e9"), listed("untagged-resized.txt", 3, "e8"),
		listed("unknown.txt", 6, "e3"), listed("excluded/unknown.txt", 1, "e4"),
	} {
		if err := l.Add(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	d, err := l.Drift(ctx, func(p string) bool { return filepath.Dir(p) == "excluded" })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Missing, []string{"gone.txt"}) || !slices.Equal(d.Resized, []string{"resized.txt", "untagged-resized.txt"}) {
		t.Errorf("missing %q, resized %q", d.Missing, d.Resized)
	}
	if len(d.Retagged) != 1 || d.Retagged[0].Path != "retagged.txt" || d.Retagged[0].ETag != "e1" ||
		d.Retagged[0].Listed != listed("retagged.txt", 4, "e2") || d.Retagged[0].Hash != (scanner.Digest{4}) {
		t.Errorf("retagged %+v", d.Retagged)
	}
	if !slices.Equal(d.Unknown, []Listed{listed("unknown.txt", 6, "e3")}) {
		t.Errorf("unknown %+v", d.Unknown)
	}
	n, err := l.RecordETags(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RecordETags: %d, %v; want 1 (untagged.txt)", n, err)
	}
	for p, want := range map[string]string{"untagged.txt": "e9", "untagged-resized.txt": "", "retagged.txt": "e1"} {
		if e, _, _ := db.Get(ctx, p); e.ETag != want {
			t.Errorf("%s: ETag %q, want %q", p, e.ETag, want)
		}
	}
}

// More than one batch of listed objects, and a listing dropped when closed:
// the next one starts empty.
func TestListingBatchesAndCloses(t *testing.T) {
	ctx := context.Background()
	db, _ := newManifest(t, Identity{Source: "/src", Bucket: "b"})
	defer db.Close()
	for range 2 {
		l, err := db.NewListing(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2*listBatch + 5 {
			if err := l.Add(ctx, listed(fmt.Sprintf("f%05d", i), 1, "e")); err != nil {
				t.Fatal(err)
			}
		}
		d, err := l.Drift(ctx, nil)
		if err != nil || len(d.Unknown) != 2*listBatch+5 {
			t.Fatalf("%d unknown, %v", len(d.Unknown), err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A repaired manifest makes the next diff repair the bucket with the
// changes it always makes: a forgotten row is an add, a stale one a
// modify; an adopted object with the file's content is a touch (nothing
// uploaded), with other content a modify, and without a file a delete.
func TestRepairMakesTheDiffRepairTheBucket(t *testing.T) {
	f := newFixture(t, scantest.Dir{
		"missing.txt": scantest.File{Content: "its object was deleted"},
		"corrupt.txt": scantest.File{Content: "its object was overwritten"},
		"fine.txt":    scantest.File{Content: "fine"},
		"same.txt":    scantest.File{Content: "planted with this content", Mode: 0o600},
		"other.txt":   scantest.File{Content: "planted with other content"},
	})
	f.record()
	ctx := context.Background()
	// same.txt and other.txt are not in the manifest: planted behind its back.
	for _, p := range []string{"same.txt", "other.txt"} {
		if err := f.db.Repair(ctx, Repair{Forget: []string{p}}); err != nil {
			t.Fatal(err)
		}
	}
	d, st, err := scanner.HashFile(scanner.OS{}, f.path("same.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// Adopted entries come with a stat from the object's metadata only;
	// Repair zeroes the rest whatever the entry says.
	adoptSame := Entry{Path: "same.txt", Hash: d, Stat: scanner.Stat{Size: st.Size, MtimeNs: st.MtimeNs, Mode: st.Mode, Inode: st.Inode, Dev: st.Dev, CtimeNs: st.CtimeNs}, HashedNs: time.Now().Add(time.Hour).UnixNano(), ETag: "e-same"}
	adoptOther := Entry{Path: "other.txt", Hash: scanner.Digest{9}, Stat: scanner.Stat{Size: 5}, ETag: "e-other"}
	adoptGone := Entry{Path: "no-file.txt", Hash: scanner.Digest{8}, Stat: scanner.Stat{Size: 7}, ETag: "e-gone"}
	fine, _, _ := f.db.Get(ctx, "fine.txt")
	err = f.db.Repair(ctx, Repair{
		Forget: []string{"missing.txt"},
		Stale:  []string{"corrupt.txt"},
		Adopt:  []Entry{adoptSame, adoptOther, adoptGone},
		ETags:  map[string]string{"fine.txt": "e-new"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := f.db.Get(ctx, "corrupt.txt"); !ok || e.Hash != (scanner.Digest{}) || e.Stat != (scanner.Stat{}) || e.ETag != "" {
		t.Errorf("stale row %+v: want a zero stat, hash and ETag", e)
	}
	if e, _, _ := f.db.Get(ctx, "same.txt"); e.Stat.Inode != 0 || e.Stat.CtimeNs != 0 || e.HashedNs != 0 || e.ETag != "e-same" || e.UploadedNs == 0 {
		t.Errorf("adopted row %+v: want no inode, ctime nor hash time, its ETag, a time of upload", e)
	}
	if e, _, _ := f.db.Get(ctx, "fine.txt"); e.ETag != "e-new" || e.Hash != fine.Hash || e.Stat != fine.Stat {
		t.Errorf("retagged row %+v: want only its ETag changed", e)
	}
	got := f.diff(Diff{MaxDelete: MaxDeleteShare(100)})
	want := []string{"add missing.txt", "delete no-file.txt", "modify corrupt.txt", "modify other.txt", "touch same.txt"}
	if !slices.Equal(sorted(got.changes), want) {
		t.Fatalf("changes %q, want %q", sorted(got.changes), want)
	}
	for _, c := range got.all {
		if c.Op == OpTouch && c.MetaChanged() {
			t.Errorf("touch of %s refreshes metadata the object already has", c.Path)
		}
	}
}

// The last reconcile is recorded with what it found; a manifest that
// never had one says so.
func TestReconciledRecord(t *testing.T) {
	ctx := context.Background()
	id := Identity{Source: "/src", Bucket: "b"}
	db, path := newManifest(t, id)
	if _, ok, err := db.LastReconciled(ctx); ok || err != nil {
		t.Fatalf("a new manifest has a reconcile: %v %v", ok, err)
	}
	at := time.Unix(1700000000, 123)
	r := Reconciled{At: at, Missing: 1, Differ: 2, Adopted: 3, Extra: 4}
	if err := db.SetReconciled(ctx, r); err != nil {
		t.Fatal(err)
	}
	// It is read from a dry run's connection too, and the identity stays.
	ro := reopenReadOnly(t, db, path, id)
	got, ok, err := ro.LastReconciled(ctx)
	if !ok || err != nil || !got.At.Equal(at) || got.Missing != 1 || got.Differ != 2 || got.Adopted != 3 || got.Extra != 4 {
		t.Fatalf("LastReconciled: %+v %v %v, want %+v", got, ok, err, r)
	}
}

// A dry run's copy of the manifest is writable and private: editing it
// leaves the manifest's bytes as they were, and closing it removes it.
func TestOpenCopyLeavesTheManifestAlone(t *testing.T) {
	ctx := context.Background()
	id := Identity{Source: "/src", Bucket: "b"}
	db, path := newManifest(t, id)
	put(t, db, Entry{Path: "a", Stat: scanner.Stat{Size: 1}})
	db.Close()
	before, _ := os.ReadFile(path)

	cp, err := OpenCopy(path, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := cp.Get(ctx, "a"); !ok {
		t.Fatal("the copy does not have the manifest's rows")
	}
	if err := cp.Repair(ctx, Repair{Forget: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if err := cp.SetReconciled(ctx, Reconciled{At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	copyPath := cp.Path()
	cp.Close()
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("editing the copy changed the manifest")
	}
	if _, err := os.Stat(copyPath); !os.IsNotExist(err) {
		t.Errorf("the copy %s is left behind: %v", copyPath, err)
	}
	if _, err := OpenCopy(path, Identity{Source: "/other", Bucket: "b"}); err == nil {
		t.Error("a copy for another identity opened")
	}
	// No manifest yet: an empty copy.
	empty, err := OpenCopy(filepath.Join(t.TempDir(), "none.db"), id)
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if ok, _ := empty.Empty(ctx); !ok {
		t.Error("the copy of no manifest is not empty")
	}
}
