package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// Modes and workloads of the scan-versus-events comparison.
var (
	AllModes     = []string{"scan", "events", "hybrid"}
	AllWorkloads = []string{"idle", "trickle", "burst", "rename", "delete", "offline", "overflow"}
)

// ModesOptions sizes the comparison of scanning with watching.
type ModesOptions struct {
	Dir       string        // work folder
	Files     int           // files of the tree each workload starts from (default 20,000)
	Burst     int           // files the burst workload creates (default 20,000)
	Storm     int           // writes of the overflow workload (default 200,000)
	Modes     []string      // default AllModes
	Workloads []string      // default AllWorkloads
	Push      time.Duration // watch's --push-interval (default 1 s)
	Rescan    time.Duration // hybrid's --rescan in the bench (default 10 s)
	Settle    time.Duration // how long a watch may take to make the bucket consistent (default 2 min)
	NoUpload  bool          // measure detection alone: dry runs, no bucket
	Binary    string        // the cloudkeeper binary
	Logf      func(format string, args ...any)
}

func (o *ModesOptions) applyDefaults() {
	if o.Files <= 0 {
		o.Files = 20_000
	}
	if o.Burst <= 0 {
		o.Burst = 20_000
	}
	if o.Storm <= 0 {
		o.Storm = 200_000
	}
	if len(o.Modes) == 0 {
		o.Modes = AllModes
	}
	if len(o.Workloads) == 0 {
		o.Workloads = AllWorkloads
	}
	if o.Push <= 0 {
		o.Push = time.Second
	}
	if o.Rescan <= 0 {
		o.Rescan = 10 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 2 * time.Minute
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// ModeResult is one (mode, workload) measurement.
type ModeResult struct {
	Mode          string  `json:"mode"`
	Workload      string  `json:"workload"`
	Missed        int     `json:"missed"`   // changes the bucket does not show after the push
	Invented      int     `json:"invented"` // differences the workload did not make
	WallS         float64 `json:"wall_s"`   // from the workload's end until the bucket is consistent (or Settle)
	CPUS          float64 `json:"cpu_s"`    // CPU of cloudkeeper over that time (watch: from the workload's start; hybrid: until one periodic rescan after it ended)
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
	Watches       int     `json:"watches"` // inotify watches cloudkeeper held
	S3Requests    int64   `json:"s3_requests"`
	BytesUploaded int64   `json:"bytes_uploaded"`
}

// ModesReport is the comparison's result, with where it ran.
type ModesReport struct {
	Machine string       `json:"machine"`
	Setup   string       `json:"setup"`
	Results []ModeResult `json:"results"`
}

type modes struct {
	o      ModesOptions
	gw     *s3test.Gateway
	proxy  *s3test.Proxy
	bucket string
	client *s3.Client
}

// Modes runs every workload under every mode: "scan" (a sync after the
// workload), "events" (watch --events-only) and "hybrid" (watch with safety
// scans), against a local Versity S3 Gateway behind a counting proxy.
func Modes(ctx context.Context, o ModesOptions) (*ModesReport, error) {
	o.applyDefaults()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, o.Dir, "modes", o.Logf)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	m := &modes{o: o, gw: srv.gw, proxy: srv.proxy, bucket: srv.bucket, client: srv.gw.Client()}
	rep := &ModesReport{Machine: Machine(), Setup: fmt.Sprintf(
		"tree of %d files; watch --push-interval %s; hybrid --rescan %s (its CPU and RSS include one rescan after the workload); a watch gets %s to make the bucket consistent; "+
			"burst %d files; overflow %d writes; S3: Versity S3 Gateway %s on the same machine through a counting proxy",
		o.Files, o.Push, o.Rescan, o.Settle, o.Burst, o.Storm, s3test.Version)}
	if o.NoUpload {
		rep.Setup += "; --no-upload: dry runs, detection alone (missed: changed paths never reported)"
	}
	for _, w := range o.Workloads {
		for _, mode := range o.Modes {
			r, err := m.run(ctx, mode, w)
			if err != nil {
				return rep, fmt.Errorf("%s/%s: %w", mode, w, err)
			}
			o.Logf("%s/%s: missed %d, invented %d, %.2f s, %.2f s CPU, %s, %d watches, %d requests, %s up",
				mode, w, r.Missed, r.Invented, r.WallS, r.CPUS, mib(r.PeakRSSBytes), r.Watches, r.S3Requests, mib(r.BytesUploaded))
			rep.Results = append(rep.Results, r)
		}
	}
	return rep, nil
}

func (m *modes) ck(args ...string) *exec.Cmd {
	cmd := exec.Command(m.o.Binary, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+m.gw.AccessKey, "AWS_SECRET_ACCESS_KEY="+m.gw.SecretKey)
	cmd.Dir = m.o.Dir
	return cmd
}

func (m *modes) target(src, prefix, manifest string) []string {
	return []string{"--source", src, "--bucket", m.bucket, "--prefix", prefix, "--endpoint", m.proxy.URL,
		"--manifest", manifest, "--max-delete", "100%", "--json"}
}

// modeCase is one (mode, workload) of the comparison, set up to run.
type modeCase struct {
	mode   string
	dir    string   // its folder in the work folder
	src    string   // its tree
	prefix string   // its objects' prefix in the bucket
	target []string // the flags that point cloudkeeper at the tree, the bucket and the manifest
	dry    []string // --dry-run with NoUpload
}

// run measures one workload under one mode.
func (m *modes) run(ctx context.Context, mode, workload string) (ModeResult, error) {
	res := ModeResult{Mode: mode, Workload: workload}
	c, before, err := m.prepare(ctx, mode, workload)
	if err != nil {
		return res, err
	}
	var w *watchProc
	if mode != "scan" && workload != "offline" {
		if w, err = m.startWatch(c); err != nil {
			return res, err
		}
		defer w.stop()
	}

	m.proxy.Reset()
	var cpu0 time.Duration
	if w != nil {
		cpu0 = w.cpu()
	}
	changed, err := m.apply(workload, c.src)
	if err != nil {
		return res, err
	}
	end := time.Now()
	if mode != "scan" && workload == "offline" {
		// The watch starts after the changes: its start-up (a full sync
		// for hybrid) is part of the time to consistency.
		if w, err = m.startWatch(c); err != nil {
			return res, err
		}
		defer w.stop()
		cpu0 = 0
	}

	if mode == "scan" {
		err = m.measureScan(ctx, c, changed, &res)
	} else {
		err = m.measureWatch(ctx, c, w, changed, end, cpu0, &res)
	}
	if err != nil {
		return res, err
	}
	st := m.proxy.Stats()
	res.S3Requests, res.BytesUploaded = st.Requests, st.BytesUploaded
	if !m.o.NoUpload {
		after, err := m.state(ctx, c.prefix)
		if err != nil {
			return res, err
		}
		res.Missed, res.Invented = compareState(before, after, treeState(c.src), changed)
	}
	return res, nil
}

// prepare writes the case's tree, syncs it to the bucket, and returns the
// case with the bucket's state under its prefix.
func (m *modes) prepare(ctx context.Context, mode, workload string) (*modeCase, state, error) {
	name := mode + "-" + workload
	c := &modeCase{mode: mode, dir: filepath.Join(m.o.Dir, name)}
	c.src = filepath.Join(c.dir, "src")
	os.RemoveAll(c.dir)
	if _, err := MakeTree(c.src, TreeSpec{Files: m.o.Files, MaxSize: 8192, Seed: 3}); err != nil {
		return nil, nil, err
	}
	c.prefix = name + "/"
	c.target = m.target(c.src, c.prefix, filepath.Join(c.dir, "manifest.db"))
	// Hashes taken within 2 s of a file's mtime are not trusted (racily
	// clean): as with a real tree, the files are older than that.
	time.Sleep(2100 * time.Millisecond)
	if out, err := m.ck(append([]string{"sync", "-q"}, c.target...)...).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("initial sync: %v: %s", err, out)
	}
	before, err := m.state(ctx, c.prefix)
	if err != nil {
		return nil, nil, err
	}
	c.dry = []string{}
	if m.o.NoUpload {
		c.dry = []string{"--dry-run"}
	}
	return c, before, nil
}

