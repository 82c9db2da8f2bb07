package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
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

// run measures one workload under one mode.
func (m *modes) run(ctx context.Context, mode, workload string) (ModeResult, error) {
	res := ModeResult{Mode: mode, Workload: workload}
	name := mode + "-" + workload
	src := filepath.Join(m.o.Dir, name, "src")
	os.RemoveAll(filepath.Join(m.o.Dir, name))
	if _, err := MakeTree(src, TreeSpec{Files: m.o.Files, MaxSize: 8192, Seed: 3}); err != nil {
		return res, err
	}
	prefix, manifest := name+"/", filepath.Join(m.o.Dir, name, "manifest.db")
	target := m.target(src, prefix, manifest)
	// Hashes taken within 2 s of a file's mtime are not trusted (racily
	// clean): as with a real tree, the files are older than that.
	time.Sleep(2100 * time.Millisecond)
	if out, err := m.ck(append([]string{"sync", "-q"}, target...)...).CombinedOutput(); err != nil {
		return res, fmt.Errorf("initial sync: %v: %s", err, out)
	}
	before, err := m.state(ctx, prefix)
	if err != nil {
		return res, err
	}
	dry := []string{}
	if m.o.NoUpload {
		dry = []string{"--dry-run"}
	}

	var w *watchProc
	startWatch := func() error {
		args := append([]string{"watch", "--push-interval", m.o.Push.String(), "--persist-interval", m.o.Push.String()}, target...)
		if mode == "events" {
			args = append(args, "--events-only")
		} else {
			args = append(args, "--rescan", m.o.Rescan.String())
		}
		var err error
		w, err = startWatchProc(m.ck(append(args, dry...)...), mode == "hybrid", filepath.Join(m.o.Dir, name, "watch.log"))
		return err
	}
	if mode != "scan" && workload != "offline" {
		if err := startWatch(); err != nil {
			return res, err
		}
		defer w.stop()
	}

	m.proxy.Reset()
	var cpu0 time.Duration
	if w != nil {
		cpu0 = w.cpu()
	}
	changed, err := m.apply(workload, src)
	if err != nil {
		return res, err
	}
	end := time.Now()
	if mode != "scan" && workload == "offline" {
		// The watch starts after the changes: its start-up (a full sync
		// for hybrid) is part of the time to consistency.
		if err := startWatch(); err != nil {
			return res, err
		}
		defer w.stop()
		cpu0 = 0
	}

	if mode == "scan" {
		r, err := Measure(ctx, Command{Name: m.o.Binary, Args: append(append([]string{"sync"}, target...), dry...), Dir: m.o.Dir,
			Env: []string{"AWS_ACCESS_KEY_ID=" + m.gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + m.gw.SecretKey}})
		if err != nil {
			return res, err
		}
		res.WallS, res.CPUS, res.PeakRSSBytes = r.Wall.Seconds(), r.CPU.Seconds(), r.MaxRSS
		if m.o.NoUpload {
			res.Missed, res.Invented = compareReported(changed, reportedPaths(r.Stdout))
		}
	} else {
		// Check now, then after each push: the time counted is that of the
		// push after which the bucket was consistent. (Checking lists the
		// whole bucket: doing it while a push runs would slow the push.)
		deadline := end.Add(m.o.Settle)
		res.WallS = m.o.Settle.Seconds()
		for seen := -1; time.Now().Before(deadline); {
			n, last := w.pushCount()
			if n == seen {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			seen = n
			ok := false
			if m.o.NoUpload {
				missed, _ := compareReported(changed, w.reported())
				ok = missed == 0
			} else if ok, err = m.consistent(ctx, prefix, src); err != nil {
				return res, err
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
				res.WallS = max(0, last.Sub(end).Seconds())
				break
			}
		}
		if mode == "hybrid" {
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
	}
	st := m.proxy.Stats()
	res.S3Requests, res.BytesUploaded = st.Requests, st.BytesUploaded
	if !m.o.NoUpload {
		after, err := m.state(ctx, prefix)
		if err != nil {
			return res, err
		}
		res.Missed, res.Invented = compareState(before, after, treeState(src), changed)
	}
	return res, nil
}

// apply makes the workload's changes to the tree and returns the paths it
// changed (relative to src).
func (m *modes) apply(workload, src string) (map[string]bool, error) {
	changed := map[string]bool{}
	files := listFiles(src)
	switch workload {
	case "idle":
		time.Sleep(3 * time.Second)
	case "trickle":
		for i := range 20 {
			p := files[(i*997)%len(files)]
			if err := appendTo(filepath.Join(src, p), fmt.Sprintf(" edit %d", i)); err != nil {
				return nil, err
			}
			changed[p] = true
			time.Sleep(100 * time.Millisecond)
		}
	case "burst":
		if _, err := MakeTree(filepath.Join(src, "burst"), TreeSpec{Files: m.o.Burst, MaxSize: 4096, Seed: 4}); err != nil {
			return nil, err
		}
		for _, p := range listFiles(filepath.Join(src, "burst")) {
			changed["burst/"+p] = true
		}
	case "rename":
		for _, p := range files {
			if strings.HasPrefix(p, "d0000/") {
				changed[p] = true
				changed["moved/"+p] = true
			}
		}
		if err := os.MkdirAll(filepath.Join(src, "moved"), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(src, "d0000"), filepath.Join(src, "moved", "d0000")); err != nil {
			return nil, err
		}
	case "delete":
		for _, d := range []string{"d0001", "d0002"} {
			for _, p := range files {
				if strings.HasPrefix(p, d+"/") {
					changed[p] = true
				}
			}
			if err := os.RemoveAll(filepath.Join(src, d)); err != nil {
				return nil, err
			}
		}
	case "offline":
		for i := range 50 {
			p := files[(i*331)%len(files)]
			if err := appendTo(filepath.Join(src, p), " edited offline"); err != nil {
				return nil, err
			}
			changed[p] = true
		}
		for i := range 100 {
			p := fmt.Sprintf("offline/new-%03d.txt", i)
			if err := writeFile(filepath.Join(src, p), fmt.Sprintf("new %d", i)); err != nil {
				return nil, err
			}
			changed[p] = true
		}
		for i := range 100 {
			p := files[(i*577+13)%len(files)]
			if !changed[p] {
				os.Remove(filepath.Join(src, p))
				changed[p] = true
			}
		}
	case "overflow":
		// A storm of writes from several goroutines, faster than events can
		// be read: each file ends with one line per write.
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		per := m.o.Storm / 4
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					p := files[(g*per+i)%len(files)]
					if err := appendTo(filepath.Join(src, p), "."); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
					mu.Lock()
					changed[p] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return nil, firstErr
		}
	default:
		return nil, fmt.Errorf("unknown workload %q (have %s)", workload, strings.Join(AllWorkloads, ", "))
	}
	return changed, nil
}

func listFiles(root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func appendTo(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeFile(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// state is path -> size, of the bucket under a prefix or of a tree.
type state map[string]int64

func (m *modes) state(ctx context.Context, prefix string) (state, error) {
	st := state{}
	pages := s3.NewListObjectsV2Paginator(m.client, &s3.ListObjectsV2Input{Bucket: aws.String(m.bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			st[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = aws.ToInt64(o.Size)
		}
	}
	return st, nil
}

func treeState(root string) state {
	st := state{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			rel, _ := filepath.Rel(root, p)
			st[filepath.ToSlash(rel)] = fi.Size()
		}
		return nil
	})
	return st
}

// consistent reports whether the bucket has exactly the tree's paths with
// their sizes (every workload here changes sizes).
func (m *modes) consistent(ctx context.Context, prefix, src string) (bool, error) {
	bucket, err := m.state(ctx, prefix)
	if err != nil {
		return false, err
	}
	tree := treeState(src)
	if len(bucket) != len(tree) {
		return false, nil
	}
	for p, size := range tree {
		if s, ok := bucket[p]; !ok || s != size {
			return false, nil
		}
	}
	return true, nil
}

// compareState counts, against the ground truth of the tree: the changed
// paths whose change the bucket does not show (missed), and the paths the
// workload did not change whose object changed (invented).
func compareState(before, after, tree state, changed map[string]bool) (missed, invented int) {
	paths := map[string]bool{}
	for _, s := range []state{before, after, tree} {
		for p := range s {
			paths[p] = true
		}
	}
	for p := range paths {
		want, inTree := tree[p]
		got, inBucket := after[p]
		ok := inTree == inBucket && want == got
		switch {
		case ok:
		case changed[p]:
			missed++
		default:
			invented++
		}
	}
	return missed, invented
}

// reportedPaths are the paths of the JSON change lines of a dry run.
func reportedPaths(stdout string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(stdout, "\n") {
		for _, field := range []string{`"path":"`, `"from":"`} {
			if i := strings.Index(l, field); i >= 0 {
				rest := l[i+len(field):]
				if j := strings.IndexByte(rest, '"'); j >= 0 {
					out[rest[:j]] = true
				}
			}
		}
	}
	return out
}

func compareReported(changed, reported map[string]bool) (missed, invented int) {
	for p := range changed {
		if !reported[p] {
			missed++
		}
	}
	for p := range reported {
		if !changed[p] {
			invented++
		}
	}
	return missed, invented
}

// watchProc is a running "cloudkeeper watch".
type watchProc struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	out     strings.Builder
	log     *os.File    // the watch's stderr, with the bench's notes
	pushes  []time.Time // when each push's summary line came
	begun   int         // pushes (and full syncs) begun
	rescans []time.Time // when each periodic rescan began
	done    chan struct{}
}

// pushCount is how many pushes ended, and when the last one did.
func (w *watchProc) pushCount() (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pushes) == 0 {
		return 0, time.Time{}
	}
	return len(w.pushes), w.pushes[len(w.pushes)-1]
}

// pushing says whether a push has begun and not ended.
func (w *watchProc) pushing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.begun > len(w.pushes)
}

// logLine keeps a line of the watch's log.
func (w *watchProc) logLine(line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(w.log, line)
}

// benchNote adds the bench's own observation to the watch's log, so that
// the log says which push made the bucket consistent.
func (w *watchProc) benchNote(msg string) {
	w.logLine(time.Now().Format("2006-01-02 15:04:05.000") + " BENCH " + msg)
}

// rescannedSince says whether a periodic rescan began after t and ended.
func (w *watchProc) rescannedSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.rescans {
		if r.Before(t) {
			continue
		}
		for _, p := range w.pushes {
			if !p.Before(r) {
				return true
			}
		}
	}
	return false
}

