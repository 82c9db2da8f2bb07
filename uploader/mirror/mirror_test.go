package mirror

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/prune"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test/gwtest"
)

// gw is the real S3 server (Versity S3 Gateway) these tests talk to over
// HTTP with the real SDK; one per test binary.
var gw *s3test.Gateway

func TestMain(m *testing.M) { gwtest.Main(m, &gw) }

// backup is a source folder, a fresh bucket behind a counting proxy and a
// manifest path, and the options of a run over them.
type backup struct {
	src, bucket string
	proxy       *s3test.Proxy
	opts        Options
	mu          sync.Mutex
	changes     []uploader.Result
}

const prefix = "laptop/"

func newBackup(t *testing.T, files map[string]string) *backup {
	t.Helper()
	b := &backup{src: t.TempDir(), bucket: gwtest.Bucket(t, gw)}
	var err error
	if b.proxy, err = s3test.NewProxy(gw.Endpoint); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.proxy.Close() })
	for p, body := range files {
		b.write(t, p, body)
	}
	b.opts = Options{
		Identity: manifest.Identity{Source: b.src, Endpoint: b.proxy.URL, Bucket: b.bucket, Prefix: prefix},
		Manifest: filepath.Join(t.TempDir(), "manifest.db"),
		S3: uploader.S3Config{Bucket: b.bucket, Endpoint: b.proxy.URL, Concurrency: 4, MaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(gw.AccessKey, gw.SecretKey, "")},
		Concurrency: 4,
		Report: func(r uploader.Result) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.changes = append(b.changes, r)
		},
		Problem: func(p manifest.Problem) { t.Errorf("problem: %s: %v %s", p.Path, p.Err, p.Notice) },
	}
	return b
}

