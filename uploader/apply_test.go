package uploader

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// addChange is the change the diff would give for a new file under root.
func addChange(t *testing.T, root, rel, content string) manifest.Change {
	t.Helper()
	p := filepath.Join(root, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	d, st, err := scanner.HashFile(scanner.OS{}, p)
	if err != nil {
		t.Fatal(err)
	}
	return manifest.Change{Op: manifest.OpAdd, Path: rel, Entry: manifest.Entry{Path: rel, Hash: d, Stat: st, HashedNs: 1}}
}

// openManifest opens a new manifest for root backed up to tb, and its
// Writer; both are closed when the test ends.
func openManifest(t *testing.T, root string, tb *testBucket) (*manifest.DB, *manifest.Writer) {
	t.Helper()
	db, err := manifest.Open(filepath.Join(t.TempDir(), "m.db"), manifest.Identity{Source: root, Bucket: tb.name})
	if err != nil {
		t.Fatal(err)
	}
	w := db.Writer()
	t.Cleanup(func() {
		w.Close()
		db.Close()
	})
	return db, w
}

func feed(chs ...manifest.Change) <-chan manifest.Change {
	c := make(chan manifest.Change, len(chs))
	for _, ch := range chs {
		c <- ch
	}
	close(c)
	return c
}

// The manifest records only what S3 confirmed: an upload the server keeps
// failing is reported, counted, and absent from the manifest, while the
// others are recorded.
func TestApplierRecordsOnlyConfirmedChanges(t *testing.T) {
	tb, root := newTestBucket(t), t.TempDir()
	db, _ := openManifest(t, root, tb)
	tb.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if s3test.Operation(r) == "PutObject" && strings.HasSuffix(r.URL.Path, "/bad.txt") {
			return &s3test.Fault{Status: 500, Code: "InternalError"}
		}
		return nil
	})
	w := db.Writer()
	var mu sync.Mutex
	var results []Result
	a := &Applier{Bucket: tb, Journal: w, Root: root, Prefix: "pre/", Concurrency: 4, Report: func(r Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}}
	sum, err := a.Run(context.Background(), feed(
		addChange(t, root, "good1.txt", "one"),
		addChange(t, root, "bad.txt", "two"),
		addChange(t, root, "dir/good2.txt", "three"),
	))
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Add != 2 || sum.Errors != 1 || sum.Bytes != int64(len("one")+len("three")) {
		t.Fatalf("summary %+v", sum)
	}
	for _, p := range []string{"good1.txt", "dir/good2.txt"} {
		if _, ok, _ := db.Get(context.Background(), p); !ok {
			t.Errorf("%s not recorded", p)
		}
	}
	if _, ok, _ := db.Get(context.Background(), "bad.txt"); ok {
		t.Error("bad.txt recorded although S3 refused it")
	}
	objs := tb.objects(t)
	if len(objs) != 2 || objs["pre/good1.txt"].Body == nil || objs["pre/dir/good2.txt"].Body == nil {
		t.Errorf("bucket %v", objs)
	}
	var failed []string
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Change.Path+": "+r.Err.Error())
		}
	}
	if len(failed) != 1 || !strings.Contains(failed[0], "bad.txt") || !strings.Contains(failed[0], "InternalError") {
		t.Errorf("failures reported: %q", failed)
	}
}

