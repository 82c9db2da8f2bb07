package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/progress"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/cost"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/prune"
)

// printer writes one line per applied change and the summary to stdout,
// for people or (with --json) for programs, logs problems, and drives the
// progress display.
type printer struct {
	mu       sync.Mutex
	out      io.Writer
	log      *slog.Logger
	json     bool
	quiet    bool
	progress *progress.Display
	// firstErrors keeps the first few per-path errors of a run, for the
	// notification.
	firstErrors []string
	prices      *cost.Prices // --price-file; nil: S3 Standard's
	// symlinks counts the symlinks a run skipped, for its one line.
	symlinks int64
}

const keptErrors = 20

// newPrinter builds the printer and the logger of a command: the logger
// writes above the progress display while it is shown.
func newPrinter(c *cli.Context) (*printer, error) {
	p := &printer{out: c.App.Writer, json: c.Bool("json"), quiet: c.Bool(flagQuiet)}
	p.progress = progress.New(c.App.ErrWriter, !p.quiet && c.String(flagLogFormat) != "json")
	log, err := newLogger(c, p.progress.Log())
	if err != nil {
		return nil, err
	}
	p.log = log
	return p, nil
}

type jsonChange struct {
	Op      string       `json:"op"`
	Path    string       `json:"path"`
	From    string       `json:"from,omitempty"`
	Size    int64        `json:"size"`
	Symlink bool         `json:"symlink,omitempty"` // a link kept as a link (--links)
	Resumed *jsonResumed `json:"resumed,omitempty"`
}

// jsonResumed is what an upload a killed run left, continued, sent and
// found in the bucket already.
type jsonResumed struct {
	Sent     int64 `json:"bytes_sent"`
	InBucket int64 `json:"bytes_in_bucket"`
}

type jsonSummary struct {
	Summary struct {
		manifest.Counts
		// What the scan read: zero on a run where stat says nothing changed.
		HashedFiles int64 `json:"hashed_files"`
		HashedBytes int64 `json:"hashed_bytes"`
		// Folders left out by a marker file (--exclude-if-present, --exclude-caches).
		ExcludedFolders int64 `json:"excluded_folders,omitempty"`
		// How the run ended: success, incomplete, failure or
		// interrupted, its exit status, and the fatal error.
		Result   manifest.Outcome `json:"result"`
		ExitCode int              `json:"exit_code"`
		Error    string           `json:"error,omitempty"`
		Pruned   *prune.Result    `json:"pruned,omitempty"` // --prune-every
		jsonRequests
	} `json:"summary"`
}

// display is how a path is shown: its key form, in which control
// characters and bytes that are not UTF-8 are escaped, so that one change
// is always one line.
func display(path string) string { return manifest.EscapePath(path) }

// result prints an applied change, or logs a failed one.
func (p *printer) result(r uploader.Result) {
	ch := r.Change
	p.progress.Applied(r)
	if r.Err != nil {
		p.keepError(fmt.Sprintf("%s %s: %v", ch.Op, display(ch.Path), r.Err))
		p.log.Error("change failed", "op", ch.Op.String(), "path", display(ch.Path), "error", r.Err.Error())
		return
	}
	if r.Note != "" {
		p.log.Warn("uploaded instead of copied", "op", ch.Op.String(), "path", display(ch.Path), "why", r.Note)
	}
	if ch.Op == manifest.OpTouch || p.quiet {
		return
	}
	p.println(changeLine(r, p.json))
}

// changeLine is the line of an applied change: "add     a.txt (5 B)", with
// what a resumed upload sent and found in the bucket, or its JSON.
func changeLine(r uploader.Result, asJSON bool) string {
	ch := r.Change
	var line string
	if asJSON {
		js := jsonChange{Op: ch.Op.String(), Path: display(ch.Path), From: displayFrom(ch.From), Size: ch.Entry.Stat.Size, Symlink: ch.Entry.IsLink()}
		if r.Kept > 0 {
			js.Resumed = &jsonResumed{Sent: r.Bytes, InBucket: r.Kept}
		}
		b, _ := json.Marshal(js)
		line = string(b)
	} else {
		switch ch.Op {
		case manifest.OpAdd, manifest.OpModify:
			if ch.Entry.IsLink() {
				line = fmt.Sprintf("%-7s %s (symlink)", ch.Op, display(ch.Path))
				break
			}
			line = fmt.Sprintf("%-7s %s (%s", ch.Op, display(ch.Path), human.Bytes(ch.Entry.Stat.Size))
			if r.Kept > 0 {
				line += fmt.Sprintf(", resumed: %s sent, %s already in the bucket", human.Bytes(r.Bytes), human.Bytes(r.Kept))
			}
			line += ")"
		case manifest.OpRename, manifest.OpCopy:
			line = fmt.Sprintf("%-7s %s -> %s", ch.Op, display(ch.From), display(ch.Path))
		default:
			line = fmt.Sprintf("%-7s %s", ch.Op, display(ch.Path))
		}
	}
	return line
}

func (p *printer) println(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.progress.Writer(p.out), line)
}

// writeJSON writes v to w as indented JSON: a whole report (status, a
// bench), for programs and for people to read.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// printJSON prints v as one line of JSON.
func (p *printer) printJSON(v any) {
	b, _ := json.Marshal(v)
	p.println(string(b))
}

