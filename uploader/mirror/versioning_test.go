package mirror

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// versioned is a backup into a bucket with versioning enabled.
func versioned(t *testing.T, files map[string]string) *backup {
	b := newBackup(t, files)
	b.bucket = gwtest.VersionedBucket(t, gw)
	b.opts.Identity.Bucket, b.opts.S3.Bucket = b.bucket, b.bucket
	return b
}

func (b *backup) versioning(t *testing.T) (manifest.Versioning, bool) {
	t.Helper()
	db, err := manifest.OpenReadOnly(b.opts.Manifest, b.opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, ok, err := db.Versioning(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v, ok
}

// sql runs statements on the manifest, as an older cloudkeeper would have
// left it.
func (b *backup) sql(t *testing.T, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", b.opts.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// The first run records the bucket's versioning (one GetBucketVersioning);
// a run with nothing to do still sends one request, the HeadBucket.
func TestRunRecordsTheBucketsVersioning(t *testing.T) {
	b := versioned(t, map[string]string{"a.txt": "one"})
	res := b.run(t, b.opts, ExitOK)
	if v, ok := b.versioning(t); !ok || v.Status != manifest.VersioningEnabled || !v.Checked.Equal(res.Started) {
		t.Fatalf("after the first run the manifest says %+v (%v), want enabled, checked at %v", v, ok, res.Started)
	}
	if n := b.proxy.Stats().ByOp["GetBucketVersioning"]; n != 1 {
		t.Errorf("the first run asked the versioning %d times, want 1", n)
	}
	b.run(t, b.opts, ExitOK)
	if st := b.proxy.Stats(); st.Requests != 1 || st.ByOp["HeadBucket"] != 1 {
		t.Errorf("a run with nothing to do sent %v, want one HeadBucket", st.ByOp)
	}
}

// A manifest from before history knew no version ids: the reconcile
// records the bucket's versioning and gives the objects theirs, so that
// the next overwrite keeps the old version reachable.
func TestReconcileFillsTheVersionIDsOfAnOlderManifest(t *testing.T) {
	b := versioned(t, map[string]string{"a.txt": "one", "d/b.txt": "two"})
	b.run(t, b.opts, ExitOK)
	b.sql(t, "UPDATE versions SET version_id = ''", "UPDATE objects SET version_id = ''",
		"DELETE FROM settings WHERE name LIKE 'versioning%'")
	o := b.opts
	o.Reconcile = true
	b.run(t, o, ExitOK)
	if st := b.proxy.Stats(); st.ByOp["GetBucketVersioning"] != 1 || st.ByOp["ListObjectVersions"] != 1 {
		t.Errorf("the reconcile sent %v, want one GetBucketVersioning and one ListObjectVersions", st.ByOp)
	}
	if v, ok := b.versioning(t); !ok || v.Status != manifest.VersioningEnabled {
		t.Fatalf("after the reconcile the manifest says %+v (%v), want enabled", v, ok)
	}
	b.write(t, "a.txt", "one, edited")
	b.run(t, b.opts, ExitOK)
	h, err := b.history(t, "a.txt")
	if err != nil || len(h) != 2 || h[0].VersionID == "" || h[0].Current() {
		t.Fatalf("history of a.txt: %+v, %v; want the first version ended, with its version id", h, err)
	}
	if got := b.version(t, "a.txt", h[0].VersionID); got != "one" {
		t.Errorf("version %s holds %q, want one", h[0].VersionID, got)
	}
}

// Objects written before the bucket had versioning are S3's "null"
// version: once a reconcile finds versioning on, the manifest records it,
// and the next overwrite keeps it reachable.
func TestReconcileRecordsTheNullVersionOfObjectsFromBeforeVersioning(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one"})
	b.run(t, b.opts, ExitOK)
	if v, _ := b.versioning(t); v.Status != manifest.VersioningNever {
		t.Fatalf("the manifest says %+v, want never", v)
	}
	if err := gw.SetVersioning(context.Background(), b.bucket, types.BucketVersioningStatusEnabled); err != nil {
		t.Fatal(err)
	}
	o := b.opts
	o.Reconcile = true
	b.run(t, o, ExitOK)
	b.write(t, "a.txt", "one, edited")
	b.run(t, b.opts, ExitOK)
	h, err := b.history(t, "a.txt")
	if err != nil || len(h) != 2 || h[0].VersionID != "null" {
		t.Fatalf("history of a.txt: %+v, %v; want the first version kept as S3's null version", h, err)
	}
	if got := b.version(t, "a.txt", h[0].VersionID); got != "one" {
		t.Errorf("version %s holds %q, want one", h[0].VersionID, got)
	}
}

// history is the manifest's history of path.
func (b *backup) history(t *testing.T, path string) ([]manifest.Version, error) {
	t.Helper()
	db, err := manifest.OpenReadOnly(b.opts.Manifest, b.opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return db.History(context.Background(), path)
}

// version is the content of one version of path's object.
func (b *backup) version(t *testing.T, path, versionID string) string {
	t.Helper()
	s3c, err := uploader.NewS3(context.Background(), b.opts.S3)
	if err != nil {
		t.Fatal(err)
	}
	body, _, err := s3c.GetVersion(context.Background(), prefix+path, versionID)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// Versioning suspended after the first run: the reconcile that finds it
// warns, says what to do, and records it.
func TestReconcileWarnsOfSuspendedVersioning(t *testing.T) {
	b := versioned(t, map[string]string{"a.txt": "one"})
	b.run(t, b.opts, ExitOK)
	if err := gw.SetVersioning(context.Background(), b.bucket, types.BucketVersioningStatusSuspended); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o := b.opts
	o.Reconcile, o.Log = true, slog.New(slog.NewTextHandler(&log, nil))
	b.run(t, o, ExitOK)
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "suspended") ||
		!strings.Contains(log.String(), "--keep") || !strings.Contains(log.String(), "Status=Enabled") {
		t.Errorf("the reconcile logged:\n%s\nwant a warning that versioning is suspended, and what to do", log.String())
	}
	if v, _ := b.versioning(t); v.Status != manifest.VersioningSuspended {
		t.Errorf("the manifest says %+v, want suspended", v)
	}
}