// Deletes (and the old keys of renames) go out in batches of at most
// MaxDeleteBatch keys, after the copies they may depend on.
func TestApplierRenamesThenDeletesInBatches(t *testing.T) {
	tb := newTestBucket(t)
	root := t.TempDir()
	ctx := context.Background()
	db, w := openManifest(t, root, tb)
	if _, err := (&Applier{Bucket: tb, Journal: w, Root: root}).Run(ctx, feed(addChange(t, root, "a.txt", "content of a"))); err != nil {
		t.Fatal(err)
	}
	up := addChange(t, root, "moved/a.txt", "content of a")
	// 1,500 deletes of keys that do not exist (S3 deletes them happily)
	// and one rename of a.txt to moved/a.txt.
	chs := []manifest.Change{{Op: manifest.OpRename, Path: "moved/a.txt", From: "a.txt", Entry: up.Entry}}
	for i := range 1500 {
		p := "gone/" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "/" + strconv.Itoa(i)
		chs = append(chs, manifest.Change{Op: manifest.OpDelete, Path: p, Entry: manifest.Entry{Path: p}})
	}
	tb.proxy.Reset()
	// The batches' round trips overlap: the copy is answered before
	// the deletes go, so two requests in flight are the two batches.
	tb.proxy.SetDelay(100 * time.Millisecond)
	sum, err := (&Applier{Bucket: tb, Journal: w, Root: root}).Run(ctx, feed(chs...))
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.proxy.Stats().MaxInFlight; got != 2 {
		t.Errorf("the two delete batches: %d requests in flight at most, want 2", got)
	}
	if sum.Rename != 1 || sum.Delete != 1500 || sum.Errors != 0 || sum.Bytes != 0 {
		t.Fatalf("summary %+v", sum)
	}
	st := tb.proxy.Stats()
	if st.ByOp["DeleteObjects"] != 2 || st.ByOp["CopyObject"] != 1 || st.ByOp["DeleteObject"] != 0 || st.BytesUploaded != 0 {
		t.Fatalf("requests %v", st.ByOp)
	}
	objs := tb.objects(t)
	if len(objs) != 1 || string(objs["moved/a.txt"].Body) != "content of a" {
		t.Fatalf("bucket %v", objs)
	}
	if _, ok, _ := db.Get(ctx, "a.txt"); ok {
		t.Error("a.txt still in the manifest after its rename")
	}
}

// Intent before effect: when a request that changes a key reaches S3, the
// manifest already marks that key in doubt, so that a run killed before
// recording S3's answer is settled by the next; once recorded, nothing is
// left in doubt.
func TestApplierMarksKeysInDoubtBeforeTheRequest(t *testing.T) {
	tb, root := newTestBucket(t), t.TempDir()
	db, _ := openManifest(t, root, tb)
	var mu sync.Mutex
	seen := map[string]bool{} // request path -> its key was in doubt
	tb.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		op := s3test.Operation(r)
		if op != "PutObject" && op != "DeleteObjects" && op != "CopyObject" && op != "CreateMultipartUpload" {
			return nil
		}
		doubts, err := db.Doubts(context.Background())
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, d := range doubts {
			if op == "DeleteObjects" || strings.HasSuffix(r.URL.Path, "/"+d.Path) && (op != "CreateMultipartUpload" || d.Multipart) {
				seen[op+" "+d.Path] = true
			}
		}
		if len(doubts) == 0 {
			seen[op+" with nothing in doubt"] = true
		}
		return nil
	})
	run := func(chs ...manifest.Change) {
		t.Helper()
		w := db.Writer()
		_, err := (&Applier{Bucket: tb, Journal: w, Root: root, Prefix: "pre/", Concurrency: 4}).Run(context.Background(), feed(chs...))
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d, err := db.Doubts(context.Background()); err != nil || len(d) != 0 {
			t.Fatalf("left in doubt after the run: %v, %v", d, err)
		}
	}
	a, b := addChange(t, root, "a.txt", "alpha"), addChange(t, root, "b.txt", "beta")
	big := addChange(t, root, "big.bin", strings.Repeat("x", 6<<20)) // over the 5 MiB part size
	dup := addChange(t, root, "dup.txt", "alpha")                    // a copy of a.txt once it is written
	dup.Op, dup.From, dup.FromRun = manifest.OpCopy, "a.txt", true
	run(a, b, big, dup)
	os.Rename(filepath.Join(root, "a.txt"), filepath.Join(root, "c.txt"))
	moved := a
	moved.Op, moved.Path, moved.From, moved.Entry.Path = manifest.OpRename, "c.txt", "a.txt", "c.txt"
	run(moved, manifest.Change{Op: manifest.OpDelete, Path: "b.txt", Entry: b.Entry, Prev: &b.Entry})
	want := map[string]bool{"PutObject a.txt": true, "PutObject b.txt": true, "CreateMultipartUpload big.bin": true,
		"CopyObject dup.txt": true, "CopyObject c.txt": true, "DeleteObjects a.txt": true, "DeleteObjects b.txt": true}
	mu.Lock()
	defer mu.Unlock()
	for k := range want {
		if !seen[k] {
			t.Errorf("%s: not in doubt when its request went out (seen %v)", k, seen)
		}
	}
	if seen["PutObject with nothing in doubt"] || seen["CopyObject with nothing in doubt"] || seen["DeleteObjects with nothing in doubt"] || seen["CreateMultipartUpload with nothing in doubt"] {
		t.Errorf("a request went out with nothing in doubt: %v", seen)
	}
}

