package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// ScaleOptions sizes the scale benchmark. Zero values take the defaults of
// the targets it checks.
type ScaleOptions struct {
	Dir          string // work folder: trees (kept and reused), manifests, gateway root
	Files        int    // the no-change tree (default 1,000,000)
	SmallerFiles int    // the tree whose peak RSS is compared with it (default Files/10)
	UploadFiles  int    // the upload tree (default 20,000)
	UploadBytes  int64  // its total size (default 600 MB)
	BigFiles     int    // the hashing tree: files... (default 4)
	BigSize      int64  // ...of this size (default 256 MiB)
	LargeFile    int64  // the single large upload (default 1 GiB; 0 skips it with -1)
	Runs         int    // timed repetitions; the fastest counts (default 3)
	Concurrency  int    // cloudkeeper's --concurrency (default 8)
	Binary       string // the cloudkeeper binary to measure
	// Only runs these parts: "nochange", "hash", "upload" (the upload
	// tree's scenarios); empty means all.
	Only []string
	Logf func(format string, args ...any)
}

func (o *ScaleOptions) applyDefaults() {
	if o.Files <= 0 {
		o.Files = 1_000_000
	}
	if o.SmallerFiles <= 0 {
		o.SmallerFiles = o.Files / 10
	}
	if o.UploadFiles <= 0 {
		o.UploadFiles = 20_000
	}
	if o.UploadBytes <= 0 {
		o.UploadBytes = 600_000_000
	}
	if o.BigFiles <= 0 {
		o.BigFiles = 4
	}
	if o.BigSize <= 0 {
		o.BigSize = 256 << 20
	}
	if o.LargeFile == 0 {
		o.LargeFile = 1 << 30
	}
	if o.Runs <= 0 {
		o.Runs = 3
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// Row is one line of the result table.
type Row struct {
	Scenario    string `json:"scenario"`
	Cloudkeeper string `json:"cloudkeeper"`
	Reference   string `json:"reference"`
	Ratio       string `json:"ratio"`
	Target      string `json:"target"`
	Met         string `json:"met"` // "yes", "no", or "" when there is nothing to compare
}

// Report is what the scale benchmark found, with where it ran.
type Report struct {
	Machine string   `json:"machine"`
	Server  string   `json:"server"`
	Rows    []Row    `json:"rows"`
	Notes   []string `json:"notes"`
}

type scale struct {
	o      ScaleOptions
	gw     *s3test.Gateway
	proxy  *s3test.Proxy
	bucket string
	rep    *Report
	rclone string // path, or "" if not installed
	b3sum  string
}

// Scale runs the scenarios of the "fast at scale" targets against a local
// Versity S3 Gateway it starts, through a counting proxy, with the
// reference tools that are installed (find, b3sum, rclone), and returns the
// table.
func Scale(ctx context.Context, o ScaleOptions) (*Report, error) {
	o.applyDefaults()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, o.Dir, "bench", o.Logf)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	s := &scale{o: o, gw: srv.gw, proxy: srv.proxy, bucket: srv.bucket, rep: &Report{
		Machine: Machine(),
		Server:  "Versity S3 Gateway " + s3test.Version + " (posix backend) on the same machine, through a counting proxy",
	}}
	s.rclone, _ = exec.LookPath("rclone")
	s.b3sum, _ = exec.LookPath("b3sum")
	if s.rclone == "" {
		s.note("rclone is not installed (apt install rclone): its columns are empty")
	}
	if s.b3sum == "" {
		s.note("b3sum is not installed (apt install b3sum): the hashing row has no reference")
	}
	s.note("aws s3 sync is not run: the AWS CLI is not packaged for this machine's registries")
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{{"nochange", s.noChange}, {"hash", s.hashing}, {"upload", s.uploads}} {
		if len(o.Only) > 0 && !slices.Contains(o.Only, step.name) {
			continue
		}
		if err := step.run(ctx); err != nil {
			return s.rep, err
		}
	}
	return s.rep, nil
}

func (s *scale) note(format string, args ...any) {
	s.rep.Notes = append(s.rep.Notes, fmt.Sprintf(format, args...))
}

func (s *scale) add(r Row) {
	s.o.Logf("%s: %s | %s | %s", r.Scenario, r.Cloudkeeper, r.Reference, r.Ratio)
	s.rep.Rows = append(s.rep.Rows, r)
}

// tree makes (or reuses, from an earlier run with the same name) a tree.
func (s *scale) tree(name string, spec TreeSpec) (string, error) {
	root := filepath.Join(s.o.Dir, name)
	done := root + ".done"
	if _, err := os.Stat(done); err == nil {
		return root, nil
	}
	os.RemoveAll(root)
	s.o.Logf("writing %s (%d files)...", root, spec.Files)
	if _, err := MakeTree(root, spec); err != nil {
		return "", err
	}
	return root, os.WriteFile(done, nil, 0o644)
}

// ck is a cloudkeeper command with the gateway's credentials and none of
// the caller's settings.
func (s *scale) ck(args ...string) Command {
	return Command{Name: s.o.Binary, Args: args, Dir: s.o.Dir, Env: []string{
		"AWS_ACCESS_KEY_ID=" + s.gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.gw.SecretKey,
		"-AWS_PROFILE", "-AWS_ENDPOINT_URL", "-AWS_ENDPOINT_URL_S3", "-BACKUP_DIR", "-S3_BUCKET",
		"-S3_BUCKET_PREFIX", "-CLOUDKEEPER_MANIFEST", "-CLOUDKEEPER_CONCURRENCY",
	}}
}

func (s *scale) sync(src, prefix, manifest string, extra ...string) Command {
	args := []string{"sync", "--json", "--source", src, "--bucket", s.bucket, "--prefix", prefix,
		"--endpoint", s.proxy.URL, "--manifest", manifest, "--concurrency", strconv.Itoa(s.o.Concurrency)}
	c := s.ck(append(args, extra...)...)
	c.FirstPrefix = `{"op":`
	return c
}

// rcloneCmd is rclone against the same proxy, configured by environment.
func (s *scale) rcloneCmd(args ...string) Command {
	conf := filepath.Join(s.o.Dir, "rclone.conf")
	os.WriteFile(conf, nil, 0o600)
	return Command{Name: s.rclone, Args: append([]string{"--config", conf}, args...), Dir: s.o.Dir, Env: []string{
		"RCLONE_CONFIG_BENCH_TYPE=s3", "RCLONE_CONFIG_BENCH_PROVIDER=Other",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=" + s.gw.AccessKey, "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=" + s.gw.SecretKey,
		"RCLONE_CONFIG_BENCH_ENDPOINT=" + s.proxy.URL, "RCLONE_CONFIG_BENCH_REGION=" + s3test.Region,
		"-AWS_CA_BUNDLE", // rclone 1.60 refuses its own transport with a custom CA bundle
	}}
}

// summary is the JSON summary line of a cloudkeeper run.
type summary struct {
	Add, Modify, Rename, Copy, Delete, Unchanged, Bytes, Errors int64
	HashedFiles                                                 int64 `json:"hashed_files"`
	HashedBytes                                                 int64 `json:"hashed_bytes"`
}

func parseSummary(stdout string) (summary, error) {
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var v struct {
		Summary *summary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil || v.Summary == nil {
		return summary{}, fmt.Errorf("no JSON summary in %q", tail(stdout, 3))
	}
	return *v.Summary, nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ratio(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// noChange: a run over an unchanged tree of Files files against find, and
// its peak RSS against the same run over SmallerFiles files.
func (s *scale) noChange(ctx context.Context) error {
	type result struct {
		run, find Run
		sum       summary
		requests  int64
	}
	measure := func(files int) (result, error) {
		var res result
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
	big, err := measure(s.o.Files)
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
	small, err := measure(s.o.SmallerFiles)
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
	var ck []Run
	var ckRequests int64
	keep := filepath.Join(s.o.Dir, fmt.Sprintf("upload-%d.db", time.Now().UnixNano()))
	defer os.Remove(keep)
	for i := range s.o.Runs {
		m := keep
		if i > 0 {
			m = filepath.Join(s.o.Dir, fmt.Sprintf("upload-run%d-%d.db", i, time.Now().UnixNano()))
			defer os.Remove(m)
		}
		s.proxy.Reset()
		r, err := Measure(ctx, s.sync(src, fmt.Sprintf("ck%d/", i), m))
		if err != nil {
			return err
		}
		ckRequests = s.proxy.Stats().Requests
		ck = append(ck, r)
	}
	ckBest := fastest(ck)
	var rcDefault, rcSame []Run
	var rcRequests int64
	if s.rclone != "" {
		for i := range s.o.Runs {
			s.proxy.Reset()
			r, err := Measure(ctx, s.rcloneCmd("sync", src, fmt.Sprintf("bench:%s/rclone%d", s.bucket, i)))
			if err != nil {
				return err
			}
			rcRequests = s.proxy.Stats().Requests
			rcDefault = append(rcDefault, r)
			r, err = Measure(ctx, s.rcloneCmd("sync", "--transfers", strconv.Itoa(s.o.Concurrency), src, fmt.Sprintf("bench:%s/rclone-t%d", s.bucket, i)))
			if err != nil {
				return err
			}
			rcSame = append(rcSame, r)
		}
	}
	row := Row{
		Scenario:    fmt.Sprintf("5. initial upload, %d files / %.0f MB", s.o.UploadFiles, float64(s.o.UploadBytes)/1e6),
		Cloudkeeper: fmt.Sprintf("%s, %.1f s CPU, %d requests", secs(ckBest.Wall), ckBest.CPU.Seconds(), ckRequests),
		Target:      "≤ 0.6× rclone defaults; ≤ 1× rclone at the same transfers",
	}
	if len(rcDefault) > 0 {
		d, t := fastest(rcDefault), fastest(rcSame)
		r1, r2 := ratio(ckBest.Wall, d.Wall), ratio(ckBest.Wall, t.Wall)
		row.Reference = fmt.Sprintf("rclone sync: %s, %.1f s CPU, %d requests; --transfers %d: %s", secs(d.Wall), d.CPU.Seconds(), rcRequests, s.o.Concurrency, secs(t.Wall))
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

func fastest(runs []Run) Run {
	best := runs[0]
	for _, r := range runs[1:] {
		if r.Wall < best.Wall {
			best = r
		}
	}
	return best
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
