package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// noChange: a run over an unchanged tree of Files files against find, and
// its peak RSS against the same run over SmallerFiles files.
func (s *scale) noChange(ctx context.Context) error {
	big, err := s.noChangeRun(ctx, s.o.Files)
	if err != nil {
		return err
	}
	r := ratio(big.run.Wall, big.find.Wall)
	s.add(Row{
		Scenario: fmt.Sprintf("1. no-change run, %d files (warm cache)", s.o.Files),
		Cloudkeeper: fmt.Sprintf("%s; %d S3 requests; %d B read; peak RSS %s",
			secs(big.run.Wall), big.requests, big.sum.HashedBytes, mib(big.run.MaxRSS)),
		Reference: "find -printf: " + secs(big.find.Wall),
		Ratio:     fmt.Sprintf("%.2f×", r),
		Target:    "≤ 1.5×; 1 request (the bucket check); 0 B read; ≤ 150 MiB",
		Met:       yes(r <= 1.5 && big.requests == 1 && big.sum.HashedBytes == 0 && big.run.MaxRSS <= 150<<20 && big.sum.Unchanged == int64(s.o.Files)),
	})
	small, err := s.noChangeRun(ctx, s.o.SmallerFiles)
	if err != nil {
		return err
	}
	m := float64(big.run.MaxRSS) / float64(small.run.MaxRSS)
	s.add(Row{
		Scenario:    fmt.Sprintf("2. peak RSS, %d vs %d files", s.o.Files, s.o.SmallerFiles),
		Cloudkeeper: fmt.Sprintf("%s vs %s (no-change run of %d files: %s)", mib(big.run.MaxRSS), mib(small.run.MaxRSS), s.o.SmallerFiles, secs(small.run.Wall)),
		Reference:   fmt.Sprintf("find over %d files: %s", s.o.SmallerFiles, secs(small.find.Wall)),
		Ratio:       fmt.Sprintf("%.2f×", m),
		Target:      "≤ 1.3×",
		Met:         yes(m <= 1.3),
	})
	return nil
}

// noChangeResult is one no-change run over a tree, with find's over it.
type noChangeResult struct {
	run, find Run
	sum       summary
	requests  int64
}

// noChangeRun times find and a no-change sync over a tree of files files,
// recorded in a fresh manifest as if a sync had uploaded them.
func (s *scale) noChangeRun(ctx context.Context, files int) (noChangeResult, error) {
	var res noChangeResult
	src, err := s.tree(fmt.Sprintf("nochange-%d", files), TreeSpec{Files: files, Seed: 1})
	if err != nil {
		return res, err
	}
	mpath := filepath.Join(s.o.Dir, fmt.Sprintf("nochange-%d-%d.db", files, time.Now().UnixNano()))
	defer os.Remove(mpath)
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return res, err
	}
	db, err := manifest.Open(mpath, manifest.Identity{Source: real, Endpoint: s.proxy.URL, Bucket: s.bucket, Prefix: "nochange/"})
	if err != nil {
		return res, err
	}
	// Hashes taken within 2 s of a file's mtime are not trusted (racily
	// clean): let a fresh tree age first.
	time.Sleep(2100 * time.Millisecond)
	s.o.Logf("recording %d files in a manifest...", files)
	err = SeedManifest(ctx, db, real)
	db.Close()
	if err != nil {
		return res, err
	}
	// Warm the cache.
	Measure(ctx, Command{Name: "find", Args: []string{src, "-type", "f", "-printf", `%s %T@\n`}})
	find := Command{Name: "find", Args: []string{src, "-type", "f", "-printf", `%s %T@\n`}}
	if res.find, err = Best(ctx, s.o.Runs, find, nil); err != nil {
		return res, err
	}
	s.proxy.Reset()
	// The seeded manifest claims objects the bucket does not hold: a
	// reconcile, due on a manifest that never had one, would upload
	// them all. This scenario measures the run with nothing to do.
	if res.run, err = Best(ctx, s.o.Runs, s.sync(src, "nochange/", mpath, "--reconcile-every", "0"), nil); err != nil {
		return res, err
	}
	res.requests = s.proxy.Stats().Requests / int64(max(s.o.Runs, 1)) // per run
	res.sum, err = parseSummary(res.run.Stdout)
	return res, err
}
