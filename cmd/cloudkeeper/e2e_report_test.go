package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
)

// A source folder that is not there (an unmounted disk, cron's most common
// failure) is a failed run like any other: notified, in the metrics,
// recorded in the manifest (status shows it), a JSON summary; no request
// is sent, and a first run creates no manifest.
func TestSyncMissingSourceIsAFailedRun(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	e.sync(0)
	h := newHook(t)
	metrics := filepath.Join(e.state, "ck.prom")
	src := e.src
	if err := os.Rename(src, src+".away"); err != nil {
		t.Fatal(err)
	}
	r := e.sync(1, "--notify-url", h.URL+"/ping", "--metrics-file", metrics, "--json")
	want := "source folder " + src + " does not exist"
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "is the disk mounted?") {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
	if n := e.proxy.Stats().Requests; n != 0 {
		t.Errorf("a run without its source sent %d requests: %v", n, e.ops())
	}
	var js struct {
		Summary struct {
			Result   string `json:"result"`
			ExitCode int    `json:"exit_code"`
			Error    string `json:"error"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &js); err != nil || js.Summary.Result != "failure" || js.Summary.ExitCode != 1 || !strings.Contains(js.Summary.Error, want) {
		t.Errorf("JSON summary %+v (%v) from stdout %q", js, err, r.stdout)
	}
	p := h.take()
	if len(p) != 1 || p[0].path != "/ping/fail" || !strings.Contains(p[0].body.Error, want) {
		t.Errorf("notifications %+v", p)
	}
	if b, err := os.ReadFile(metrics); err != nil || metricValue(t, string(b), "cloudkeeper_last_run_exit_code") != 1 {
		t.Errorf("metrics file: %v\n%s", err, b)
	}
	// status, with the disk still away, shows the failing last run.
	r = e.run(append([]string{"status", "--json"}, e.baseArgs()...)...)
	var st report.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 1 || len(st.Runs) != 2 || st.LastRun == nil ||
		*st.LastRun.ExitCode != 1 || !strings.Contains(st.LastRun.Message, want) {
		t.Errorf("status: exit %d, %+v (%v)\n%s%s", r.code, st, err, r.stdout, r.stderr)
	}

	// With no manifest for it, status says what is wrong with the source.
	r = e.run(append(append([]string{"status"}, e.baseArgs()...), "--source", src+".typo")...)
	if r.code != 1 || !strings.Contains(r.stderr, "source folder "+src+".typo does not exist (is the disk mounted?): check --source / BACKUP_DIR") {
		t.Errorf("status of a mistyped source: exit %d\n%s", r.code, r.stderr)
	}

	// A first run (no manifest) into a prefix that holds objects: the
	// missing source is what it says, and no manifest is left behind.
	if err := os.Remove(e.manifestPath()); err != nil {
		t.Fatal(err)
	}
	r = e.sync(1, "--notify-url", h.URL+"/ping")
	if !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "already holds objects") {
		t.Errorf("first run without its source: stderr\n%s", r.stderr)
	}
	if dbs, _ := filepath.Glob(filepath.Join(e.state, "cloudkeeper", "*.db")); len(dbs) != 0 {
		t.Errorf("a failed first run left a manifest: %q", dbs)
	}
	if p := h.take(); len(p) != 1 || p[0].path != "/ping/fail" {
		t.Errorf("first run: notifications %+v", p)
	}
}

// watch started without its source fails its start-up run the same way:
// notified, exit 1 with the friendly message.
func TestWatchMissingSourceIsAFailedRun(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	e.sync(0)
	h := newHook(t)
	src := e.src
	if err := os.Rename(src, src+".away"); err != nil {
		t.Fatal(err)
	}
	r := e.run(append(append([]string{"watch"}, e.baseArgs()...), "--notify-url", h.URL+"/ping")...)
	if r.code != 1 || !strings.Contains(r.stderr, "source folder "+src+" does not exist") || !strings.Contains(r.stderr, "is the disk mounted?") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if p := h.take(); len(p) != 1 || p[0].path != "/ping/fail" {
		t.Errorf("notifications %+v", p)
	}
}

// verify of a mistyped or empty prefix is not a good backup: nothing
// listed and nothing expected is exit 1, saying where it looked.
func TestVerifyNothingIsNotGood(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	e.sync(0)
	want := "nothing to verify: no object under s3://" + e.bucket + "/nothere/: check --bucket, --prefix and --endpoint"
	for _, args := range [][]string{
		append(e.bucketArgs(), "--prefix", "nothere/"),                   // no manifest: the bucket alone
		append(e.baseArgs(), "--prefix", "nothere/"),                     // no manifest for that prefix
		append(e.baseArgs(), "--prefix", "nothere/", "--deep", "--json"), // the same, deep
	} {
		r := e.run(append([]string{"verify"}, args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stdout, "good") {
			t.Errorf("verify %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
		}
	}
	// A manifest with no object (an empty source backed up): nothing to
	// check either.
	empty := newEnv(t, scantest.Dir{})
	empty.sync(0)
	r := empty.run(append([]string{"verify"}, empty.baseArgs()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "nothing to verify: no object under s3://"+empty.bucket+"/laptop/") {
		t.Errorf("verify of an empty backup: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	e.verifyGood() // the real prefix still is
}

// A restore that fails leaves no empty folder it created behind, and never
// removes one that was there.
func TestRestoreFailedLeavesNoEmptyFolder(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	e.sync(0)
	made := filepath.Join(t.TempDir(), "new", "r3")
	existing := t.TempDir()
	for _, c := range []struct {
		name string
		to   string
		args []string
		env  []string
	}{
		{"nonexistent path", made, []string{"--path", "nonexistent"}, nil},
		{"wrong secret", made, nil, []string{"AWS_SECRET_ACCESS_KEY=not-the-secret-at-all"}},
		{"existing folder", existing, []string{"--path", "nonexistent"}, nil},
	} {
		e.cmd = func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, c.env...) }
		r := e.run(append(append([]string{"restore", "--to", c.to}, e.bucketArgs()...), c.args...)...)
		e.cmd = nil
		if r.code != 1 {
			t.Fatalf("%s: exit %d\n%s%s", c.name, r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(filepath.Dir(made)); c.to == made && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: a failed restore left %s (%v)", c.name, filepath.Dir(made), err)
		}
	}
	if _, err := os.Stat(existing); err != nil {
		t.Errorf("a failed restore removed the folder that was there: %v", err)
	}
}

// After a killed run, the runs of the next 15 minutes ask S3 again about
// its keys (uploader.SettleWatch): each says so, once, with until when;
// the dry run tells keys never settled from keys only watched.
func TestRunsSayWhyTheyRecheckKeys(t *testing.T) {
	e := newEnv(t, scantest.Dir{"keep.txt": scantest.File{Content: "keep"}})
	e.sync(0)
	scantest.Write(t, e.src, "new.txt", "a new file")
	e.killAfter("PutObject")
	const unsettled = "an interrupted run left keys in doubt: the next real run asks S3 about them first keys=1"
	if r := e.sync(0, "--dry-run"); !strings.Contains(r.stderr, unsettled) {
		t.Errorf("dry run after the kill: stderr\n%s", r.stderr)
	}
	wantSettled(t, e.sync(0), "objects_found=1")
	recheck := regexp.MustCompile(`INFO re-checking 1 key of a run interrupted at (\d\d:\d\d:\d\d), until (\d\d:\d\d:\d\d) \(a request sent just before the interruption may still land\)`)
	r := e.sync(0)
	m := recheck.FindStringSubmatch(r.stderr)
	if m == nil || strings.Count(r.stderr, "re-checking") != 1 || e.ops()["HeadObject"] != 1 {
		t.Fatalf("an unchanged run after the settle: stderr\n%s\nrequests %v", r.stderr, e.ops())
	}
	at, _ := time.Parse("15:04:05", m[1])
	until, _ := time.Parse("15:04:05", m[2])
	if until.Sub(at) != 15*time.Minute {
		t.Errorf("watched from %s until %s, want 15 minutes", m[1], m[2])
	}
	r = e.sync(0, "--dry-run")
	if strings.Contains(r.stderr, unsettled) || strings.Contains(r.stderr, "keys left in doubt by an interrupted run") ||
		!strings.Contains(r.stderr, "the next real run asks S3 again about 1 key of a run interrupted at "+m[1]+", watched until "+m[2]) {
		t.Errorf("dry run of watched keys: stderr\n%s", r.stderr)
	}
}
