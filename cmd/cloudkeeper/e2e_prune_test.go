package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// newLockableEnv is newVersionedEnv (locked: on a bucket with
// Object Lock, and so versioning).
func newLockableEnv(t *testing.T, tree scantest.Dir, locked bool) *env {
	t.Helper()
	if locked {
		return newEnvIn(t, tree, gwtest.LockedBucket(t, gw))
	}
	return newVersionedEnv(t, tree)
}

// edit writes content to rel with an mtime of its own (the n-th edit), so
// that the next sync sees the change.
func (e *env) edit(rel, content string, n int) {
	e.t.Helper()
	p := e.path(rel)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	mt := time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC)
	if err := os.Chtimes(p, mt, mt); err != nil {
		e.t.Fatal(err)
	}
}

// s3Versions are the version ids S3 holds of rel's key, oldest first
// (delete markers left out).
func (e *env) s3Versions(rel string) []string {
	e.t.Helper()
	key := manifest.Key(e.prefix, rel)
	out, err := gw.Client().ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(e.bucket), Prefix: aws.String(key)})
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, v := range out.Versions {
		if aws.ToString(v.Key) == key {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	slices.Reverse(ids) // S3 lists the newest first
	return ids
}

// history is the manifest's history of rel, oldest first.
// openManifest opens the env's manifest read-only, as another process
// would read it while no run has it; openManifestAt the one at path.
func (e *env) openManifest() *manifest.DB { e.t.Helper(); return e.openManifestAt(e.manifestPath()) }

func (e *env) openManifestAt(path string) *manifest.DB {
	e.t.Helper()
	db, err := manifest.OpenReadOnly(path, e.identity())
	if err != nil {
		e.t.Fatal(err)
	}
	return db
}

func (e *env) history(rel string) []manifest.Version {
	e.t.Helper()
	db := e.openManifest()
	defer db.Close()
	h, err := db.History(context.Background(), rel)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

func historyIDs(h []manifest.Version) []string {
	var ids []string
	for _, v := range h {
		ids = append(ids, v.VersionID)
	}
	return ids
}

func (e *env) prune(want int, args ...string) result {
	e.t.Helper()
	return e.cmdWant(want, "prune", append(e.baseArgs(), args...)...)
}

func TestPruneKeepsCountAndDryRunTouchesNothing(t *testing.T) {
	e := newLockableEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}}, false)
	r := e.prune(exitFatal, "--keep", "2") // before any sync
	if dbs, _ := filepath.Glob(filepath.Join(e.state, "cloudkeeper", "*.db")); !strings.Contains(r.stderr, "no manifest at ") || len(dbs) != 0 {
		t.Fatalf("prune before any sync: manifests %q\n%s", dbs, r.stderr)
	}
	e.sync(0)
	for i := 2; i <= 5; i++ {
		e.edit("doc.txt", strings.Repeat(fmt.Sprintf("v%d ", i), i), i)
		e.sync(0)
	}
	all := e.s3Versions("doc.txt")
	if len(all) != 5 || !slices.Equal(historyIDs(e.history("doc.txt")), all) {
		t.Fatalf("after 5 writes: S3 holds %q, the history %q", all, historyIDs(e.history("doc.txt")))
	}

	r = e.prune(0, "--keep", "2", "--dry-run")
	if n := strings.Count(r.stdout, "would prune "); n != 3 || !strings.Contains(r.stdout, "would prune 2 old versions (8 B); kept 2") {
		t.Errorf("dry run: want 2 versions and the summary\n%s", r.stdout)
	}
	if got := e.s3Versions("doc.txt"); !slices.Equal(got, all) || len(e.history("doc.txt")) != 5 || e.ops()["DeleteObjects"] != 0 {
		t.Fatalf("the dry run changed something: S3 %q, history %d, %v", got, len(e.history("doc.txt")), e.ops())
	}

	r = e.prune(0, "--keep", "30d")
	if !strings.Contains(r.stdout, "pruned 0 old versions (0 B); kept 4") || e.ops()["DeleteObjects"] != 0 {
		t.Errorf("--keep 30d: want nothing pruned and no DeleteObjects (%v)\n%s", e.ops(), r.stdout)
	}

	r = e.prune(0, "--keep", "2", "--json")
	if !strings.Contains(r.stdout, `"op":"prune","path":"doc.txt","version":"`+all[0]+`"`) || !strings.Contains(r.stdout, `"summary":{"dry_run":false,"versions":2,"bytes":8`) {
		t.Errorf("--keep 2 --json:\n%s", r.stdout)
	}
	if e.ops()["DeleteObjects"] != 1 {
		t.Errorf("requests %v, want one DeleteObjects", e.ops())
	}
	if got := e.s3Versions("doc.txt"); !slices.Equal(got, all[2:]) {
		t.Errorf("S3 holds %q after the prune, want the 3 newest %q", got, all[2:])
	}
	if got := historyIDs(e.history("doc.txt")); !slices.Equal(got, all[2:]) {
		t.Errorf("the history holds %q after the prune, want %q", got, all[2:])
	}
	e.checkBucketIsTree()
	r = e.prune(0, "--keep", "2")
	if !strings.Contains(r.stdout, "pruned 0 old versions") {
		t.Errorf("a second prune:\n%s", r.stdout)
	}
	e.cmdWant(exitUsage, "prune", e.baseArgs()...) // no --keep
}

