package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
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

// afterRun notifies and writes metrics once a run has ended (see package
// report). Neither ever fails the backup: their failures are logged.
type afterRun struct {
	log         *slog.Logger
	t           report.Target
	notify      report.Notifier // URL empty: no notification
	notifyAll   bool
	metricsFile string
}

func loadAfterRun(c *cli.Context, log *slog.Logger, t target) (afterRun, error) {
	host, _ := os.Hostname()
	a := afterRun{log: log, t: t.report(), notify: report.Notifier{URL: c.String(flagNotifyURL), Host: host}, metricsFile: c.String(flagMetricsFile)}
	switch c.String(flagNotifyOn) {
	case "failure":
	case "always":
		a.notifyAll = true
	default:
		return a, usageError{fmt.Errorf("--notify-on %q: want failure or always", c.String(flagNotifyOn))}
	}
	if a.notify.URL != "" {
		if err := report.CheckURL(a.notify.URL); err != nil {
			return a, usageError{fmt.Errorf("--notify-url: %w", err)}
		}
	}
	return a, nil
}

func (a afterRun) done(ctx context.Context, res outcome) {
	if res.DryRun {
		return
	}
	run := report.Run{Result: res.Result, ExitCode: res.exitCode(), FirstErrors: res.firstErrors}
	if a.metricsFile != "" {
		if err := report.WriteMetrics(a.metricsFile, a.t, run); err != nil {
			msg := err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				msg += ": create it or change --" + flagMetricsFile
			}
			a.log.Warn("could not write the metrics file", "path", a.metricsFile, "error", msg)
		}
	}
	if a.notify.URL != "" && (a.notifyAll || run.ExitCode != exitOK) {
		n, err := a.notify.Send(context.WithoutCancel(ctx), a.t, run)
		if err != nil {
			a.log.Warn("could not send the notification; the backup itself is not affected", "host", a.notify.Where(), "error", err.Error())
			return
		}
		a.log.Debug("notification sent", "host", a.notify.Where(), "status", n.Status)
	}
}
