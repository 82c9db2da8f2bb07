package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// hashing: --rehash --dry-run over a few large files against b3sum.
func (s *scale) hashing(ctx context.Context) error {
	dir := filepath.Join(s.o.Dir, fmt.Sprintf("hash-%dx%d", s.o.BigFiles, s.o.BigSize))
	var files []string
	for i := range s.o.BigFiles {
		files = append(files, filepath.Join(dir, fmt.Sprintf("f%d.bin", i)))
	}
	if _, err := os.Stat(dir + ".done"); err != nil {
		s.o.Logf("writing %d files of %s...", s.o.BigFiles, mib(s.o.BigSize))
		os.MkdirAll(dir, 0o755)
		for i, f := range files {
			if err := writeRandom(f, s.o.BigSize, uint64(i)); err != nil {
				return err
			}
		}
		os.WriteFile(dir+".done", nil, 0o644)
	}
	warm := Command{Name: "cat", Args: files}
	Measure(ctx, warm)
	ck, err := Best(ctx, s.o.Runs, s.ck("sync", "--json", "--source", dir, "--bucket", s.bucket, "--rehash", "--dry-run",
		"--manifest", filepath.Join(s.o.Dir, "hash-none.db")), nil)
	if err != nil {
		return err
	}
	sum, err := parseSummary(ck.Stdout)
	if err != nil {
		return err
	}
	total := int64(s.o.BigFiles) * s.o.BigSize
	row := Row{
		Scenario:    fmt.Sprintf("3. hash %d × %s, warm (`sync --rehash --dry-run`)", s.o.BigFiles, mib(s.o.BigSize)),
		Cloudkeeper: fmt.Sprintf("%s (%.2f GB/s, %d B hashed)", secs(ck.Wall), float64(total)/ck.Wall.Seconds()/1e9, sum.HashedBytes),
		Target:      "≤ 1× the better b3sum",
	}
	if s.b3sum != "" {
		mm, err := Best(ctx, s.o.Runs, Command{Name: s.b3sum, Args: files}, nil)
		if err != nil {
			return err
		}
		nm, err := Best(ctx, s.o.Runs, Command{Name: s.b3sum, Args: append([]string{"--no-mmap"}, files...)}, nil)
		if err != nil {
			return err
		}
		best := min(mm.Wall, nm.Wall)
		r := ratio(ck.Wall, best)
		row.Reference = fmt.Sprintf("b3sum: %s; b3sum --no-mmap: %s", secs(mm.Wall), secs(nm.Wall))
		row.Ratio = fmt.Sprintf("%.2f×", r)
		row.Met = yes(r <= 1.0 && sum.HashedBytes == total)
	}
	s.add(row)
	return nil
}

func writeRandom(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		for i := 0; i < len(buf); i += 8 {
			v := r.Uint64()
			for k := range 8 {
				buf[i+k] = byte(v >> (8 * k))
			}
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			return err
		}
	}
	return f.Close()
}
