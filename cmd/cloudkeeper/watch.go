package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
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
		Action: func(c *cli.Context) error {
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			opts, after, err := loadSyncOptions(c, p)
			if err != nil {
				return p.fail(err)
			}
			opts.dryRun = c.Bool("dry-run")
			w := watchOptions{eventsOnly: c.Bool("events-only"), rescan: c.Duration("rescan")}
			if w.persist, err = intervalSetting(c, "persist-interval", "DB_PERSISTENCE_INTERVAL"); err != nil {
				return p.fail(err)
			}
			if w.push, err = intervalSetting(c, "push-interval", "S3_BACKUP_INTERVAL"); err != nil {
				return p.fail(err)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := runWatch(ctx, opts, w, p, after); err != nil {
				return p.fail(err)
			}
			return nil
		},
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
	d, err := parseInterval(v, os.Getenv(env+"_UNIT"))
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

// parseInterval reads the original .env's intervals: a number and a unit
// (hour(s), minute(s), second(s); default hours), or a Go duration ("10m").
func parseInterval(value, unit string) (time.Duration, error) {
	if d, err := time.ParseDuration(value); err == nil && unit == "" {
		return d, nil
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	per := map[string]time.Duration{
		"": time.Hour, "h": time.Hour, "hour": time.Hour, "hours": time.Hour,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	}[strings.ToLower(strings.TrimSpace(unit))]
	if per == 0 {
		return 0, fmt.Errorf("unknown unit: want hours, minutes or seconds")
	}
	return time.Duration(n * float64(per)), nil
}

// runWatch is the watch loop: events mark paths dirty; every persist
// interval they are saved; every push interval they are synced; full syncs
// at start, every rescan and after lost events (unless events-only).
func runWatch(ctx context.Context, o syncOptions, w watchOptions, p *printer, after afterRun) error {
	open := manifest.Open
	if o.dryRun {
		open = manifest.OpenReadOnly // SQLite refuses every write: nothing is created or saved
	}
	db, err := open(o.Manifest, o.identity())
	if err != nil {
		return err
	}
	defer db.Close()
	o.db = db

	watcher, err := scanner.Watch(o.Source, 0)
	if err != nil {
		if w.eventsOnly {
			return err
		}
		p.log.Warn("cannot watch; falling back to a full sync every push", "error", err.Error())
	} else {
		defer watcher.Close()
		go watcher.Run(ctx)
	}
	saved, err := db.Dirty(ctx)
	if err != nil {
		return err
	}
	if watcher != nil {
		watcher.Mark(saved...)
	}
	p.log.Info("watching", "source", o.Source, "push", w.push.String(), "persist", w.persist.String(), "hybrid", !w.eventsOnly)

	persist := func() {
		if watcher == nil || o.dryRun { // a dry run keeps its dirty paths in memory only
			return
		}
		if err := db.SaveDirty(context.WithoutCancel(ctx), watcher.Peek()); err != nil {
			p.log.Error("could not save the dirty paths", "error", err.Error())
		}
	}
	push := func(full bool, why string) {
		var dirty []string
		if watcher != nil {
			var lost string
			dirty, lost = watcher.Take()
			if !w.eventsOnly {
				if lost == "" {
					lost = watcher.Uncovered()
				}
				if lost != "" {
					full, why = true, lost
				}
			}
		}
		if watcher == nil {
			full, why = true, "no watch"
		}
		run := o
		if !full {
			if len(dirty) == 0 {
				return
			}
			run.scopes = scanner.Scopes(dirty)
			if len(run.scopes) == 1 && run.scopes[0] == "" {
				run.scopes = nil
			}
		}
		if full {
			p.log.Info("full sync", "why", why)
		} else {
			p.log.Info("pushing dirty paths", "paths", len(run.scopes))
		}
		res := runSync(ctx, run, p)
		after.done(ctx, res)
		p.exit(res)
		if (res.exitCode() != exitOK || o.dryRun) && watcher != nil {
			watcher.Mark(dirty...) // try them again next push
		}
		if res.exitCode() == exitOK && !o.dryRun {
			if err := db.ClearDirty(context.WithoutCancel(ctx), dirty); err != nil {
				p.log.Error("could not clear the dirty paths", "error", err.Error())
			}
		}
		persist()
	}

	if !w.eventsOnly {
		push(true, "start-up: changes made while not watching")
	}
	persistT := time.NewTicker(w.persist)
	pushT := time.NewTicker(w.push)
	defer persistT.Stop()
	defer pushT.Stop()
	var rescan <-chan time.Time
	if !w.eventsOnly && w.rescan > 0 {
		t := time.NewTicker(w.rescan)
		defer t.Stop()
		rescan = t.C
	}
	for {
		select {
		case <-persistT.C:
			persist()
		case <-pushT.C:
			push(false, "")
		case <-rescan:
			push(true, "periodic rescan")
		case <-ctx.Done():
			persist()
			if o.dryRun {
				p.log.Info("stopped by signal; dry run: dirty paths not saved", "paths", len(watcherPeek(watcher)))
				return nil
			}
			p.log.Info("stopped by signal; dirty paths saved", "paths", len(watcherPeek(watcher)))
			return nil
		}
	}
}

func watcherPeek(w *scanner.Watcher) []string {
	if w == nil {
		return nil
	}
	return w.Peek()
}
