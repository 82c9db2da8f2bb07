// Command cloudkeeper backs up a folder to Amazon S3 or any S3-compatible
// store: scan the folder, diff it with the manifest of what the bucket
// holds, apply the difference.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/logtext"
	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/redact"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

// Exit statuses: a run's (mirror.ExitCode), and 2 for a usage error.
const (
	exitOK         = mirror.ExitOK
	exitFatal      = mirror.ExitFatal // nothing or only part applied
	exitUsage      = 2
	exitIncomplete = mirror.ExitIncomplete // the run completed, but some paths failed
)

// usageError is a mistake in the command line or settings (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// isUsage reports whether err is a mistake in the settings: a usageError,
// or a library's error for a setting that is missing.
func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue) || errors.Is(err, uploader.ErrNoRegion)
}

// reportedError is a failure the command has already logged; it only
// carries the exit status.
type reportedError struct{ code int }

func (e reportedError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// Both streams: an error in a JSON summary or status goes to stdout.
	stdout := &redact.Writer{W: os.Stdout, Getenv: os.Getenv}
	stderr := &redact.Writer{W: os.Stderr, Getenv: os.Getenv}
	os.Exit(run(context.Background(), os.Args, stdout, stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	var re reportedError
	if errors.As(err, &re) {
		return re.code
	}
	printEarlyError(stderr, args, err)
	if isUsage(err) {
		return exitUsage
	}
	return exitFatal
}

// printEarlyError prints an error that came before the command's logger
// (a flag that does not parse, a stray argument): as a JSON log line if
// the command line or CLOUDKEEPER_LOG_FORMAT asks for JSON, else as
// "cloudkeeper: ...".
func printEarlyError(w io.Writer, args []string, err error) {
	format := os.Getenv("CLOUDKEEPER_LOG_FORMAT")
	for i, a := range args {
		switch {
		case (a == "--"+flagLogFormat || a == "-"+flagLogFormat) && i+1 < len(args):
			format = args[i+1]
		case strings.HasPrefix(a, "--"+flagLogFormat+"="):
			format = strings.TrimPrefix(a, "--"+flagLogFormat+"=")
		}
	}
	if !strings.EqualFold(format, "json") {
		fmt.Fprintf(w, "cloudkeeper: %v\n", err)
		return
	}
	log, _ := logtext.New(w, "json", slog.LevelError)
	log.Error(err.Error())
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "cloudkeeper",
		Usage: "back up a folder to S3, fast: scan, diff with a local manifest, apply",
		Description: "cloudkeeper makes an S3 prefix mirror a local folder. It stats every file and hashes (BLAKE3)\n" +
			"only what may have changed, compares with a local SQLite manifest of what the bucket holds,\n" +
			"and uploads, copies server-side (renames) and deletes what differs.\n\n" +
			"Every setting is a flag, an environment variable, or a line of a .env file.",
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {}, // run() reports errors and picks the status
		OnUsageError:         onUsageError,
		Action:               appAction,
		Flags: []cli.Flag{
			// The app has a help command of its own (see helpCommand), so
			// urfave/cli adds no --help flag to it.
			cli.HelpFlag,
			&cli.BoolFlag{Name: "version", Usage: "print the version (see cloudkeeper version)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the run to `FILE` (for go tool pprof)"},
		},
		Before: startProfile,
		After:  stopProfile,
		Commands: withUsageErrors(
			syncCommand(),
			watchCommand(),
			statusCommand(),
			verifyCommand(),
			restoreCommand(),
			historyCommand(),
			runsCommand(),
			manifestCommand(),
			demoCommand(),
			benchCommand(),
			completionCommand(),
			versionCommand(),
			helpCommand(),
		),
	}
}

// appAction is what "cloudkeeper" alone, or with --version, does.
func appAction(c *cli.Context) error {
	if c.Bool("version") && !c.Args().Present() {
		printVersion(c.App.Writer)
		return nil
	}
	return unknownCommand(c)
}

// startProfile starts the CPU profile asked for with --cpuprofile.
func startProfile(c *cli.Context) error {
	path := c.String("cpuprofile")
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return usageError{err}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	return nil
}

func stopProfile(c *cli.Context) error {
	if c.String("cpuprofile") != "" {
		pprof.StopCPUProfile()
	}
	return nil
}

// command is the Action of a command that works on the shared settings
// (the prologue they all repeat): it builds the printer, reads the target
// (its source as use says), and calls run under a
// context that SIGINT and SIGTERM cancel. An error that run returns and
// has not logged (any but a reportedError) is logged and exits 1, or 2
// for a usage error.
func command(use sourceUse, run func(ctx context.Context, c *cli.Context, p *printer, t target) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		p, err := newPrinter(c)
		if err != nil {
			return err
		}
		t, err := readTarget(c, use)
		if err != nil {
			return p.fail(err)
		}
		t.log = p.log
		ctx, stop := signalContext(c)
		defer stop()
		err = run(ctx, c, p, t)
		var re reportedError
		if err == nil || errors.As(err, &re) {
			return err
		}
		return p.fail(err)
	}
}

// signalContext is the command's context, cancelled by SIGINT or SIGTERM.
func signalContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
}
