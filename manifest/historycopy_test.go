package manifest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// The history area is no file's: its keys map to no path, and no path's
// key lies in it, a path that starts with a backslash included.
func TestHistoryKeysAreNoPath(t *testing.T) {
	key := HistoryKey("pre/", 7, time.Unix(0, 0), `a\b/c.txt`)
	if key != `pre/\history/19700101T000000Z-7/a\\b/c.txt` {
		t.Fatalf("history key %q", key)
	}
	// Run 7 of a manifest rebuilt or made anew later keeps its copies
	// apart from those of the run 7 before (a reviewer's find: they
	// landed over them, in a bucket that keeps no other copy).
	if again := HistoryKey("pre/", 7, time.Unix(86400, 0), `a\b/c.txt`); again == key {
		t.Fatalf("run 7 of another manifest copies to %q too", again)
	}
	if _, err := PathOfKey("pre/", key, 3); !errors.Is(err, ErrHistoryKey) {
		t.Fatalf("PathOfKey(%q): %v, want ErrHistoryKey", key, err)
	}
	for _, p := range []string{`\history/7/a`, `\history`, "\\history/\x01"} {
		if k := Key("pre/", p); IsHistoryKey("pre/", k) {
			t.Errorf("the path %q has the key %q, in the history area", p, k)
		} else if back, err := PathOfKey("pre/", k, 1); err != nil || back != p {
			t.Errorf("PathOfKey(%q) = %q, %v; want %q", k, back, err, p)
		}
	}
}

// A history copy in doubt is recorded on the version it keeps, the current
// one first; one whose content no unkept version has stays in doubt for
// its caller to delete; one not found just goes. A copy of a current
// version kept already is not asked for again.
func TestSettleHistory(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/s", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	doc := Entry{Path: "doc", Hash: scanner.Digest{1}, Stat: scanner.Stat{Size: 2, MtimeNs: 5}, UploadedNs: 9}
	w := db.RunWriter(1)
	w.Put(ctx, doc, mustCommit(t))
	w.Close()
	kept := HistoryCopy{Key: HistoryKey("", 2, time.Unix(0, 0), "doc"), Of: doc}
	other := HistoryCopy{Key: HistoryKey("", 3, time.Unix(0, 0), "doc"), Of: Entry{Path: "doc", Hash: scanner.Digest{2}}}
	lost := HistoryCopy{Key: HistoryKey("", 4, time.Unix(0, 0), "doc"), Of: doc}
	if need, err := db.IntendHistory(ctx, []HistoryCopy{kept, other, lost}); err != nil || len(need) != 3 {
		t.Fatalf("IntendHistory: %v, %v", need, err)
	}
	if ok, err := db.SettleHistory(ctx, other, true); ok || err != nil {
		t.Fatalf("a copy of content no version has: attached %v, %v", ok, err)
	}
	if ok, err := db.SettleHistory(ctx, kept, true); !ok || err != nil {
		t.Fatalf("a copy of the current version: attached %v, %v", ok, err)
	}
	if ok, err := db.SettleHistory(ctx, lost, false); ok || err != nil {
		t.Fatalf("a copy not found: %v, %v", ok, err)
	}
	if d, err := db.HistoryDoubts(ctx); err != nil || len(d) != 1 || d[0].Key != other.Key || d[0].Of.Hash != other.Of.Hash {
		t.Fatalf("history copies in doubt: %+v, %v; want the one that keeps nothing", d, err)
	}
	if vs, _ := db.History(ctx, "doc"); len(vs) != 1 || vs[0].HistoryKey != kept.Key {
		t.Fatalf("history of doc: %+v", vs)
	}
	if need, err := db.IntendHistory(ctx, []HistoryCopy{lost}); err != nil || len(need) != 0 {
		t.Fatalf("a copy of a version kept already asked for again: %v, %v", need, err)
	}
}

// A plain mirror (no versioning, no --keep) forgets each version it
// replaces: the history records the time as a gap, so that a restore to
// then says the version is not kept; a file overwritten every night for
// years leaves one gap, not one a night.
func TestGapsOfAPlainMirrorStayOneAPath(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/s", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 1; i <= 50; i++ {
		w := db.RunWriter(int64(i))
		w.Put(ctx, Entry{Path: "doc", Hash: scanner.Digest{byte(i)}, Stat: scanner.Stat{Size: 2}, UploadedNs: int64(i) * 100}, mustCommit(t))
		w.Close()
	}
	var n int
	if err := db.db.QueryRow("SELECT count(*) FROM history_gaps").Scan(&n); err != nil || n != 1 {
		t.Errorf("history_gaps holds %d rows after 50 overwrites, %v; want 1", n, err)
	}
	for _, at := range []int64{100, 2550, 4999} {
		var gaps []Gap
		err := db.GapsAt(ctx, time.Unix(0, at), "", func(g Gap) error { gaps = append(gaps, g); return nil })
		if err != nil || len(gaps) != 1 || gaps[0] != (Gap{Path: "doc"}) {
			t.Errorf("gaps at %d ns: %+v, %v; want doc's, never kept", at, gaps, err)
		}
	}
	var gaps []Gap
	if err := db.GapsAt(ctx, time.Unix(0, 5000), "", func(g Gap) error { gaps = append(gaps, g); return nil }); err != nil || len(gaps) != 0 {
		t.Errorf("gaps at the current version's write: %+v, %v; want none", gaps, err)
	}
}