// startWatch starts the case's watch: --events-only for "events", with the
// bench's --rescan for "hybrid"; --json, whose events the bench follows.
func (m *modes) startWatch(c *modeCase) (*watchProc, error) {
	args := append([]string{"watch", "--json", "--push-interval", m.o.Push.String(), "--persist-interval", m.o.Push.String()}, c.target...)
	if c.mode == "events" {
		args = append(args, "--events-only")
	} else {
		args = append(args, "--rescan", m.o.Rescan.String())
	}
	return startWatchProc(m.ck(append(args, c.dry...)...), c.mode == "hybrid", filepath.Join(c.dir, "watch.log"))
}

// measureScan times the sync that follows the workload.
func (m *modes) measureScan(ctx context.Context, c *modeCase, changed map[string]bool, res *ModeResult) error {
	r, err := Measure(ctx, Command{Name: m.o.Binary, Args: append(append([]string{"sync"}, c.target...), c.dry...), Dir: m.o.Dir,
		Env: []string{"AWS_ACCESS_KEY_ID=" + m.gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.gw.SecretKey}})
	if err != nil {
		return err
	}
	res.WallS, res.CPUS, res.PeakRSSBytes = r.Wall.Seconds(), r.CPU.Seconds(), r.MaxRSS
	if m.o.NoUpload {
		res.Missed, res.Invented = compareReported(changed, reportedPaths(r.Stdout))
	}
	return nil
}

