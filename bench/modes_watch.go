package bench

import (
	"bufio"
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
)

// watchProc is a running "cloudkeeper watch".
type watchProc struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	out     strings.Builder
	log     *os.File    // the watch's stderr, with the bench's notes
	pushes  []time.Time // when each push's summary line came
	begun   int         // pushes (and full syncs) begun
	rescans []time.Time // when each periodic rescan began
	done    chan struct{}
}

// pushCount is how many pushes ended, and when the last one did.
func (w *watchProc) pushCount() (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pushes) == 0 {
		return 0, time.Time{}
	}
	return len(w.pushes), w.pushes[len(w.pushes)-1]
}

// pushing says whether a push has begun and not ended.
func (w *watchProc) pushing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.begun > len(w.pushes)
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
	for _, r := range w.rescans {
		if r.Before(t) {
			continue
		}
		for _, p := range w.pushes {
			if !p.Before(r) {
				return true
			}
		}
	}
	return false
}

// startWatchProc starts a watch and waits until it watches (and, for a
// hybrid one, until its start-up sync ended). Its log goes to logPath, to
// read after the bench why a watch did what it did (a safety scan, say).
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
			if strings.Contains(sc.Text(), " INFO full sync") || strings.Contains(sc.Text(), " INFO pushing dirty paths") {
				w.mu.Lock()
				w.begun++
				w.mu.Unlock()
			}
			if strings.Contains(sc.Text(), "full sync") && strings.Contains(sc.Text(), "periodic rescan") {
				w.mu.Lock()
				w.rescans = append(w.rescans, time.Now())
				w.mu.Unlock()
			}
			if strings.Contains(sc.Text(), "msg=watching") || strings.Contains(sc.Text(), " INFO watching") {
				if !hybrid {
					once.Do(func() { close(ready) })
				}
			}
		}
	}()
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			summary := strings.HasPrefix(sc.Text(), `{"summary"`)
			if summary {
				w.benchNote("push ended: " + sc.Text())
			}
			w.mu.Lock()
			w.out.WriteString(sc.Text() + "\n")
			if summary {
				w.pushes = append(w.pushes, time.Now())
			}
			w.mu.Unlock()
			if hybrid && summary {
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
