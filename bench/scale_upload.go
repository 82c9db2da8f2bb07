package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// uploads: the initial upload of UploadFiles files against rclone, whether
// scan and upload overlap, small changes, a folder move, one large file.
func (s *scale) uploads(ctx context.Context) error {
	src, err := s.tree(fmt.Sprintf("upload-%d", s.o.UploadFiles), TreeSpec{
		Files: s.o.UploadFiles, MaxSize: int(2 * s.o.UploadBytes / int64(s.o.UploadFiles)), Seed: 2,
	})
	if err != nil {
		return err
	}
	Measure(ctx, Command{Name: "find", Args: []string{src, "-type", "f", "-exec", "cat", "{}", "+"}}) // warm
	time.Sleep(2 * time.Second)                                                                       // past the racy window

	// Scan alone: a dry run with no manifest walks and hashes everything.
	scan, err := Best(ctx, s.o.Runs, s.sync(src, "none/", filepath.Join(s.o.Dir, "upload-none.db"), "--dry-run"), nil)
	if err != nil {
		return err
	}
	// The initial upload, each run to a prefix of its own; the first
	// one's manifest is kept for the changes that follow.
	keep := filepath.Join(s.o.Dir, fmt.Sprintf("upload-%d.db", time.Now().UnixNano()))
	defer os.Remove(keep)
	ckBest, ckRequests, err := s.initialUploads(ctx, src, keep)
	if err != nil {
		return err
	}
	rcDefault, rcSame, rcRequests, err := s.rcloneUploads(ctx, src)
	if err != nil {
		return err
	}
	row := Row{
		Scenario:    fmt.Sprintf("5. initial upload, %d files / %.0f MB", s.o.UploadFiles, float64(s.o.UploadBytes)/1e6),
		Cloudkeeper: fmt.Sprintf("%s, %.1f s CPU, %d requests", secs(ckBest.Wall), ckBest.CPU.Seconds(), ckRequests),
		Target:      "≤ 0.6× rclone defaults; ≤ 1× rclone at the same transfers",
	}
	if len(rcDefault) > 0 {
		d, t := fastest(rcDefault), fastest(rcSame)
		r1, r2 := ratio(ckBest.Wall, d.Wall), ratio(ckBest.Wall, t.Wall)
		row.Reference = fmt.Sprintf("rclone sync: %s, %.1f s CPU, %d requests; --transfers %s: %s", secs(d.Wall), d.CPU.Seconds(), rcRequests, s.transfers(), secs(t.Wall))
		row.Ratio = fmt.Sprintf("%.2f× / %.2f×", r1, r2)
		row.Met = yes(r1 <= 0.6 && r2 <= 1.0)
	}
	s.add(row)
	s.add(Row{
		Scenario:    "7. scan and upload overlap (same tree)",
		Cloudkeeper: fmt.Sprintf("first upload confirmed after %s; whole run %s", secs(ckBest.First), secs(ckBest.Wall)),
		Reference:   fmt.Sprintf("scan alone (dry run, all hashed): %s", secs(scan.Wall)),
		Target:      "uploads start before the scan ends",
		Met:         yes(ckBest.First > 0 && ckBest.First < scan.Wall),
	})

	// The move first: the small changes leave freshly hashed (racily
	// clean) files behind, which the next run reads again.
	if err := s.rename(ctx, src, keep); err != nil {
		return err
	}
	if err := s.smallChanges(ctx, src, keep); err != nil {
		return err
	}
	return s.largeFile(ctx)
}

// initialUploads uploads the tree Runs times, each run to a prefix of its
// own, the first with the manifest keep, and returns the fastest run and
// the requests of the last one.
func (s *scale) initialUploads(ctx context.Context, src, keep string) (Run, int64, error) {
	var ck []Run
	var ckRequests int64
	for i := range s.o.Runs {
		m := keep
		if i > 0 {
			m = filepath.Join(s.o.Dir, fmt.Sprintf("upload-run%d-%d.db", i, time.Now().UnixNano()))
			defer os.Remove(m)
		}
		s.proxy.Reset()
		r, err := Measure(ctx, s.sync(src, fmt.Sprintf("ck%d/", i), m))
		if err != nil {
			return Run{}, 0, err
		}
		ckRequests = s.proxy.Stats().Requests
		ck = append(ck, r)
	}
	return fastest(ck), ckRequests, nil
}