func TestPruneKeep30dAfterABadNight(t *testing.T) {
	tree := scantest.Dir{"proj": scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "bravo"}, "sub": scantest.Dir{"c.txt": scantest.File{Content: "charlie"}}}, "keep.txt": scantest.File{Content: "k"}}
	e := newLockableEnv(t, tree, false)
	e.sync(0)
	before := time.Now()
	if err := os.RemoveAll(e.path("proj")); err != nil {
		t.Fatal(err)
	}
	e.sync(0, "--max-delete", "100%")
	r := e.prune(0, "--keep", "30d")
	if !strings.Contains(r.stdout, "pruned 0 old versions (0 B); kept 3") {
		t.Errorf("prune --keep 30d right after the bad night:\n%s", r.stdout)
	}
	db := e.openManifest()
	defer db.Close()
	s3c, err := uploader.NewS3(context.Background(), uploader.S3Config{Bucket: e.bucket, Endpoint: gw.Endpoint, Credentials: credentials.NewStaticCredentialsProvider(gw.AccessKey, gw.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"proj/a.txt": "alpha", "proj/b.txt": "bravo", "proj/sub/c.txt": "charlie"}
	got := map[string]string{}
	err = db.TreeAt(context.Background(), before, "proj", func(v manifest.Version) error {
		body, _, err := s3c.GetVersion(context.Background(), manifest.Key(e.prefix, v.Path), v.VersionID)
		if err != nil {
			return err
		}
		defer body.Close()
		b, err := io.ReadAll(body)
		got[v.Path] = string(b)
		return err
	})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the folder as it was, fetched by version id: %v, %v; want %v", got, err, want)
	}
}

func TestLockedVersionsCannotBeDeletedAndPruneSkipsThem(t *testing.T) {
	e := newLockableEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}, "a.txt": scantest.File{Content: "moved"}, "big.bin": scantest.File{Content: bigContent(6 << 20)}}, true)
	lock := []string{"--lock", "1d", "--part-size", "5"}
	e.sync(0, lock...)
	e.edit("doc.txt", "v2 longer", 2)
	if err := os.Rename(e.path("a.txt"), e.path("b.txt")); err != nil {
		t.Fatal(err)
	}
	e.sync(0, lock...)
	e.wantOps(map[string]int64{"PutObject": 1, "CopyObject": 1, "DeleteObjects": 1, "Other": 1}) // Other: GetObjectLockConfiguration
	e.edit("doc.txt", "v3 longer still", 3)
	e.sync(0, lock...)

	// Not even the credentials that wrote them can delete the versions.
	for _, rel := range []string{"doc.txt", "b.txt", "big.bin"} {
		vs := e.s3Versions(rel)
		if len(vs) == 0 {
			t.Fatalf("%s: no version in S3", rel)
		}
		_, err := gw.Client().DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(manifest.Key(e.prefix, rel)), VersionId: aws.String(vs[0])})
		if err == nil {
			t.Errorf("%s: DeleteObject of locked version %s succeeded", rel, vs[0])
		}
	}
	h := e.history("doc.txt")
	if len(h) != 3 {
		t.Fatalf("history of doc.txt: %+v", h)
	}
	r := e.prune(0, "--keep", "1")
	if !strings.Contains(r.stdout, "pruned 0 old versions (0 B); kept 3, 1 locked") {
		t.Errorf("prune --keep 1 of locked versions:\n%s\n%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "old version kept: locked") || !strings.Contains(r.stderr, h[0].VersionID) {
		t.Errorf("the locked version is not named:\n%s", r.stderr)
	}
	if e.ops()["DeleteObjects"] != 0 {
		t.Errorf("prune asked S3 to delete a version the manifest knows is locked: %v", e.ops())
	}
	if got := e.s3Versions("doc.txt"); len(got) != 3 || len(e.history("doc.txt")) != 3 {
		t.Errorf("after the prune: S3 %q, history %d; want all 3", got, len(e.history("doc.txt")))
	}
}

