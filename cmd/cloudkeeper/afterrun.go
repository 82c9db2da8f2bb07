package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

// What happens after each run: a notification and a metrics file.
const (
	flagNotifyURL   = "notify-url"
	flagNotifyOn    = "notify-on"
	flagMetricsFile = "metrics-file"
)

func afterRunFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagNotifyURL, EnvVars: []string{"CLOUDKEEPER_NOTIFY_URL"}, Usage: "after each run, POST a JSON summary to `URL` (healthchecks.io style: success to URL, failure to URL/fail)"},
		&cli.StringFlag{Name: flagNotifyOn, EnvVars: []string{"CLOUDKEEPER_NOTIFY_ON"}, Value: "failure", Usage: "notify on `WHEN`: failure (exit status other than 0) or always"},
		&cli.StringFlag{Name: flagMetricsFile, EnvVars: []string{"CLOUDKEEPER_METRICS_FILE"}, Usage: "after each run, write Prometheus metrics to `PATH` (for the node_exporter textfile collector), atomically"},
	}
}

// afterRun notifies and writes metrics once a run has ended. Neither ever
// fails the backup: their failures are logged.
type afterRun struct {
	log         *slog.Logger
	t           target
	notifyURL   string
	notifyAll   bool
	metricsFile string
	client      *http.Client
	// retryWait is the pause before the first retry of a notification,
	// doubled for each next one.
	retryWait time.Duration
}

func loadAfterRun(c *cli.Context, log *slog.Logger, t target) (afterRun, error) {
	a := afterRun{log: log, t: t, notifyURL: c.String(flagNotifyURL), metricsFile: c.String(flagMetricsFile),
		client: &http.Client{Timeout: 10 * time.Second}, retryWait: time.Second}
	switch c.String(flagNotifyOn) {
	case "failure":
	case "always":
		a.notifyAll = true
	default:
		return a, usageError{fmt.Errorf("--notify-on %q: want failure or always", c.String(flagNotifyOn))}
	}
	if a.notifyURL != "" {
		u, err := url.Parse(a.notifyURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return a, usageError{fmt.Errorf("--notify-url: want an http or https URL")}
		}
	}
	return a, nil
}

func (a afterRun) done(ctx context.Context, res outcome) {
	if res.DryRun {
		return
	}
	if a.metricsFile != "" {
		if err := writeMetrics(a.metricsFile, a.t, res); err != nil {
			a.log.Warn("could not write the metrics file", "path", a.metricsFile, "error", err.Error())
		}
	}
	if a.notifyURL != "" && (a.notifyAll || res.exitCode() != exitOK) {
		a.notify(context.WithoutCancel(ctx), res)
	}
}

// notification is the JSON body of a notification.
type notification struct {
	Status    string    `json:"status"` // success, incomplete or failure
	ExitCode  int       `json:"exit_code"`
	Host      string    `json:"host"`
	Source    string    `json:"source"`
	Bucket    string    `json:"bucket"`
	Prefix    string    `json:"prefix"`
	Endpoint  string    `json:"endpoint,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	DurationS float64   `json:"duration_s"`
	manifest.Counts
	Error       string   `json:"error,omitempty"`        // why the run failed
	FirstErrors []string `json:"first_errors,omitempty"` // the first paths that failed
	Objects     int64    `json:"objects"`                // in the backup after the run
	ObjectBytes int64    `json:"object_bytes"`
}

func (a afterRun) notify(ctx context.Context, res outcome) {
	host, _ := os.Hostname()
	n := notification{
		ExitCode: res.exitCode(), Host: host, Source: a.t.Source, Bucket: a.t.Bucket, Prefix: a.t.Prefix,
		Endpoint: a.t.Endpoint, Started: res.Started, Finished: res.Ended, DurationS: res.Ended.Sub(res.Started).Seconds(),
		Counts: res.Counts, FirstErrors: res.firstErrors, Objects: res.Objects, ObjectBytes: res.ObjectBytes,
	}
	target := a.notifyURL
	switch n.ExitCode {
	case exitOK:
		n.Status = "success"
	case exitIncomplete:
		n.Status = "incomplete"
		target = strings.TrimRight(target, "/") + "/fail"
	default:
		n.Status = "failure"
		target = strings.TrimRight(target, "/") + "/fail"
	}
	if res.Err != nil {
		n.Error = res.Err.Error()
	}
	body, _ := json.Marshal(n)
	// The URL may hold a token (a healthchecks.io check's UUID): log its
	// host only.
	where := "?"
	if u, err := url.Parse(target); err == nil {
		where = u.Host
	}
	wait := a.retryWait
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = a.post(ctx, target, body); err == nil {
			a.log.Debug("notification sent", "host", where, "status", n.Status)
			return
		}
		if attempt < 3 {
			time.Sleep(wait)
			wait *= 2
		}
	}
	a.log.Warn("could not send the notification; the backup itself is not affected", "host", where, "error", err.Error())
}

func (a afterRun) post(ctx context.Context, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cloudkeeper")
	resp, err := a.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, token and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// writeMetrics writes the Prometheus textfile for the run, through a
// temporary file renamed into place so that a collector never reads half.
func writeMetrics(path string, t target, res outcome) error {
	labels := fmt.Sprintf(`{source=%q,bucket=%q,prefix=%q}`, t.Source, t.Bucket, t.Prefix)
	var b strings.Builder
	metric := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s%s %g\n", name, help, name, name, labels, v)
	}
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	metric("cloudkeeper_last_run_timestamp_seconds", "When the last sync ended.", unix(res.Ended))
	metric("cloudkeeper_last_success_timestamp_seconds", "When the last sync that exited 0 ended (0: never).", unix(res.LastSuccess))
	metric("cloudkeeper_last_run_duration_seconds", "How long the last sync took.", res.Ended.Sub(res.Started).Seconds())
	metric("cloudkeeper_last_run_exit_code", "Exit status of the last sync: 0 ok, 3 some paths failed, 1 fatal.", float64(res.exitCode()))
	metric("cloudkeeper_last_run_errors", "Paths that failed in the last sync.", float64(res.Errors))
	metric("cloudkeeper_last_run_uploaded_bytes", "Bytes uploaded by the last sync.", float64(res.Bytes))
	metric("cloudkeeper_last_run_changes", "Changes applied by the last sync.", float64(res.Changes()))
	metric("cloudkeeper_objects", "Objects in the backup, per the manifest.", float64(res.Objects))
	metric("cloudkeeper_bytes", "Bytes in the backup, per the manifest.", float64(res.ObjectBytes))
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
