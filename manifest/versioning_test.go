package manifest

import (
	"context"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// The bucket's versioning is recorded and read back, from a dry run's
// connection too.
func TestVersioningRecord(t *testing.T) {
	ctx := context.Background()
	id := Identity{Source: "/src", Bucket: "b"}
	db, path := newManifest(t, id)
	if _, ok, err := db.Versioning(ctx); ok || err != nil {
		t.Fatalf("a new manifest knows the versioning: %v %v", ok, err)
	}
	at := time.Unix(1700000000, 123)
	if err := db.SetVersioning(ctx, Versioning{Status: VersioningSuspended, Checked: at}); err != nil {
		t.Fatal(err)
	}
	ro := reopenReadOnly(t, db, path, id)
	if v, ok, err := ro.Versioning(ctx); !ok || err != nil || v.Status != VersioningSuspended || !v.Checked.Equal(at) {
		t.Fatalf("Versioning: %+v %v %v", v, ok, err)
	}
}

// Current versions without a version id get the listing's where size and
// ETag are those recorded; an object replaced behind cloudkeeper's back
// (another ETag) is another version, and is not taken.
func TestFillVersionIDs(t *testing.T) {
	ctx := context.Background()
	db, _ := newManifest(t, Identity{Source: "/src", Bucket: "b"})
	defer db.Close()
	entry := func(path, etag string) Entry {
		return Entry{Path: path, Stat: scanner.Stat{Size: 3, MtimeNs: 1}, Hash: scanner.Digest{1}, UploadedNs: 5, ETag: etag}
	}
	put(t, db, entry("same", "e1"), entry("replaced", "e2"), entry("resized", "e3"))
	if n, err := db.WithoutVersionIDs(ctx); n != 3 || err != nil {
		t.Fatalf("WithoutVersionIDs: %d, %v", n, err)
	}
	n, err := db.FillVersionIDs(ctx, []LatestVersion{
		{Path: "same", Size: 3, ETag: "e1", VersionID: "v1"},
		{Path: "replaced", Size: 3, ETag: "other", VersionID: "v2"},
		{Path: "resized", Size: 4, ETag: "e3", VersionID: "v3"},
		{Path: "unknown", Size: 3, ETag: "e4", VersionID: "v4"},
	})
	if n != 1 || err != nil {
		t.Fatalf("FillVersionIDs: %d, %v; want 1 filled", n, err)
	}
	for path, want := range map[string]string{"same": "v1", "replaced": "", "resized": ""} {
		h, err := db.History(ctx, path)
		e, _, _ := db.Get(ctx, path)
		if err != nil || len(h) != 1 || h[0].VersionID != want || e.VersionID != want {
			t.Errorf("%s: history %+v (%v), row's version %q; want %q", path, h, err, e.VersionID, want)
		}
	}
}
