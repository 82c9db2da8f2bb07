package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// put writes an object straight to the gateway (not through the proxy),
// with the metadata given and nothing else.
func (tb *testBucket) put(t *testing.T, key, body string, md map[string]string) {
	t.Helper()
	_, err := tb.gw.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(tb.name), Key: aws.String(key), Body: strings.NewReader(body), Metadata: md,
	})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func TestParseModeIsFormatModeInverse(t *testing.T) {
	for v := fs.FileMode(0); v <= 0o777; v++ {
		for _, special := range []fs.FileMode{0, fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky, fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky} {
			m := v | special
			got, err := ParseMode(FormatMode(m))
			if err != nil || got != m {
				t.Fatalf("ParseMode(%q) = %v, %v; want %v", FormatMode(m), got, err, m)
			}
		}
	}
	for s, want := range map[string]fs.FileMode{"644": 0o644, "4755": 0o755 | fs.ModeSetuid, "2750": 0o750 | fs.ModeSetgid, "1777": 0o777 | fs.ModeSticky, "0000": 0} {
		if got, err := ParseMode(s); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "8", "0999", "10000", "77777", "-644", "+644", "0o644", "0x1ff", "rw-r--r--", " 644"} {
		if m, err := ParseMode(bad); err == nil {
			t.Errorf("ParseMode(%q) = %v, want an error", bad, m)
		}
	}
}

// List goes through every page, gives each key under the prefix once, in
// order, with its size, and leaves out keys outside the prefix.
func TestListPagesThroughThePrefix(t *testing.T) { onEachServer(t, testListPagesThroughThePrefix) }

func testListPagesThroughThePrefix(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	names := []string{"a.txt", "new\nline", `back\slash`, "bad-\xff-utf8", "ünïcödé", "spaces and + & = ?", "sub/deeper/x", "tab\there"}
	var want []string
	for i, n := range names {
		k := manifest.Key("p/", n)
		tb.put(t, k, strings.Repeat("x", i), nil)
		want = append(want, k)
	}
	slices.Sort(want)
	tb.put(t, "p-outside", "no", nil)
	tb.put(t, "other/p/a.txt", "no", nil)

	start := time.Now().Add(-time.Minute)
	var got []string
	err := tb.list(ctx, "p/", 3, func(o ObjectInfo) error {
		got = append(got, o.Key)
		n, _ := manifest.UnescapePath(strings.TrimPrefix(o.Key, "p/"))
		if i := slices.Index(names, n); o.Size != int64(i) {
			t.Errorf("%q: size %d, want %d", o.Key, o.Size, i)
		}
		if o.ETag == "" || strings.Contains(o.ETag, `"`) || o.LastModified.Before(start) {
			t.Errorf("%q: etag %q, last modified %v", o.Key, o.ETag, o.LastModified)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed\n %q\nwant\n %q", got, want)
	}
	if n := tb.proxy.Stats().ByOp["ListObjectsV2"]; n != 3 {
		t.Errorf("%d ListObjectsV2 requests for 8 keys, 3 a page; want 3", n)
	}

	// The public List, and an error of fn ends the listing.
	stop := errors.New("stop")
	calls := 0
	if err := tb.List(ctx, "", func(ObjectInfo) error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("List returned %v after %d calls; want fn's error after 1", err, calls)
	}
}

// Keys of a listing the server URL-encoded are decoded; others are taken
// as they are (versitygw ignores EncodingType, so this is checked here).
func TestListedKeyDecodesOnlyEncodedListings(t *testing.T) {
	for _, c := range []struct {
		key  string
		enc  types.EncodingType
		want string
	}{
		{"a%2Fb+c%0A", types.EncodingTypeUrl, "a/b c\n"},
		{"a%2Fb+c", "", "a%2Fb+c"},
		{"p/%E2%9C%93", types.EncodingTypeUrl, "p/✓"},
	} {
		if got, err := listedKey(c.key, c.enc); err != nil || got != c.want {
			t.Errorf("listedKey(%q, %q) = %q, %v; want %q", c.key, c.enc, got, err, c.want)
		}
	}
	if _, err := listedKey("bad%zz", types.EncodingTypeUrl); err == nil || !strings.Contains(err.Error(), `"bad%zz"`) {
		t.Errorf("a malformed encoded key: %v", err)
	}
}

// Head and Get give back what Upload wrote: size, BLAKE3, mtime to the
// nanosecond, and mode with its set-id bits; for a single PUT and a
// multipart upload alike.
func TestHeadAndGetReadWhatUploadWrote(t *testing.T) {
	onEachServer(t, testHeadAndGetReadWhatUploadWrote)
}

func testHeadAndGetReadWhatUploadWrote(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	for _, size := range []int{0, 1000, 11 << 20} {
		u := localFile(t, "f", size, fmt.Sprintf("obj-%d", size))
		u.MtimeNs, u.Mode = -1_234_567_891, 0o755|fs.ModeSetuid|fs.ModeSticky
		if _, err := tb.Upload(ctx, u); err != nil {
			t.Fatal(err)
		}
		check := func(op string, m ObjectMeta) {
			t.Helper()
			if m.Err() != nil || m.Size != u.Size || m.Hash != u.Hash || m.MtimeNs != u.MtimeNs || m.Mode != u.Mode {
				t.Errorf("%s %s: %+v; want size %d, hash %s, mtime %d, mode %v", op, u.Key, m, u.Size, u.Hash, u.MtimeNs, u.Mode)
			}
		}
		m, err := tb.Head(ctx, u.Key)
		if err != nil {
			t.Fatal(err)
		}
		check("head", m)
		body, m, err := tb.Get(ctx, u.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(body)
		body.Close()
		if err != nil || scanner.Digest(blake3.Sum256(b)) != u.Hash {
			t.Errorf("get %s: %d bytes that do not hash to the upload's, %v", u.Key, len(b), err)
		}
		check("get", m)
	}
}

// A missing key is ErrNotFound, not a fatal error (a HEAD's 404 has no
// code to tell a missing key from a missing bucket), and names the key.
func TestHeadAndGetOfMissingKey(t *testing.T) { onEachServer(t, testHeadAndGetOfMissingKey) }

func testHeadAndGetOfMissingKey(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	_, err := tb.Head(ctx, "no/such key")
	if !errors.Is(err, ErrNotFound) || IsFatal(err) || !strings.Contains(err.Error(), "head no/such key") {
		t.Errorf("head: %v", err)
	}
	_, _, err = tb.Get(ctx, "no/such key")
	if !errors.Is(err, ErrNotFound) || IsFatal(err) || !strings.Contains(err.Error(), "get no/such key") {
		t.Errorf("get: %v", err)
	}
}

// Metadata that is missing or malformed is reported per value, with what
// is wrong; the values that do parse are kept.
func TestHeadReportsBadMetadata(t *testing.T) { onEachServer(t, testHeadReportsBadMetadata) }

func testHeadReportsBadMetadata(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g)
	ctx := context.Background()
	sum := blake3.Sum256([]byte("x"))
	good := scanner.Digest(sum).String()
	for _, c := range []struct {
		name              string
		md                map[string]string
		hash, mtime, mode string // substring of each error; "" for none
		wantMtimeNs       int64
	}{
		{"none", nil, "no x-amz-meta-blake3", "no x-amz-meta-mtime", "no x-amz-meta-mode", 0},
		{"malformed", map[string]string{"blake3": "zz", "mtime": "yesterday", "mode": "0999"},
			`x-amz-meta-blake3: not a BLAKE3 hex digest: "zz"`, `x-amz-meta-mtime: mtime "yesterday"`, `x-amz-meta-mode: mode "0999"`, 0},
		{"short hash, huge mtime", map[string]string{"blake3": good[:40], "mtime": "99999999999999999.5", "mode": "0644"},
			"not a BLAKE3 hex digest", "out of range", "", 0},
		{"good", map[string]string{"blake3": good, "mtime": "1700000000.000000042", "mode": "0600"}, "", "", "", 1_700_000_000_000_000_042},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb.put(t, c.name, "x", c.md)
			m, err := tb.Head(ctx, c.name)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []struct {
				what string
				err  error
				want string
			}{{"hash", m.HashErr, c.hash}, {"mtime", m.MtimeErr, c.mtime}, {"mode", m.ModeErr, c.mode}} {
				if (v.want == "") != (v.err == nil) || v.err != nil && !strings.Contains(v.err.Error(), v.want) {
					t.Errorf("%s error %v, want %q", v.what, v.err, v.want)
				}
			}
			if c.hash == "" && m.Hash.String() != good || m.MtimeNs != c.wantMtimeNs || m.Size != 1 {
				t.Errorf("meta %+v", m)
			}
			if (m.Err() == nil) != (c.name == "good") {
				t.Errorf("Err() = %v", m.Err())
			}
		})
	}
}

