package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// printer writes one line per applied change and the summary to stdout,
// for people or (with --json) for programs, and problems to stderr.
type printer struct {
	mu     sync.Mutex
	out    io.Writer
	errOut io.Writer
	json   bool
}

type jsonChange struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	From string `json:"from,omitempty"`
	Size int64  `json:"size"`
}

type jsonSummary struct {
	Summary struct {
		Add       int64 `json:"add"`
		Modify    int64 `json:"modify"`
		Rename    int64 `json:"rename"`
		Copy      int64 `json:"copy"`
		Delete    int64 `json:"delete"`
		Unchanged int64 `json:"unchanged"`
		Bytes     int64 `json:"bytes"`
		Errors    int64 `json:"errors"`
		// What the scan read: zero on a run where stat says nothing changed.
		HashedFiles int64 `json:"hashed_files"`
		HashedBytes int64 `json:"hashed_bytes"`
	} `json:"summary"`
}

// display is how a path is shown: its key form, in which control
// characters and bytes that are not UTF-8 are escaped, so that one change
// is always one line.
func display(path string) string { return manifest.EscapePath(path) }

// result prints an applied change, or reports a failed one.
func (p *printer) result(r uploader.Result) {
	ch := r.Change
	if r.Err != nil {
		p.problem(fmt.Sprintf("error: %s %s: %v", ch.Op, display(ch.Path), r.Err))
		return
	}
	if ch.Op == manifest.OpTouch {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, _ := json.Marshal(jsonChange{Op: ch.Op.String(), Path: display(ch.Path), From: displayFrom(ch.From), Size: ch.Entry.Stat.Size})
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	switch ch.Op {
	case manifest.OpAdd, manifest.OpModify:
		fmt.Fprintf(p.out, "%-7s %s (%s)\n", ch.Op, display(ch.Path), humanBytes(ch.Entry.Stat.Size))
	case manifest.OpRename, manifest.OpCopy:
		fmt.Fprintf(p.out, "%-7s %s -> %s\n", ch.Op, display(ch.From), display(ch.Path))
	default:
		fmt.Fprintf(p.out, "%-7s %s\n", ch.Op, display(ch.Path))
	}
}

func displayFrom(p string) string {
	if p == "" {
		return ""
	}
	return display(p)
}

// diffProblem reports what the scan or the diff could not handle.
func (p *printer) diffProblem(pr manifest.Problem) {
	if pr.Err != nil {
		p.problem(fmt.Sprintf("error: %s: %v", display(pr.Path), pr.Err))
		return
	}
	p.problem(fmt.Sprintf("skip: %s: %s", display(pr.Path), pr.Notice))
}

func (p *printer) problem(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.errOut, line)
}

// summary prints the last line: "2 uploads (2.1 MiB), 1 rename, 1 copy,
// 1 delete; 20,114 files unchanged".
func (p *printer) summary(s uploader.Summary, st manifest.Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	errors := s.Errors + st.Errors
	if p.json {
		var js jsonSummary
		js.Summary.Add, js.Summary.Modify, js.Summary.Rename = s.Adds, s.Modifies, s.Renames
		js.Summary.Copy, js.Summary.Delete, js.Summary.Unchanged = s.Copies, s.Deletes, st.Unchanged
		js.Summary.Bytes, js.Summary.Errors = s.Bytes, errors
		js.Summary.HashedFiles, js.Summary.HashedBytes = st.Hashed, st.HashedBytes
		b, _ := json.Marshal(js)
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	line := fmt.Sprintf("%s (%s), %s, %s, %s; %s unchanged",
		count(s.Uploads(), "upload", "uploads"), humanBytes(s.Bytes),
		count(s.Renames, "rename", "renames"), count(s.Copies, "copy", "copies"),
		count(s.Deletes, "delete", "deletes"), count(st.Unchanged, "file", "files"))
	if errors > 0 {
		line += "; " + count(errors, "error", "errors")
	}
	fmt.Fprintln(p.out, line)
}

func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}

// thousands formats n with comma separators: 20114 -> "20,114".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// humanBytes formats a size in IEC units with one decimal: "2.1 MiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || unit == "TiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return "" // unreachable
}
