package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/restore"
)

func historyCommand() *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "every version of a file the history keeps: run, time written and replaced, size, BLAKE3",
		ArgsUsage: "PATH",
		Description: "Reads the manifest (it sends no S3 request) and lists the versions of PATH, a file relative\n" +
			"to the source as restore --path takes it, oldest first: the run that wrote it, when, when a\n" +
			"later write or a delete replaced it (or \"current\"), its size and BLAKE3. Flags go before PATH.\n" +
			"restore --run N --path PATH brings back the version run N left.\n\n" +
			"Exit status: 0 versions listed; 1 the manifest has no history of PATH, or no manifest;\n" +
			"2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.BoolFlag{Name: "json", Usage: "print the versions as JSON"},
		),
		Action: command(sourceOptional, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			if c.Args().Len() != 1 {
				return usageError{errors.New("history takes one PATH, relative to the source: cloudkeeper history [flags] PATH")}
			}
			path, err := restore.OnlyPath(c.Args().First())
			if err != nil || path == "" {
				return usageError{fmt.Errorf("history: want a file's path relative to the source, got %q", c.Args().First())}
			}
			db, err := openHistory(t)
			if err != nil {
				return err
			}
			defer db.Close()
			vs, err := db.History(ctx, path)
			if err != nil {
				return err
			}
			if len(vs) == 0 {
				return fmt.Errorf("no history of %q in the manifest %s: PATH is a file's path relative to the source, as restore --path takes it", display(path), t.Manifest)
			}
			if c.Bool("json") {
				writeJSON(c.App.Writer, historyJSON(vs))
			} else {
				printHistory(c.App.Writer, vs)
			}
			return nil
		}),
	}
}

func runsCommand() *cli.Command {
	return &cli.Command{
		Name:  "runs",
		Usage: "the runs of sync, each a point restore --run N or --at TIME brings the tree back to",
		Description: "Reads the manifest (it sends no S3 request) and lists its runs, newest first: id, start,\n" +
			"duration, how it ended, what it changed and the S3 requests it sent, as status shows\n" +
			"them. restore --run ID restores the tree as that run left it.\n\n" +
			"Exit status: 0; 1 no manifest; 2 usage error.",
		Before: applyEnvFile,
		Flags: append(append(configFlags(), logFlags()...),
			&cli.IntFlag{Name: "last", Usage: "show the last `N` runs only (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print the runs as JSON"},
			priceFileFlag(),
		),
		Action: command(sourceOptional, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			db, err := openHistory(t)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := p.loadPrices(c); err != nil {
				return p.fail(err)
			}
			n := c.Int("last")
			if n <= 0 {
				n = -1
			}
			rs, err := db.Runs(ctx, n)
			if err != nil {
				return err
			}
			runs := []report.StatusRun{}
			for _, r := range rs {
				runs = append(runs, report.StatusRunOf(r))
			}
			if c.Bool("json") {
				writeJSON(c.App.Writer, runs)
			} else {
				printRuns(c.App.Writer, runs, p.pricesOrDefault())
			}
			return nil
		}),
	}
}

// openHistory opens the manifest, which the history is in.
func openHistory(t target) (*manifest.DB, error) {
	if t.Manifest == "" {
		return nil, usageError{errors.New("the history is in the manifest: set --source (or --manifest)")}
	}
	return openManifest(t)
}

// versionJSON is a version as history --json prints it.
type versionJSON struct {
	Run        int64      `json:"run"` // 0: not known
	Written    time.Time  `json:"written"`
	Replaced   *time.Time `json:"replaced"` // null: the current version
	ReplacedBy int64      `json:"replaced_by_run,omitempty"`
	Size       int64      `json:"size"`
	BLAKE3     string     `json:"blake3"`
	MtimeNs    int64      `json:"mtime_ns"`
	Mode       string     `json:"mode"`
	VersionID  string     `json:"version_id,omitempty"`
	HistoryKey string     `json:"history_key,omitempty"`
}

func historyJSON(vs []manifest.Version) []versionJSON {
	out := make([]versionJSON, 0, len(vs))
	for _, v := range vs {
		j := versionJSON{Run: v.Run, Written: v.Written, Size: v.Size, BLAKE3: v.Hash.String(), MtimeNs: v.MtimeNs,
			Mode: fmt.Sprintf("%04o", v.Mode.Perm()), VersionID: v.VersionID, HistoryKey: v.HistoryKey}
		if !v.Current() {
			ended := v.Ended
			j.Replaced, j.ReplacedBy = &ended, v.EndedRun
		}
		out = append(out, j)
	}
	return out
}

