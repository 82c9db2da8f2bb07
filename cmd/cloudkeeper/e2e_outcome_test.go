package main

// How a run that did not succeed shows: its output, its JSON summary, the
// status it leaves for a monitoring check, and what it leaves on disk.

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// jsonResult is what the JSON summary line says of how the run ended.
type jsonResult struct {
	Summary struct {
		Add      int64  `json:"add"`
		Errors   int64  `json:"errors"`
		Result   string `json:"result"`
		ExitCode *int   `json:"exit_code"`
		Error    string `json:"error"`
	} `json:"summary"`
}

func lastJSON(t *testing.T, r result) jsonResult {
	t.Helper()
	var js jsonResult
	if err := json.Unmarshal([]byte(r.summary()), &js); err != nil || js.Summary.ExitCode == nil {
		t.Fatalf("last line is not a JSON summary with an exit_code (%v):\n%s", err, r.stdout)
	}
	return js
}

// failAfterFirstPut lets the first PutObject through and denies every
// request after it: the run has applied one change when it fails.
func (e *env) failAfterFirstPut() {
	var puts atomic.Int64
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" && puts.Add(1) == 1 {
			return nil
		}
		if puts.Load() > 0 {
			return &s3test.Fault{Status: http.StatusForbidden, Code: "AccessDenied"}
		}
		return nil
	})
}

// A fatal run prints no summary of zeros before its error; one that
// applied changes before it failed keeps its summary and says it failed;
// the JSON summary says how every run ended.
func TestSyncSummarySaysHowTheRunEnded(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "beta"}})

	t.Run("fatal before anything", func(t *testing.T) {
		e.t = t
		r := e.sync(1, "--bucket", "no-such-bucket-here")
		if r.stdout != "" || strings.Count(r.stderr, "ERROR") != 1 {
			t.Fatalf("want no stdout and one error\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
		js := lastJSON(t, e.sync(1, "--json", "--bucket", "no-such-bucket-here"))
		if js.Summary.Result != "failure" || *js.Summary.ExitCode != 1 || !strings.Contains(js.Summary.Error, "does not exist") {
			t.Fatalf("JSON summary %+v", js.Summary)
		}
	})

	t.Run("fatal after a change", func(t *testing.T) {
		e.t = t
		e.failAfterFirstPut()
		defer e.proxy.SetFault(nil)
		r := e.sync(1, "--concurrency", "1")
		if len(r.lines()) != 1 || !strings.HasPrefix(r.lines()[0], "add ") {
			t.Fatalf("want the applied upload, got:\n%s", r.stdout)
		}
		if s := r.summary(); !strings.HasPrefix(s, "1 upload (") || !strings.Contains(s, "failed") {
			t.Fatalf("summary %q: want the upload done, and that the run failed", s)
		}
		if n := strings.Count(r.stderr, "ERROR"); n != 1 || !strings.Contains(r.stderr, "denied access") {
			t.Fatalf("want one error:\n%s", r.stderr)
		}
	})

	t.Run("success and incomplete", func(t *testing.T) {
		e.t = t
		js := lastJSON(t, e.sync(0, "--json"))
		if js.Summary.Result != "success" || *js.Summary.ExitCode != 0 || js.Summary.Add != 1 {
			t.Fatalf("JSON summary %+v", js.Summary)
		}
		scantest.Write(t, e.src, "c.txt", "gamma")
		e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
			if s3test.Operation(r) == "PutObject" && strings.HasSuffix(r.URL.Path, "/c.txt") {
				return &s3test.Fault{Status: http.StatusInternalServerError}
			}
			return nil
		})
		js = lastJSON(t, e.sync(3, "--json", "--retries", "1"))
		if js.Summary.Result != "incomplete" || *js.Summary.ExitCode != 3 || js.Summary.Errors != 1 || js.Summary.Error != "" {
			t.Fatalf("JSON summary %+v", js.Summary)
		}
		st := e.run(append([]string{"status"}, e.baseArgs()...)...)
		if st.code != 3 || !strings.Contains(st.stdout, "INCOMPLETE: 1 path or change failed") {
			t.Fatalf("status after an incomplete run: exit %d\n%s", st.code, st.stdout)
		}
		e.proxy.SetFault(nil)
		e.sync(0)
		if st := e.run(append([]string{"status"}, e.baseArgs()...)...); st.code != 0 {
			t.Fatalf("status after the repair: exit %d\n%s", st.code, st.stdout)
		}
	})
}

