package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the last runs, what the backup holds, and whether it is up to date",
		Description: "Reads the manifest (it sends no S3 request) and prints the last runs of sync, the\n" +
			"number of objects and bytes backed up, whether the last successful run is older than\n" +
			"--max-age, and when the manifest was last reconciled with the bucket and what that found.\n\n" +
			"Exit status: 0 the backup is up to date; 1 the last success is older than --max-age, or\n" +
			"there was none; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.IntFlag{Name: "runs", Value: 10, Usage: "show the last `N` runs"},
			&cli.DurationFlag{Name: "max-age", EnvVars: []string{"CLOUDKEEPER_MAX_AGE"}, Value: 25 * time.Hour, Usage: "a backup whose last success is older than `AGE` is stale"},
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
		),
		Action: func(c *cli.Context) error {
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			t, err := loadTarget(c)
			if err != nil {
				return p.fail(err)
			}
			if _, err := os.Stat(t.Manifest); errors.Is(err, os.ErrNotExist) {
				return p.fail(fmt.Errorf("no manifest at %s: no sync has run for %s yet", t.Manifest, t.identity()))
			}
			db, err := manifest.OpenReadOnly(t.Manifest, t.identity())
			if err != nil {
				return p.fail(err)
			}
			defer db.Close()
			st, err := readStatus(c, db, t)
			if err != nil {
				return p.fail(err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				enc.Encode(st)
			} else {
				st.print(c.App.Writer)
			}
			if st.Stale {
				return reportedError{exitFatal}
			}
			return nil
		},
	}
}

// backupStatus is what status reports.
type backupStatus struct {
	Manifest    string     `json:"manifest"`
	Source      string     `json:"source"`
	Bucket      string     `json:"bucket"`
	Prefix      string     `json:"prefix"`
	Endpoint    string     `json:"endpoint,omitempty"`
	Objects     int64      `json:"objects"`
	Bytes       int64      `json:"bytes"`
	LastSuccess *time.Time `json:"last_success"`
	MaxAge      string     `json:"max_age"`
	Stale       bool       `json:"stale"`
	// LastReconcile is null if the manifest was never reconciled.
	LastReconcile *statusReconcile `json:"last_reconcile"`
	Runs          []statusRun      `json:"runs"`
}

// statusReconcile is the last reconcile: when it listed the bucket, and
// what it found for the run to repair.
type statusReconcile struct {
	At time.Time `json:"at"`
	findings
}

type statusRun struct {
	Started   time.Time  `json:"started"`
	Ended     *time.Time `json:"ended"` // null: still running, or killed
	DurationS float64    `json:"duration_s"`
	ExitCode  *int       `json:"exit_code"`
	manifest.Counts
	Message string `json:"message,omitempty"`
}

func readStatus(c *cli.Context, db *manifest.DB, t target) (backupStatus, error) {
	ctx := c.Context
	maxAge := c.Duration("max-age")
	st := backupStatus{Manifest: t.Manifest, Source: t.Source, Bucket: t.Bucket, Prefix: t.Prefix, Endpoint: t.Endpoint, MaxAge: maxAge.String()}
	var err error
	if st.Objects, st.Bytes, err = db.Count(ctx); err != nil {
		return st, err
	}
	last, ok, err := db.LastSuccess(ctx)
	if err != nil {
		return st, err
	}
	st.Stale = !ok || time.Since(last.Ended) > maxAge
	if ok {
		st.LastSuccess = &last.Ended
	}
	rec, ok, err := db.LastReconciled(ctx)
	if err != nil {
		return st, err
	}
	if ok {
		st.LastReconcile = &statusReconcile{At: rec.At, findings: findingsOf(rec)}
	}
	runs, err := db.Runs(ctx, c.Int("runs"))
	if err != nil {
		return st, err
	}
	st.Runs = []statusRun{}
	for _, r := range runs {
		sr := statusRun{Started: r.Started, Counts: r.Counts, Message: r.Message}
		if r.Finished() {
			ended, code := r.Ended, r.ExitCode
			sr.Ended, sr.ExitCode, sr.DurationS = &ended, &code, r.Duration().Seconds()
		}
		st.Runs = append(st.Runs, sr)
	}
	return st, nil
}

func (st backupStatus) print(w io.Writer) {
	where := fmt.Sprintf("s3://%s/%s", st.Bucket, st.Prefix)
	if st.Endpoint != "" {
		where += " at " + st.Endpoint
	}
	fmt.Fprintf(w, "backup:       %s -> %s\n", st.Source, where)
	fmt.Fprintf(w, "manifest:     %s\n", st.Manifest)
	fmt.Fprintf(w, "objects:      %s (%s)\n", thousands(st.Objects), humanBytes(st.Bytes))
	switch {
	case st.LastSuccess == nil:
		fmt.Fprintf(w, "last success: never: STALE\n")
	case st.Stale:
		fmt.Fprintf(w, "last success: %s (%s ago): STALE, older than %s\n", st.LastSuccess.Format(time.DateTime), ago(*st.LastSuccess), st.MaxAge)
	default:
		fmt.Fprintf(w, "last success: %s (%s ago): up to date (max age %s)\n", st.LastSuccess.Format(time.DateTime), ago(*st.LastSuccess), st.MaxAge)
	}
	if r := st.LastReconcile; r != nil {
		fmt.Fprintf(w, "reconciled:   %s (%s ago): %s\n", r.At.Format(time.DateTime), ago(r.At), r.findings)
	} else {
		fmt.Fprintf(w, "reconciled:   never (sync --reconcile, or the first sync after --reconcile-every)\n")
	}
	if len(st.Runs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%-19s  %9s  %-10s  %s\n", "STARTED", "DURATION", "RESULT", "CHANGES")
	for _, r := range st.Runs {
		dur, result := "-", "killed or still running"
		if r.Ended != nil {
			dur = (time.Duration(r.DurationS * float64(time.Second))).Round(100 * time.Millisecond).String()
			result = map[int]string{exitOK: "ok", exitIncomplete: "incomplete", exitFatal: "failed"}[*r.ExitCode]
			if result == "" {
				result = fmt.Sprintf("exit %d", *r.ExitCode)
			}
		}
		line := fmt.Sprintf("%-19s  %9s  %-10s", r.Started.Format(time.DateTime), dur, result)
		if r.Ended != nil {
			line += "  " + summaryLine(r.Counts)
			if r.Message != "" {
				line += ": " + r.Message
			}
		}
		fmt.Fprintln(w, line)
	}
}

func ago(t time.Time) string { return time.Since(t).Round(time.Second).String() }
