package scanner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchTree makes a tree of n small files, 100 per folder, once per
// benchmark run.
func benchTree(b *testing.B, n int) string {
	b.Helper()
	root := b.TempDir()
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/100/100), fmt.Sprintf("d%03d", i/100%100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkWalk walks 20,000 files (a warm cache): the stat-only pass a
// no-change run makes. Reports files/s.
func BenchmarkWalk(b *testing.B) {
	const n = 20000
	root := benchTree(b, n)
	b.ResetTimer()
	for b.Loop() {
		count := 0
		err := Walk(context.Background(), OS{}, root, WalkOptions{}, func(e Entry) error {
			count++
			return nil
		})
		if err != nil || count != n {
			b.Fatalf("%d files, %v", count, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkHashFile hashes a 64 MiB file from the page cache.
func BenchmarkHashFile(b *testing.B) {
	p := filepath.Join(b.TempDir(), "f")
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := HashFile(OS{}, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashSmallFiles hashes 30 KiB files, the size of a typical
// document: per-file costs (open, stat, buffers) dominate.
func BenchmarkHashSmallFiles(b *testing.B) {
	dir := b.TempDir()
	data := make([]byte, 30<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var paths []string
	for i := range 256 {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		if _, _, err := HashFile(OS{}, paths[i%len(paths)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
