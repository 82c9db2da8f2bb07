package mirror

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
)

// Reason is why a push is a full sync rather than a push of the dirty
// paths alone.
type Reason int

const (
	Scoped     Reason = iota // not a full sync: the dirty paths only
	StartUp                  // the first push: changes made while not watching
	Rescan                   // the periodic rescan (WatchOptions.Rescan)
	NoWatch                  // the source could not be watched at all
	LostEvents               // the watcher has reason to think events were lost
	Unwatched                // some folders hold no watch (the watch limit)
)

// Push is one push of a watch: a full sync and why, or the dirty paths.
type Push struct {
	Full Reason
	// Detail is the watcher's own words for LostEvents and Unwatched.
	Detail string
	// Dirty are the paths taken from the watcher; Scopes what a scoped
	// push scans (nil for a full sync).
	Dirty, Scopes []string
}

// Why is the reason of a full sync as a phrase, "" for a scoped push.
func (p Push) Why() string {
	switch p.Full {
	case StartUp:
		return "start-up: changes made while not watching"
	case Rescan:
		return "periodic rescan"
	case NoWatch:
		return "no watch"
	case LostEvents, Unwatched:
		return p.Detail
	}
	return ""
}

// WatchOptions are the settings of Watch. Options are those of every push's
// run (its DB and Scopes are set per push).
type WatchOptions struct {
	Options
	// Persist is how often the dirty paths are saved to the manifest,
	// Push how often they are pushed, Rescan how often a push is a full
	// sync (0: never). All but Rescan must be above zero.
	Persist, Push, Rescan time.Duration
	// EventsOnly turns the safety scans off: no full sync at start, at
	// Rescan or when events were lost; the events alone are trusted.
	EventsOnly bool
	// Started is told once, before the first push, whether the source is
	// watched (false: every push is a full sync, NoWatch).
	Started func(watched bool)
	// Pushing is told of each push before its run, Pushed of its result.
	Pushing func(Push)
	Pushed  func(Push, Result)
	// Stopped is told, when ctx ended, of the dirty paths left: saved to
	// the manifest for the next watch (a dry run keeps them in memory).
	Stopped func(left []string)
}

// Watch watches the source and pushes what changes until ctx ends: events
// mark paths dirty, saved every Persist, pushed every Push through Run;
// full syncs at start, every Rescan and after lost events (unless
// EventsOnly). A dry run keeps its dirty paths in memory. It returns the
// errors that stop it before it watches: the manifest, with EventsOnly a
// source that cannot be watched, or a source that is not there (a
// SourceError), after its start-up push failed on it (Pushing and Pushed
// are told, as of any push).
func Watch(ctx context.Context, o WatchOptions) error {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := CheckSource(o.Identity.Source); err != nil {
		return startWithoutSource(ctx, o)
	}
	open := manifest.Open
	if o.DryRun {
		open = manifest.OpenReadOnly // SQLite refuses every write: nothing is created or saved
	}
	db, err := open(o.Manifest, o.Identity)
	if err != nil {
		return err
	}
	defer db.Close()
	o.DB = db
	w := &watch{o: o, db: db}
	watcher, err := scanner.Watch(o.Identity.Source, 0)
	if err != nil {
		if o.EventsOnly {
			return err
		}
		o.Log.Warn("cannot watch; falling back to a full sync every push", "error", err.Error())
	} else {
		defer watcher.Close()
		go watcher.Run(ctx)
		w.watcher = watcher
	}
	saved, err := db.Dirty(ctx)
	if err != nil {
		return err
	}
	if w.watcher != nil {
		w.watcher.Mark(saved...)
	}
	o.Log.Info("watching", "source", o.Identity.Source, "push", o.Push.String(), "persist", o.Persist.String(), "hybrid", !o.EventsOnly)
	if o.Started != nil {
		o.Started(w.watcher != nil)
	}
	w.loop(ctx)
	return nil
}

