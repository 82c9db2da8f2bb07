package manifest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// BenchmarkScopedPushPeak is the reading half of a watch push after
// `mv big other` with n files: the scan of the scopes and the manifest's
// rows in them. It reports the live heap at its highest while each is
// consumed (sampled after a collection every 2,000 items), which stays
// flat when both stream and grows with n when either holds its scopes.
// The walk's look-ahead is lowered to 4,096 entries (from 65,536) so that
// its bound shows at these sizes.
func BenchmarkScopedPushPeak(b *testing.B) {
	for _, n := range []int{10000, 50000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchScopedPushPeak(b, n) })
	}
}

func benchScopedPushPeak(b *testing.B, n int) {
	root := b.TempDir()
	paths := make([]string, 0, n)
	for i := range n {
		dir := fmt.Sprintf("other/d%03d", i/100)
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		name := fmt.Sprintf("/f%05d", i)
		if err := os.WriteFile(filepath.Join(root, dir+name), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, fmt.Sprintf("big/d%03d", i/100)+name)
	}
	db := manifestOf(b, paths...)
	scopes := scanner.Scopes([]string{"big", "other"})
	opts := scanner.WalkOptions{MaxAhead: 4096}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var scanPeak, rowsPeak uint64
	for b.Loop() {
		p := newPeakLive(2000)
		count := 0
		err := scanner.ScanScopes(ctx, scanner.OS{}, root, scopes, opts, func(scanner.Entry) error {
			count++
			p.sample()
			return nil
		})
		if err != nil || count != n {
			b.Fatalf("%d entries scanned, %v", count, err)
		}
		scanPeak = max(scanPeak, p.peak)

		p = newPeakLive(2000)
		rows, err := db.RowsIn(ctx, scopes)
		if err != nil {
			b.Fatal(err)
		}
		count = 0
		for _, ok := rows.Next(); ok; _, ok = rows.Next() {
			count++
			p.sample()
		}
		rows.Close()
		if rows.Err() != nil || count != n {
			b.Fatalf("%d rows, %v", count, rows.Err())
		}
		rowsPeak = max(rowsPeak, p.peak)
	}
	b.ReportMetric(float64(scanPeak)/(1<<20), "scan-peak-MiB")
	b.ReportMetric(float64(rowsPeak)/(1<<20), "rows-peak-MiB")
}

// peakLive keeps the highest live heap seen above where it started.
type peakLive struct {
	base, peak uint64
	n, every   int
}

func newPeakLive(every int) *peakLive {
	return &peakLive{base: liveHeap(), every: every}
}

// sample measures at the first call and every `every` calls after.
func (p *peakLive) sample() {
	p.n++
	if p.n%p.every != 1 {
		return
	}
	if h := liveHeap(); h > p.base {
		p.peak = max(p.peak, h-p.base)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
