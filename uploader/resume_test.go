package uploader

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// killedUpload is a multipart upload of u as a killed run leaves it: S3
// holds parts held (from the file's bytes, or from other if given), the
// manifest records those of recorded. It returns the upload id.
func killedUpload(t *testing.T, tb *testBucket, db *manifest.DB, u Upload, held, recorded []int32, other map[int32][]byte) string {
	t.Helper()
	ctx := context.Background()
	c := tb.gw.Client()
	created, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &tb.name, Key: &u.Key, Metadata: u.Metadata()})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.UploadId)
	content, err := os.ReadFile(u.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.StartUpload(ctx, manifest.PartialUpload{Key: u.Key, UploadID: id, File: u.stat(), Hash: u.Hash, PartSize: tb.partSize}); err != nil {
		t.Fatal(err)
	}
	for _, n := range held {
		body := content[int64(n-1)*tb.partSize : min(int64(n)*tb.partSize, int64(len(content)))]
		if b, ok := other[n]; ok {
			body = b
		}
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &tb.name, Key: &u.Key, UploadId: &id, PartNumber: aws.Int32(n), Body: bytes.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recorded {
			if r == n {
				sum := md5.Sum(body)
				db.AddPart(ctx, u.Key, id, manifest.Part{Number: n, Size: int64(len(body)), ETag: unquote(out.ETag), MD5: hex.EncodeToString(sum[:])})
			}
		}
	}
	return id
}