// rcloneUploads, if rclone is installed, syncs the tree with it Runs times
// with its defaults and Runs times at cloudkeeper's concurrency, each run
// to a prefix of its own, and returns the runs and the requests of the last
// default one.
func (s *scale) rcloneUploads(ctx context.Context, src string) (rcDefault, rcSame []Run, rcRequests int64, err error) {
	if s.rclone == "" {
		return nil, nil, 0, nil
	}
	for i := range s.o.Runs {
		s.proxy.Reset()
		r, err := Measure(ctx, s.rcloneCmd("sync", src, fmt.Sprintf("bench:%s/rclone%d", s.bucket, i)))
		if err != nil {
			return nil, nil, 0, err
		}
		rcRequests = s.proxy.Stats().Requests
		rcDefault = append(rcDefault, r)
		r, err = Measure(ctx, s.rcloneCmd("sync", "--transfers", s.transfers(), src, fmt.Sprintf("bench:%s/rclone-t%d", s.bucket, i)))
		if err != nil {
			return nil, nil, 0, err
		}
		rcSame = append(rcSame, r)
	}
	return rcDefault, rcSame, rcRequests, nil
}

// smallChanges: 1% of the files rewritten, then 1% deleted; cloudkeeper on
// the prefix it uploaded first, rclone on its own.
func (s *scale) smallChanges(ctx context.Context, src, m string) error {
	var files []string
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	n := max(len(files)/100, 1)
	for _, step := range []struct {
		name   string
		change func(i int, p string) error
	}{
		{"modified", func(i int, p string) error { return writeRandom(p, 30_000, uint64(1000+i)) }},
		{"deleted", func(i int, p string) error { return os.Remove(p) }},
	} {
		offset := 0
		if step.name == "deleted" {
			offset = 50 // other files than those modified
		}
		for i := 0; i < n; i++ {
			if err := step.change(i, files[(i*100+offset)%len(files)]); err != nil {
				return err
			}
		}
		s.proxy.Reset()
		ck, err := Measure(ctx, s.sync(src, "ck0/", m))
		if err != nil {
			return err
		}
		ckRequests := s.proxy.Stats().Requests
		sum, err := parseSummary(ck.Stdout)
		if err != nil {
			return err
		}
		row := Row{
			Scenario:    fmt.Sprintf("6. %d files (1%%) %s", n, step.name),
			Cloudkeeper: fmt.Sprintf("%s, %d requests, %s uploaded", secs(ck.Wall), ckRequests, mib(sum.Bytes)),
			Target:      "≤ 1 s + the upload itself",
		}
		if s.rclone != "" {
			s.proxy.Reset()
			rc, err := Measure(ctx, s.rcloneCmd("sync", src, fmt.Sprintf("bench:%s/rclone0", s.bucket)))
			if err != nil {
				return err
			}
			row.Reference = fmt.Sprintf("rclone sync: %s, %d requests", secs(rc.Wall), s.proxy.Stats().Requests)
			row.Ratio = fmt.Sprintf("%.2f×", ratio(ck.Wall, rc.Wall))
		}
		// The upload itself: at this run's throughput, bytes over the
		// initial upload's rate would be a guess; count it as the time of
		// the PUTs, bounded by the whole run.
		row.Met = yes(ck.Wall <= time.Second+uploadTime(sum.Bytes))
		s.add(row)
	}
	return nil
}

// uploadTime is a generous allowance for uploading b bytes to the local
// gateway: 50 MB/s.
func uploadTime(b int64) time.Duration {
	return time.Duration(float64(b) / 50e6 * float64(time.Second))
}

