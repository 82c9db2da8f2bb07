package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/demo"
	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/logtext"
	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/progress"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "back up a sample folder to a local S3 gateway it starts itself (no AWS account needed)",
		Description: "Starts the Versity S3 Gateway on a free loopback port (installing it with `go install` on\n" +
			"first use, about three minutes), creates a bucket and a sample folder, and runs a dry run,\n" +
			"a sync, a few edits (an edit, a renamed folder, a deletion) and a second dry run and sync.\n" +
			"Everything lives in a temporary folder that is removed at the end.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "keep", Usage: "keep the temporary folder (source, manifest, gateway root) and print its path"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signalContext(c)
			defer stop()
			return demo.Run(ctx, demo.Options{Out: c.App.Writer, Err: c.App.ErrWriter, Keep: c.Bool("keep"), Sync: demoSync(c.App.Writer, c.App.ErrWriter)})
		},
	}
}

// demoSync is the demo's sync: a run as the command does it, with its
// summary, warnings and errors only on the log.
func demoSync(out, errOut io.Writer) func(ctx context.Context, s demo.Stage, dryRun bool) error {
	log, _ := logtext.New(errOut, "text", slog.LevelWarn)
	p := &printer{out: out, log: log, progress: progress.Off(errOut)}
	return func(ctx context.Context, s demo.Stage, dryRun bool) error {
		t := target{
			Source: s.Source, Bucket: s.Bucket, Prefix: s.Prefix, Endpoint: s.Endpoint, Region: s.Region,
			Manifest:    s.Manifest,
			credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		}
		res := runSync(ctx, syncOptions{target: t, dryRun: dryRun}, p)
		p.summary(res)
		return res.Err
	}
}
