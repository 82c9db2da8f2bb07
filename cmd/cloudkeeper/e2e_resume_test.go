package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudkeeper-backup/cloudkeeper/cmd/cloudkeeper/internal/human"
	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// The big file of the resume tests: 8 parts of 5 MiB, the last one shorter.
const (
	resumeSize     = 38<<20 + 1000
	resumePartSize = 5 << 20
	resumeParts    = 8
)

// partNumber is the part an UploadPart request sends, 0 for other requests.
func partNumber(r *http.Request) int {
	if s3test.Operation(r) != "UploadPart" {
		return 0
	}
	n, _ := strconv.Atoi(r.URL.Query().Get("partNumber"))
	return n
}

// killMidUpload runs sync and kills it the moment S3's answer to part
// `last` of a multipart upload has reached it, once parts 1 to last-1 were
// answered; the later parts are held at the proxy and never reach S3.
func (e *env) killMidUpload(last int, args ...string) {
	e.t.Helper()
	var mu sync.Mutex
	answered := map[int]bool{}
	before := make(chan struct{}) // parts 1 to last-1 answered
	killed := make(chan struct{})
	var once sync.Once
	e.killWhen("UploadPart of part "+strconv.Itoa(last), func(r *http.Request, kill func()) *s3test.Fault {
		n := partNumber(r)
		switch {
		case n == 0:
			return nil
		case n < last:
			return &s3test.Fault{Answered: func() {
				mu.Lock()
				defer mu.Unlock()
				if !answered[n] {
					answered[n] = true
					if len(answered) == last-1 {
						close(before)
					}
				}
			}}
		case n == last:
			select {
			case <-before:
			case <-r.Context().Done():
			}
			return &s3test.Fault{Answered: func() {
				kill()
				once.Do(func() { close(killed) })
			}}
		default:
			select { // held until the run is killed
			case <-killed:
			case <-r.Context().Done():
			}
			return &s3test.Fault{Reset: true}
		}
	}, args...)
}

// recordedUpload is the multipart upload the manifest at m records for
// key, read as another process would.
func (e *env) recordedUpload(m, key string) (manifest.PartialUpload, bool) {
	e.t.Helper()
	db := e.openManifestAt(m)
	defer db.Close()
	u, ok, err := db.PartialUpload(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return u, ok
}

// identity is what a manifest of this env describes.
func (e *env) identity() manifest.Identity {
	e.t.Helper()
	src, err := filepath.EvalSymlinks(e.src)
	if err != nil {
		e.t.Fatal(err)
	}
	return manifest.Identity{Source: src, Endpoint: e.proxy.URL, Bucket: e.bucket, Prefix: e.prefix}
}

// partsHeld are the part numbers S3 holds of the upload.
func (e *env) partsHeld(key, uploadID string) []int {
	e.t.Helper()
	out, err := gw.Client().ListParts(context.Background(), &s3.ListPartsInput{Bucket: &e.bucket, Key: &key, UploadId: &uploadID})
	if err != nil {
		e.t.Fatal(err)
	}
	var held []int
	for _, p := range out.Parts {
		held = append(held, int(aws.ToInt32(p.PartNumber)))
	}
	return held
}

// partsSent records the part numbers of the UploadPart requests the next
// runs send, in order.
func (e *env) partsSent() func() []int {
	var mu sync.Mutex
	var sent []int
	e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
		if n := partNumber(r); n > 0 {
			mu.Lock()
			sent = append(sent, n)
			mu.Unlock()
		}
		return nil
	})
	e.t.Cleanup(func() { e.proxy.SetFault(nil) })
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		s := slices.Clone(sent)
		slices.Sort(s)
		return s
	}
}

// killedBigUpload backs up a small tree, then adds big.bin (at key) and
// kills the sync that uploads it (killMidUpload) in parts of 5 MiB with the
// manifest at m; args are the runs' settings.
func killedBigUpload(t *testing.T, last int) (e *env, m string, args []string, key string) {
	t.Helper()
	e = newEnv(t, scantest.Dir{"small.txt": scantest.File{Content: "small"}})
	m = filepath.Join(e.state, "m.db")
	args = []string{"--manifest", m, "--part-size", "5"}
	e.sync(0, args...)
	scantest.Write(t, e.src, "big.bin", bigContent(resumeSize))
	key = e.prefix + "big.bin"
	e.killMidUpload(last, args...)
	if _, ok := e.recordedUpload(m, key); !ok {
		t.Fatal("the killed run recorded no multipart upload")
	}
	return e, m, args, key
}

