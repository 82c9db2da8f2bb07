package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Run is one measured run of a command.
type Run struct {
	Wall   time.Duration
	CPU    time.Duration // user + system
	MaxRSS int64         // peak resident set size, bytes
	Stdout string
	// First is when the first line of stdout that FirstPrefix matches
	// arrived, from the start; zero if none did.
	First time.Duration
}

// Command is a command to measure.
type Command struct {
	Name string
	Args []string
	Env  []string // added to the environment; "-NAME" removes NAME
	Dir  string
	// FirstPrefix marks the stdout line whose arrival time is Run.First.
	FirstPrefix string
}

func (c Command) String() string { return strings.Join(append([]string{c.Name}, c.Args...), " ") }

func (c Command) environ() []string {
	drop := map[string]bool{}
	var add []string
	for _, e := range c.Env {
		if name, ok := strings.CutPrefix(e, "-"); ok {
			drop[name] = true
		} else {
			add = append(add, e)
		}
	}
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		if !drop[name] {
			env = append(env, e)
		}
	}
	return append(env, add...)
}

// Measure runs c once and returns its wall time, CPU time, peak RSS and
// output. A non-zero exit status is an error that carries stderr.
func Measure(ctx context.Context, c Command) (Run, error) {
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = c.environ()
	cmd.Dir = c.Dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Run{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Run{}, fmt.Errorf("%s: %w", c, err)
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	var r Run
	var sb strings.Builder
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if r.First == 0 && c.FirstPrefix != "" && strings.HasPrefix(line, c.FirstPrefix) {
			r.First = time.Since(start)
		}
		sb.WriteString(line)
		sb.WriteByte('\n')
	}
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	r.Wall = time.Since(start)
	r.Stdout = sb.String()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	r.MaxRSS = peak()
	if err != nil {
		return r, fmt.Errorf("%s: %w\n%s", c, err, tail(stderr.String(), 10))
	}
	return r, nil
}

// Best runs c n times (after prepare, if set, before each) and returns the
// run with the shortest wall time: on a shared, noisy machine the fastest
// run is the one least disturbed.
func Best(ctx context.Context, n int, c Command, prepare func() error) (Run, error) {
	var runs []Run
	for range max(n, 1) {
		if prepare != nil {
			if err := prepare(); err != nil {
				return Run{}, err
			}
		}
		r, err := Measure(ctx, c)
		if err != nil {
			return r, err
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Wall < runs[j].Wall })
	return runs[0], nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// watchPeakRSS samples the VmHWM (peak resident set) of process pid every
// few milliseconds until it exits, and returns a function that stops and
// gives the last sample. The rusage of wait4 cannot be used: Go starts
// children with vfork, so their ru_maxrss counts the parent's memory.
func watchPeakRSS(pid int) func() int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if kb := vmHWM(path); kb > 0 {
				peak.Store(kb * 1024)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

// vmHWM reads the VmHWM line (kB) of a /proc/PID/status file; 0 if gone.
func vmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}
