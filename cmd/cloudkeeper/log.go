package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/logtext"
)

// Logging flags, taken by every command.
const (
	flagLogFormat = "log-format"
	flagLogLevel  = "log-level"
	flagQuiet     = "quiet"
	flagVerbose   = "verbose"
)

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagLogFormat, EnvVars: []string{"CLOUDKEEPER_LOG_FORMAT"}, Value: "text", Usage: "stderr log `FORMAT`: text or json (then every stderr line is JSON)"},
		&cli.StringFlag{Name: flagLogLevel, EnvVars: []string{"CLOUDKEEPER_LOG_LEVEL"}, Value: "info", Usage: "least `LEVEL` logged: debug, info, warn or error"},
		&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Usage: "print nothing but warnings and errors (no change lines, no summary, no progress): for cron, which mails any output"},
		&cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"}, Usage: "log debug messages too"},
	}
}

// newLogger builds the logger the flags ask for, writing to w (stderr).
func newLogger(c *cli.Context, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String(flagLogLevel))); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String(flagLogLevel))}
	}
	switch {
	case c.Bool(flagVerbose):
		level = slog.LevelDebug
	case c.Bool(flagQuiet):
		level = max(level, slog.LevelWarn)
	}
	log, err := logtext.New(w, c.String(flagLogFormat), level)
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-format %w", err)}
	}
	return log, nil
}
