package bench

import (
	"context"
	"fmt"
	"io"
	"os/exec"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// references runs the initial sync of small with each reference tool that
// is installed, with its defaults, into a prefix of its own; the first
// latency notes those that are not.
func (w *wan) references(ctx context.Context, i int, small, tag string) error {
	tools := []struct {
		name, bin string
		cmd       func(bin, dst string) Command
	}{
		{"rclone sync", "rclone", func(bin, dst string) Command {
			return w.rcloneCmd("sync", small, "bench:"+w.bucket+"/"+dst)
		}},
		{"aws s3 sync", "aws", func(bin, dst string) Command {
			return w.tool(bin, "--endpoint-url", w.proxy.URL, "--only-show-errors", "s3", "sync", small, "s3://"+w.bucket+"/"+dst)
		}},
		{"s5cmd sync", "s5cmd", func(bin, dst string) Command {
			return w.tool(bin, "--endpoint-url", w.proxy.URL, "sync", small+"/", "s3://"+w.bucket+"/"+dst+"/")
		}},
	}
	for _, t := range tools {
		bin, err := exec.LookPath(t.bin)
		if err != nil {
			if i == 0 {
				w.note("%s is not installed: its row is empty", t.bin)
			}
			continue
		}
		dst := t.bin + "-" + tag
		r, err := Measure(ctx, t.cmd(bin, dst))
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		w.put(t.name+", initial", i, r)
	}
	return nil
}

// tool is a command of the AWS CLI or s5cmd with the gateway's credentials
// in the environment, and none of the caller's settings.
func (w *wan) tool(bin string, args ...string) Command {
	return Command{Name: bin, Args: args, Dir: w.o.Dir, Env: []string{
		"AWS_ACCESS_KEY_ID=" + w.gw.AccessKey, "AWS_SECRET_ACCESS_KEY=" + w.gw.SecretKey,
		"AWS_REGION=" + s3test.Region, "AWS_DEFAULT_REGION=" + s3test.Region,
		// Newer CLIs send CRC trailers that S3-compatible servers refuse.
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required", "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required",
		"-AWS_PROFILE", "-AWS_ENDPOINT_URL", "-AWS_ENDPOINT_URL_S3", "-AWS_CA_BUNDLE",
	}}
}

// Markdown writes the report: one row per scenario, one column per
// latency with the wall time and its ratio to the first latency, and the
// highest peak RSS of the row.
func (r *WanReport) Markdown(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s  \nS3 server: %s\n\n| per request |", r.Machine, r.Server)
	for _, l := range r.Latencies {
		fmt.Fprintf(w, " %d ms |", l.Milliseconds())
	}
	fmt.Fprint(w, " peak RSS |\n|---|")
	for range r.Latencies {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w, "---|")
	for _, row := range r.Rows {
		fmt.Fprintf(w, "| %s |", row.Scenario)
		var peak int64
		for _, c := range row.Cells {
			if c == nil {
				fmt.Fprint(w, " |")
				continue
			}
			peak = max(peak, c.MaxRSS)
			fmt.Fprintf(w, " %s (%.2f×) |", secs(c.Wall), c.Ratio)
		}
		fmt.Fprintf(w, " %s |\n", mib(peak))
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}
