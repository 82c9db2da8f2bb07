package manifest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// benchManifest makes a tree of n small files and a manifest that records
// all of them, as after a completed sync.
func benchManifest(b *testing.B, n int) (*DB, string) {
	b.Helper()
	root := b.TempDir()
	db, err := Open(filepath.Join(b.TempDir(), "m.db"), Identity{Source: root, Bucket: "b"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			os.MkdirAll(dir, 0o755)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte(fmt.Sprint(i)), 0o644)
	}
	w := db.Writer()
	later := time.Now().Add(time.Hour).UnixNano()
	ctx := context.Background()
	errs := make(chan error, 64)
	paths := make(chan string)
	for range 64 {
		go func() {
			for rel := range paths {
				d, st, err := scanner.HashFile(scanner.OS{}, filepath.Join(root, rel))
				if err == nil {
					err = w.Put(ctx, Entry{Path: rel, Hash: d, Stat: st, HashedNs: later}, func(err error) {
						if err != nil {
							b.Error(err)
						}
					})
				}
				if err != nil {
					errs <- err
				}
			}
			errs <- nil
		}()
	}
	for i := range n {
		paths <- fmt.Sprintf("d%03d/f%05d", i/100, i)
	}
	close(paths)
	for range 64 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	return db, root
}

// BenchmarkRows reads 20,000 manifest rows in path order: the manifest's
// half of a no-change run.
func BenchmarkRows(b *testing.B) {
	const n = 20000
	db, _ := benchManifest(b, n)
	b.ResetTimer()
	for b.Loop() {
		rows, err := db.Rows(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		count := 0
		for _, ok := rows.Next(); ok; _, ok = rows.Next() {
			count++
		}
		rows.Close()
		if count != n || rows.Err() != nil {
			b.Fatalf("%d rows, %v", count, rows.Err())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkDiffNoChange is a whole no-change diff of 20,000 files: walk,
// read the manifest, merge; nothing is hashed.
func BenchmarkDiffNoChange(b *testing.B) {
	const n = 20000
	db, root := benchManifest(b, n)
	b.ResetTimer()
	for b.Loop() {
		ctx := context.Background()
		scan := make(chan scanner.Entry, 1024)
		go func() {
			defer close(scan)
			scanner.Walk(ctx, scanner.OS{}, root, scanner.WalkOptions{}, func(e scanner.Entry) error {
				scan <- e
				return nil
			})
		}()
		out := make(chan Change, 16)
		d := &Diff{DB: db, FS: scanner.OS{}, Root: root}
		st, err := d.Run(ctx, scan, out)
		close(out)
		if err != nil || st.Unchanged != n || len(out) != 0 {
			b.Fatalf("%+v %v", st, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
}
