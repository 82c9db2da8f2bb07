package manifest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// A multipart upload is recorded with its parts; a part of an upload no
// longer recorded is not; a new upload of the key replaces the old one and
// its parts; forgetting names the upload, so that a stale forget leaves a
// newer record alone.
func TestPartialUploads(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/s", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := scanner.Stat{Size: 12 << 20, MtimeNs: 5, Mode: 0o640, Inode: 1 << 63, Dev: 3}
	up := PartialUpload{Key: "p/big", UploadID: "one", File: st, Hash: scanner.Digest{9}, PartSize: 5 << 20}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.StartUpload(ctx, up))
	must(db.AddPart(ctx, "p/big", "one", Part{Number: 2, Size: 5 << 20, ETag: "b", MD5: "m2"}))
	must(db.AddPart(ctx, "p/big", "one", Part{Number: 1, Size: 5 << 20, ETag: "a"}))
	must(db.AddPart(ctx, "p/big", "other", Part{Number: 3, Size: 2 << 20, ETag: "c"}))
	got, ok, err := db.PartialUpload(ctx, "p/big")
	must(err)
	if !ok || got.UploadID != "one" || got.File != st || got.Hash != up.Hash || got.PartSize != up.PartSize ||
		!slices.Equal(got.Parts, []Part{{1, 5 << 20, "a", ""}, {2, 5 << 20, "b", "m2"}}) {
		t.Fatalf("recorded %+v, %v", got, ok)
	}
	if !got.Same(st, up.Hash, 5<<20) || got.Same(st, up.Hash, 6<<20) || got.Same(st, scanner.Digest{8}, 5<<20) {
		t.Error("Same compares the part size and the hash")
	}
	st2 := st
	st2.MtimeNs++
	if got.Same(st2, up.Hash, 5<<20) {
		t.Error("Same compares the mtime")
	}
	up.UploadID = "two"
	must(db.StartUpload(ctx, up))
	must(db.ForgetUpload(ctx, "p/big", "one")) // stale: leaves "two"
	got, ok, _ = db.PartialUpload(ctx, "p/big")
	if !ok || got.UploadID != "two" || len(got.Parts) != 0 {
		t.Fatalf("after a new upload: %+v, %v", got, ok)
	}
	all, err := db.PartialUploads(ctx)
	if err != nil || len(all) != 1 || all[0].Key != "p/big" {
		t.Fatalf("PartialUploads: %+v, %v", all, err)
	}
	must(db.ForgetUpload(ctx, "p/big", "two"))
	if _, ok, _ := db.PartialUpload(ctx, "p/big"); ok {
		t.Fatal("forgotten upload still recorded")
	}
}

// A manifest of schema 9 (parts recorded without their MD5) is upgraded in
// place: its recorded upload and parts are kept, with an MD5 of "" (not
// known).
func TestUploadOfOldManifestIsKept(t *testing.T) {
	db := upgraded(t, 9,
		fmt.Sprintf("INSERT INTO uploads VALUES ('p/big', 'one', %d, 5, 416, 7, 3, x'%064x', %d)", 12<<20, 9, 5<<20),
		"INSERT INTO upload_parts VALUES ('p/big', 1, 5242880, 'e1')")
	ctx := context.Background()
	got, ok, err := db.PartialUpload(ctx, "p/big")
	if err != nil || !ok || got.UploadID != "one" || !slices.Equal(got.Parts, []Part{{1, 5 << 20, "e1", ""}}) {
		t.Fatalf("after the upgrade: %+v, %v, %v", got, ok, err)
	}
	if err := db.AddPart(ctx, "p/big", "one", Part{Number: 2, Size: 5 << 20, ETag: "e2", MD5: "m2"}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := db.PartialUpload(ctx, "p/big"); !slices.Equal(got.Parts, []Part{{1, 5 << 20, "e1", ""}, {2, 5 << 20, "e2", "m2"}}) {
		t.Fatalf("parts %+v", got.Parts)
	}
}
