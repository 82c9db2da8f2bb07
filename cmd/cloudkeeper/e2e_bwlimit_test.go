package main

// --bwlimit (issue 12, item 4): the upload rate held at the limit, as
// the proxy measures it, and bad values refused before any request.

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// rateMeter samples the proxy's uploaded bytes until stopped: the rate
// from the first byte seen to the last, at the proxy.
type rateMeter struct {
	stop, done  chan struct{}
	first, last time.Time
	firstBytes  int64
	lastBytes   int64
}

func (e *env) meterUploads() *rateMeter {
	m := &rateMeter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			n := e.proxy.Stats().BytesUploaded
			switch {
			case n > 0 && m.first.IsZero():
				m.first, m.firstBytes = time.Now(), n
			case n > m.lastBytes:
				m.last, m.lastBytes = time.Now(), n
			}
		}
	}()
	return m
}

// rate stops the meter and returns bytes per second over what it saw.
func (m *rateMeter) rate() (perSecond float64, bytes int64, over time.Duration) {
	close(m.stop)
	<-m.done
	over = m.last.Sub(m.first)
	bytes = m.lastBytes - m.firstBytes
	if over <= 0 {
		return 0, bytes, over
	}
	return float64(bytes) / over.Seconds(), bytes, over
}

// 6 MiB, a large file and small ones, uploaded with --bwlimit 1M reach
// the proxy at 1 MiB/s, ±12%.
func TestSyncHoldsTheBandwidthLimit(t *testing.T) {
	tree := scantest.Dir{"big.bin": scantest.File{Content: strings.Repeat("b", 4<<20)}}
	for i := range 16 {
		// Each its own content: duplicates within a run are copies.
		tree[fmt.Sprintf("small%02d", i)] = scantest.File{Content: strings.Repeat(fmt.Sprintf("%02d", i), 64<<10)}
	}
	e := newEnv(t, tree)
	e.proxy.Reset()
	m := e.meterUploads()
	start := time.Now()
	r := e.run(append(append([]string{"sync"}, e.baseArgs()...), "--bwlimit", "1M")...)
	took := time.Since(start)
	rate, bytes, over := m.rate()
	if r.code != 0 {
		t.Fatalf("sync --bwlimit 1M: exit %d\n%s", r.code, r.stderr)
	}
	if got := e.proxy.Stats().BytesUploaded; got != 6<<20 {
		t.Fatalf("uploaded %d bytes, want %d", got, 6<<20)
	}
	const limit = 1 << 20
	t.Logf("sync took %v; at the proxy %d bytes in %v: %.0f B/s (%+.1f%% of 1 MiB/s)", took.Round(time.Millisecond),
		bytes, over.Round(time.Millisecond), rate, 100*(rate/limit-1))
	if rate < 0.88*limit || rate > 1.12*limit {
		t.Errorf("upload rate at the proxy %.0f B/s, want 1 MiB/s ± 12%%", rate)
	}
	e.checkBucketIsTree()
}

// A bad --bwlimit or CLOUDKEEPER_BWLIMIT is a usage error naming the
// value, for sync and watch, before any request.
func TestBandwidthLimitBadValues(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a": scantest.File{Content: "a"}})
	for _, c := range []struct {
		cmd, flag, env, want string
	}{
		{"sync", "fast", "", `"fast"`},
		{"sync", "-1M", "", `"-1M"`},
		{"sync", "", "10Q", `"10Q"`},
		{"sync", "08:00,1M 07:00,off", "", `"07:00,off" is not after`},
		{"watch", "25:00,1M", "", `"25:00,1M": want HH:MM,RATE`},
		{"watch", "", "08:00,1M 23:00,slow", `"slow"`},
	} {
		args := append([]string{c.cmd}, e.baseArgs()...)
		if c.flag != "" {
			args = append(args, "--bwlimit", c.flag)
		}
		e.cmd = func(cmd *exec.Cmd) {
			// A watch that took the value would run until killed.
			cmd.Path, cmd.Args = "/usr/bin/timeout", append([]string{"timeout", "20", binPath}, cmd.Args[1:]...)
			if c.env != "" {
				cmd.Env = append(cmd.Env, "CLOUDKEEPER_BWLIMIT="+c.env)
			}
		}
		e.proxy.Reset()
		r := e.run(args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s --bwlimit %q / CLOUDKEEPER_BWLIMIT=%q: exit %d, want 2 and %s on stderr:\n%s", c.cmd, c.flag, c.env, r.code, c.want, r.stderr)
		}
		if n := e.proxy.Stats().Requests; n != 0 {
			t.Errorf("%s with a bad limit sent %d requests, want none", c.cmd, n)
		}
	}
}