func (b *backup) write(t *testing.T, path, body string) {
	t.Helper()
	full := filepath.Join(b.src, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run is one Run, which must end as want says.
func (b *backup) run(t *testing.T, o Options, want int) Result {
	t.Helper()
	b.proxy.Reset()
	b.mu.Lock()
	b.changes = nil
	b.mu.Unlock()
	res := Run(context.Background(), o)
	if res.ExitCode() != want {
		t.Fatalf("exit %d, want %d (error %v, counts %+v)", res.ExitCode(), want, res.Err, res.Counts)
	}
	return res
}

// objects is the bucket's content, key to body.
func (b *backup) objects(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, o := range gwtest.Objects(t, gw.Client(), b.bucket, "") {
		out[k] = string(o.Body)
	}
	return out
}

func TestRunSmallTree(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one", "d/b.txt": "two"})
	res := b.run(t, b.opts, ExitOK)
	if want := (manifest.Counts{Add: 2, Bytes: 6}); res.Counts != want {
		t.Errorf("first run: counts %+v, want %+v", res.Counts, want)
	}
	if res.RunID == 0 || res.Objects != 2 || res.ObjectBytes != 6 || res.LastSuccess.IsZero() {
		t.Errorf("first run: record %d, %d objects of %d bytes, last success %v", res.RunID, res.Objects, res.ObjectBytes, res.LastSuccess)
	}
	if len(b.changes) != 2 {
		t.Errorf("first run: Report told of %d changes, want 2", len(b.changes))
	}
	if got := b.objects(t); len(got) != 2 || got[prefix+"a.txt"] != "one" || got[prefix+"d/b.txt"] != "two" {
		t.Errorf("bucket holds %v", got)
	}

	// Nothing changed: one request, the HeadBucket that proves the bucket
	// (the files are hashed again, being racily clean: just written).
	res = b.run(t, b.opts, ExitOK)
	if want := (manifest.Counts{Unchanged: 2}); res.Counts != want {
		t.Errorf("second run: counts %+v, want %+v", res.Counts, want)
	}
	if st := b.proxy.Stats(); st.Requests != 1 || st.ByOp["HeadBucket"] != 1 {
		t.Errorf("second run sent %v, want one HeadBucket", st.ByOp)
	}

	// A rename is a copy on the server, and its old key goes.
	if err := os.Rename(filepath.Join(b.src, "d"), filepath.Join(b.src, "e")); err != nil {
		t.Fatal(err)
	}
	res = b.run(t, b.opts, ExitOK)
	if want := (manifest.Counts{Rename: 1, Unchanged: 1}); res.Counts != want {
		t.Errorf("rename: counts %+v, want %+v", res.Counts, want)
	}
	if got := b.objects(t); len(got) != 2 || got[prefix+"e/b.txt"] != "two" {
		t.Errorf("after the rename the bucket holds %v", got)
	}
	db, err := manifest.OpenReadOnly(b.opts.Manifest, b.opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs, err := db.Runs(context.Background(), 3)
	if err != nil || len(runs) != 3 || runs[0].Counts != res.Counts || runs[0].ExitCode != ExitOK {
		t.Errorf("recorded runs %+v (%v), want 3, the last with %+v", runs, err, res.Counts)
	}
}

func TestRunDryRunChangesNothing(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one"})
	b.run(t, b.opts, ExitOK)
	b.write(t, "a.txt", "changed")
	b.write(t, "new.txt", "new")
	dry := b.opts
	dry.DryRun = true
	res := b.run(t, dry, ExitOK)
	if want := (manifest.Counts{Add: 1, Modify: 1, Bytes: int64(len("changed") + len("new"))}); res.Counts != want || !res.DryRun || res.RunID != 0 {
		t.Errorf("dry run: counts %+v, dry %v, record %d; want %+v, a dry run and no record", res.Counts, res.DryRun, res.RunID, want)
	}
	if st := b.proxy.Stats(); st.Requests != 1 || st.ByOp["HeadBucket"] != 1 {
		t.Errorf("dry run sent %v, want one HeadBucket", st.ByOp)
	}
	if got := b.objects(t); len(got) != 1 || got[prefix+"a.txt"] != "one" {
		t.Errorf("after a dry run the bucket holds %v", got)
	}
	// The manifest is as it was: the real run does what the dry run said.
	if res := b.run(t, b.opts, ExitOK); res.Add != 1 || res.Modify != 1 {
		t.Errorf("the run after the dry run: counts %+v, want an add and a modify", res.Counts)
	}
}

func TestRunRefusesAFirstRunIntoObjectsItDoesNotKnow(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one"})
	_, err := gw.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String(prefix + "old.txt"), Body: strings.NewReader("old"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The dry run stops where the real run would (a LIST reads nothing it
	// could change), rather than show the whole tree as uploads.
	dry := b.opts
	dry.DryRun = true
	if res := b.run(t, dry, ExitFatal); res.Err == nil || !strings.Contains(res.Err.Error(), "cloudkeeper manifest rebuild") || res.Add != 0 {
		t.Errorf("dry first run: error %v, counts %+v; want the rebuild advice and nothing shown", res.Err, res.Counts)
	}
	res := b.run(t, b.opts, ExitFatal)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "cloudkeeper manifest rebuild") || res.Add != 0 {
		t.Errorf("first run: error %v, counts %+v; want the rebuild advice and nothing applied", res.Err, res.Counts)
	}
	if _, err := os.Stat(b.opts.Manifest); !os.IsNotExist(err) {
		t.Errorf("the refused run left its new manifest behind (%v)", err)
	}
	if got := b.objects(t); len(got) != 1 {
		t.Errorf("after the refused run the bucket holds %v", got)
	}
	allow := b.opts
	allow.AllowExisting = true
	if res := b.run(t, allow, ExitOK); res.Add != 1 {
		t.Errorf("--allow-existing: counts %+v, want one add", res.Counts)
	}
	if got := b.objects(t); len(got) != 2 || got[prefix+"old.txt"] != "old" {
		t.Errorf("AllowExisting: the bucket holds %v, want the foreign object kept", got)
	}
}

// A reconcile that is only due and fails does not hold the backup back: the
// run applies what changed, is incomplete, and says why through
// ReconcileFailed; one that was asked for stops the run.
func TestRunDueReconcileThatFailsIsIncomplete(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one"})
	b.run(t, b.opts, ExitOK) // a first run counts as a reconcile
	b.write(t, "new.txt", "new")
	b.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "ListObjectsV2" {
			return &s3test.Fault{Status: 500, Code: "InternalError"}
		}
		return nil
	})
	var failed []error
	due := b.opts
	due.ReconcileEvery = time.Nanosecond
	due.ReconcileFailed = func(err error) { failed = append(failed, err) }
	res := b.run(t, due, ExitIncomplete)
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), "reconcile with s3://"+b.bucket+"/"+prefix) {
		t.Errorf("ReconcileFailed told %v, want the reconcile's error once", failed)
	}
	if res.Add != 1 || res.Errors != 1 {
		t.Errorf("counts %+v, want the new file added and one error", res.Counts)
	}
	asked := b.opts
	asked.Reconcile = true
	if res := b.run(t, asked, ExitFatal); !strings.Contains(res.Err.Error(), "reconcile") {
		t.Errorf("an asked-for reconcile that fails: error %v", res.Err)
	}
}