// startWithoutSource is the start of a watch whose source is not there:
// its start-up push is a run that fails on it, reported as any push (the
// run records itself in a manifest that exists), and the watch stops with
// its error: there is nothing to watch.
func startWithoutSource(ctx context.Context, o WatchOptions) error {
	p := Push{Full: StartUp}
	if o.Pushing != nil {
		o.Pushing(p)
	}
	res := Run(ctx, o.Options)
	if o.Pushed != nil {
		o.Pushed(p, res)
	}
	return res.Err
}

// watch is the state of a Watch.
type watch struct {
	o       WatchOptions
	db      *manifest.DB
	watcher *scanner.Watcher // nil: the source could not be watched
}

func (w *watch) loop(ctx context.Context) {
	if !w.o.EventsOnly {
		w.push(ctx, StartUp)
	}
	persistT := time.NewTicker(w.o.Persist)
	pushT := time.NewTicker(w.o.Push)
	defer persistT.Stop()
	defer pushT.Stop()
	var rescan <-chan time.Time
	if !w.o.EventsOnly && w.o.Rescan > 0 {
		t := time.NewTicker(w.o.Rescan)
		defer t.Stop()
		rescan = t.C
	}
	for {
		select {
		case <-persistT.C:
			w.persist(ctx)
		case <-pushT.C:
			w.push(ctx, Scoped)
		case <-rescan:
			w.push(ctx, Rescan)
		case <-ctx.Done():
			w.persist(ctx)
			var left []string
			if w.watcher != nil {
				left = w.watcher.Peek()
			}
			if w.o.DryRun {
				w.o.Log.Info("stopped by signal; dry run: dirty paths not saved", "paths", len(left))
			} else {
				w.o.Log.Info("stopped by signal; dirty paths saved", "paths", len(left))
			}
			if w.o.Stopped != nil {
				w.o.Stopped(left)
			}
			return
		}
	}
}

// persist saves the dirty paths to the manifest; a dry run keeps them in
// memory only.
func (w *watch) persist(ctx context.Context) {
	if w.watcher == nil || w.o.DryRun {
		return
	}
	if err := w.db.SaveDirty(context.WithoutCancel(ctx), w.watcher.Peek()); err != nil {
		w.o.Log.Error("could not save the dirty paths", "error", err.Error())
	}
}

// plan takes the dirty paths and decides what the push is: full (asked,
// or the watcher lost events or folders) or scoped. ok is false when a
// scoped push has nothing to do.
func (w *watch) plan(full Reason) (p Push, ok bool) {
	p.Full = full
	if w.watcher == nil {
		p.Full = NoWatch
	} else {
		var lost string
		p.Dirty, lost = w.watcher.Take()
		if !w.o.EventsOnly {
			kind := LostEvents
			if lost == "" {
				kind, lost = Unwatched, w.watcher.Uncovered()
			}
			if lost != "" {
				p.Full, p.Detail = kind, lost
			}
		}
	}
	if p.Full != Scoped {
		return p, true
	}
	if len(p.Dirty) == 0 {
		return p, false
	}
	// A marker file made or removed puts its whole folder in or out.
	p.Scopes = scanner.Scopes(w.o.Filter.MarkerScopes(p.Dirty))
	if len(p.Scopes) == 1 && p.Scopes[0] == "" {
		p.Scopes = nil
	}
	return p, true
}

// push runs one push and keeps what it did not finish dirty.
func (w *watch) push(ctx context.Context, full Reason) {
	p, ok := w.plan(full)
	if !ok {
		return
	}
	if w.o.Pushing != nil {
		w.o.Pushing(p)
	}
	run := w.o.Options
	run.Scopes = p.Scopes
	res := Run(ctx, run)
	if w.o.Pushed != nil {
		w.o.Pushed(p, res)
	}
	if (res.ExitCode() != ExitOK || w.o.DryRun) && w.watcher != nil {
		w.watcher.Mark(p.Dirty...) // try them again next push
	}
	if res.ExitCode() == ExitOK && !w.o.DryRun {
		if err := w.db.ClearDirty(context.WithoutCancel(ctx), p.Dirty); err != nil {
			w.o.Log.Error("could not clear the dirty paths", "error", err.Error())
		}
	}
	w.persist(ctx)
}
