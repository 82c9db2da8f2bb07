package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// openPTY opens a pseudo-terminal: what a person running cloudkeeper by
// hand has as stderr.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here (%v): the progress display cannot be checked", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("cannot unlock a pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("cannot name a pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("cannot open /dev/pts/%d: %v", n, err)
	}
	unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120})
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// On a terminal a run shows live progress (files scanned, uploads done of
// queued, bytes); in cron, a pipe or a log file it shows none.
func TestProgressOnlyOnATerminal(t *testing.T) {
	tree := scantest.Dir{}
	for i := range 12 {
		tree[fmt.Sprintf("f%02d.txt", i)] = scantest.File{Content: strings.Repeat("x", 1000+i)}
	}
	e := newEnv(t, tree)
	// Slow uploads, so that the display refreshes while the run lasts.
	e.proxy.SetFault(func(req *http.Request) *s3test.Fault {
		if s3test.Operation(req) == "PutObject" {
			return &s3test.Fault{Delay: 150 * time.Millisecond}
		}
		return nil
	})

	master, tty := openPTY(t)
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&screen, master) // ends with EIO once no one holds the terminal
		close(copied)
	}()
	e.cmd = func(c *exec.Cmd) { c.Stderr = tty }
	r := e.sync(0, "--concurrency", "2")
	e.cmd = nil
	tty.Close()
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal was not released")
	}
	shown := screen.String()
	for _, want := range []string{"scan    12 files", "apply   12/12 changes, 11.8 KiB/11.8 KiB"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the terminal did not show %q:\n%q", want, shown)
		}
	}
	// Live: it was redrawn while uploads were still going.
	if m := regexp.MustCompile(`apply   (\d+)/(\d+) changes`).FindStringSubmatch(shown); m == nil || m[1] == m[2] {
		t.Errorf("no display of a run in progress:\n%q", shown)
	}
	if !strings.Contains(r.stdout, "add     f00.txt (1000 B)\n") || strings.Contains(r.stdout, "apply") {
		t.Errorf("change lines are not on stdout: %q", r.stdout)
	}

	// Not a terminal: the same kind of run prints its summary and no
	// progress, no cursor movement.
	scantest.Write(t, e.src, "f00.txt", "changed")
	r = e.sync(0)
	if strings.Contains(r.stderr, "apply   ") || strings.Contains(r.stderr, "scan    ") || strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Fatalf("progress noise on a stderr that is not a terminal:\n%q", r.stderr)
	}
}
