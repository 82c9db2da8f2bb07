// Package report tells the outside how backup runs went: a Prometheus
// textfile for node_exporter's textfile collector (WriteMetrics), a JSON
// notification POSTed to a webhook or ping service (Notifier), and the
// status of a backup read from its manifest, stale or not (ReadStatus).
//
// A run is described by a Run: the mirror.Result that mirror.Run or
// mirror.Watch gave, with the exit status the caller chose and the first
// paths that failed. A Target names what is backed up where:
//
//	t := report.Target{Source: src, Bucket: "b", Prefix: "laptop/"}
//	r := report.Run{Result: res, ExitCode: res.ExitCode()}
//	if err := report.WriteMetrics("/var/lib/node_exporter/cloudkeeper.prom", t, r); err != nil { ... }
//	n := report.Notifier{URL: "https://hc-ping.com/UUID"}
//	if _, err := n.Send(ctx, t, r); err != nil { ... } // after three attempts
//
// None of it talks to S3, and nothing here fails a backup: the caller
// decides what to do with an error (the command logs it).
package report

import "github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"

// Target is what a backup copies where: the labels of the metrics and the
// fields of a notification.
type Target struct {
	Source, Bucket, Prefix string
	Endpoint               string // empty for AWS itself
}

// Run is one run as reported: its result, its exit status (the caller's:
// mirror.Result.ExitCode, or 2 for a usage error), and the first paths
// that failed, with why.
type Run struct {
	mirror.Result
	ExitCode    int
	FirstErrors []string
}