// startWatchProc starts a watch and waits until it watches (and, for a
// hybrid one, until its start-up sync ended). Its log goes to logPath, to
// read after the bench why a watch did what it did (a safety scan, say).
func startWatchProc(cmd *exec.Cmd, hybrid bool, logPath string) (*watchProc, error) {
	w := &watchProc{cmd: cmd, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w.log = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			w.logLine(sc.Text())
			if strings.Contains(sc.Text(), " INFO full sync") || strings.Contains(sc.Text(), " INFO pushing dirty paths") {
				w.mu.Lock()
				w.begun++
				w.mu.Unlock()
			}
			if strings.Contains(sc.Text(), "full sync") && strings.Contains(sc.Text(), "periodic rescan") {
				w.mu.Lock()
				w.rescans = append(w.rescans, time.Now())
				w.mu.Unlock()
			}
			if strings.Contains(sc.Text(), "msg=watching") || strings.Contains(sc.Text(), " INFO watching") {
				if !hybrid {
					once.Do(func() { close(ready) })
				}
			}
		}
	}()
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			summary := strings.HasPrefix(sc.Text(), `{"summary"`)
			if summary {
				w.benchNote("push ended: " + sc.Text())
			}
			w.mu.Lock()
			w.out.WriteString(sc.Text() + "\n")
			if summary {
				w.pushes = append(w.pushes, time.Now())
			}
			w.mu.Unlock()
			if hybrid && summary {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
		return w, nil
	case <-time.After(2 * time.Minute):
		w.stop()
		return nil, errors.New("watch did not start in 2 minutes")
	}
}

func (w *watchProc) reported() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return reportedPaths(w.out.String())
}

func (w *watchProc) stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		w.cmd.Process.Kill()
	}
	w.cmd.Wait()
	w.mu.Lock()
	w.log.Close()
	w.mu.Unlock()
}

// cpu is the process's user and system time so far.
func (w *watchProc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func (w *watchProc) peakRSS() int64 {
	return vmHWM(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid)) * 1024
}

// watches counts the inotify watches the process holds.
func (w *watchProc) watches() int {
	return max(0, scanner.InotifyWatches(w.cmd.Process.Pid))
}