func TestWatchStartsWithAFullSync(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pushes []Push
	var results []Result
	var told []string
	err := Watch(ctx, WatchOptions{
		Options: b.opts, Persist: time.Hour, Push: time.Hour, Rescan: time.Hour,
		Started: func(watched bool) { told = append(told, fmt.Sprint("started ", watched)) },
		Stopped: func(left []string) { told = append(told, fmt.Sprint("stopped ", len(left))) },
		Pushing: func(p Push) { pushes = append(pushes, p) },
		Pushed: func(_ Push, res Result) {
			results = append(results, res)
			cancel()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pushes) != 1 || pushes[0].Full != StartUp || pushes[0].Scopes != nil || pushes[0].Why() != "start-up: changes made while not watching" {
		t.Fatalf("pushes %+v, want the start-up full sync", pushes)
	}
	if len(results) != 1 || results[0].ExitCode() != ExitOK || results[0].Add != 1 {
		t.Errorf("results %+v, want one add", results)
	}
	if got := b.objects(t); got[prefix+"a.txt"] != "one" {
		t.Errorf("bucket holds %v", got)
	}
	if fmt.Sprint(told) != "[started true stopped 0]" {
		t.Errorf("told %v, want Started (watched) before the push and Stopped (nothing left) at the end", told)
	}
}

func TestPushWhy(t *testing.T) {
	for _, c := range []struct {
		p    Push
		want string
	}{
		{Push{Full: Scoped, Scopes: []string{"a"}}, ""},
		{Push{Full: StartUp}, "start-up: changes made while not watching"},
		{Push{Full: Rescan}, "periodic rescan"},
		{Push{Full: NoWatch}, "no watch"},
		{Push{Full: LostEvents, Detail: "event buffer full"}, "event buffer full"},
		{Push{Full: Unwatched, Detail: "only 1 of its 2 folders could be watched"}, "only 1 of its 2 folders could be watched"},
	} {
		if got := c.p.Why(); got != c.want {
			t.Errorf("%+v: Why %q, want %q", c.p, got, c.want)
		}
	}
}

// Without a watch every push is a full sync, a scheduled one too.
func TestPlanWithoutAWatchIsAFullSync(t *testing.T) {
	for _, asked := range []Reason{Scoped, StartUp, Rescan} {
		p, ok := (&watch{}).plan(asked)
		if !ok || p.Full != NoWatch || p.Scopes != nil || p.Why() != "no watch" {
			t.Errorf("asked %d: push %+v (%v), want a full sync for want of a watch", asked, p, ok)
		}
	}
}

// A source that is gone (an unmounted disk), or is a file, stops the run
// with a message naming it, before anything is sent: never a delete of
// everything. The command checks this too; a library caller gets the same.
func TestRunSourceGoneIsFatalNotADeletion(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "a", "d/b.txt": "b"})
	b.run(t, b.opts, ExitOK)
	before := b.objects(t)
	for _, c := range []struct {
		name string
		gone func() error
	}{
		{"removed", func() error { return os.RemoveAll(b.src) }},
		{"now a file", func() error { return os.WriteFile(b.src, []byte("x"), 0o644) }},
	} {
		name := c.name
		if err := c.gone(); err != nil {
			t.Fatal(err)
		}
		res := b.run(t, b.opts, ExitFatal)
		if res.Err == nil || !strings.Contains(res.Err.Error(), b.src) {
			t.Errorf("%s: error %v does not name the source %s", name, res.Err, b.src)
		}
		if got := b.objects(t); len(got) != len(before) {
			t.Errorf("%s: bucket %v, want %v untouched", name, got, before)
		}
		if n := b.proxy.Stats().ByOp["DeleteObjects"]; n != 0 {
			t.Errorf("%s: %d DeleteObjects sent", name, n)
		}
		os.RemoveAll(b.src)
	}
}

