package manifest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Settling records what S3 holds at the keys in doubt: a missing object
// drops its row, the same object keeps the row with its stat (no file is
// read again), another object replaces it with a row the next diff must
// hash against, an object the manifest never recorded is adopted.
func TestSettle(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/s", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row := func(p string, h byte) Entry {
		return Entry{Path: p, Hash: scanner.Digest{h}, Stat: scanner.Stat{Size: 10, Inode: 7, Dev: 1, MtimeNs: 5, CtimeNs: 6}, HashedNs: 9, UploadedNs: 9}
	}
	obj := func(h byte, size int64) *Entry {
		return &Entry{Hash: scanner.Digest{h}, Stat: scanner.Stat{Size: size, MtimeNs: 5}}
	}
	w := db.Writer()
	for _, e := range []Entry{row("same", 1), row("gone", 2), row("other", 3)} {
		w.Put(ctx, e, mustCommit(t))
	}
	w.Close()
	if err := db.Intend(ctx, []Intent{{Path: "same"}, {Path: "gone"}, {Path: "other"}, {Path: "new", Multipart: true}, {Path: "new"}, {Path: "fresh"}}); err != nil {
		t.Fatal(err)
	}
	// A new stat recorded without S3's word leaves the doubt.
	w = db.Writer()
	w.Restat(ctx, row("gone", 2), mustCommit(t))
	w.Close()
	if d, _ := db.Doubts(ctx); len(d) != 5 {
		t.Fatalf("a restat settled a doubt: %+v", d)
	}
	if err := db.Settle(ctx, []Found{{Path: "fresh", Object: obj(7, 4)}}); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := db.Get(ctx, "fresh"); !ok || e.Hash != (scanner.Digest{7}) || e.Stat.Size != 4 || e.Stat.Inode != 0 {
		t.Fatalf("fresh: %+v %v, want the object the manifest never recorded adopted", e, ok)
	}
	doubts, err := db.Doubts(ctx)
	if err != nil || len(doubts) != 4 || doubts[1].Path != "new" || !doubts[1].Multipart || doubts[1].Settled || doubts[1].Since.IsZero() {
		t.Fatalf("doubts %v, %v (a later intent must not clear Multipart)", doubts, err)
	}
	err = db.Settle(ctx, []Found{{Path: "same", Object: obj(1, 10)}, {Path: "gone"}, {Path: "other", Object: obj(4, 12)}, {Path: "new", Object: obj(5, 3), Watch: true}})
	if err != nil {
		t.Fatal(err)
	}
	// "new" stays watched: settled, and not cleared by recording a new
	// upload of it, since a request of the killed run may still arrive.
	if d, _ := db.Doubts(ctx); len(d) != 1 || d[0].Path != "new" || !d[0].Settled {
		t.Fatalf("in doubt after settling: %+v, want only new, settled", d)
	}
	w = db.Writer()
	w.Put(ctx, row("new", 6), mustCommit(t))
	w.Close()
	if d, _ := db.Doubts(ctx); len(d) != 1 {
		t.Fatalf("recording an upload ended the watch: %+v", d)
	}
	w = db.Writer()
	w.Put(ctx, row("new", 5), mustCommit(t))
	w.Close()
	if err := db.Settle(ctx, []Found{{Path: "new", Object: obj(5, 3)}}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.Doubts(ctx); len(d) != 0 {
		t.Fatalf("still in doubt: %+v", d)
	}
	w = db.Writer()
	w.Put(ctx, Entry{Path: "new", Hash: scanner.Digest{5}, Stat: scanner.Stat{Size: 3, MtimeNs: 5}}, mustCommit(t))
	w.Close()
	if e, ok, _ := db.Get(ctx, "same"); !ok || e != row("same", 1) {
		t.Errorf("same: %+v %v, want the row kept as it was", e, ok)
	}
	if _, ok, _ := db.Get(ctx, "gone"); ok {
		t.Error("gone: row kept for an object S3 does not have")
	}
	for _, c := range []struct {
		path string
		hash byte
		size int64
	}{{"other", 4, 12}, {"new", 5, 3}} {
		e, ok, _ := db.Get(ctx, c.path)
		if !ok || e.Hash != (scanner.Digest{c.hash}) || e.Stat.Size != c.size || e.Stat.Inode != 0 || e.UploadedNs == 0 {
			t.Errorf("%s: %+v %v, want the object's hash and size, no inode", c.path, e, ok)
		}
		if e.Stat.Same(scanner.Stat{Size: c.size, Inode: 7, Dev: 1, MtimeNs: 5, CtimeNs: 6}) {
			t.Errorf("%s: a file's stat matches the settled row: the diff would not hash it", c.path)
		}
	}
}