// A multipart upload killed part-way is continued by the next run: S3 is
// asked which parts it holds, those the manifest recorded are read again
// to hash but not sent, the others are sent, and the object is the file.
func TestSyncResumesAKilledMultipartUpload(t *testing.T) {
	e, m, args, key := killedBigUpload(t, 6)
	rec, _ := e.recordedUpload(m, key)
	var recorded []int
	for _, p := range rec.Parts {
		recorded = append(recorded, int(p.Number))
	}
	if held := e.partsHeld(key, rec.UploadID); !slices.Equal(held, []int{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("S3 holds parts %v of the killed upload, want 1 to 6", held)
	}
	// Part 6 was answered the moment of the kill: most likely not
	// recorded, then sent again. Fewer than 4 recorded would make the
	// test say little.
	if len(recorded) < 4 || !slices.IsSorted(recorded) || recorded[len(recorded)-1] > 6 {
		t.Fatalf("the manifest recorded parts %v, want 4 or more of 1 to 6", recorded)
	}

	var want []int
	var wantBytes int64
	for n := 1; n <= resumeParts; n++ {
		if !slices.Contains(recorded, n) {
			want = append(want, n)
			wantBytes += min(resumePartSize, resumeSize-int64(n-1)*resumePartSize)
		}
	}
	// A dry run first says what the real run sends: the parts not
	// recorded, not the whole file.
	dry := e.sync(0, append(slices.Clone(args), "--dry-run", "--json")...)
	estimate := dry.costSummary(t)
	wantResumed := fmt.Sprintf(`{"op":"add","path":"big.bin","size":%d,"resumed":{"bytes_sent":%d,"bytes_in_bucket":%d}}`, resumeSize, wantBytes, resumeSize-wantBytes)
	if !slices.Contains(dry.lines(), wantResumed) {
		t.Errorf("the dry run printed %q, want %s", dry.lines(), wantResumed)
	}

	sent := e.partsSent()
	r := e.sync(0, args...)
	if got := sent(); !slices.Equal(got, want) {
		t.Fatalf("the run after the kill sent parts %v, want %v (those the manifest had not recorded)\n%s", got, want, r.stderr)
	}
	st := e.proxy.Stats()
	if st.BytesUploaded != wantBytes {
		t.Errorf("the run after the kill sent %d bytes, want %d", st.BytesUploaded, wantBytes)
	}
	if st.ByOp["CreateMultipartUpload"] != 0 || st.ByOp["AbortMultipartUpload"] != 0 || st.ByOp["ListParts"] != 1 || st.ByOp["CompleteMultipartUpload"] != 1 {
		t.Errorf("the run after the kill sent %v, want the upload continued: one ListParts, one CompleteMultipartUpload", st.ByOp)
	}
	if est := estimate.Summary.Requests; fmt.Sprint(est.ByOp) != fmt.Sprint(e.seen()) || est.Bytes != st.BytesUploaded {
		t.Errorf("the dry run predicted %v, %d bytes; the real run sent %v, %d bytes", est.ByOp, est.Bytes, e.seen(), st.BytesUploaded)
	}
	t.Logf("resumed: %d of %d bytes sent again (%d of %d parts)", st.BytesUploaded, resumeSize, len(want), resumeParts)
	wantSettled(t, r, "multipart_uploads_kept=1")
	line := fmt.Sprintf("add     big.bin (38.0 MiB, resumed: %s sent, %s already in the bucket)", human.Bytes(wantBytes), human.Bytes(resumeSize-wantBytes))
	if !slices.Equal(r.lines(), []string{line}) {
		t.Errorf("changes %q, want %q", r.lines(), line)
	}
	if sum := r.summary(); !strings.HasPrefix(sum, "1 upload ("+human.Bytes(wantBytes)+")") {
		t.Errorf("summary %q, want the bytes sent", sum)
	}
	e.checkBucketIsTree()
	if n := multipartUploads(t, e); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
	if _, ok := e.recordedUpload(m, key); ok {
		t.Error("the manifest still records the completed upload")
	}
	e.verifyGood()
	// The next run has nothing to send (it asks about the key again: a
	// request of the killed run may still arrive, see SettleWatch).
	if r := e.sync(0, args...); len(r.lines()) != 0 || e.ops()["UploadPart"]+e.ops()["PutObject"] != 0 {
		t.Fatalf("then: %q, %v", r.lines(), e.ops())
	}
}

// An upload killed part-way whose file then changes, is gone, or is sent in
// other parts, is aborted by the next run, never continued: a changed file
// is sent again whole, in a new upload.
func TestSyncAbortsAKilledUploadNotContinued(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(e *env)
		args   []string // of the run after the kill
		parts  int64    // parts it sends
	}{
		{"file changed", func(e *env) { scantest.Write(e.t, e.src, "big.bin", "CHANGED"+bigContent(resumeSize)[7:]) }, nil, resumeParts},
		{"file gone", func(e *env) { os.Remove(e.path("big.bin")) }, nil, 0},
		// Now one PutObject, not a multipart upload: the upload a kill
		// left must be gone before it.
		{"file shrank", func(e *env) { scantest.Write(e.t, e.src, "big.bin", "small now") }, nil, 0},
		{"other part size", func(*env) {}, []string{"--part-size", "6"}, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, m, args, key := killedBigUpload(t, 3)
			c.change(e)
			// The upload is aborted before this run writes anything: a
			// Complete of the killed run still on its way must not land
			// over this run's write of the key.
			var mu sync.Mutex
			var order []string
			e.proxy.SetFault(func(r *http.Request) *s3test.Fault {
				mu.Lock()
				defer mu.Unlock()
				order = append(order, s3test.Operation(r))
				return nil
			})
			r := e.sync(0, append(args, c.args...)...)
			e.proxy.SetFault(nil)
			for _, op := range order {
				if op == "AbortMultipartUpload" {
					break
				}
				if op == "PutObject" || op == "CreateMultipartUpload" || op == "CopyObject" || op == "DeleteObjects" || op == "UploadPart" {
					t.Fatalf("%s sent before the killed upload was aborted: %v", op, order)
				}
			}
			st := e.proxy.Stats()
			if st.ByOp["AbortMultipartUpload"] != 1 || st.ByOp["UploadPart"] != c.parts || st.ByOp["ListParts"] != 0 {
				t.Errorf("the run after the kill sent %v, want one AbortMultipartUpload, %d UploadPart, no ListParts\n%s", st.ByOp, c.parts, r.stderr)
			}
			e.checkBucketIsTree()
			if n := multipartUploads(t, e); n != 0 {
				t.Fatalf("%d multipart uploads left behind", n)
			}
			if _, ok := e.recordedUpload(m, key); ok {
				t.Error("the manifest still records an upload")
			}
		})
	}
}

