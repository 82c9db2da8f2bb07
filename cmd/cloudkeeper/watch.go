package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/dotenv"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

func watchCommand() *cli.Command {
	flags := append(configFlags(), logFlags()...)
	flags = append(flags, afterRunFlags()...)
	flags = append(flags, runFlags()...)
	return &cli.Command{
		Name:  "watch",
		Usage: "stay in the foreground, watch the source for changes and push them on a schedule (the original daemon's way)",
		Description: "A recursive watch on the source (inotify, via github.com/rjeczalik/notify) marks changed paths\n" +
			"dirty. Dirty paths are saved to the manifest every --persist-interval and pushed to S3 every\n" +
			"--push-interval through the same diff and upload as sync (renames are still server-side copies).\n\n" +
			"Events are not a complete record (dropped when the receiver is slow, kernel queue overflows\n" +
			"hidden, a per-user limit of watches), so by default watch is hybrid: it runs a full sync at start\n" +
			"(changes made while it was not running), every --rescan, and when it has reason to think events\n" +
			"were lost. --events-only turns these safety scans off, as the original daemon was.\n\n" +
			"The original .env files set the intervals: S3_BACKUP_INTERVAL with S3_BACKUP_INTERVAL_UNIT and\n" +
			"DB_PERSISTENCE_INTERVAL with DB_PERSISTENCE_INTERVAL_UNIT (units: hour(s), minute(s), second(s)).\n" +
			"SIGINT or SIGTERM saves the dirty paths and exits.",
		Before: applyEnvFile,
		Flags: append(flags,
			&cli.DurationFlag{Name: "persist-interval", Value: 10 * time.Minute, Usage: "save dirty paths to the manifest every `INTERVAL` (env DB_PERSISTENCE_INTERVAL + DB_PERSISTENCE_INTERVAL_UNIT)"},
			&cli.DurationFlag{Name: "push-interval", Value: 24 * time.Hour, Usage: "push dirty paths to S3 every `INTERVAL` (env S3_BACKUP_INTERVAL + S3_BACKUP_INTERVAL_UNIT)"},
			&cli.DurationFlag{Name: "rescan", EnvVars: []string{"CLOUDKEEPER_RESCAN"}, Value: 24 * time.Hour, Usage: "run a full sync every `INTERVAL` to catch what events missed"},
			&cli.BoolFlag{Name: "events-only", Usage: "no safety scans: trust the events alone (the original daemon's design)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what each push would change; touch neither the bucket nor the manifest (dirty paths are kept in memory, so each push shows all changes since the start)"},
			&cli.BoolFlag{Name: "json", Usage: "print changes and summaries as JSON lines"},
		),
		Action: command(sourceOfRun, func(ctx context.Context, c *cli.Context, p *printer, t target) error {
			opts, after, err := loadSyncOptions(c, p, t)
			if err != nil {
				return err
			}
			opts.dryRun = c.Bool("dry-run")
			w := watchOptions{eventsOnly: c.Bool("events-only"), rescan: c.Duration("rescan")}
			if w.persist, err = intervalSetting(c, "persist-interval", "DB_PERSISTENCE_INTERVAL"); err != nil {
				return err
			}
			if w.push, err = intervalSetting(c, "push-interval", "S3_BACKUP_INTERVAL"); err != nil {
				return err
			}
			if err := runWatch(ctx, opts, w, p, after); err != nil {
				var se *mirror.SourceError
				if errors.As(err, &se) {
					return reportedError{exitFatal} // its push said it all
				}
				return err
			}
			return nil
		}),
	}
}

type watchOptions struct {
	persist, push, rescan time.Duration
	eventsOnly            bool
}

// intervalSetting is the flag if set, else the original daemon's pair of
// variables NAME (a number) and NAME_UNIT, else the flag's default.
func intervalSetting(c *cli.Context, flag, env string) (time.Duration, error) {
	if c.IsSet(flag) {
		return positive(flag, c.Duration(flag))
	}
	v, ok := os.LookupEnv(env)
	if !ok {
		return c.Duration(flag), nil
	}
	d, err := dotenv.Interval(v, os.Getenv(env+"_UNIT"))
	if err != nil {
		return 0, usageError{fmt.Errorf("%s=%q %s_UNIT=%q: %w", env, v, env, os.Getenv(env+"_UNIT"), err)}
	}
	return positive(env, d)
}

func positive(name string, d time.Duration) (time.Duration, error) {
	if d <= 0 {
		return 0, usageError{fmt.Errorf("%s: want an interval above zero", name)}
	}
	return d, nil
}

// watchLog is how a push is announced to people (the e2e tests match these
// lines); programs read the events of --json instead (see mirror.Event).
func watchLog(p *printer, push mirror.Push) {
	if push.Full != mirror.Scoped {
		p.log.Info("full sync", "why", push.Why())
		return
	}
	p.log.Info("pushing dirty paths", "paths", len(push.Scopes))
}

// runWatch is the watch loop (see mirror.Watch), each push shown by the
// printer (with --json, between a push and a pushed event, see mirror.Event) and followed by
// the notification and metrics.
func runWatch(ctx context.Context, o syncOptions, w watchOptions, p *printer, after afterRun) error {
	return mirror.Watch(ctx, mirror.WatchOptions{
		Options: o.mirrorOptions(p), Persist: w.persist, Push: w.push, Rescan: w.rescan, EventsOnly: w.eventsOnly,
		Started: func(watched bool) {
			p.event(mirror.WatchingEvent(o.Source, !w.eventsOnly, watched))
		},
		Pushing: func(push mirror.Push) {
			watchLog(p, push)
			p.event(mirror.PushEvent(push))
			p.progress.Start()
		},
		Pushed: func(push mirror.Push, res mirror.Result) {
			out := p.outcome(res)
			after.done(ctx, out)
			p.exit(out)
			p.event(mirror.PushedEvent(push, out.Result))
		},
		Stopped: func(left []string) {
			p.event(mirror.StoppedEvent(len(left)))
		},
	})
}

// event prints ev as a line of JSON, with --json only.
func (p *printer) event(ev mirror.Event) {
	if !p.json {
		return
	}
	p.printJSON(ev)
}