// status shows a last run that failed or was interrupted, with the words
// the run printed, and exits as that run did: a monitoring check that runs
// status sees the failure.
func TestStatusShowsAFailingLastRun(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	status := func() result { return e.run(append([]string{"status"}, e.baseArgs()...)...) }
	e.sync(0)
	if r := status(); r.code != 0 || strings.Contains(r.stdout, "last run:") {
		t.Fatalf("after a success: exit %d\n%s", r.code, r.stdout)
	}

	e.denyAll()
	e.sync(1)
	e.proxy.SetFault(nil)
	r := status()
	if r.code != 1 || !strings.Contains(r.stdout, "last run:     ") || !strings.Contains(r.stdout, "FAILED: bucket") ||
		!strings.Contains(r.stdout, "denied access") || strings.Contains(r.stdout, "up to date") {
		t.Fatalf("after a failed run: exit %d, want 1 and the failure:\n%s", r.code, r.stdout)
	}

	scantest.Write(t, e.src, "b.txt", "beta")
	terminal := e.interruptAt("PutObject")
	if !strings.Contains(terminal, "interrupted; ") {
		t.Fatalf("the interrupted run said:\n%s", terminal)
	}
	r = status()
	if r.code != 1 || !strings.Contains(r.stdout, "INTERRUPTED: interrupted; what was confirmed is recorded") {
		t.Fatalf("after an interrupted run: exit %d, want 1 and interrupted:\n%s", r.code, r.stdout)
	}
	if _, runs, _ := strings.Cut(r.stdout, "CHANGES\n"); !strings.Contains(strings.SplitN(runs, "\n", 2)[0], "interrupted") ||
		strings.Contains(r.stdout, "context canceled") {
		t.Fatalf("the runs do not show the interrupted run as such:\n%s", r.stdout)
	}
	js := e.run(append([]string{"status", "--json"}, e.baseArgs()...)...)
	var st report.Status
	if err := json.Unmarshal([]byte(js.stdout), &st); err != nil || js.code != 1 {
		t.Fatalf("status --json: exit %d, %v\n%s", js.code, err, js.stdout)
	}
	if st.Runs[0].Result != "interrupted" || st.Runs[1].Result != "failure" || st.Runs[2].Result != "success" {
		t.Fatalf("results %q %q %q", st.Runs[0].Result, st.Runs[1].Result, st.Runs[2].Result)
	}

	e.sync(0)
	if r := status(); r.code != 0 || strings.Contains(r.stdout, "last run:") {
		t.Fatalf("after a success again: exit %d\n%s", r.code, r.stdout)
	}
}

// interruptAt runs sync and sends it SIGINT when its first request of
// operation op reaches the proxy, which holds that request until the
// client gives up; it returns what the run printed.
func (e *env) interruptAt(op string) string {
	e.t.Helper()
	cmd := exec.Command(binPath, append([]string{"sync"}, e.baseArgs()...)...)
	cmd.Env = e.environ()
	var once sync.Once
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) != op {
			return nil
		}
		once.Do(func() { cmd.Process.Signal(syscall.SIGINT) })
		return &s3test.Fault{Delay: time.Minute}
	})
	defer e.proxy.SetFault(nil)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		e.t.Fatalf("the run was not interrupted:\n%s", out.String())
	}
	return out.String()
}

// stateTree lists what is under dir, with modes.
func stateTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	return out
}

// A run that fails before it wrote anything leaves the state folder as it
// was: no manifest, no side file, no folder it made. A first run that
// uploaded something and then failed keeps its manifest.
func TestSyncFailedFirstRunLeavesNothing(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "beta"}})
	closed := closedEndpoint(t)
	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"missing bucket", []string{"--bucket", "no-such-bucket-here"}, nil},
		{"unreachable endpoint", []string{"--endpoint", closed, "--retries", "1"}, nil},
		{"wrong credentials", nil, []string{"AWS_SECRET_ACCESS_KEY=wrong-secret"}},
		{"dry run", []string{"--dry-run", "--bucket", "no-such-bucket-here"}, nil},
	} {
		for _, xdg := range []bool{false, true} {
			name := c.name + ", default under HOME"
			if xdg {
				name = c.name + ", default under XDG_STATE_HOME"
			}
			t.Run(name, func(t *testing.T) {
				e.t = t
				home := t.TempDir()
				os.MkdirAll(filepath.Join(home, ".config"), 0o755) // something a home holds
				e.cmd = func(cmd *exec.Cmd) {
					cmd.Env = append(slices.DeleteFunc(cmd.Env, func(v string) bool {
						return strings.HasPrefix(v, "HOME=") || strings.HasPrefix(v, "XDG_STATE_HOME=")
					}), "HOME="+home)
					if xdg {
						cmd.Env = append(cmd.Env, "XDG_STATE_HOME="+filepath.Join(home, "state"))
					}
					cmd.Env = append(cmd.Env, c.env...)
				}
				defer func() { e.cmd = nil }()
				before := stateTree(t, home)
				e.sync(1, c.args...)
				if after := stateTree(t, home); !slices.Equal(after, before) {
					t.Fatalf("the failed run left %q, was %q", after, before)
				}
			})
		}
	}

	e.t = t
	e.failAfterFirstPut()
	e.sync(1, "--concurrency", "1")
	e.proxy.SetFault(nil)
	var dbs []string
	for _, p := range stateTree(t, e.state) {
		if strings.HasSuffix(p, ".db") {
			dbs = append(dbs, p)
		}
	}
	if len(dbs) != 1 {
		t.Fatalf("after a first run that uploaded and failed, manifests %q, want one", dbs)
	}
	// It records what S3 holds: the next run uploads only the other file.
	if r := e.sync(0); len(r.lines()) != 1 {
		t.Fatalf("the next run: %q", r.lines())
	}
	e.checkBucketIsTree()
}

// A restore that matches nothing says so, with the path and the prefix it
// looked under, and exits 1.
func TestRestoreOfNothingFails(t *testing.T) {
	e := newEnv(t, scantest.Dir{"docs": scantest.Dir{"a.txt": scantest.File{Content: "alpha"}}})
	e.sync(0)
	to := t.TempDir()
	r := e.cmdWant(1, "restore", append(e.bucketArgs(), "--to", to, "--path", "nonexistent")...)
	if !strings.Contains(r.stderr, `"nonexistent"`) || !strings.Contains(r.stderr, "s3://"+e.bucket+"/laptop/") ||
		strings.Contains(r.stdout, "0 files restored") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	e.prefix = "elsewhere/"
	r = e.cmdWant(1, "restore", append(e.bucketArgs(), "--to", to)...)
	if !strings.Contains(r.stderr, "s3://"+e.bucket+"/elsewhere/") || !strings.Contains(r.stderr, "no object") ||
		strings.Contains(r.stdout, "0 files restored") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(to); len(entries) != 0 {
		t.Fatalf("restored %v", entries)
	}
}
