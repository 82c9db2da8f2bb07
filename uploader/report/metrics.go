package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Metrics is the Prometheus textfile of a run: gauges labelled with the
// target's source, bucket and prefix.
func Metrics(t Target, r Run) []byte {
	labels := fmt.Sprintf(`{source=%q,bucket=%q,prefix=%q}`, t.Source, t.Bucket, t.Prefix)
	var b strings.Builder
	metric := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s%s %g\n", name, help, name, name, labels, v)
	}
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	metric("cloudkeeper_last_run_timestamp_seconds", "When the last sync ended.", unix(r.Ended))
	metric("cloudkeeper_last_success_timestamp_seconds", "When the last sync that exited 0 ended (0: never).", unix(r.LastSuccess))
	metric("cloudkeeper_last_run_duration_seconds", "How long the last sync took.", r.Ended.Sub(r.Started).Seconds())
	metric("cloudkeeper_last_run_exit_code", "Exit status of the last sync: 0 ok, 3 some paths failed, 1 fatal.", float64(r.ExitCode))
	metric("cloudkeeper_last_run_errors", "Paths that failed in the last sync.", float64(r.Errors))
	metric("cloudkeeper_last_run_uploaded_bytes", "Bytes uploaded by the last sync.", float64(r.Bytes))
	metric("cloudkeeper_last_run_changes", "Changes applied by the last sync.", float64(r.Changes()))
	metric("cloudkeeper_last_run_requests", "S3 requests sent by the last sync, retries included.", float64(r.Requests.Total()))
	metric("cloudkeeper_objects", "Objects in the backup, per the manifest.", float64(r.Objects))
	metric("cloudkeeper_bytes", "Bytes in the backup, per the manifest.", float64(r.ObjectBytes))
	return []byte(b.String())
}

// WriteMetrics writes Metrics to path (mode 0644) through a temporary file
// in the same folder renamed into place, so that a collector never reads
// half a file. A folder that is not there is an error of its own, which
// wraps fs.ErrNotExist.
func WriteMetrics(path string, t Target, r Run) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if errors.Is(err, fs.ErrNotExist) {
		return missingFolder(filepath.Dir(path))
	}
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(Metrics(t, r)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// missingFolder is the error of a file to write in a folder that is not
// there.
type missingFolder string

func (m missingFolder) Error() string { return "the folder " + string(m) + " does not exist" }
func (m missingFolder) Unwrap() error { return fs.ErrNotExist }