// rename: a top-level folder of the upload tree moved into another one.
func (s *scale) rename(ctx context.Context, src, m string) error {
	from := filepath.Join(src, "d0000")
	var n int
	filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if n == 0 {
		return errors.New("the upload tree has no folder d0000 to move")
	}
	to := filepath.Join(src, "moved", "d0000")
	os.MkdirAll(filepath.Dir(to), 0o755)
	if err := os.Rename(from, to); err != nil {
		return err
	}
	s.proxy.Reset()
	ck, err := Measure(ctx, s.sync(src, "ck0/", m))
	if err != nil {
		return err
	}
	st := s.proxy.Stats()
	sum, err := parseSummary(ck.Stdout)
	if err != nil {
		return err
	}
	wantDeletes := int64((n + 999) / 1000)
	row := Row{
		Scenario: fmt.Sprintf("4. move a folder of %d files", n),
		Cloudkeeper: fmt.Sprintf("%s: %d renames, %d CopyObject, %d DeleteObjects, %d B uploaded, %d B read",
			secs(ck.Wall), sum.Rename, st.ByOp["CopyObject"], st.ByOp["DeleteObjects"], st.BytesUploaded, sum.HashedBytes),
		Target: fmt.Sprintf("%d copies, %d DeleteObjects, 0 B uploaded, 0 B read", n, wantDeletes),
		Met: yes(sum.Rename == int64(n) && st.ByOp["CopyObject"] == int64(n) && st.ByOp["DeleteObjects"] == wantDeletes &&
			st.BytesUploaded == 0 && sum.HashedBytes == 0),
	}
	if s.rclone != "" {
		s.proxy.Reset()
		rc, err := Measure(ctx, s.rcloneCmd("sync", src, fmt.Sprintf("bench:%s/rclone0", s.bucket)))
		if err != nil {
			return err
		}
		rst := s.proxy.Stats()
		row.Reference = fmt.Sprintf("rclone sync: %s, %s uploaded again", secs(rc.Wall), mib(rst.BytesUploaded))
	}
	s.add(row)
	// Move it back, and let both copies in the bucket follow.
	if err := os.Rename(to, from); err != nil {
		return err
	}
	if _, err := Measure(ctx, s.sync(src, "ck0/", m)); err != nil {
		return err
	}
	if s.rclone != "" {
		if _, err := Measure(ctx, s.rcloneCmd("sync", src, fmt.Sprintf("bench:%s/rclone0", s.bucket))); err != nil {
			return err
		}
	}
	return nil
}

// largeFile: one file of LargeFile bytes, uploaded in parallel parts.
func (s *scale) largeFile(ctx context.Context) error {
	if s.o.LargeFile < 0 {
		return nil
	}
	dir := filepath.Join(s.o.Dir, fmt.Sprintf("large-%d", s.o.LargeFile))
	if _, err := os.Stat(dir + ".done"); err != nil {
		os.MkdirAll(dir, 0o755)
		if err := writeRandom(filepath.Join(dir, "large.bin"), s.o.LargeFile, 9); err != nil {
			return err
		}
		os.WriteFile(dir+".done", nil, 0o644)
	}
	Measure(ctx, Command{Name: "cat", Args: []string{filepath.Join(dir, "large.bin")}})
	var ck []Run
	var parts int64
	for i := range s.o.Runs {
		m := filepath.Join(s.o.Dir, fmt.Sprintf("large-%d-%d.db", i, time.Now().UnixNano()))
		defer os.Remove(m)
		s.proxy.Reset()
		r, err := Measure(ctx, s.sync(dir, fmt.Sprintf("large-ck%d/", i), m))
		if err != nil {
			return err
		}
		parts = s.proxy.Stats().ByOp["UploadPart"]
		ck = append(ck, r)
	}
	best := fastest(ck)
	row := Row{
		Scenario:    fmt.Sprintf("5b. one file of %s", mib(s.o.LargeFile)),
		Cloudkeeper: fmt.Sprintf("%s (%.0f MB/s), %d parts in parallel", secs(best.Wall), float64(s.o.LargeFile)/best.Wall.Seconds()/1e6, parts),
		Target:      "parallel parts",
		Met:         yes(parts > 1),
	}
	if s.rclone != "" {
		var rc []Run
		for i := range s.o.Runs {
			r, err := Measure(ctx, s.rcloneCmd("copy", dir, fmt.Sprintf("bench:%s/large-rclone%d", s.bucket, i)))
			if err != nil {
				return err
			}
			rc = append(rc, r)
		}
		rb := fastest(rc)
		row.Reference = fmt.Sprintf("rclone copy: %s", secs(rb.Wall))
		row.Ratio = fmt.Sprintf("%.2f×", ratio(best.Wall, rb.Wall))
	}
	s.add(row)
	return nil
}