// EachObject visits every object once, never runs more than n at a time,
// and ends with the first error of fn.
func TestEachObjectIsBoundedAndStopsOnError(t *testing.T) {
	tb := newTestBucket(t)
	ctx := context.Background()
	for i := range 30 {
		tb.put(t, fmt.Sprintf("k/%02d", i), "x", nil)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var running, most atomic.Int32
	err := tb.EachObject(ctx, "k/", 3, func(ctx context.Context, o ObjectInfo) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		seen[o.Key]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 30 || most.Load() > 3 || most.Load() < 2 {
		t.Fatalf("saw %d keys, at most %d at once", len(seen), most.Load())
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s visited %d times", k, n)
		}
	}

	boom := errors.New("boom")
	var calls atomic.Int32
	err = tb.EachObject(ctx, "k/", 2, func(ctx context.Context, o ObjectInfo) error {
		if calls.Add(1) == 5 {
			return boom
		}
		return nil
	})
	if err != boom {
		t.Fatalf("EachObject returned %v, want fn's error", err)
	}
}

// Reads of a bucket that is not there fail at once with the one-line fatal
// error every other operation gives.
func TestReadsOfMissingBucketAreFatal(t *testing.T) {
	onEachServer(t, testReadsOfMissingBucketAreFatal)
}

func testReadsOfMissingBucketAreFatal(t *testing.T, g *s3test.Gateway) {
	tb := newTestBucketOn(t, g, func(c *S3Config) { c.Bucket = "no-such-bucket-for-reads" })
	ctx := context.Background()
	_, herr := tb.Head(ctx, "k")
	_, _, gerr := tb.Get(ctx, "k")
	for _, err := range []error{tb.List(ctx, "", func(ObjectInfo) error { return nil }), herr, gerr} {
		if !IsFatal(err) || !strings.Contains(err.Error(), `bucket "no-such-bucket-for-reads"`) || strings.Contains(err.Error(), "\n") {
			t.Errorf("got %v, want a one-line fatal error naming the bucket", err)
		}
	}
}