// printHistory prints the versions of a file for people.
func printHistory(w io.Writer, vs []manifest.Version) {
	fmt.Fprintf(w, "%5s  %-19s  %-30s  %10s  %s\n", "RUN", "WRITTEN", "REPLACED", "SIZE", "BLAKE3")
	for i, v := range vs {
		replaced := "current"
		if !v.Current() {
			how := "by"
			if i == len(vs)-1 {
				how = "deleted by"
			}
			replaced = fmt.Sprintf("%s %s %s", v.Ended.Format(time.DateTime), how, runName(v.EndedRun))
		}
		fmt.Fprintf(w, "%5s  %-19s  %-30s  %10s  %s\n", runName(v.Run), v.Written.Format(time.DateTime), replaced,
			human.Bytes(v.Size), v.Hash.String()[:12])
	}
}

// runName is a run's id as history shows it: "-" for 0 (not known).
func runName(id int64) string {
	if id == 0 {
		return "-"
	}
	return fmt.Sprint(id)
}

// pointInTime reads --at and --run: set is false if neither is given.
func pointInTime(c *cli.Context) (at time.Time, run int64, set bool, err error) {
	s, run := c.String("at"), c.Int64("run")
	switch {
	case s != "" && run != 0:
		return at, 0, false, usageError{errors.New("--at and --run both name the point to restore to: give one")}
	case run < 0:
		return at, 0, false, usageError{fmt.Errorf("--run %d: want a run's id (cloudkeeper runs lists them)", run)}
	case s == "":
		return at, run, run != 0, nil
	}
	at, err = parseAt(s)
	return at, 0, err == nil, err
}

// parseAt reads --at: RFC 3339, or a date, a date and a time in local time.
func parseAt(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{time.DateOnly, "2006-01-02 15:04", time.DateTime} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageError{fmt.Errorf("--at %q: want a time such as 2026-11-20, \"2026-11-20 14:00\" (local time) or 2026-11-20T14:00:00Z", s)}
}

// historyTree is the run to restore to (run, or the last that ended at or
// before at), the versions its tree holds (under only), and the paths
// whose version then the history no longer holds.
func historyTree(ctx context.Context, t target, at time.Time, run int64, only string) (manifest.Run, []manifest.Version, []manifest.Gap, error) {
	db, err := openHistory(t)
	if err != nil {
		return manifest.Run{}, nil, nil, err
	}
	defer db.Close()
	r, err := runToRestore(ctx, db, at, run)
	if err != nil {
		return r, nil, nil, err
	}
	var vs []manifest.Version
	err = db.TreeAt(ctx, r.Ended, only, func(v manifest.Version) error {
		vs = append(vs, v)
		return nil
	})
	if err != nil {
		return r, nil, nil, err
	}
	var gaps []manifest.Gap
	err = db.GapsAt(ctx, r.Ended, only, func(g manifest.Gap) error {
		gaps = append(gaps, g)
		return nil
	})
	return r, vs, gaps, err
}

// runToRestore is run N, or the last run that ended at or before at (if
// none did, at itself where the history knows the tree then without its
// runs: rebuilt from the bucket).
func runToRestore(ctx context.Context, db *manifest.DB, at time.Time, run int64) (manifest.Run, error) {
	if run != 0 {
		r, ok, err := db.RunByID(ctx, run)
		switch {
		case err != nil:
			return r, err
		case !ok:
			return r, fmt.Errorf("--run %d: the manifest has no run %d (cloudkeeper runs lists them)", run, run)
		case !r.Finished():
			return r, fmt.Errorf("--run %d: run %d did not end (killed, or still running): pick another (cloudkeeper runs lists them)", run, run)
		}
		return r, nil
	}
	r, ok, err := db.LastEndedBy(ctx, at)
	if err != nil || ok {
		return r, err
	}
	// A rebuilt manifest has the history without its runs: the tree at
	// at itself.
	if known, err := db.RunlessHistoryBy(ctx, at); err != nil || known {
		return manifest.Run{Ended: at}, err
	}
	first, ok, err := db.FirstEnded(ctx)
	switch {
	case err != nil:
		return r, err
	case !ok:
		return r, errors.New("no run of sync has ended yet: there is no tree to restore to")
	}
	return r, fmt.Errorf("--at %s is before the first run (it ended %s): there is no tree to restore to then",
		at.Format(time.RFC3339), first.Ended.Format(time.RFC3339))
}