func (p *printer) keepError(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.firstErrors) < keptErrors {
		p.firstErrors = append(p.firstErrors, s)
	}
}

// takeErrors returns the errors kept for the notification, and forgets
// them for the next run.
func (p *printer) takeErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.firstErrors
	p.firstErrors = nil
	return errs
}

func displayFrom(p string) string {
	if p == "" {
		return ""
	}
	return display(p)
}

// diffProblem logs what the scan or the diff could not handle.
func (p *printer) diffProblem(pr manifest.Problem) {
	if pr.Err != nil {
		p.keepError(fmt.Sprintf("%s: %v", display(pr.Path), pr.Err))
		p.log.Error("cannot back up", "path", display(pr.Path), "error", pr.Err.Error())
		return
	}
	if pr.Symlink { // summed up at the run's end (symlinksSkipped); each one at -v
		p.mu.Lock()
		p.symlinks++
		p.mu.Unlock()
		p.log.Debug("skipped", "path", display(pr.Path), "reason", pr.Notice)
		return
	}
	p.log.Info("skipped", "path", display(pr.Path), "reason", pr.Notice)
}

// scanned shows an entry of the walk in the progress display, and says
// at -v why a folder is left out by a marker.
func (p *printer) scanned(e scanner.Entry) {
	if e.Kind == scanner.KindExcluded {
		p.log.Debug("excluded folder", "path", display(e.Path), "reason", e.Note)
	}
	p.progress.Scanned(e)
}

// symlinksSkipped logs the one line of the symlinks the run skipped, if
// any, and starts the count again for the next run: a cron job's log gets
// a line a run, not one a link.
func (p *printer) symlinksSkipped() {
	p.mu.Lock()
	n := p.symlinks
	p.symlinks = 0
	p.mu.Unlock()
	if n > 0 {
		p.log.Info(human.Count(n, "symlink", "symlinks") + " skipped (--links keeps them, --follow-symlinks follows them)")
	}
}

// summary prints the last lines: "2 uploads (2.1 MiB), 1 rename, 1 copy,
// 1 delete; 20,114 files unchanged", then what the run sent (see
// requestsLine). A run that failed says so at the end of the first, and
// prints none if it applied nothing: its error says it all. The JSON
// summary is always printed, with how the run ended and its requests.
func (p *printer) summary(res outcome) {
	if p.quiet {
		return
	}
	code := res.exitCode()
	if p.json {
		var js jsonSummary
		js.Summary.Counts = res.Counts
		js.Summary.HashedFiles, js.Summary.HashedBytes = res.Hashed, res.HashedBytes
		js.Summary.ExcludedFolders = res.Excluded
		js.Summary.Result, js.Summary.ExitCode = res.Outcome(), code
		if res.Err != nil {
			js.Summary.Error = res.Err.Error()
		}
		js.Summary.Pruned = res.Pruned
		js.Summary.jsonRequests = p.requestsJSON(res.Result)
		p.printJSON(js)
		return
	}
	line := summaryLine(res.Counts)
	if res.Excluded > 0 {
		line += "; " + human.Count(res.Excluded, "folder", "folders") + " excluded by a marker file"
	}
	if res.Err != nil {
		if res.Changes() == 0 && res.Errors == 0 {
			return
		}
		ended := "failed"
		if res.Interrupted() {
			ended = "interrupted"
		}
		line += "; " + ended
	}
	p.println(line)
	if res.Pruned != nil {
		p.pruneSummary(*res.Pruned)
	}
	p.printRequests(res.Result)
}

func summaryLine(c manifest.Counts) string {
	line := fmt.Sprintf("%s (%s), %s, %s, %s; %s unchanged",
		human.Count(c.Uploads(), "upload", "uploads"), human.Bytes(c.Bytes),
		human.Count(c.Rename, "rename", "renames"), human.Count(c.Copy, "copy", "copies"),
		human.Count(c.Delete, "delete", "deletes"), human.Count(c.Unchanged, "file", "files"))
	if c.Errors > 0 {
		line += "; " + human.Count(c.Errors, "error", "errors")
	}
	return line
}

// exit ends a run's output: the summary, then the reason it failed, if it
// did, logged; it returns the error that gives the exit status.
func (p *printer) exit(res outcome) error {
	p.progress.Stop()
	p.summary(res)
	code := res.exitCode()
	switch code {
	case exitOK:
		if res.DryRun {
			p.log.Info("dry run: nothing was changed")
		}
		return nil
	case exitIncomplete:
		p.log.Error("run incomplete", "errors", res.Errors, "hint", "the paths are logged above; the next run retries them")
	default:
		p.log.Error(res.Err.Error())
	}
	return reportedError{code}
}

// fail logs an error that stops a command before or outside a run, and
// returns its exit status.
func (p *printer) fail(err error) error {
	p.log.Error(err.Error())
	if isUsage(err) {
		return reportedError{exitUsage}
	}
	return reportedError{exitFatal}
}

// outcome is a run's result with the errors kept for its notification,
// which it takes: the next run starts afresh.
func (p *printer) outcome(res mirror.Result) outcome {
	res.Err = withSourceHint(res.Err)
	p.symlinksSkipped()
	return outcome{Result: res, firstErrors: p.takeErrors()}
}
