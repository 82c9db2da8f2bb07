package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure scanning against watching (and, with `bench scale`, cloudkeeper against rclone, find and b3sum)",
		Description: "Builds a synthetic tree (--files), syncs it, applies each workload and runs each mode over it:\n" +
			"  scan    a sync after the workload\n" +
			"  events  watch --events-only (the original daemon's design)\n" +
			"  hybrid  watch with its safety scans (--rescan in the bench: --rescan below)\n" +
			"Workloads: idle, trickle (20 edits over 2 s), burst (--burst new files at once), rename (the first\n" +
			"top-level folder moved: 10,000 of the default 20,000 files), delete (the next two top-level folders\n" +
			"removed: 2,200 files), offline (changes while the watch is not running), overflow (--storm writes\n" +
			"as fast as they go). For each: changes missed and invented\n" +
			"against the tree, time until the bucket is consistent, CPU, peak RSS, inotify watches, S3\n" +
			"requests and bytes uploaded. It starts a local Versity S3 Gateway itself: no AWS account needed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: filepath.Join(os.TempDir(), "cloudkeeper-bench-modes"), Usage: "work `DIR`"},
			&cli.IntFlag{Name: "files", Value: 20_000, Usage: "`N` files in the tree each workload starts from"},
			&cli.IntFlag{Name: "burst", Value: 20_000, Usage: "the burst workload creates `N` files"},
			&cli.IntFlag{Name: "storm", Value: 200_000, Usage: "the overflow workload makes `N` writes"},
			&cli.StringSliceFlag{Name: "modes", Usage: "`MODES` to run (default scan, events, hybrid)"},
			&cli.StringSliceFlag{Name: "workloads", Usage: "`WORKLOADS` to run (default all)"},
			&cli.DurationFlag{Name: "push", Value: time.Second, Usage: "watch's --push-interval `INTERVAL`"},
			&cli.DurationFlag{Name: "rescan", Value: 10 * time.Second, Usage: "hybrid's --rescan `INTERVAL` in the bench"},
			&cli.DurationFlag{Name: "settle", Value: 2 * time.Minute, Usage: "the `TIME` a watch may take to make the bucket consistent before what is left counts as missed"},
			&cli.BoolFlag{Name: "no-upload", Usage: "measure detection alone (dry runs; nothing is uploaded)"},
			&cli.BoolFlag{Name: "json", Usage: "print the results as a JSON list"},
			&cli.StringFlag{Name: "svg", Usage: "also write a chart to `FILE`"},
		},
		Action: benchAction(func(ctx context.Context, c *cli.Context, exe string, logf func(string, ...any)) error {
			rep, err := bench.Modes(ctx, bench.ModesOptions{
				Dir: c.String("dir"), Files: c.Int("files"), Burst: c.Int("burst"), Storm: c.Int("storm"),
				Modes: c.StringSlice("modes"), Workloads: c.StringSlice("workloads"),
				Push: c.Duration("push"), Rescan: c.Duration("rescan"), Settle: c.Duration("settle"),
				NoUpload: c.Bool("no-upload"), Binary: exe, Logf: logf,
			})
			if rep != nil {
				if c.Bool("json") {
					writeJSON(c.App.Writer, rep.Results)
				} else {
					rep.Markdown(c.App.Writer)
				}
				if path := c.String("svg"); path != "" {
					f, ferr := os.Create(path)
					if ferr != nil {
						return ferr
					}
					rep.SVG(f)
					if ferr := f.Close(); ferr != nil {
						return ferr
					}
				}
			}
			return err
		}),
		Subcommands: []*cli.Command{benchScaleCommand(), benchWanCommand()},
	}
}

