package rebuild

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/mirror"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// gw is the real S3 server (Versity S3 Gateway) the history tests talk
// to; one per test binary.
var gw *s3test.Gateway

func TestMain(m *testing.M) { gwtest.Main(m, &gw) }

// nextSecond waits for the clock's next whole second: the gateway's
// LastModified has whole seconds, and the history a rebuild reads from
// it tells apart only runs that they separate.
func nextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
}

// versionLine is what a rebuild can know of a version: all but when the
// run that wrote it ran, and which it was.
func versionLine(v manifest.Version) string {
	return fmt.Sprintf("%s %d %x %d %o %s %s current=%v", v.Path, v.Size, v.Hash[:4], v.MtimeNs, v.Mode, v.ETag, v.VersionID, v.Current())
}

func histories(t *testing.T, db *manifest.DB, paths ...string) string {
	t.Helper()
	var lines []string
	for _, p := range paths {
		h, err := db.History(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range h {
			lines = append(lines, versionLine(v))
		}
	}
	return strings.Join(lines, "\n")
}

// A manifest lost loses no history: rebuilt from a bucket with
// versioning, it has every version of each path, with its hash and
// version id, and the tree as any run left it.
func TestRebuildRestoresTheHistory(t *testing.T) {
	ctx := context.Background()
	src, bucket := t.TempDir(), gwtest.VersionedBucket(t, gw)
	proxy, err := s3test.NewProxy(gw.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	o := mirror.Options{
		Identity: manifest.Identity{Source: src, Endpoint: proxy.URL, Bucket: bucket, Prefix: "p/"},
		Manifest: filepath.Join(t.TempDir(), "m.db"),
		S3: uploader.S3Config{Bucket: bucket, Endpoint: proxy.URL, MaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(gw.AccessKey, gw.SecretKey, "")},
		MaxDelete: manifest.MaxDeleteShare(100),
	}
	write := func(path, body string) {
		if err := os.WriteFile(filepath.Join(src, path), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func() mirror.Result {
		res := mirror.Run(ctx, o)
		if res.ExitCode() != mirror.ExitOK {
			t.Fatalf("run: %v", res.Err)
		}
		nextSecond()
		return res
	}
	write("doc.txt", "one")
	write("keep.txt", "kept")
	write("gone.txt", "bye")
	first := run()
	write("doc.txt", "two, longer")
	run()
	write("doc.txt", "three")
	if err := os.Remove(filepath.Join(src, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	run()

	paths := []string{"doc.txt", "gone.txt", "keep.txt"}
	db, err := manifest.OpenReadOnly(o.Manifest, o.Identity)
	if err != nil {
		t.Fatal(err)
	}
	want := histories(t, db, paths...)
	db.Close()
	if n := strings.Count(want, "doc.txt"); n != 3 {
		t.Fatalf("the runs' history has %d versions of doc.txt, want 3:\n%s", n, want)
	}
	manifest.Remove(o.Manifest)

	s3c, err := uploader.NewS3(ctx, o.S3)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Reset()
	res, err := Run(ctx, s3c, Options{Manifest: o.Manifest, Identity: o.Identity, Prefix: "p/", Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	// 5 versions and a delete marker; the 3 versions that are not
	// current are read one HEAD each, as are the 2 current objects.
	ops := proxy.Stats().ByOp
	if res.Objects != 2 || res.Versions != 3 || res.VersionsListed != 6 || res.Versioning != manifest.VersioningEnabled ||
		ops["HeadObject"] != 5 || ops["ListObjectVersions"] != 1 || ops["ListObjectsV2"] != 1 || ops["GetBucketVersioning"] != 1 {
		t.Errorf("rebuild: %+v, requests %v", res, ops)
	}
	db, err = manifest.OpenReadOnly(o.Manifest, o.Identity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := histories(t, db, paths...); got != want {
		t.Errorf("rebuilt history:\n%s\nwant, as the runs recorded it:\n%s", got, want)
	}
	var then []string
	err = db.TreeAt(ctx, first.Ended, "", func(v manifest.Version) error {
		then = append(then, fmt.Sprintf("%s %x", v.Path, v.Hash[:4]))
		return nil
	})
	sum := func(s string) string { h := scanner.Digest(blake3.Sum256([]byte(s))); return fmt.Sprintf("%x", h[:4]) }
	if w := "doc.txt " + sum("one") + ",gone.txt " + sum("bye") + ",keep.txt " + sum("kept"); err != nil || strings.Join(then, ",") != w {
		t.Errorf("the tree the first run left, from the rebuilt manifest: %v, %v; want %s", then, err, w)
	}
	if v, ok, err := db.Versioning(ctx); err != nil || !ok || v.Status != manifest.VersioningEnabled {
		t.Errorf("the rebuilt manifest's versioning: %+v, %v, %v", v, ok, err)
	}
}

// The versions of a key are timed from S3's LastModified (when each was
// written), or, on a server whose LastModified of an old version is when
// it was replaced, from that.
func TestSpansOfAKeysVersions(t *testing.T) {
	at := func(s float64) time.Time {
		return time.Unix(1_800_000_000, 0).Add(time.Duration(s * float64(time.Second)))
	}
	ver := func(lm float64) uploader.ObjectVersion { return uploader.ObjectVersion{Key: "k", LastModified: at(lm)} }
	marker := func(lm float64) uploader.ObjectVersion {
		return uploader.ObjectVersion{Key: "k", LastModified: at(lm), DeleteMarker: true}
	}
	show := func(sps []span) string {
		var out []string
		for _, sp := range sps {
			out = append(out, fmt.Sprintf("%v-%v mtime=%v", sp.written.Sub(at(0)).Seconds(), sp.ended.Sub(at(0)).Seconds(), sp.sinceMtime))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name  string
		group []uploader.ObjectVersion
		want  string
	}{
		{"S3", []uploader.ObjectVersion{ver(3.5), ver(2.25), ver(1.125)}, "2.25-3.5 mtime=false,1.125-2.25 mtime=false"},
		{"S3, deleted", []uploader.ObjectVersion{marker(4.5), ver(3.25), ver(2.125)}, "3.25-4.5 mtime=false,2.125-3.25 mtime=false"},
		{"S3, within a second", []uploader.ObjectVersion{ver(3.5), ver(3.25)}, "3.25-3.5 mtime=false"},
		{"replaced times", []uploader.ObjectVersion{ver(3), ver(3), ver(2)}, "2-3 mtime=false,2-2 mtime=true"},
		{"replaced times, deleted", []uploader.ObjectVersion{marker(1.5), ver(3)}, "3-3 mtime=true"},
		{"current only", []uploader.ObjectVersion{ver(1)}, ""},
	} {
		if got := show(spans(c.group)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