// A run's bucket check goes out beside its scan, not before it (over a link
// 80 ms away, a run that writes one file would otherwise wait two round
// trips before its first byte), and still no write goes out before the
// check's answer, nor does a run whose check fails write anything.
func TestRunChecksTheBucketWhileItScans(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one", "b.txt": "two"})
	b.run(t, b.opts, ExitOK)
	b.write(t, "a.txt", "changed")

	release := make(chan struct{})
	var early atomic.Int64 // writes that arrived while the check was held
	b.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "HeadBucket" {
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
			return nil
		}
		select {
		case <-release:
		default:
			early.Add(1)
		}
		return nil
	})
	walked := make(chan struct{})
	var once sync.Once
	o := b.opts
	o.Scanned = func(scanner.Entry) { once.Do(func() { close(walked) }) }
	go func() {
		defer close(release)
		select {
		case <-walked:
		case <-time.After(10 * time.Second):
			t.Error("the walk waited for the bucket check's answer")
		}
	}()
	res := b.run(t, o, ExitOK)
	if res.Counts.Modify != 1 || early.Load() != 0 {
		t.Errorf("counts %+v, %d writes before the check's answer; want 1 modify, none", res.Counts, early.Load())
	}

	// A check that fails ends the run, which writes nothing.
	b.write(t, "b.txt", "changed too")
	b.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "HeadBucket" {
			return &s3test.Fault{Status: http.StatusNotFound, Code: "NoSuchBucket"}
		}
		return nil
	})
	res = b.run(t, o, ExitFatal)
	if st := b.proxy.Stats(); st.Requests != st.ByOp["HeadBucket"] || !strings.Contains(res.Err.Error(), b.bucket) {
		t.Errorf("a run whose check failed sent %v and failed with %v", st.ByOp, res.Err)
	}
}

