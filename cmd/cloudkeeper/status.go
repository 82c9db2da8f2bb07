package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/cost"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the last runs, what the backup holds, and whether it is up to date",
		Description: "Reads the manifest (it sends no S3 request) and prints the last runs of sync (with the\n" +
			"S3 requests each sent and their price at --price-file's prices or S3 Standard's), the\n" +
			"number of objects and bytes backed up, whether the last successful run is older than\n" +
			"--max-age, and when the manifest was last reconciled with the bucket and what that found.\n\n" +
			"Exit status: 0 the backup is up to date; 1 the last run failed or was interrupted, or the\n" +
			"last success is older than --max-age, or there was none; 3 the last run completed but some\n" +
			"paths failed; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.IntFlag{Name: "runs", Value: 10, Usage: "show the last `N` runs"},
			&cli.DurationFlag{Name: "max-age", EnvVars: []string{"CLOUDKEEPER_MAX_AGE"}, Value: 25 * time.Hour, Usage: "a backup whose last success is older than `AGE` is stale"},
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
			priceFileFlag(),
		),
		Action: command(sourceOfRun, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			db, err := openManifest(t)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := p.loadPrices(c); err != nil {
				return p.fail(err)
			}
			st, err := report.ReadStatus(ctx, db, t.Manifest, t.report(), c.Duration("max-age"), c.Int("runs"), time.Now())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				writeJSON(c.App.Writer, st)
			} else {
				printStatus(c.App.Writer, st, p.pricesOrDefault())
			}
			if code := statusExit(st); code != exitOK {
				return reportedError{code}
			}
			return nil
		}),
	}
}

// statusExit is status's exit status: that of the last run that ended if
// it did not succeed (a monitoring check sees a failing backup at once),
// 1 if the last success is too old.
func statusExit(st report.Status) int {
	switch {
	case st.Stale:
		return exitFatal
	case st.LastRun == nil:
		return exitOK
	}
	switch st.LastRun.Result {
	case manifest.Success:
		return exitOK
	case manifest.Incomplete:
		return exitIncomplete
	default:
		return exitFatal
	}
}

// resultWords are the RESULT column of status's runs.
var resultWords = map[manifest.Outcome]string{
	manifest.Success: "ok", manifest.Incomplete: "incomplete", manifest.Failure: "failed", manifest.Interrupted: "interrupted",
}

// lastRunLine is status's line on the last run that ended, if it was not
// a success: how it ended, with the words of its error.
func lastRunLine(r *report.StatusRun) string {
	if r == nil || r.Result == manifest.Success {
		return ""
	}
	why := r.Message
	if r.Result == manifest.Incomplete {
		why = human.Count(r.Errors, "path or change failed", "paths or changes failed") + " (its log names them; the next run retries them)"
	}
	return fmt.Sprintf("last run:     %s (%s ago): %s: %s\n", r.Ended.Format(time.DateTime), ago(*r.Ended), strings.ToUpper(resultWords[r.Result]), why)
}

// historyLine is status's line on the bucket's versioning, which keeps
// the history.
func historyLine(v *report.Versioning) string {
	if v == nil {
		return "history:      the bucket's versioning is not checked yet (the next reconcile checks it)\n"
	}
	checked := v.Checked.Format("2006-01-02 15:04")
	switch v.Status {
	case manifest.VersioningEnabled:
		return fmt.Sprintf("history:      versioning enabled (checked %s)\n", checked)
	case manifest.VersioningSuspended:
		return fmt.Sprintf("history:      versioning SUSPENDED (checked %s): later writes keep no old version; enable it again, or --keep copies\n", checked)
	}
	return fmt.Sprintf("history:      off (the bucket has no versioning, checked %s; --keep keeps copies)\n", checked)
}

// printStatus prints st for people.
func printStatus(w io.Writer, st report.Status, prices cost.Prices) {
	where := fmt.Sprintf("s3://%s/%s", st.Bucket, st.Prefix)
	if st.Endpoint != "" {
		where += " at " + st.Endpoint
	}
	fmt.Fprintf(w, "backup:       %s -> %s\n", st.Source, where)
	fmt.Fprintf(w, "manifest:     %s\n", st.Manifest)
	fmt.Fprintf(w, "objects:      %s (%s)\n", human.Thousands(st.Objects), human.Bytes(st.Bytes))
	switch {
	case st.LastSuccess == nil:
		fmt.Fprintf(w, "last success: never: STALE\n")
	case st.Stale:
		fmt.Fprintf(w, "last success: %s (%s ago): STALE, older than %s\n", st.LastSuccess.Format(time.DateTime), ago(*st.LastSuccess), st.MaxAge)
	case statusExit(st) != exitOK:
		fmt.Fprintf(w, "last success: %s (%s ago), within max age %s, but the last run did not succeed:\n", st.LastSuccess.Format(time.DateTime), ago(*st.LastSuccess), st.MaxAge)
	default:
		fmt.Fprintf(w, "last success: %s (%s ago): up to date (max age %s)\n", st.LastSuccess.Format(time.DateTime), ago(*st.LastSuccess), st.MaxAge)
	}
	fmt.Fprint(w, lastRunLine(st.LastRun))
	if r := st.LastReconcile; r != nil {
		fmt.Fprintf(w, "reconciled:   %s (%s ago): %s\n", r.At.Format(time.DateTime), ago(r.At), findingsLine(r.Findings))
	} else {
		fmt.Fprintf(w, "reconciled:   never (sync --reconcile, or the first sync after --reconcile-every)\n")
	}
	fmt.Fprint(w, historyLine(st.Versioning))
	if len(st.Runs) > 0 {
		fmt.Fprintln(w)
		printRuns(w, st.Runs, prices)
	}
}

// printRuns prints runs as a table, for status and runs.
func printRuns(w io.Writer, runs []report.StatusRun, prices cost.Prices) {
	fmt.Fprintf(w, "%5s  %-19s  %9s  %-11s  %s\n", "RUN", "STARTED", "DURATION", "RESULT", "CHANGES")
	for _, r := range runs {
		dur, result := "-", "killed or still running"
		if r.Ended != nil {
			dur = (time.Duration(r.DurationS * float64(time.Second))).Round(100 * time.Millisecond).String()
			result = resultWords[r.Result]
		}
		line := fmt.Sprintf("%5d  %-19s  %9s  %-11s", r.ID, r.Started.Format(time.DateTime), dur, result)
		if r.Ended != nil {
			line += "  " + summaryLine(r.Counts)
			if r.Message != "" {
				line += ": " + r.Message
			}
			line += runRequests(r.Requests, prices)
		}
		fmt.Fprintln(w, line)
	}
}

// openManifest opens t's manifest to read it, with a clear message if
// there is none.
func openManifest(t target) (*manifest.DB, error) {
	if err := t.existingManifest(""); err != nil {
		return nil, err
	}
	return manifest.OpenReadOnly(t.Manifest, t.identity())
}

func ago(t time.Time) string { return time.Since(t).Round(time.Second).String() }
