// Package demo is cloudkeeper's tour: a local S3 gateway, a sample
// folder, and a few syncs of it (a preview, a backup, edits, a second
// preview and backup, a run with nothing to do), then what the bucket
// holds. Run sets the stage, makes the edits between the steps and lists
// the bucket at the end; each sync is the caller's (Options.Sync).
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// Stage is where the demo's syncs go: its sample folder, the gateway and
// its keys, and a manifest of its own, all in a temporary folder.
type Stage struct {
	Source, Bucket, Prefix, Endpoint, Region, Manifest string
	AccessKey, SecretKey                               string
}

// Options are the demo's outputs and its sync.
type Options struct {
	Out, Err io.Writer // the tour on Out; the gateway's log and notes on Err
	// Keep leaves the temporary folder in place and names it on Err.
	Keep bool
	// Sync runs one sync (a dry run with dryRun) of the stage.
	Sync func(ctx context.Context, s Stage, dryRun bool) error
}

// Run is the tour.
func Run(ctx context.Context, o Options) error {
	out, errOut, keep := o.Out, o.Err, o.Keep
	dir, err := os.MkdirTemp("", "cloudkeeper-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(errOut, "demo folder: %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, "\n### "+format+"\n", a...) }

	say("starting a local S3 gateway (Versity S3 Gateway)")
	gw, err := s3test.Start(ctx, s3test.Options{
		Root: filepath.Join(dir, "gateway"),
		Logf: func(f string, a ...any) { fmt.Fprintf(errOut, f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	defer gw.Stop()
	const bucket = "demo"
	if err := gw.CreateBucket(ctx, bucket); err != nil {
		return err
	}
	fmt.Fprintf(out, "S3 endpoint %s, bucket %q\n", gw.Endpoint, bucket)

	src := filepath.Join(dir, "work")
	if err := writeDemoTree(src); err != nil {
		return err
	}

	stage := Stage{
		Source: src, Bucket: bucket, Prefix: "laptop/", Endpoint: gw.Endpoint, Region: gw.Region,
		Manifest: filepath.Join(dir, "state", "manifest.db"), AccessKey: gw.AccessKey, SecretKey: gw.SecretKey,
	}
	step := func(dryRun bool) error {
		cmd := "cloudkeeper sync --source " + src + " --bucket demo --prefix laptop/ --endpoint " + gw.Endpoint
		if dryRun {
			cmd += " --dry-run"
		}
		fmt.Fprintf(out, "$ %s\n", cmd)
		return o.Sync(ctx, stage, dryRun)
	}

	say("1. preview the first backup")
	if err := step(true); err != nil {
		return err
	}
	say("2. back it up")
	if err := step(false); err != nil {
		return err
	}
	say("3. edit a file, rename a folder, delete a file; preview")
	os.WriteFile(filepath.Join(src, "notes.txt"), []byte("meeting notes\nand decisions\n"), 0o644)
	os.Rename(filepath.Join(src, "photos", "2024"), filepath.Join(src, "photos", "summer-2024"))
	os.Remove(filepath.Join(src, "docs", "budget.csv"))
	if err := step(true); err != nil {
		return err
	}
	say("4. apply: the renamed photos are copied on the server, not uploaded again")
	if err := step(false); err != nil {
		return err
	}
	say("5. nothing changed: no file is read, one S3 request checks the bucket")
	if err := step(false); err != nil {
		return err
	}
	say("the bucket now holds (key, size, x-amz-meta-blake3):")
	return listBucket(ctx, out, gw, bucket)
}

// writeDemoTree writes the demo's few files, and an empty folder, which is
// not pushed.
func writeDemoTree(src string) error {
	files := map[string]string{
		"notes.txt":              "meeting notes\n",
		"docs/report.md":         "# Quarterly report\n\nAll good.\n",
		"docs/budget.csv":        "item,eur\nlaptop,1200\n",
		"photos/2024/beach.jpg":  string(make([]byte, 300_000)),
		"photos/2024/sunset.jpg": string(make([]byte, 200_001)),
	}
	for rel, content := range files {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(src, "empty-folder"), 0o755)
}

func listBucket(ctx context.Context, out io.Writer, gw *s3test.Gateway, bucket string) error {
	c := gw.Client()
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	var lines []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list bucket %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return fmt.Errorf("head %s: %w", aws.ToString(o.Key), err)
			}
			lines = append(lines, fmt.Sprintf("  %-38s %9s  %.16s…", aws.ToString(o.Key), human.Bytes(aws.ToInt64(o.Size)), head.Metadata["blake3"]))
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}