// A path whose settle failed stays in doubt, with the time of the intent
// of the run that left it there, though this run marks it again and records
// S3's answer to its write or delete: only a settle clears it.
func TestSettleFailedStaysInDoubtUntilSettled(t *testing.T) {
	ctx := context.Background()
	db := manifestOf(t)
	if err := db.Intend(ctx, []Intent{{Path: "put", Multipart: true}, {Path: "del", Multipart: true}, {Path: "ok"}}); err != nil {
		t.Fatal(err)
	}
	before, err := db.Doubts(ctx)
	if err != nil || len(before) != 3 {
		t.Fatalf("doubts %+v, %v", before, err)
	}
	if err := db.SettleFailed(ctx, []string{"put", "del"}); err != nil {
		t.Fatal(err)
	}
	// This run writes the paths again: marks them, then records S3's answers.
	if err := db.Intend(ctx, []Intent{{Path: "put"}, {Path: "del"}, {Path: "ok"}}); err != nil {
		t.Fatal(err)
	}
	w := db.Writer()
	for _, p := range []string{"put", "ok"} {
		w.Put(ctx, Entry{Path: p, Hash: scanner.Digest{1}, Stat: scanner.Stat{Size: 1}}, mustCommit(t))
	}
	w.Delete(ctx, []string{"del"}, mustCommit(t))
	w.Close()
	after, err := db.Doubts(ctx)
	if err != nil || len(after) != 2 || after[0].Path != "del" || after[1].Path != "put" {
		t.Fatalf("in doubt after the records: %+v, %v; want del and put", after, err)
	}
	for i, d := range after {
		if !d.Multipart || d.Settled || !d.Since.Equal(before[i].Since) {
			t.Errorf("%s: %+v, want it multipart, unsettled, since %v", d.Path, d, before[i].Since)
		}
	}
	// A settle that succeeds clears them; a watched one ends its watch as
	// any other, and a new intent then is cleared by its answer.
	if err := db.Settle(ctx, []Found{{Path: "del"}, {Path: "put", Object: &Entry{Hash: scanner.Digest{1}, Stat: scanner.Stat{Size: 1}}, Watch: true}}); err != nil {
		t.Fatal(err)
	}
	if d, _ := db.Doubts(ctx); len(d) != 1 || d[0].Path != "put" || !d[0].Settled {
		t.Fatalf("in doubt after the settle: %+v, want put watched", d)
	}
	if err := db.Intend(ctx, []Intent{{Path: "del"}}); err != nil {
		t.Fatal(err)
	}
	w = db.Writer()
	w.Delete(ctx, []string{"del"}, mustCommit(t))
	w.Close()
	if d, _ := db.Doubts(ctx); len(d) != 1 {
		t.Fatalf("a settled path's new intent was not cleared by its answer: %+v", d)
	}
}

// A settle that finds the object of a key in doubt with the row's content
// but another version (the interrupted run wrote the same bytes again, or
// refreshed the metadata) records that version as the current one: the
// history does not keep calling the old version current (a reviewer's
// find).
func TestSettleRecordsANewVersionOfTheSameContent(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/s", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := Entry{Path: "doc", Hash: scanner.Digest{1}, Stat: scanner.Stat{Size: 10, MtimeNs: 5}, UploadedNs: 9, VersionID: "v1"}
	w := db.Writer()
	w.Put(ctx, e, mustCommit(t))
	w.Close()
	if err := db.Intend(ctx, []Intent{{Path: "doc"}}); err != nil {
		t.Fatal(err)
	}
	found := Entry{Hash: e.Hash, Stat: scanner.Stat{Size: 10, MtimeNs: 5}, VersionID: "v2"}
	if err := db.Settle(ctx, []Found{{Path: "doc", Object: &found}}); err != nil {
		t.Fatal(err)
	}
	h, err := db.History(ctx, "doc")
	if err != nil || len(h) != 2 || h[0].VersionID != "v1" || h[0].Current() || h[1].VersionID != "v2" || !h[1].Current() {
		t.Errorf("history after the settle: %+v, %v; want v1 ended, v2 current", h, err)
	}
	if row, _, _ := db.Get(ctx, "doc"); row.VersionID != "v2" {
		t.Errorf("row's version %q, want v2", row.VersionID)
	}
}
