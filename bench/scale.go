package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
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
	Concurrency  int    // cloudkeeper's --concurrency (default 0: auto)
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
	s.note("aws s3 sync is not run by bench scale: bench wan compares it (and s5cmd) over latency")
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

// transfers is rclone's --transfers in the comparison at cloudkeeper's
// concurrency: the cap, or with auto the most requests auto keeps in
// flight.
func (s *scale) transfers() string {
	return strconv.Itoa(cmp.Or(s.o.Concurrency, uploader.AutoConcurrency))
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
	conc := "auto"
	if s.o.Concurrency > 0 {
		conc = strconv.Itoa(s.o.Concurrency)
	}
	args := []string{"sync", "--json", "--source", src, "--bucket", s.bucket, "--prefix", prefix,
		"--endpoint", s.proxy.URL, "--manifest", manifest, "--concurrency", conc}
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

func fastest(runs []Run) Run {
	best := runs[0]
	for _, r := range runs[1:] {
		if r.Wall < best.Wall {
			best = r
		}
	}
	return best
}
