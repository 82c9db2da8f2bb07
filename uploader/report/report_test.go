package report

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

var target = Target{Source: "/home/me/work", Bucket: "backups", Prefix: "laptop/"}

func testRun(exit int) Run {
	start := time.Unix(1_800_000_000, 0)
	r := Run{ExitCode: exit, FirstErrors: []string{"secret: permission denied"}}
	r.Started, r.Ended = start, start.Add(1500*time.Millisecond)
	r.LastSuccess = r.Ended
	r.Add, r.Modify, r.Rename, r.Delete, r.Bytes, r.Errors = 2, 1, 1, 3, 4096, 1
	r.Objects, r.ObjectBytes = 20, 1<<20
	r.Requests = manifest.Requests{ByOp: map[string]int64{"HeadBucket": 1, "PutObject": 4, "DeleteObjects": 1}, Bytes: 4096}
	return r
}

func TestMetrics(t *testing.T) {
	m := string(Metrics(target, testRun(mirror.ExitIncomplete)))
	labels := `{source="/home/me/work",bucket="backups",prefix="laptop/"}`
	for _, want := range []string{
		"# HELP cloudkeeper_last_run_timestamp_seconds When the last sync ended.\n# TYPE cloudkeeper_last_run_timestamp_seconds gauge\n",
		"cloudkeeper_last_run_timestamp_seconds" + labels + " 1.8000000015e+09\n",
		"cloudkeeper_last_success_timestamp_seconds" + labels + " 1.8000000015e+09\n",
		"cloudkeeper_last_run_duration_seconds" + labels + " 1.5\n",
		"cloudkeeper_last_run_exit_code" + labels + " 3\n",
		"cloudkeeper_last_run_errors" + labels + " 1\n",
		"cloudkeeper_last_run_uploaded_bytes" + labels + " 4096\n",
		"cloudkeeper_last_run_changes" + labels + " 7\n",
		"cloudkeeper_last_run_requests" + labels + " 6\n",
		"cloudkeeper_objects" + labels + " 20\n",
		"cloudkeeper_bytes" + labels + " 1.048576e+06\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if n := strings.Count(m, "# TYPE "); n != 10 {
		t.Errorf("%d metrics, want 10", n)
	}
	// Never a success: 0, not the zero time's Unix seconds.
	r := testRun(mirror.ExitFatal)
	r.LastSuccess = time.Time{}
	if m := string(Metrics(target, r)); !strings.Contains(m, "cloudkeeper_last_success_timestamp_seconds"+labels+" 0\n") {
		t.Errorf("no success yet is not 0:\n%s", m)
	}
}

func TestWriteMetricsReplacesTheFileWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cloudkeeper.prom")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testRun(mirror.ExitOK)
	if err := WriteMetrics(path, target, r); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(Metrics(target, r)) {
		t.Fatalf("file holds %q (%v), want the metrics", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (the collector reads it)", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A folder that does not exist: an error, no file.
	if err := WriteMetrics(filepath.Join(dir, "none", "x.prom"), target, r); err == nil {
		t.Error("no error for a missing folder")
	}
}

func TestNewNotification(t *testing.T) {
	for _, c := range []struct {
		exit   int
		status string
	}{{mirror.ExitOK, "success"}, {mirror.ExitIncomplete, "incomplete"}, {mirror.ExitFatal, "failure"}, {2, "failure"}} {
		r := testRun(c.exit)
		if c.exit == mirror.ExitFatal {
			r.Err = errors.New("bucket gone")
		}
		n := NewNotification(target, r, "host1")
		if n.Status != c.status || n.ExitCode != c.exit || n.Host != "host1" || n.Source != target.Source ||
			n.Bucket != "backups" || n.Prefix != "laptop/" || n.DurationS != 1.5 || n.Add != 2 || n.Objects != 20 ||
			len(n.FirstErrors) != 1 {
			t.Errorf("exit %d: %+v", c.exit, n)
		}
		if (c.exit == mirror.ExitFatal) != (n.Error == "bucket gone") {
			t.Errorf("exit %d: error %q", c.exit, n.Error)
		}
	}
}

// hook answers the first fail requests with 503 and records the others.
type hook struct {
	mu    sync.Mutex
	fail  int
	tries int
	paths []string
	got   []Notification
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries++
	if h.fail > 0 {
		h.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var n Notification
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&n) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.paths = append(h.paths, r.URL.Path)
	h.got = append(h.got, n)
}

func TestNotifierSendsSuccessToURLAndFailureToFail(t *testing.T) {
	h := &hook{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	n := Notifier{URL: srv.URL + "/ping/abc/", Host: "h", RetryWait: time.Millisecond}
	if _, err := n.Send(context.Background(), target, testRun(mirror.ExitOK)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(context.Background(), target, testRun(mirror.ExitIncomplete)); err != nil {
		t.Fatal(err)
	}
	if strings.Join(h.paths, " ") != "/ping/abc/ /ping/abc/fail" {
		t.Errorf("posted to %v", h.paths)
	}
	if h.got[1].Status != "incomplete" || h.got[1].Bytes != 4096 || h.got[1].Requests.ByOp["PutObject"] != 4 || h.got[1].Requests.Bytes != 4096 {
		t.Errorf("body %+v", h.got[1])
	}
	if n.Where() != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("Where %q", n.Where())
	}
}

func TestNotifierRetries(t *testing.T) {
	h := &hook{fail: 2}
	srv := httptest.NewServer(h)
	defer srv.Close()
	n := Notifier{URL: srv.URL + "/secret-token", RetryWait: time.Millisecond}
	if _, err := n.Send(context.Background(), target, testRun(mirror.ExitOK)); err != nil || h.tries != 3 || len(h.got) != 1 {
		t.Fatalf("err %v after %d tries, %d received: want one on the third", err, h.tries, len(h.got))
	}
	h.fail, h.tries = 5, 0
	_, err := n.Send(context.Background(), target, testRun(mirror.ExitOK))
	if err == nil || h.tries != 3 || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err %v after %d tries: want the 503 after 3", err, h.tries)
	}
	// An unreachable host: the error does not repeat the URL and its token.
	srv.Close()
	_, err = n.Send(context.Background(), target, testRun(mirror.ExitOK))
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("error %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{"https://hc-ping.com/x": true, "http://127.0.0.1:9/": true,
		"ftp://x/": false, "hc-ping.com/x": false, "http://": false, "::": false} {
		if err := CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
}

func TestStale(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		ago   time.Duration
		ok    bool
		stale bool
	}{{time.Hour, true, false}, {25 * time.Hour, true, false}, {25*time.Hour + time.Second, true, true}, {0, false, true}} {
		if got := Stale(now.Add(-c.ago), c.ok, 25*time.Hour, now); got != c.stale {
			t.Errorf("last success %v ago (ok %v): stale %v, want %v", c.ago, c.ok, got, c.stale)
		}
	}
}

func TestReadStatus(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := manifest.Open(path, manifest.Identity{Source: target.Source, Bucket: target.Bucket, Prefix: target.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	st, err := ReadStatus(ctx, db, path, target, time.Hour, 10, now)
	if err != nil || !st.Stale || st.LastSuccess != nil || st.LastReconcile != nil || st.Runs == nil || len(st.Runs) != 0 {
		t.Fatalf("new manifest: %+v, %v", st, err)
	}
	record := func(start time.Time, end time.Time, exit int) {
		id, err := db.StartRun(ctx, start)
		if err != nil {
			t.Fatal(err)
		}
		if !end.IsZero() {
			req := manifest.Requests{ByOp: map[string]int64{"HeadBucket": 1, "PutObject": int64(exit) + 1}, Bytes: 7}
			if err := db.EndRun(ctx, manifest.Run{ID: id, Started: start, Ended: end, ExitCode: exit, Counts: manifest.Counts{Add: 1}, Requests: req}); err != nil {
				t.Fatal(err)
			}
		}
	}
	record(now.Add(-3*time.Hour), now.Add(-3*time.Hour+time.Second), 0)
	record(now.Add(-2*time.Hour), now.Add(-2*time.Hour+time.Second), 1)
	record(now.Add(-time.Hour), time.Time{}, 0) // killed
	if err := db.SetReconciled(ctx, manifest.Reconciled{At: now.Add(-time.Hour), Missing: 1, Extra: 2}); err != nil {
		t.Fatal(err)
	}
	st, err = ReadStatus(ctx, db, path, target, time.Hour, 2, now)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Stale || st.LastSuccess == nil || now.Sub(*st.LastSuccess) > 3*time.Hour || st.MaxAge != "1h0m0s" {
		t.Errorf("last success %v, stale %v: want 3h ago, stale", st.LastSuccess, st.Stale)
	}
	if r := st.LastReconcile; r == nil || r.Findings != (Findings{Missing: 1, Extra: 2}) {
		t.Errorf("last reconcile %+v", r)
	}
	if len(st.Runs) != 2 || st.Runs[0].Ended != nil || st.Runs[0].ExitCode != nil ||
		st.Runs[1].ExitCode == nil || *st.Runs[1].ExitCode != 1 || st.Runs[1].DurationS != 1 || st.Runs[1].Add != 1 {
		t.Errorf("runs %+v", st.Runs)
	}
	if r := st.Runs[1].Requests; r.ByOp["PutObject"] != 2 || r.ByOp["HeadBucket"] != 1 || r.Total() != 3 || r.Bytes != 7 {
		t.Errorf("the failed run's requests %+v, want 1 HeadBucket, 2 PutObject, 7 bytes", r)
	}
	if r := st.Runs[0].Requests; r.Total() != 0 || r.Bytes != 0 {
		t.Errorf("a killed run's requests %+v, want none", r)
	}
	if st, _ := ReadStatus(ctx, db, path, target, 4*time.Hour, 10, now); st.Stale {
		t.Error("stale with a success 3h ago and a max age of 4h")
	}
}

// A metrics file in a folder that is not there says so, not the name of
// the temporary file it could not create.
func TestWriteMetricsToAMissingFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "metrics")
	err := WriteMetrics(filepath.Join(dir, "ck.prom"), target, testRun(mirror.ExitOK))
	if err == nil || err.Error() != "the folder "+dir+" does not exist" || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v", err)
	}
}
