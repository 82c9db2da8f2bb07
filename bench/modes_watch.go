package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
)

// watchProc is a running "cloudkeeper watch --json".
type watchProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder // stdout but the events: the changes and summaries
	log  *os.File        // the watch's stderr, with the bench's notes
	seen watchEvents
	done chan struct{}
}

// watchEvents is what the events of a watch said so far.
type watchEvents struct {
	watching bool
	begun    int         // pushes (and full syncs) begun
	pushes   []time.Time // when each push ended
	rescans  []time.Time // when each periodic rescan began
}

// decodeEvent reads a line of the watch's stdout: ok is false for a line
// that is not an event (a change, a summary).
func decodeEvent(line string) (ev mirror.Event, ok bool) {
	if !strings.HasPrefix(line, `{"event"`) {
		return ev, false
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		return ev, false
	}
	return ev, true
}

// add takes in an event that came at t.
func (s *watchEvents) add(ev mirror.Event, t time.Time) {
	switch ev.Event {
	case "watching":
		s.watching = true
	case "push":
		s.begun++
		if ev.Reason == "rescan" {
			s.rescans = append(s.rescans, t)
		}
	case "pushed":
		s.pushes = append(s.pushes, t)
	}
}

// ready says whether the watch is ready to measure: it watches and, for a
// hybrid one, its start-up sync ended.
func (s *watchEvents) ready(hybrid bool) bool {
	if hybrid {
		return len(s.pushes) > 0
	}
	return s.watching
}

// pushCount is how many pushes ended, and when the last one did.
func (w *watchProc) pushCount() (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen.pushes) == 0 {
		return 0, time.Time{}
	}
	return len(w.seen.pushes), w.seen.pushes[len(w.seen.pushes)-1]
}

// pushing says whether a push has begun and not ended.
func (w *watchProc) pushing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen.begun > len(w.seen.pushes)
}

// logLine keeps a line of the watch's log.
func (w *watchProc) logLine(line string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(w.log, line)
}

// benchNote adds the bench's own observation to the watch's log, so that
// the log says which push made the bucket consistent.
func (w *watchProc) benchNote(msg string) {
	w.logLine(time.Now().Format("2006-01-02 15:04:05.000") + " BENCH " + msg)
}

// rescannedSince says whether a periodic rescan began after t and ended.
func (w *watchProc) rescannedSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.seen.rescans {
		if r.Before(t) {
			continue
		}
		for _, p := range w.seen.pushes {
			if !p.Before(r) {
				return true
			}
		}
	}
	return false
}

// stdoutLine takes in a line of the watch's stdout, and says whether the
// watch is ready.
func (w *watchProc) stdoutLine(line string, hybrid bool) bool {
	ev, ok := decodeEvent(line)
	if ok && ev.Event == "pushed" {
		w.benchNote("push ended: " + line)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ok {
		w.seen.add(ev, time.Now())
	} else {
		w.out.WriteString(line + "\n")
	}
	return w.seen.ready(hybrid)
}

// startWatchProc starts a watch (cmd, with --json) and waits until it
// watches (and, for a hybrid one, until its start-up sync ended), as its
// events say. Its log goes to logPath, to read after the bench why a watch
// did what it did (a safety scan, say).
func startWatchProc(cmd *exec.Cmd, hybrid bool, logPath string) (*watchProc, error) {
	w := &watchProc{cmd: cmd, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w.log = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			w.logLine(sc.Text())
		}
	}()
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if w.stdoutLine(sc.Text(), hybrid) {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
		return w, nil
	case <-time.After(2 * time.Minute):
		w.stop()
		return nil, errors.New("watch did not start in 2 minutes")
	}
}

func (w *watchProc) reported() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return reportedPaths(w.out.String())
}

func (w *watchProc) stop() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		w.cmd.Process.Kill()
	}
	w.cmd.Wait()
	w.mu.Lock()
	w.log.Close()
	w.mu.Unlock()
}

// cpu is the process's user and system time so far.
func (w *watchProc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func (w *watchProc) peakRSS() int64 {
	return vmHWM(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid)) * 1024
}

// watches counts the inotify watches the process holds.
func (w *watchProc) watches() int {
	return max(0, scanner.InotifyWatches(w.cmd.Process.Pid))
}
