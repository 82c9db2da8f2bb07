package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// hook is a local webhook that records what it is sent.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	posts    []post
	failNext int // answer this many requests with 503, recording nothing
	refused  int // requests so answered
}

type post struct {
	path string
	body report.Notification
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n report.Notification
		json.NewDecoder(r.Body).Decode(&n)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.failNext > 0 {
			h.failNext--
			h.refused++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.posts = append(h.posts, post{r.URL.Path, n})
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) take() []post {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.posts
	h.posts = nil
	return p
}

// Runs are recorded in the manifest, and status reports them, what the
// backup holds, and whether it is stale.
func TestStatusReportsRuns(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "beta"}})
	status := func(args ...string) result {
		return e.run(append(append([]string{"status"}, e.baseArgs()...), args...)...)
	}
	r := status()
	if r.code != 1 || !strings.Contains(r.stderr, "no sync has run") {
		t.Fatalf("before any run: exit %d, %s", r.code, r.stderr)
	}
	e.sync(0)
	scantest.Write(t, e.src, "c.txt", "gamma")
	e.denyAll()
	e.sync(1) // a failed run
	e.proxy.SetFault(nil)
	e.sync(0)
	r = status()
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"objects:      3 (14 B)", "up to date (max age 25h0m0s)", "ok           1 upload (5 B), 0 renames, 0 copies, 0 deletes; 2 files unchanged",
		"failed       0 uploads (0 B), 0 renames, 0 copies, 0 deletes; ", "unchanged: bucket", "denied access", "ok           2 uploads (9 B)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = status("--json", "--max-age", "1ns")
	if r.code != 1 {
		t.Fatalf("a stale backup: exit %d", r.code)
	}
	var st report.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Stale || st.Objects != 3 || len(st.Runs) != 3 || st.Runs[0].Add != 1 || *st.Runs[1].ExitCode != 1 || *st.Runs[2].ExitCode != 0 || st.LastSuccess == nil {
		t.Fatalf("status %+v", st)
	}
}

// A failed run notifies URL/fail; with --notify-on always a good run
// notifies URL; a notification that cannot be sent is logged and does not
// fail the backup.
func TestNotifications(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	h := newHook(t)
	e.sync(0, "--notify-url", h.URL+"/ping/abc")
	if p := h.take(); len(p) != 0 {
		t.Fatalf("notified a good run by default: %+v", p)
	}
	e.sync(0, "--notify-url", h.URL+"/ping/abc", "--notify-on", "always")
	p := h.take()
	if len(p) != 1 || p[0].path != "/ping/abc" || p[0].body.Status != "success" || p[0].body.Add != 0 || p[0].body.Unchanged != 1 ||
		p[0].body.Bucket != e.bucket || p[0].body.Source == "" || p[0].body.Host == "" || p[0].body.Objects != 1 {
		t.Fatalf("posts %+v", p)
	}
	r := e.sync(1, "--notify-url", h.URL+"/ping/abc", "--bucket", "no-such-bucket-to-notify")
	p = h.take()
	if len(p) != 1 || p[0].path != "/ping/abc/fail" || p[0].body.Status != "failure" || p[0].body.ExitCode != 1 || !strings.Contains(p[0].body.Error, "does not exist") {
		t.Fatalf("posts %+v\n%s", p, r.stderr)
	}
	// A ping service that is briefly down gets the notification on a retry.
	h.mu.Lock()
	h.failNext = 2
	h.mu.Unlock()
	e.sync(0, "--notify-url", h.URL+"/ping/abc", "--notify-on", "always")
	if p := h.take(); len(p) != 1 || p[0].body.Status != "success" || h.refused != 2 {
		t.Fatalf("after 2 refusals: posts %+v, refused %d", p, h.refused)
	}
	h.Close()
	r = e.sync(0, "--notify-url", h.URL+"/ping/abc", "--notify-on", "always")
	if !strings.Contains(r.stderr, "could not send the notification") || strings.Contains(r.stderr, "/ping/abc") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestMetricsFile(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "beta"}})
	path := filepath.Join(e.state, "cloudkeeper.prom")
	e.sync(0, "--metrics-file", path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := string(b)
	for _, want := range []string{
		"# TYPE cloudkeeper_last_success_timestamp_seconds gauge",
		`cloudkeeper_objects{source=`, `,bucket="` + e.bucket + `",prefix="laptop/"} 2`,
		"cloudkeeper_last_run_exit_code{", "} 0\n",
		"cloudkeeper_last_run_uploaded_bytes{", "} 9\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	success := metricValue(t, m, "cloudkeeper_last_success_timestamp_seconds")
	if success < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success %v", success)
	}
	// A failed run keeps the time of the last success.
	scantest.Write(t, e.src, "c.txt", "gamma")
	e.denyAll()
	e.sync(1, "--metrics-file", path)
	b, _ = os.ReadFile(path)
	if got := metricValue(t, string(b), "cloudkeeper_last_run_exit_code"); got != 1 {
		t.Errorf("exit code metric %v", got)
	}
	if got := metricValue(t, string(b), "cloudkeeper_last_success_timestamp_seconds"); got != success {
		t.Errorf("last success moved from %v to %v after a failure", success, got)
	}
}

