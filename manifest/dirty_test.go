package manifest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// manifestOf is a manifest that records paths (content and stat made up).
func manifestOf(t testing.TB, paths ...string) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "m.db"), Identity{Source: "/src", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := db.Writer()
	for _, p := range paths {
		w.Put(context.Background(), Entry{Path: p, Stat: scanner.Stat{Size: 1}}, mustCommit(t))
	}
	w.Close()
	return db
}

func readRows(t testing.TB, rows *Rows, err error) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for e, ok := rows.Next(); ok; e, ok = rows.Next() {
		out = append(out, e.Path)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// RowsIn gives exactly the rows at or under the scopes, in path order, the
// order of the merge with the scan: for every set of scopes among names
// that sort around each other ("a-b" and "a.txt" come between "a" and
// "a/x"), a row at a scope and rows under it (a file that became a
// folder), and scopes that hold nothing.
func TestRowsInIsRowsAtOrUnderTheScopesInPathOrder(t *testing.T) {
	db := manifestOf(t, "B", "a", "a b", "a-b", "a-b/c", "a.txt", "a/x", "a/x/y", "a/y", "a0", "a0/f", "b", "é")
	rows, err := db.Rows(context.Background())
	all := readRows(t, rows, err)
	candidates := []string{"a", "a-b", "a.txt", "a0", "a/x", "a-b/c", "B", "a b", "nowhere"}
	for set := range 1 << len(candidates) {
		var picked []string
		for i, c := range candidates {
			if set&(1<<i) != 0 {
				picked = append(picked, c)
			}
		}
		scopes := scanner.Scopes(picked)
		var want []string
		for _, p := range all {
			if slices.ContainsFunc(scopes, func(s string) bool { return p == s || strings.HasPrefix(p, s+"/") }) {
				want = append(want, p)
			}
		}
		rows, err := db.RowsIn(context.Background(), scopes)
		if got := readRows(t, rows, err); !slices.Equal(got, want) {
			t.Fatalf("scopes %q: got %q, want %q", scopes, got, want)
		}
	}
}

// A push after `mv big other` reads the rows under big as the full diff
// reads the manifest: a batch at a time, however many there are.
func TestRowsInStreams(t *testing.T) {
	const n = 20000
	paths := []string{"big.txt", "bigger", "other/x"}
	for i := range n {
		paths = append(paths, fmt.Sprintf("big/d%03d/f%03d", i/100, i%100))
	}
	db := manifestOf(t, paths...)
	rows, err := db.RowsIn(context.Background(), []string{"big", "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	count, most := 0, 0
	for _, ok := rows.Next(); ok; _, ok = rows.Next() {
		if count == 0 {
			time.Sleep(100 * time.Millisecond) // a slow consumer: let the reader run as far ahead as it may
		}
		count++
		most = max(most, len(rows.cur)+len(rows.batches)*rowBatch)
	}
	// Rows' bound: the batch being taken and those its channel holds.
	bound := (1 + cap(rows.batches)) * rowBatch
	t.Logf("%d rows, at most %d decoded ahead of the consumer (bound %d)", count, most, bound)
	if rows.Err() != nil || count != n+1 || most > bound {
		t.Fatalf("%d rows (%v), up to %d held ahead of the consumer, want at most %d", count, rows.Err(), most, bound)
	}
}

// RowsIn reads one snapshot, as Rows does, over all its queries: a row
// written while it is open (the applier records what the push uploads)
// does not show, even in a scope read after the write, and the write does
// not wait for the iteration to end.
func TestRowsInReadsOneSnapshot(t *testing.T) {
	var paths []string
	for i := range 5000 { // more than Rows holds ahead: the reader waits inside a
		paths = append(paths, fmt.Sprintf("a/%04d", i))
	}
	db := manifestOf(t, append(paths, "b/old")...)
	rows, err := db.RowsIn(context.Background(), []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if _, ok := rows.Next(); !ok {
		t.Fatal(rows.Err())
	}
	w := db.Writer()
	committed := make(chan error, 1)
	w.Put(context.Background(), Entry{Path: "b/new", Stat: scanner.Stat{Size: 1}}, func(err error) { committed <- err })
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write waited for the iteration")
	}
	w.Close()
	var got []string
	for e, ok := rows.Next(); ok; e, ok = rows.Next() {
		if strings.HasPrefix(e.Path, "b/") {
			got = append(got, e.Path)
		}
	}
	if rows.Err() != nil || !slices.Equal(got, []string{"b/old"}) {
		t.Fatalf("rows under b: %q (%v), want only b/old", got, rows.Err())
	}
}