func TestLockNeedsObjectLockOnTheBucket(t *testing.T) {
	e := newLockableEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}}, false)
	e.proxy.Reset()
	r := e.run(append(append([]string{"sync"}, e.baseArgs()...), "--lock", "30d")...)
	if r.code != exitFatal || !strings.Contains(r.stderr, "bucket "+e.bucket+" has no Object Lock: --lock needs a bucket created with Object Lock enabled") {
		t.Fatalf("sync --lock on a bucket without Object Lock: exit %d\n%s", r.code, r.stderr)
	}
	if lines := strings.Count(strings.TrimSpace(r.stderr), "\n"); lines != 0 {
		t.Errorf("want one line of error:\n%s", r.stderr)
	}
	if objs := gwtest.Objects(t, gw.Client(), e.bucket, ""); len(objs) != 0 || e.ops()["PutObject"] != 0 {
		t.Errorf("written to the bucket: %d objects, %v", len(objs), e.ops())
	}
	r = e.run(append(append([]string{"sync"}, e.baseArgs()...), "--lock", "30d", "--lock-mode", "forever")...)
	if r.code != exitUsage {
		t.Errorf("--lock-mode forever: exit %d\n%s", r.code, r.stderr)
	}
}

func TestPruneEvery(t *testing.T) {
	e := newLockableEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}}, false)
	every := []string{"--keep", "1", "--prune-every", "1h"}
	r := e.sync(0, every...)
	if !strings.Contains(r.stdout, "pruned 0 old versions") {
		t.Errorf("the first sync with --prune-every did not prune:\n%s", r.stdout)
	}
	for i := 2; i <= 3; i++ {
		e.edit("doc.txt", fmt.Sprintf("v%d", i), i)
		r = e.sync(0, every...)
		if strings.Contains(r.stdout, "pruned") || e.ops()["DeleteObjects"] != 0 {
			t.Errorf("sync %d, within the hour: pruned (%v)\n%s", i, e.ops(), r.stdout)
		}
	}
	if h := e.history("doc.txt"); len(h) != 3 {
		t.Fatalf("history before the due prune: %d versions", len(h))
	}
	db, err := manifest.Open(e.manifestPath(), e.identity())
	if err != nil {
		t.Fatal(err)
	}
	err = db.SetPruned(context.Background(), time.Now().Add(-2*time.Hour))
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	e.edit("doc.txt", "v4", 4)
	r = e.sync(0, every...)
	if !strings.Contains(r.stdout, "pruned 2 old versions (4 B); kept 1") || e.ops()["DeleteObjects"] != 1 {
		t.Errorf("the sync after the hour: want v1 and v2 pruned with one DeleteObjects (%v)\n%s", e.ops(), r.stdout)
	}
	h := e.history("doc.txt")
	if got := e.s3Versions("doc.txt"); len(h) != 2 || !slices.Equal(got, historyIDs(h)) {
		t.Errorf("after the prune: S3 %q, history %q; want v3 and v4", got, historyIDs(h))
	}
	e.cmdWant(exitUsage, "sync", append(e.baseArgs(), "--prune-every", "1h")...) // no --keep
}