// In a bucket with versioning, each version a run writes is recorded in
// the manifest's history with S3's version id, per run: an overwritten or
// deleted file's old bytes can be fetched by it, and the tree as an earlier
// run left it read from the manifest alone.
func TestRunRecordsHistoryWithVersions(t *testing.T) {
	b := newBackup(t, nil)
	b.bucket = gwtest.VersionedBucket(t, gw)
	b.opts.Identity.Bucket, b.opts.S3.Bucket = b.bucket, b.bucket
	b.write(t, "doc.txt", "v1")
	b.write(t, "gone.txt", "bye")
	first := b.run(t, b.opts, ExitOK)
	b.write(t, "doc.txt", "v2, longer")
	if err := os.Remove(filepath.Join(b.src, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	o := b.opts
	o.MaxDelete = manifest.MaxDeleteShare(100)
	second := b.run(t, o, ExitOK)

	db, err := manifest.OpenReadOnly(b.opts.Manifest, b.opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	doc, err := db.History(context.Background(), "doc.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(doc) != 2 || doc[0].Run != first.RunID || doc[1].Run != second.RunID || doc[0].EndedRun != second.RunID ||
		doc[0].Current() || !doc[1].Current() || doc[0].VersionID == "" || doc[0].VersionID == doc[1].VersionID {
		t.Fatalf("history of doc.txt: %+v; want v1 by run %d ended by run %d, v2 current, each with its version id", doc, first.RunID, second.RunID)
	}
	if got := b.version(t, "doc.txt", doc[0].VersionID); got != "v1" {
		t.Errorf("version %s of doc.txt holds %q, want v1", doc[0].VersionID, got)
	}
	var then []string
	err = db.TreeAt(context.Background(), first.Ended, "", func(v manifest.Version) error {
		then = append(then, fmt.Sprintf("%s %d", v.Path, v.Size))
		return nil
	})
	if err != nil || strings.Join(then, ",") != "doc.txt 2,gone.txt 3" {
		t.Errorf("the tree the first run left: %v, %v; want doc.txt of 2 bytes and gone.txt", then, err)
	}
}

// A run whose bucket check fails leaves no key in doubt: the check's
// answer comes before any intent is marked, so the next run has nothing
// of this one to settle (a reviewer's find: each failed cron run left up
// to a batch of keys in doubt).
func TestRunWhoseCheckFailedLeavesNoDoubt(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one", "b.txt": "two"})
	b.run(t, b.opts, ExitOK)
	b.write(t, "b.txt", "changed too")
	b.write(t, "c.txt", "new")
	b.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "HeadBucket" {
			return &s3test.Fault{Status: http.StatusNotFound, Code: "NoSuchBucket"}
		}
		return nil
	})
	b.run(t, b.opts, ExitFatal)
	db, err := manifest.OpenReadOnly(b.opts.Manifest, b.opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	doubts, err := db.Doubts(context.Background())
	db.Close()
	if err != nil || len(doubts) != 0 {
		t.Errorf("after a run whose check failed, in doubt: %+v, %v; want none", doubts, err)
	}
}

// A first run through an open manifest (as watch gives one) into a prefix
// that already holds objects is refused as any first run is, though its
// bucket check would otherwise go out beside the walk (a reviewer's find:
// it overwrote the objects).
func TestRunFirstRunWithAnOpenManifestIsRefusedOverObjects(t *testing.T) {
	b := newBackup(t, map[string]string{"old.txt": "mine, new"})
	_, err := gw.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(b.bucket), Key: aws.String(prefix + "old.txt"), Body: strings.NewReader("someone else's"),
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := manifest.Open(b.opts.Manifest, b.opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	o := b.opts
	o.DB = db
	res := Run(context.Background(), o)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "manifest rebuild") || b.objects(t)[prefix+"old.txt"] != "someone else's" {
		t.Errorf("first run with an open manifest over objects: %v, counts %+v, bucket %v; want it refused, the object kept", res.Err, res.Counts, b.objects(t))
	}
}

// S3 keeps one "null" version a key: an object from before versioning was
// turned on, whose id a reconcile recorded, is replaced in place by a write
// once versioning is suspended. The history must not keep claiming it, and
// a prune must never delete "null" by its id then, which would delete the
// file's current object (a reviewer's find: prune emptied the mirror's
// a.txt; restore --at gave a size mismatch).
func TestRunSuspendedVersioningReplacesTheNullVersion(t *testing.T) {
	b := newBackup(t, map[string]string{"a.txt": "one"})
	ctx := context.Background()
	b.run(t, b.opts, ExitOK)
	if err := gw.SetVersioning(ctx, b.bucket, types.BucketVersioningStatusEnabled); err != nil {
		t.Fatal(err)
	}
	o := b.opts
	o.Reconcile = true
	b.run(t, o, ExitOK) // records a.txt's version as "null"
	if err := gw.SetVersioning(ctx, b.bucket, types.BucketVersioningStatusSuspended); err != nil {
		t.Fatal(err)
	}
	o.Keep = manifest.Keep{Age: time.Minute}
	b.run(t, o, ExitOK)
	b.write(t, "a.txt", "two, edited")
	o.Reconcile = false
	b.run(t, o, ExitOK)

	db, err := manifest.Open(b.opts.Manifest, b.opts.Identity)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err := db.History(ctx, "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range h {
		if !v.Current() && v.VersionID == "null" {
			t.Errorf("the history keeps claiming S3's null version of a.txt, which the write replaced: %+v", v)
		}
	}
	s3c, err := uploader.NewS3(ctx, b.opts.S3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prune.Run(ctx, prune.Options{DB: db, Bucket: s3c, Prefix: prefix, Keep: o.Keep, Now: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	body, _, err := s3c.Get(ctx, prefix+"a.txt")
	if err != nil {
		t.Fatalf("the current a.txt after the prune: %v", err)
	}
	defer body.Close()
	if got, _ := io.ReadAll(body); string(got) != "two, edited" {
		t.Errorf("a.txt holds %q after the prune", got)
	}
}