func testManifest(t *testing.T) *manifest.DB {
	t.Helper()
	db, err := manifest.Open(filepath.Join(t.TempDir(), "m.db"), manifest.Identity{Source: "/s", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkUploaded asserts that the object at u.Key is u's file, that no
// multipart upload is left and that the manifest records none.
func checkUploaded(t *testing.T, tb *testBucket, db *manifest.DB, u Upload) {
	t.Helper()
	if o := tb.objects(t)[u.Key]; scanner.Digest(blake3.Sum256(o.Body)) != u.Hash || o.Metadata[MetaBLAKE3] != u.Hash.String() {
		t.Fatalf("object of %d bytes differs from the file", len(o.Body))
	}
	noOrphanParts(t, tb)
	if ups, _ := db.PartialUploads(context.Background()); len(ups) != 0 {
		t.Fatalf("the manifest still records %+v", ups)
	}
}

// partsAdded is a manifest that keeps the parts recorded in it.
type partsAdded struct {
	*manifest.DB
	mu    sync.Mutex
	parts []manifest.Part
}

func (r *partsAdded) AddPart(ctx context.Context, key, uploadID string, p manifest.Part) error {
	r.mu.Lock()
	r.parts = append(r.parts, p)
	r.mu.Unlock()
	return r.DB.AddPart(ctx, key, uploadID, p)
}

// An upload recorded for the same file is continued: the parts recorded
// and held are not sent again; a part held but not recorded (the kill came
// before its record) is. Each part sent is recorded with the MD5 of its
// bytes.
func TestUploadContinuesARecordedUpload(t *testing.T) {
	onEachServer(t, testUploadContinuesARecordedUpload)
}

func testUploadContinuesARecordedUpload(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	db := testManifest(t)
	u := localFile(t, "big", 17<<20+3, "big")
	added := &partsAdded{DB: db}
	u.Resumes = added
	killedUpload(t, tb, db, u, []int32{1, 2, 3}, []int32{1, 2}, nil)
	w, err := tb.Upload(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	st := tb.proxy.Stats()
	if st.ByOp["UploadPart"] != 2 || st.ByOp["CreateMultipartUpload"] != 0 || st.ByOp["ListParts"] != 1 || st.BytesUploaded != 7<<20+3 {
		t.Fatalf("requests %v, %d bytes: want parts 3 and 4 sent", st.ByOp, st.BytesUploaded)
	}
	if w.Sent != 7<<20+3 || w.Kept != 10<<20 || w.ETag == "" {
		t.Errorf("written %+v, want %d bytes sent, %d kept", w, 7<<20+3, 10<<20)
	}
	checkUploaded(t, tb, db, u)
	content, err := os.ReadFile(u.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(added.parts) != 2 {
		t.Fatalf("recorded parts %+v, want 3 and 4", added.parts)
	}
	for _, p := range added.parts {
		sum := md5.Sum(content[int64(p.Number-1)*tb.partSize : min(int64(p.Number)*tb.partSize, int64(len(content)))])
		if p.MD5 != hex.EncodeToString(sum[:]) {
			t.Errorf("part %d recorded with MD5 %q, want %x", p.Number, p.MD5, sum)
		}
	}
}

// A kept part's bytes, read again, are checked against the MD5 recorded
// when the part was sent, whatever its ETag says: with SSE-KMS or SSE-C,
// S3's part ETag is 32 hex digits that are not the MD5 of the bytes. A
// part recorded before MD5s were (MD5 "") is checked against its ETag if
// that looks like an MD5.
func TestRereadPartChecksTheRecordedMD5(t *testing.T) {
	data := bytes.Repeat([]byte("part bytes "), 100)
	changed := bytes.Clone(data)
	changed[7] = 'X'
	sum := md5.Sum(data)
	md5hex := hex.EncodeToString(sum[:])
	sse := strings.Repeat("c0ffee", 5) + "42" // 32 hex digits, not the MD5
	n := int64(len(data))
	u := Upload{Object: Object{Key: "k"}, Path: "f"}
	for _, c := range []struct {
		name string
		p    manifest.Part
		read []byte
		ok   bool
	}{
		{"ETag not the MD5, same bytes", manifest.Part{Number: 1, Size: n, ETag: sse, MD5: md5hex}, data, true},
		{"ETag not the MD5, other bytes", manifest.Part{Number: 1, Size: n, ETag: sse, MD5: md5hex}, changed, false},
		{"ETag the MD5, other bytes", manifest.Part{Number: 1, Size: n, ETag: md5hex, MD5: md5hex}, changed, false},
		{"ETag the MD5, same bytes", manifest.Part{Number: 1, Size: n, ETag: md5hex, MD5: md5hex}, data, true},
		{"older record, MD5 ETag, other bytes", manifest.Part{Number: 1, Size: n, ETag: md5hex}, changed, false},
		{"older record, MD5 ETag, same bytes", manifest.Part{Number: 1, Size: n, ETag: md5hex}, data, true},
		{"older record, other ETag", manifest.Part{Number: 1, Size: n, ETag: "abc-2"}, changed, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := rereadPart(bytes.NewReader(c.read), u, c.p)
			if c.ok && err != nil {
				t.Fatalf("got %v, want the part kept", err)
			}
			if !c.ok && (err == nil || !strings.Contains(err.Error(), "part 1 of the multipart upload of k holds other bytes than the file")) {
				t.Fatalf("got %v, want the part refused", err)
			}
		})
	}
}

// An upload is started over, the recorded one aborted, when it may not be
// continued: S3's part is not the recorded one, or S3 no longer has the
// upload. A recorded part that S3 holds as recorded but whose bytes are
// not the file's fails the upload, which is aborted.
func TestUploadStartsOverWhenTheRecordedUploadDiffers(t *testing.T) {
	onEachServer(t, testUploadStartsOverWhenTheRecordedUploadDiffers)
}

func testUploadStartsOverWhenTheRecordedUploadDiffers(t *testing.T, g *s3test.Gateway) {
	for _, c := range []struct {
		name    string
		prepare func(t *testing.T, tb *testBucket, db *manifest.DB, u Upload)
		abort   int64
	}{
		{"part replaced on S3", func(t *testing.T, tb *testBucket, db *manifest.DB, u Upload) {
			id := killedUpload(t, tb, db, u, []int32{1, 2}, []int32{1, 2}, nil)
			// Part 2 sent again with other bytes after it was recorded.
			other := bytes.Repeat([]byte("x"), 5<<20)
			if _, err := g.Client().UploadPart(context.Background(), &s3.UploadPartInput{Bucket: &tb.name, Key: &u.Key, UploadId: &id,
				PartNumber: aws.Int32(2), Body: bytes.NewReader(other)}); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"upload gone", func(t *testing.T, tb *testBucket, db *manifest.DB, u Upload) {
			id := killedUpload(t, tb, db, u, []int32{1, 2}, []int32{1, 2}, nil)
			if _, err := g.Client().AbortMultipartUpload(context.Background(), &s3.AbortMultipartUploadInput{Bucket: &tb.name, Key: &u.Key, UploadId: &id}); err != nil {
				t.Fatal(err)
			}
		}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTestBucketOn(t, g)
			db := testManifest(t)
			u := localFile(t, "big", 17<<20+3, "big")
			u.Resumes = db
			c.prepare(t, tb, db, u)
			if _, err := tb.Upload(context.Background(), u); err != nil {
				t.Fatal(err)
			}
			st := tb.proxy.Stats()
			if st.ByOp["UploadPart"] != 4 || st.ByOp["CreateMultipartUpload"] != 1 || st.ByOp["AbortMultipartUpload"] != c.abort {
				t.Fatalf("requests %v: want the recorded upload aborted and all 4 parts sent", st.ByOp)
			}
			checkUploaded(t, tb, db, u)
		})
	}
	// The file changed in a kept part after it was hashed, keeping its
	// size: the bytes read again are not those the part was sent with.
	t.Run("file changed in a kept part", func(t *testing.T) {
		tb := newTestBucketOn(t, g)
		db := testManifest(t)
		u := localFile(t, "big", 17<<20+3, "big")
		u.Resumes = db
		killedUpload(t, tb, db, u, []int32{1, 2}, []int32{1, 2}, nil)
		f, err := os.OpenFile(u.Path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("CHANGED"), 6<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = tb.Upload(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), "part 2 of the multipart upload of big holds other bytes than the file") {
			t.Fatalf("got %v", err)
		}
		noOrphanParts(t, tb)
		if ups, _ := db.PartialUploads(context.Background()); len(ups) != 0 {
			t.Fatalf("the manifest still records %+v", ups)
		}
	})
	t.Run("part with other bytes", func(t *testing.T) {
		tb := newTestBucketOn(t, g)
		db := testManifest(t)
		u := localFile(t, "big", 17<<20+3, "big")
		u.Resumes = db
		other := bytes.Repeat([]byte("y"), 5<<20)
		sum := md5.Sum(other)
		killedUpload(t, tb, db, u, []int32{1}, []int32{1}, map[int32][]byte{1: other})
		if p, _, _ := db.PartialUpload(context.Background(), "big"); len(p.Parts) != 1 || p.Parts[0].ETag != hex.EncodeToString(sum[:]) {
			t.Fatalf("the gateway's part ETag is not its MD5: %+v", p.Parts)
		}
		_, err := tb.Upload(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), "part 1 of the multipart upload of big holds other bytes than the file") {
			t.Fatalf("got %v", err)
		}
		noOrphanParts(t, tb)
		if ups, _ := db.PartialUploads(context.Background()); len(ups) != 0 {
			t.Fatalf("the manifest still records %+v", ups)
		}
	})
}

// A dry run's upload of a file whose upload a killed run left counts what
// the real run sends: a ListParts, the parts the manifest has not recorded
// and the Complete, and their bytes only; or, if the upload cannot be
// continued (the file's content is another), its abort and a new upload.
func TestDryRunPredictsAContinuedUpload(t *testing.T) {
	tb := newTestBucket(t)
	db := testManifest(t)
	u := localFile(t, "big", 17<<20+3, "big")
	u.Resumes = db
	killedUpload(t, tb, db, u, []int32{1, 2, 3}, []int32{1, 2}, nil)
	ctx := context.Background()
	other := u
	other.Hash = scanner.Digest{1}
	if _, err := tb.DryRun().Upload(ctx, other); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"AbortMultipartUpload": 1, "CreateMultipartUpload": 1, "UploadPart": 4, "CompleteMultipartUpload": 1}
	if got := tb.Requests(); fmt.Sprint(got.ByOp) != fmt.Sprint(want) || got.Bytes != u.Size {
		t.Fatalf("for another content, the dry run predicts %v, %d bytes; want %v, %d", got.ByOp, got.Bytes, want, u.Size)
	}

	tb = newTestBucket(t)
	db = testManifest(t)
	u.Resumes = db
	killedUpload(t, tb, db, u, []int32{1, 2, 3}, []int32{1, 2}, nil)
	w, err := tb.DryRun().Upload(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	predicted := tb.Requests()
	want = map[string]int64{"ListParts": 1, "UploadPart": 2, "CompleteMultipartUpload": 1}
	if fmt.Sprint(predicted.ByOp) != fmt.Sprint(want) || predicted.Bytes != 7<<20+3 || w.Sent != 7<<20+3 || w.Kept != 10<<20 {
		t.Fatalf("the dry run predicts %v, %d bytes, %+v; want %v, parts 3 and 4 sent, 10 MiB kept", predicted.ByOp, predicted.Bytes, w, want)
	}
	if st := tb.proxy.Stats(); st.Requests != 0 {
		t.Fatalf("the dry run sent %v", st.ByOp)
	}
	if _, err := tb.Upload(ctx, u); err != nil {
		t.Fatal(err)
	}
	want["HeadBucket"] = 1
	if st := tb.proxy.Stats(); fmt.Sprint(byOp(st)) != fmt.Sprint(want) || st.BytesUploaded != predicted.Bytes {
		t.Fatalf("the real upload sent %v, %d bytes; the dry run predicted %v, %d bytes", byOp(st), st.BytesUploaded, predicted.ByOp, predicted.Bytes)
	}
}

// AbortUploadsOf aborts the unfinished uploads of one key but the one to
// keep, and leaves those of keys it is a prefix of.
func TestAbortUploadsOfOneKey(t *testing.T) { onEachServer(t, testAbortUploadsOfOneKey) }

func testAbortUploadsOfOneKey(t *testing.T, g *s3test.Gateway) {
	ctx := context.Background()
	tb := newTestBucketOn(t, g)
	var ids []string
	for _, key := range []string{"k", "k", "k", "k2"} {
		out, err := g.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &tb.name, Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.UploadId))
	}
	n, kept, err := tb.AbortUploadsOf(ctx, "k", ids[1])
	if err != nil || n != 2 || !kept {
		t.Fatalf("AbortUploadsOf: %d aborted, kept %v, %v; want 2 and the one kept", n, kept, err)
	}
	ups, err := g.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &tb.name})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, u := range ups.Uploads {
		left = append(left, aws.ToString(u.Key)+" "+aws.ToString(u.UploadId))
	}
	slices.Sort(left)
	if want := []string{"k " + ids[1], "k2 " + ids[3]}; !slices.Equal(left, want) {
		t.Errorf("uploads left %q, want %q", left, want)
	}
}