// newFourVersionsEnv is an env whose doc.txt was synced four times into a
// bucket with versioning, and its S3 version ids, oldest first.
func newFourVersionsEnv(t *testing.T) (*env, []string) {
	e := newLockableEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "v1"}}, false)
	e.sync(0)
	for i := 2; i <= 4; i++ {
		e.edit("doc.txt", fmt.Sprintf("v%d", i), i)
		e.sync(0)
	}
	return e, e.s3Versions("doc.txt")
}

// A prune killed the moment S3 applied its DeleteObjects has not
// forgotten the versions S3 deleted: the next prune does, even
// with a keep that would keep them.
func TestPruneKilledAfterS3DeletedIsFinishedByTheNext(t *testing.T) {
	e, all := newFourVersionsEnv(t)
	e.killCommandWhen("prune", "DeleteObjects", func(r *http.Request, kill func()) *s3test.Fault {
		if s3test.Operation(r) != "DeleteObjects" {
			return nil
		}
		// Killed once S3 has deleted, before its answer is relayed: with
		// Answered, the prune sometimes recorded the answer before the
		// kill landed (the test failed 1 in 3 full runs).
		return &s3test.Fault{Applied: kill}
	}, "--keep", "1")
	if got := e.s3Versions("doc.txt"); !slices.Equal(got, all[2:]) || len(e.history("doc.txt")) != 4 {
		t.Fatalf("after the kill: S3 %q, history %q; want S3 without v1, v2 and the history with them", got, historyIDs(e.history("doc.txt")))
	}
	r := e.prune(0, "--keep", "10")
	if !strings.Contains(r.stdout, "pruned 2 old versions") {
		t.Errorf("the prune after the kill:\n%s", r.stdout)
	}
	if got := historyIDs(e.history("doc.txt")); !slices.Equal(got, all[2:]) {
		t.Errorf("the history %q after the next prune, want what S3 holds: %q", got, all[2:])
	}
}

// A prune whose DeleteObjects never reached S3 (killed as it went out), or
// failed, leaves its versions marked; S3 still holds them. The next prune
// with a longer keep asks S3 (a HEAD each) and keeps them, as its keep
// says, instead of deleting what it would keep; a later prune with the
// short keep deletes them.
func TestPruneMarksNotAppliedAreWeighedByTheNextKeep(t *testing.T) {
	for _, how := range []string{"killed before S3 deleted", "the delete failed"} {
		t.Run(how, func(t *testing.T) {
			e, all := newFourVersionsEnv(t)
			if how == "killed before S3 deleted" {
				e.killCommandWhen("prune", "DeleteObjects", func(r *http.Request, kill func()) *s3test.Fault {
					if s3test.Operation(r) != "DeleteObjects" {
						return nil
					}
					kill()
					return &s3test.Fault{Reset: true}
				}, "--keep", "1")
			} else {
				e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
					if s3test.Operation(r) != "DeleteObjects" {
						return nil
					}
					return &s3test.Fault{Status: http.StatusForbidden, Code: "AccessDenied"}
				})
				e.prune(1, "--keep", "1") // AccessDenied of the whole request ends the prune
				e.proxy.SetFault(nil)
			}
			if got := e.s3Versions("doc.txt"); !slices.Equal(got, all) || len(e.history("doc.txt")) != 4 {
				t.Fatalf("after the failed prune: S3 %q, history %q; want all four in both", got, historyIDs(e.history("doc.txt")))
			}
			e.proxy.Reset()
			r := e.prune(0, "--keep", "10")
			if got := e.s3Versions("doc.txt"); !slices.Equal(got, all) || len(e.history("doc.txt")) != 4 {
				t.Errorf("a prune with --keep 10 after it: S3 %q, history %q; want all four kept\n%s", got, historyIDs(e.history("doc.txt")), r.stdout)
			}
			if ops := e.ops(); ops["DeleteObjects"] != 0 || ops["HeadObject"] != 2 {
				t.Errorf("the prune with --keep 10 sent %v; want a HEAD for each marked version, no delete", ops)
			}
			if r := e.prune(0, "--keep", "1"); !strings.Contains(r.stdout, "pruned 2 old versions") {
				t.Errorf("a prune with --keep 1 then:\n%s", r.stdout)
			}
			if got := e.s3Versions("doc.txt"); !slices.Equal(got, all[2:]) {
				t.Errorf("S3 after it: %q, want %q", got, all[2:])
			}
		})
	}
}