// measureWatch takes the time the running watch w needs to make the bucket
// consistent after the workload ended at end, and its CPU (since cpu0),
// memory and watches.
func (m *modes) measureWatch(ctx context.Context, c *modeCase, w *watchProc, changed map[string]bool, end time.Time, cpu0 time.Duration, res *ModeResult) error {
	wall, err := m.untilConsistent(ctx, c, w, changed, end)
	res.WallS = wall
	if err != nil {
		return err
	}
	if c.mode == "hybrid" {
		// Hybrid pays for its safety: wait for one periodic rescan
		// that started after the workload, so that its CPU and memory
		// are in the row (the time until consistent is not changed).
		for limit := time.Now().Add(2*m.o.Rescan + 30*time.Second); !w.rescannedSince(end) && time.Now().Before(limit); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	res.CPUS = (w.cpu() - cpu0).Seconds()
	res.PeakRSSBytes = w.peakRSS()
	res.Watches = w.watches()
	if m.o.NoUpload {
		res.Missed, res.Invented = compareReported(changed, w.reported())
	}
	return nil
}

// untilConsistent is the seconds from end until the end of the push after
// which the bucket matched the tree (with NoUpload: after which the watch
// had reported every change), or Settle if none did by then.
func (m *modes) untilConsistent(ctx context.Context, c *modeCase, w *watchProc, changed map[string]bool, end time.Time) (float64, error) {
	// Check now, then after each push: the time counted is that of the
	// push after which the bucket was consistent. (Checking lists the
	// whole bucket: doing it while a push runs would slow the push.)
	deadline := end.Add(m.o.Settle)
	for seen := -1; time.Now().Before(deadline); {
		n, last := w.pushCount()
		if n == seen {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		seen = n
		ok := false
		var err error
		if m.o.NoUpload {
			missed, _ := compareReported(changed, w.reported())
			ok = missed == 0
		} else if ok, err = m.consistent(ctx, c.prefix, c.src); err != nil {
			return m.o.Settle.Seconds(), err
		}
		if ok {
			// A push that ran during the check may be what made the
			// bucket consistent: count until the end of every push
			// begun by then (later, never earlier, than the truth).
			for time.Now().Before(deadline) && w.pushing() {
				time.Sleep(50 * time.Millisecond)
			}
			n, last = w.pushCount()
			w.benchNote(fmt.Sprintf("the bucket matches the tree after push %d", n))
			return max(0, last.Sub(end).Seconds()), nil
		}
	}
	return m.o.Settle.Seconds(), nil
}
