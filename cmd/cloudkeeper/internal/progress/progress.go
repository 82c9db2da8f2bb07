// Package progress is the live display of a run on a terminal: files
// scanned, bytes hashed, changes applied of those queued, with bytes, rate
// and ETA, drawn on stderr below the lines the command prints (which
// Writer routes above the bars). Its counters are fed by the callbacks of
// a mirror run (Scanned, Hashed, Queued, Applied).
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// Display is the live display of one run at a time. When off (stderr is
// not a terminal: cron, a pipe, a log file) it shows nothing; its counters
// still count. The zero Display, with Stderr set, is off.
type Display struct {
	enabled    bool
	stderr     io.Writer
	stdoutTerm bool // stdout is the same kind of terminal: route its lines above the bars

	mu        sync.Mutex
	container *mpb.Progress
	bars      []*mpb.Bar
	started   time.Time

	files, hashedFiles, hashedBytes   atomic.Int64
	queued, queuedBytes, done, doneBy atomic.Int64
}

// New is the display of a command writing to stderr: on if show and the
// process's stderr is a terminal. Lines to stdout go above the bars only
// if stdout is a terminal too.
func New(stderr io.Writer, show bool) *Display {
	return &Display{
		enabled:    show && isatty.IsTerminal(os.Stderr.Fd()),
		stderr:     stderr,
		stdoutTerm: isatty.IsTerminal(os.Stdout.Fd()),
	}
}

// Off is a display that shows nothing, for output to stderr.
func Off(stderr io.Writer) *Display { return &Display{stderr: stderr} }

// Start begins a run's display.
func (p *Display) Start() {
	p.files.Store(0)
	p.hashedFiles.Store(0)
	p.hashedBytes.Store(0)
	p.queued.Store(0)
	p.queuedBytes.Store(0)
	p.done.Store(0)
	p.doneBy.Store(0)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = time.Now()
	if !p.enabled {
		return
	}
	p.container = mpb.New(mpb.WithOutput(p.stderr), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithWidth(100),
		// stderr is a terminal (checked above), behind the redacting writer that mpb cannot see through.
		mpb.WithAutoRefresh())
	scan := p.container.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
		return p.scanLine()
	})))
	apply := p.container.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
		return p.applyLine()
	})))
	p.bars = []*mpb.Bar{scan, apply}
}

// scanLine is "scan    20,114 files, 3.1 MiB hashed (12 files)".
func (p *Display) scanLine() string {
	return fmt.Sprintf("scan    %s, %s hashed (%s)", human.Count(p.files.Load(), "file", "files"),
		human.Bytes(p.hashedBytes.Load()), human.Count(p.hashedFiles.Load(), "file", "files"))
}

// applyLine is "apply   12/40 changes, 3.1 MiB/9.8 MiB, 4.2 MiB/s, ETA 2s".
func (p *Display) applyLine() string {
	done, queued := p.done.Load(), p.queued.Load()
	by, total := p.doneBy.Load(), p.queuedBytes.Load()
	line := fmt.Sprintf("apply   %s/%s changes, %s/%s", human.Thousands(done), human.Thousands(queued), human.Bytes(by), human.Bytes(total))
	if secs := time.Since(p.started).Seconds(); secs > 1 && by > 0 {
		rate := float64(by) / secs
		line += fmt.Sprintf(", %s/s", human.Bytes(int64(rate)))
		if left := total - by; left > 0 {
			line += fmt.Sprintf(", ETA %s", (time.Duration(float64(left) / rate * float64(time.Second))).Round(time.Second))
		}
	}
	return line
}

// Stop ends the display, leaving the terminal clean.
func (p *Display) Stop() {
	p.mu.Lock()
	c, bars := p.container, p.bars
	p.container, p.bars = nil, nil
	p.mu.Unlock()
	if c == nil {
		return
	}
	for _, b := range bars {
		b.Abort(true)
	}
	c.Wait()
}

// Writer is where a line meant for w goes: above the bars while they are
// shown, so the display stays whole.
func (p *Display) Writer(w io.Writer) io.Writer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.container != nil && (w == p.stderr || p.stdoutTerm) {
		return aboveBars{p.container, w}
	}
	return w
}

// aboveBars writes through the progress container, or straight to w if
// the container has stopped (it gives up on a terminal it cannot draw on):
// a line is never lost to the display.
type aboveBars struct {
	c *mpb.Progress
	w io.Writer
}

func (a aboveBars) Write(b []byte) (int, error) {
	if n, err := a.c.Write(b); err == nil {
		return n, nil
	}
	return a.w.Write(b)
}

// Log is stderr for the logger: its lines go above the bars when shown.
func (p *Display) Log() io.Writer { return logWriter{p} }

type logWriter struct{ p *Display }

func (l logWriter) Write(b []byte) (int, error) { return l.p.Writer(l.p.stderr).Write(b) }

// Scanned counts a scanned entry (mirror.Options.Scanned).
func (p *Display) Scanned(e scanner.Entry) {
	if e.Kind == scanner.KindFile {
		p.files.Add(1)
	}
}

// Hashed counts a file read and hashed (mirror.Options.Hashed).
func (p *Display) Hashed(bytes int64) {
	p.hashedFiles.Add(1)
	p.hashedBytes.Add(bytes)
}

// Queued counts a change queued for the bucket (mirror.Options.Queued).
func (p *Display) Queued(ch manifest.Change) {
	if ch.Op == manifest.OpTouch {
		return
	}
	p.queued.Add(1)
	if ch.Op == manifest.OpAdd || ch.Op == manifest.OpModify {
		p.queuedBytes.Add(ch.Entry.Stat.Size)
	}
}

// Applied counts a change done, applied or failed.
func (p *Display) Applied(r uploader.Result) {
	if r.Change.Op == manifest.OpTouch {
		return
	}
	p.done.Add(1)
	if op := r.Change.Op; op == manifest.OpAdd || op == manifest.OpModify {
		// What a resumed upload did not send is not to send either.
		p.doneBy.Add(r.Change.Entry.Stat.Size - r.Kept)
		p.queuedBytes.Add(-r.Kept)
	}
}