func metricValue(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, name+"{") {
			var v float64
			if _, err := fmt.Sscan(l[strings.LastIndex(l, " ")+1:], &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s in\n%s", name, text)
	return 0
}

// sync --every runs on a schedule, one run at a time, and stops cleanly on
// SIGTERM.
func TestSyncEvery(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	cmd := exec.Command(binPath, append(append([]string{"sync"}, e.baseArgs()...), "--every", "1s")...)
	cmd.Env = e.environ()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	runs := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), "unchanged") {
			runs++
			if runs == 1 {
				scantest.Write(t, e.src, "b.txt", "written between runs")
			}
			if runs == 3 {
				cmd.Process.Signal(syscall.SIGTERM)
				break
			}
		}
	}
	io.Copy(io.Discard, stdout)
	err := cmd.Wait()
	if err != nil || !strings.Contains(stderr.String(), "stopped by signal") {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	e.checkBucketIsTree()
	r := e.run(append([]string{"status", "--json"}, e.baseArgs()...)...)
	var st report.Status
	json.Unmarshal([]byte(r.stdout), &st)
	if len(st.Runs) < 3 {
		t.Fatalf("%d runs recorded", len(st.Runs))
	}
	for _, run := range st.Runs[1:] {
		if run.Ended == nil {
			t.Fatalf("a run before the last did not end: %+v", run)
		}
	}
}

// With --log-format json every line on stderr is JSON; the change lines
// stay on stdout. -q prints nothing for a good run.
func TestLogFormatsAndQuiet(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "link": scantest.Symlink{Target: "a.txt"}})
	r := e.sync(0, "--log-format", "json", "--dry-run")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) < 2 {
		t.Fatalf("stderr %q", r.stderr)
	}
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("stderr line is not JSON: %q", l)
		}
		if v["msg"] == "skipped" && v["path"] != "link" {
			t.Errorf("skip line %v", v)
		}
	}
	if !strings.HasPrefix(r.stdout, "add     a.txt") {
		t.Fatalf("stdout %q", r.stdout)
	}
	// The SDK's own warnings too: without credentials the chain asks the
	// instance metadata service, which here refuses a token (IMDSv2), so
	// the SDK warns that it falls back to IMDSv1.
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		http.NotFound(w, r)
	}))
	defer imds.Close()
	cmd := exec.Command(binPath, append(append([]string{"sync"}, e.baseArgs()...), "--log-format", "json", "--dry-run", "-v")...)
	cmd.Env, cmd.Dir = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.state, "AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL}, e.state
	out, _ := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("without credentials, a stderr line is not JSON: %q", l)
		}
	}
	if !strings.Contains(string(out), "IMDSv1") {
		t.Errorf("the SDK's fallback warning is not in the log:\n%s", out)
	}
	r = e.sync(0, "-q")
	if r.stdout != "" || r.stderr != "" {
		t.Fatalf("-q printed stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = e.sync(1, "-q", "--bucket", "no-such-bucket-quiet")
	if !strings.Contains(r.stderr, "ERROR") {
		t.Fatalf("-q hid an error: %q", r.stderr)
	}
}

// denyAll makes the S3 server refuse every request, as with credentials
// that lost their rights.
func (e *env) denyAll() {
	e.proxy.SetFault(func(*http.Request) *s3test.Fault { return &s3test.Fault{Status: 403, Code: "AccessDenied"} })
}