// TestResumeCost measures what continuing a killed upload sends again: a
// file of CLOUDKEEPER_TEST_RESUME_BYTES bytes, in parts of the default
// size, killed once S3 answered three quarters of its parts (parts in
// flight then go on to S3 unrecorded, as they would).
//
//	CLOUDKEEPER_TEST_RESUME_BYTES=1073741824 go test ./cmd/cloudkeeper -run TestResumeCost -v
func TestResumeCost(t *testing.T) {
	size, _ := strconv.ParseInt(os.Getenv("CLOUDKEEPER_TEST_RESUME_BYTES"), 10, 64)
	if size < 64<<20 {
		t.Skip("set CLOUDKEEPER_TEST_RESUME_BYTES to a size in bytes (64 MiB or more) to measure a resumed upload")
	}
	e := newEnv(t, scantest.Dir{"small.txt": scantest.File{Content: "small"}})
	e.sync(0)
	writeBig(t, e.path("big.bin"), size)
	parts := (size + uploader.DefaultPartSize - 1) / uploader.DefaultPartSize
	var answered, atKill atomic.Int64
	started := time.Now()
	e.killWhen("three quarters of the parts", func(r *http.Request, kill func()) *s3test.Fault {
		if partNumber(r) == 0 {
			return nil
		}
		return &s3test.Fault{Answered: func() {
			if n := answered.Add(1); n == parts*3/4 {
				atKill.Store(n)
				kill()
			}
		}}
	})
	killedAfter := time.Since(started)
	// The bytes of the parts the next run sends, by their numbers: the
	// proxy's byte count would take in the killed run's bodies still in
	// its buffers.
	sent := e.partsSent()
	started = time.Now()
	r := e.sync(0)
	var bytes int64
	for _, n := range sent() {
		bytes += min(uploader.DefaultPartSize, size-int64(n-1)*uploader.DefaultPartSize)
	}
	t.Logf("killed after %d of %d parts answered (%.1f s); the next run sent %d parts, %d of %d bytes again (%.1f%%), in %.1f s; %s",
		atKill.Load(), parts, killedAfter.Seconds(), len(sent()), bytes, size,
		100*float64(bytes)/float64(size), time.Since(started).Seconds(), r.requests())
	// A file of few parts sends again a larger share: the parts in
	// flight at the kill (as many as --concurrency) were not recorded.
	if size >= 1<<30 && bytes > size*3/10 {
		t.Errorf("sent %d bytes again, more than 30%% of %d", bytes, size)
	}
	if n := multipartUploads(t, e); n != 0 {
		t.Fatalf("%d multipart uploads left behind", n)
	}
	v := e.run(append([]string{"verify", "--deep"}, e.baseArgs()...)...)
	if v.code != 0 {
		t.Fatalf("verify --deep: exit %d\n%s%s", v.code, v.stdout, v.stderr)
	}
}

// writeBig writes size bytes that no two parts share to path.
func writeBig(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	x := uint64(0x9e3779b97f4a7c15)
	var b [8]byte
	for n := int64(0); n < size; n += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[:], x)
		w.Write(b[:min(8, size-n)])
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}