// benchScaleCommand is `bench scale`.
func benchScaleCommand() *cli.Command {
	return &cli.Command{
		Name:  "scale",
		Usage: "the scale targets: no-change runs over a million files, hashing, uploads, renames, small changes",
		Description: "Builds synthetic trees (kept in --dir and reused by later runs), starts the Versity S3\n" +
			"Gateway behind a counting proxy, and runs each scenario with cloudkeeper and with the reference\n" +
			"tools that are installed (find, b3sum, rclone), printing a Markdown table. The defaults are the\n" +
			"sizes of the targets and take about 20 minutes and 10 GB of disk.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: filepath.Join(os.TempDir(), "cloudkeeper-bench"), Usage: "work `DIR`: trees, manifests, the gateway's storage"},
			&cli.IntFlag{Name: "files", Value: 1_000_000, Usage: "`N` files in the no-change tree"},
			&cli.IntFlag{Name: "upload-files", Value: 20_000, Usage: "`N` files in the upload tree"},
			&cli.Int64Flag{Name: "upload-bytes", Value: 600_000_000, Usage: "total size of the upload tree in `BYTES`"},
			&cli.Int64Flag{Name: "large-file", Value: 1 << 30, Usage: "size in `BYTES` of the single large upload; -1 skips it"},
			&cli.IntFlag{Name: "runs", Value: 3, Usage: "`N` timed runs of each measurement; the fastest counts"},
			&cli.IntFlag{Name: "concurrency", Usage: "cloudkeeper's --concurrency `N` (default: auto), and rclone's --transfers in the second comparison (with auto: 256)"},
			&cli.StringSliceFlag{Name: "only", Usage: "run only these `PARTS`: nochange, hash, upload (repeatable)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: benchAction(func(ctx context.Context, c *cli.Context, exe string, logf func(string, ...any)) error {
			rep, err := bench.Scale(ctx, bench.ScaleOptions{
				Dir: c.String("dir"), Files: c.Int("files"), UploadFiles: c.Int("upload-files"),
				UploadBytes: c.Int64("upload-bytes"), LargeFile: c.Int64("large-file"),
				Runs: c.Int("runs"), Concurrency: c.Int("concurrency"), Binary: exe, Only: c.StringSlice("only"), Logf: logf,
			})
			if rep != nil {
				printReport(c, rep)
			}
			return err
		}),
	}
}

// benchWanCommand is `bench wan`.
func benchWanCommand() *cli.Command {
	return &cli.Command{
		Name:  "wan",
		Usage: "over a real network: the same scenarios with a latency added to every S3 request",
		Description: "Starts the Versity S3 Gateway behind a proxy that delays every request by each --latency in\n" +
			"turn, and at each runs: the initial sync of --files small files (1-8 KiB), the move of a folder\n" +
			"of --move-files files (server-side copies), and a run with 1% of the small files modified; then\n" +
			"the initial sync with rclone, aws s3 sync and s5cmd, those that are installed, with their defaults.\n" +
			"Last, the initial sync at the last latency while the proxy answers 503 SlowDown to 1 request in 5\n" +
			"for --throttle. Prints a Markdown table with each time's ratio to the first latency.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: filepath.Join(os.TempDir(), "cloudkeeper-bench-wan"), Usage: "work `DIR`: trees, manifests, the gateway's storage"},
			&cli.IntFlag{Name: "files", Value: 3000, Usage: "`N` small files in the initial sync"},
			&cli.IntFlag{Name: "move-files", Value: 10_000, Usage: "`N` files in the folder moved"},
			&cli.StringSliceFlag{Name: "latency", Value: cli.NewStringSlice("0", "20ms", "80ms"), Usage: "`DURATIONS` added to every request, one run of the scenarios each"},
			&cli.DurationFlag{Name: "throttle", Value: 10 * time.Second, Usage: "answer 503 SlowDown to 1 request in 5 for `TIME` in the last scenario; 0 skips it"},
			&cli.IntFlag{Name: "concurrency", Usage: "cloudkeeper's --concurrency `N` (default: auto)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: benchAction(func(ctx context.Context, c *cli.Context, exe string, logf func(string, ...any)) error {
			var lats []time.Duration
			for _, s := range c.StringSlice("latency") {
				d, err := time.ParseDuration(s)
				if err != nil || d < 0 {
					return usageError{fmt.Errorf("--latency %q: want a duration such as 20ms", s)}
				}
				lats = append(lats, d)
			}
			throttle := c.Duration("throttle")
			if throttle == 0 {
				throttle = -1
			}
			rep, err := bench.Wan(ctx, bench.WanOptions{
				Dir: c.String("dir"), Files: c.Int("files"), MoveFiles: c.Int("move-files"), Latencies: lats,
				Concurrency: c.Int("concurrency"), Throttle: throttle, Binary: exe, Logf: logf,
			})
			if rep != nil {
				printReport(c, rep)
			}
			return err
		}),
	}
}

// printReport prints a bench's report as JSON with --json, else as
// Markdown.
func printReport(c *cli.Context, rep interface{ Markdown(io.Writer) }) {
	if c.Bool("json") {
		writeJSON(c.App.Writer, rep)
	} else {
		rep.Markdown(c.App.Writer)
	}
}

// benchAction is the prologue of a bench: the binary to measure (this
// one), a context that SIGINT and SIGTERM cancel, and the log on stderr.
func benchAction(run func(ctx context.Context, c *cli.Context, exe string, logf func(string, ...any)) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		ctx, stop := signalContext(c)
		defer stop()
		return run(ctx, c, exe, func(f string, a ...any) { fmt.Fprintf(c.App.ErrWriter, "bench: "+f+"\n", a...) })
	}
}
