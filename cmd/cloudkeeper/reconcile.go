package main

import (
	"strings"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/reconcile"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/report"
)

// defaultReconcileEvery is how old the last reconcile may be before a run
// reconciles by itself.
const defaultReconcileEvery = 7 * 24 * time.Hour

// logFinding logs one object a reconcile or verify --repair found out of
// line: a warning, but for an adopted object, which is no loss.
func logFinding(p *printer, f reconcile.Finding) {
	attrs := []any{"key", human.Key(f.Key)}
	if f.Path != "" {
		attrs = []any{"path", display(f.Path)}
	}
	if f.Kind == reconcile.Adopted {
		p.log.Info(f.Detail, attrs...)
		return
	}
	p.log.Warn(f.Detail, attrs...)
}

// findingsLine is "1 missing, 2 differing", or "nothing to repair".
func findingsLine(f report.Findings) string {
	var found []string
	for _, c := range []struct {
		n    int64
		what string
	}{{f.Missing, "missing"}, {f.Differ, "differing"}, {f.Adopted, "adopted"}, {f.Extra, "extra"}} {
		if c.n > 0 {
			found = append(found, human.Thousands(c.n)+" "+c.what)
		}
	}
	if len(found) == 0 {
		return "nothing to repair"
	}
	return strings.Join(found, ", ")
}
