// Package gwtest has test helpers around package s3test: a gateway per test,
// fresh buckets, and a bucket's contents as a map for comparisons.
//
// Tests using it need versitygw; s3test.Find installs it on first use (about
// three minutes), so they run on a fresh machine rather than being skipped.
// Moto, the second server a package's contract tests may also run on, is a
// Python program the tests cannot install: without it they skip there.
package gwtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// startTimeout bounds Start, including a first-time install of versitygw.
const startTimeout = 10 * time.Minute

// Start starts a gateway with a temporary root, stopped when the test ends.
// If the test failed, the end of the gateway's log (one line per request) is
// logged first. It fails the test if the gateway cannot start.
func Start(t testing.TB) *s3test.Gateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	g, err := s3test.Start(ctx, s3test.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("starting S3 gateway: %v", err)
	}
	t.Cleanup(func() {
		logIfFailed(t, g)
		if err := g.Stop(); err != nil {
			t.Errorf("stopping S3 gateway: %v", err)
		}
	})
	return g
}

// logIfFailed logs the end of g's log (one line per request) if t failed.
func logIfFailed(t testing.TB, g *s3test.Gateway) {
	if !t.Failed() {
		return
	}
	if log, err := os.ReadFile(g.LogFile); err == nil {
		t.Logf("%s log (%s):\n%s", g.Server, g.LogFile, tail(string(log), 40))
	}
}

// Main is the body of a TestMain that shares one gateway among the tests of
// a package: it starts the gateway, sets *gw, runs the tests, stops it (and
// each of also that was started) and exits with their status (1 if the
// gateway cannot start).
func Main(m *testing.M, gw **s3test.Gateway, also ...*Moto) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	g, err := s3test.Start(ctx, s3test.Options{Versioning: true, Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the S3 gateway:", err)
		os.Exit(1)
	}
	*gw = g
	code := m.Run()
	g.Stop()
	for _, s := range also {
		s.Stop()
	}
	os.Exit(code)
}

// Moto is a moto server shared by the tests of a package, started by the
// first test that asks for it; the zero value is ready to use. Pass it to
// Main, which stops it.
type Moto struct {
	once sync.Once
	g    *s3test.Gateway
	err  error
}

// Start returns the running moto server, starting it on first use. A test
// skips if there is no moto_server (s3test.ErrNoMoto), saying so, and fails
// if one is there but does not start. If the test fails, the end of moto's
// log is logged.
func (s *Moto) Start(t testing.TB) *s3test.Gateway {
	t.Helper()
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		s.g, s.err = s3test.Start(ctx, s3test.Options{Server: s3test.Moto})
	})
	switch {
	case errors.Is(s.err, s3test.ErrNoMoto):
		t.Skipf("not run on the second S3 server: %v", s.err)
	case s.err != nil:
		t.Fatalf("starting moto (%s=off skips it): %v", s3test.EnvMoto, s.err)
	}
	t.Cleanup(func() { logIfFailed(t, s.g) })
	return s.g
}

// Stop stops the server if it was started.
func (s *Moto) Stop() {
	if s.g != nil {
		s.g.Stop()
	}
}

// Bucket creates a bucket with a new name derived from the test's and
// returns the name.
func Bucket(t testing.TB, g *s3test.Gateway) string { return newBucket(t, g.CreateBucket) }

// VersionedBucket is Bucket with versioning enabled.
func VersionedBucket(t testing.TB, g *s3test.Gateway) string {
	return newBucket(t, g.CreateVersionedBucket)
}

// LockedBucket is Bucket with Object Lock enabled (and so versioning).
func LockedBucket(t testing.TB, g *s3test.Gateway) string { return newBucket(t, g.CreateLockedBucket) }

// newBucket creates a bucket named for the test with create.
func newBucket(t testing.TB, create func(context.Context, string) error) string {
	t.Helper()
	name := bucketName(t.Name())
	if err := create(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

var notBucketChars = regexp.MustCompile(`[^a-z0-9]+`)

// bucketName returns a valid S3 bucket name, unique with overwhelming
// probability: a readable part of the test name, then 16 random characters.
func bucketName(testName string) string {
	base := strings.Trim(notBucketChars.ReplaceAllString(strings.ToLower(testName), "-"), "-")
	if len(base) > 40 {
		base = strings.TrimRight(base[:40], "-")
	}
	if base == "" {
		base = "test"
	}
	return base + "-" + strings.ToLower(rand.Text()[:16])
}

// Object is an object's content and user metadata.
type Object struct {
	Body []byte
	// Metadata is the user metadata as the SDK returns it: x-amz-meta-
	// prefix stripped, keys lower-case.
	Metadata map[string]string
}

// Objects returns every object of bucket whose key starts with prefix, read
// with ListObjectsV2 and GetObject through c. It fails the test on error.
func Objects(t testing.TB, c *s3.Client, bucket, prefix string) map[string]Object {
	t.Helper()
	ctx := context.Background()
	objects := map[string]Object{}
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{
		Bucket: aws.String(bucket),
		Prefix: aws.String(prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing s3://%s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
			var gone *types.NoSuchKey
			if errors.As(err, &gone) {
				// Deleted since the listing (a watch polled while it
				// pushes): not in the bucket any more.
				continue
			}
			if err != nil {
				t.Fatalf("getting s3://%s/%s: %v", bucket, key, err)
			}
			body, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatalf("reading s3://%s/%s: %v", bucket, key, err)
			}
			objects[key] = Object{Body: body, Metadata: out.Metadata}
		}
	}
	return objects
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