// Every object written is recorded with the ETag S3 answered, the one a
// listing shows: uploads (in one request or in parts), server-side copies
// (in one request or in parts) and metadata refreshes, which give the
// object a new ETag. A touch that sends nothing keeps the ETag it had.
func TestApplierRecordsETags(t *testing.T) { onEachServer(t, testApplierRecordsETags) }

func testApplierRecordsETags(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g, func(c *S3Config) { c.MaxSingleCopy = 5 << 20; c.CopyPartSize = 5 << 20 })
	root := t.TempDir()
	ctx := context.Background()
	db, w := openManifest(t, root, tb)
	apply := func(chs ...manifest.Change) {
		t.Helper()
		sum, err := (&Applier{Bucket: tb, Journal: w, Root: root}).Run(ctx, feed(chs...))
		if err != nil || sum.Errors != 0 {
			t.Fatalf("apply: %+v, %v", sum, err)
		}
	}
	// recorded checks the manifest's ETags against a listing, and returns
	// them by path.
	recorded := func() map[string]string {
		t.Helper()
		got := map[string]string{}
		err := tb.List(ctx, "", func(o ObjectInfo) error {
			e, ok, err := db.Get(ctx, o.Key)
			if err != nil || !ok {
				return fmt.Errorf("%s: not in the manifest (%v)", o.Key, err)
			}
			if o.ETag == "" || e.ETag != o.ETag {
				t.Errorf("%s: the manifest records the ETag %q, the listing shows %q", o.Key, e.ETag, o.ETag)
			}
			got[o.Key] = e.ETag
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	small := addChange(t, root, "small.txt", "small")
	big := addChange(t, root, "big.bin", strings.Repeat("big part ", 700_000)) // 6.3 MB: two parts
	apply(small, big)
	first := recorded()
	if len(first) != 2 || !strings.Contains(first["big.bin"], "-") {
		t.Fatalf("ETags %v: want two, the multipart one with its part count", first)
	}

	smallCopy := addChange(t, root, "copy.txt", "small")
	smallCopy.Op, smallCopy.From = manifest.OpCopy, "small.txt"
	bigCopy := addChange(t, root, "big-copy.bin", strings.Repeat("big part ", 700_000))
	bigCopy.Op, bigCopy.From = manifest.OpCopy, "big.bin"
	apply(smallCopy, bigCopy)
	recorded()

	// A touch whose mtime moved is a copy onto itself; one whose stat
	// alone moved sends nothing and keeps the ETag.
	prev, _, _ := db.Get(ctx, "small.txt")
	moved := prev
	moved.Stat.MtimeNs += 1e9
	prevBig, _, _ := db.Get(ctx, "big.bin")
	rehashed := prevBig
	rehashed.HashedNs++
	tb.proxy.Reset()
	apply(manifest.Change{Op: manifest.OpTouch, Path: "small.txt", Entry: moved, Prev: &prev},
		manifest.Change{Op: manifest.OpTouch, Path: "big.bin", Entry: rehashed, Prev: &prevBig})
	if n := tb.proxy.Stats().ByOp["CopyObject"]; n != 1 {
		t.Fatalf("%d CopyObject for one metadata refresh", n)
	}
	if got := recorded(); got["big.bin"] != first["big.bin"] {
		t.Errorf("big.bin: ETag %q after a touch that sent nothing, was %q", got["big.bin"], first["big.bin"])
	}
}
