package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure cloudkeeper against the reference tools, on synthetic trees and a local S3 gateway",
		Subcommands: withUsageErrors(&cli.Command{
			Name:  "scale",
			Usage: "the scale targets: no-change runs over a million files, hashing, uploads, renames, small changes",
			Description: "Builds synthetic trees (kept in --dir and reused by later runs), starts the Versity S3\n" +
				"Gateway behind a counting proxy, and runs each scenario with cloudkeeper and with the reference\n" +
				"tools that are installed (find, b3sum, rclone), printing a Markdown table. The defaults are the\n" +
				"sizes of the targets and take about 20 minutes and 10 GB of disk.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Value: filepath.Join(os.TempDir(), "cloudkeeper-bench"), Usage: "work `DIR`: trees, manifests, the gateway's storage"},
				&cli.IntFlag{Name: "files", Value: 1_000_000, Usage: "files of the no-change tree"},
				&cli.IntFlag{Name: "upload-files", Value: 20_000, Usage: "files of the upload tree"},
				&cli.Int64Flag{Name: "upload-bytes", Value: 600_000_000, Usage: "total size of the upload tree"},
				&cli.Int64Flag{Name: "large-file", Value: 1 << 30, Usage: "size of the single large upload; -1 skips it"},
				&cli.IntFlag{Name: "runs", Value: 3, Usage: "timed runs of each measurement; the fastest counts"},
				&cli.IntFlag{Name: "concurrency", Value: 8, Usage: "cloudkeeper's --concurrency, and rclone's --transfers in the second comparison"},
				&cli.StringSliceFlag{Name: "only", Usage: "run only these `PARTS`: nochange, hash, upload (repeatable)"},
				&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			},
			Action: func(c *cli.Context) error {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
				defer stop()
				rep, err := bench.Scale(ctx, bench.ScaleOptions{
					Dir: c.String("dir"), Files: c.Int("files"), UploadFiles: c.Int("upload-files"),
					UploadBytes: c.Int64("upload-bytes"), LargeFile: c.Int64("large-file"),
					Runs: c.Int("runs"), Concurrency: c.Int("concurrency"), Binary: exe, Only: c.StringSlice("only"),
					Logf: func(f string, a ...any) { fmt.Fprintf(c.App.ErrWriter, "bench: "+f+"\n", a...) },
				})
				if rep != nil {
					if c.Bool("json") {
						enc := json.NewEncoder(c.App.Writer)
						enc.SetIndent("", "  ")
						enc.Encode(rep)
					} else {
						rep.Markdown(c.App.Writer)
					}
				}
				return err
			},
		}),
	}
}
