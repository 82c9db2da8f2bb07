package rebuild

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/readertest"
)

type versionedFake struct {
	*readertest.Fake
	lm       map[string]time.Time
	status   manifest.VersioningStatus
	versions []uploader.ObjectVersion
	vmeta    map[string]uploader.ObjectMeta
}

func (r *versionedFake) List(ctx context.Context, prefix string, fn func(uploader.ObjectInfo) error) error {
	return r.Fake.List(ctx, prefix, func(o uploader.ObjectInfo) error {
		o.LastModified = r.lm[o.Key]
		return fn(o)
	})
}
func (r *versionedFake) Versioning(context.Context) (manifest.VersioningStatus, error) {
	return r.status, nil
}
func (r *versionedFake) ListVersions(ctx context.Context, prefix string, fn func(uploader.ObjectVersion) error) error {
	for _, v := range r.versions {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}
func (r *versionedFake) HeadVersion(ctx context.Context, key, id string) (uploader.ObjectMeta, error) {
	if m, ok := r.vmeta[key+"@"+id]; ok {
		return m, nil
	}
	return uploader.ObjectMeta{}, uploader.ErrNotFound
}

func copyMeta(body []byte, mtime int64, key string, replaced time.Time) uploader.ObjectMeta {
	m := readertest.Meta(body, mtime, 0o644)
	m.Metadata = map[string]string{uploader.MetaKey: key, uploader.MetaReplaced: uploader.FormatMtime(replaced.UnixNano())}
	return m
}

// rebuilt is the manifest a rebuild from f writes, open read-only.
func rebuilt(t *testing.T, f *versionedFake) *manifest.DB {
	t.Helper()
	o := options(t.TempDir())
	if _, err := Run(context.Background(), f, o); err != nil {
		t.Fatal(err)
	}
	db, err := manifest.OpenReadOnly(o.Manifest, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func treeAt(t *testing.T, db *manifest.DB, at time.Time) []manifest.Version {
	var out []manifest.Version
	if err := db.TreeAt(context.Background(), at, "", func(v manifest.Version) error { out = append(out, v); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// The fake bucket of these tests lists versions and answers HEADs of them;
// the rebuild's logic above the S3 client is what they test (the e2e tests
// run it against the real gateway).
//
// Versioning on, then suspended: v1 (id a), v2 (id b) enabled era; v3 null
// (written at T3 while suspended: b stays), v4 null overwrites v3 at T4 (lost:
// a --keep copy of v3 is made).
func TestRebuiltCopiesAndVersionsOfASuspendedBucketDoNotOverlap(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	T := func(d int) time.Time { return base.Add(time.Duration(d) * 24 * time.Hour) }
	f := &versionedFake{Fake: readertest.NewFake(), lm: map[string]time.Time{}, status: manifest.VersioningSuspended, vmeta: map[string]uploader.ObjectMeta{}}
	f.Put("p/doc", []byte("v4"), readertest.Meta([]byte("v4"), T(4).UnixNano()-1e9, 0o644))
	f.lm["p/doc"] = T(4)
	hk := manifest.HistoryKey("p/", 4, T(4), "doc")
	f.Put(hk, []byte("v3"), copyMeta([]byte("v3"), T(3).UnixNano()-1e9, "p/doc", T(4)))
	f.lm[hk] = T(4)
	f.versions = []uploader.ObjectVersion{
		{Key: "p/doc", VersionID: "null", Latest: true, Size: 2, LastModified: T(4)},
		{Key: "p/doc", VersionID: "b", Size: 2, LastModified: T(2)},
		{Key: "p/doc", VersionID: "a", Size: 2, LastModified: T(1)},
	}
	f.vmeta["p/doc@b"] = readertest.Meta([]byte("v2"), T(2).UnixNano()-1e9, 0o644)
	f.vmeta["p/doc@a"] = readertest.Meta([]byte("v1"), T(1).UnixNano()-1e9, 0o644)
	db := rebuilt(t, f)
	h, _ := db.History(context.Background(), "doc")
	for _, v := range h {
		t.Logf("%s [%s, %s) vid=%q hk=%v", v.Path, v.Written.Format(time.DateTime), v.Ended.Format(time.DateTime), v.VersionID, v.HistoryKey != "")
	}
	if got := treeAt(t, db, T(3).Add(12*time.Hour)); len(got) != 1 || got[0].HistoryKey != hk {
		t.Errorf("TreeAt day 3.5: %d versions of doc current at once (%+v); want v3, kept by its copy", len(got), got)
	}
	if got := treeAt(t, db, T(2).Add(12*time.Hour)); len(got) != 1 || got[0].VersionID != "b" {
		t.Errorf("TreeAt day 2.5: %+v; want version b", got)
	}
}

// A copy without x-amz-meta-mtime: its version begins when it ended, not
// in 1970 (a reviewer's find: restore --at 1990 restored it).
func TestRebuiltCopyWithoutMtimeBeginsWhenReplaced(t *testing.T) {
	now := time.Now()
	f := &versionedFake{Fake: readertest.NewFake(), lm: map[string]time.Time{}, status: manifest.VersioningNever}
	f.Put("p/doc", []byte("v2"), readertest.Meta([]byte("v2"), now.UnixNano(), 0o644))
	f.lm["p/doc"] = now
	hk := manifest.HistoryKey("p/", 2, now, "doc")
	m := copyMeta([]byte("v1"), 0, "p/doc", now.Add(-time.Hour))
	m.MtimeErr = errors.New("no x-amz-meta-mtime")
	f.Put(hk, []byte("v1"), m)
	db := rebuilt(t, f)
	at := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := treeAt(t, db, at); len(got) != 0 {
		t.Errorf("TreeAt 1990: %+v; the copy's version current since %s", got[0].Path, got[0].Written)
	}
	if ok, _ := db.RunlessHistoryBy(context.Background(), at); ok {
		t.Errorf("RunlessHistoryBy(1990) true: restore --at 1990 restores doc")
	}
}

// --keep without versioning, then versioning enabled: the first overwrite
// after copies the null version (lost() takes "" for lost) though S3 keeps it.
func TestRebuiltCopyOfTheNullVersionIsThatVersion(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	T := func(d int) time.Time { return base.Add(time.Duration(d) * 24 * time.Hour) }
	f := &versionedFake{Fake: readertest.NewFake(), lm: map[string]time.Time{}, status: manifest.VersioningEnabled, vmeta: map[string]uploader.ObjectMeta{}}
	f.Put("p/doc", []byte("v3"), readertest.Meta([]byte("v3"), T(3).UnixNano()-1e9, 0o644))
	f.lm["p/doc"] = T(3)
	for i, b := range []string{"v1", "v2"} {
		hk := manifest.HistoryKey("p/", int64(i+2), T(i+2), "doc")
		f.Put(hk, []byte(b), copyMeta([]byte(b), T(i+1).UnixNano()-1e9, "p/doc", T(i+2)))
	}
	f.versions = []uploader.ObjectVersion{
		{Key: "p/doc", VersionID: "c", Latest: true, Size: 2, LastModified: T(3)},
		{Key: "p/doc", VersionID: "null", Size: 2, LastModified: T(2)},
	}
	f.vmeta["p/doc@null"] = readertest.Meta([]byte("v2"), T(2).UnixNano()-1e9, 0o644)
	db := rebuilt(t, f)
	h, _ := db.History(context.Background(), "doc")
	for _, v := range h {
		t.Logf("%s [%s, %s) vid=%q hk=%v %x", v.Path, v.Written.Format(time.DateTime), v.Ended.Format(time.DateTime), v.VersionID, v.HistoryKey != "", v.Hash[:2])
	}
	if got := treeAt(t, db, T(2).Add(12*time.Hour)); len(got) != 1 || got[0].VersionID != "null" || got[0].HistoryKey == "" {
		t.Errorf("TreeAt day 2.5: %d versions of doc current at once (%+v); want S3's null version, its copy recorded on it", len(got), got)
	}
	if len(h) != 3 {
		t.Errorf("history of doc: %d versions, want v1 (a copy), v2 (null version and copy), v3", len(h))
	}
}
