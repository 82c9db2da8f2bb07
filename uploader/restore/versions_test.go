package restore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

// versionBucket holds bodies by key and version ("" the current one) and
// records each GET.
type versionBucket struct {
	mu     sync.Mutex
	bodies map[[2]string]string
	gets   []string
}

func (b *versionBucket) GetVersion(_ context.Context, key, version string) (io.ReadCloser, uploader.ObjectMeta, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gets = append(b.gets, key+"@"+version)
	body, ok := b.bodies[[2]string{key, version}]
	if !ok {
		return nil, uploader.ObjectMeta{}, fmt.Errorf("get %s version %s: %w", key, version, uploader.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader([]byte(body))), uploader.ObjectMeta{Size: int64(len(body))}, nil
}

func version(path, content, versionID, historyKey string) manifest.Version {
	return manifest.Version{Path: path, Run: 1, Written: time.Unix(1_700_000_000, 0), Size: int64(len(content)),
		Hash: scanner.Digest(blake3.Sum256([]byte(content))), MtimeNs: mtime, Mode: 0o640, VersionID: versionID, HistoryKey: historyKey}
}

// Versions GETs each version where it is: by its version id, as the
// object at its HistoryKey, or the current object at its key; checks it
// against the version's hash (a body that differs is not restored), gives
// it the version's mode and mtime; refuses a path that leaves the folder,
// names a version the bucket no longer has, and keeps to Only.
func TestVersionsFetchesEachVersionWhereItIs(t *testing.T) {
	b := &versionBucket{bodies: map[[2]string]string{
		{"p/a.txt", "v1"}:            "alpha",
		{"p/.history/b.txt.1", ""}:   "bravo",
		{"p/c.txt", ""}:              "charlie",
		{"p/d.txt", "v9"}:            "not delta's bytes",
		{"p/sub/e.txt", "v2"}:        "echo",
		{"p/../evil", "v4"}:          "evil",
		{"p/sub/e.txt", "v-current"}: "newer echo",
	}}
	vs := []manifest.Version{
		version("a.txt", "alpha", "v1", ""),
		version("b.txt", "bravo", "", "p/.history/b.txt.1"),
		version("c.txt", "charlie", "", ""),
		version("d.txt", "delta", "v9", ""),
		version("gone.txt", "gone", "v-deleted", ""), // not in the bucket
		version("sub/e.txt", "echo", "v2", ""),
		version("../evil", "evil", "v4", ""),
	}
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	l := &log{}
	res, err := Versions(context.Background(), b, root, vs, l.options(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(l.restored)
	if want := []string{"a.txt", "b.txt", "c.txt", "sub/e.txt"}; !slices.Equal(l.restored, want) || res.Restored != 4 {
		t.Fatalf("restored %q (%+v), want %q", l.restored, res, want)
	}
	if res.Failed != 3 || res.Gone != 1 || len(l.refused) != 1 || l.refused[0] != "p/../evil" ||
		l.failed["d.txt"] == nil || l.failed["gone.txt"] == nil {
		t.Fatalf("result %+v, refused %q, failed %v", res, l.refused, l.failed)
	}
	for path, want := range map[string]string{"a.txt": "alpha", "b.txt": "bravo", "c.txt": "charlie", "sub/e.txt": "echo"} {
		got, err := os.ReadFile(dir + "/" + path)
		fi, _ := os.Stat(dir + "/" + path)
		if err != nil || string(got) != want || fi.Mode() != 0o640 || fi.ModTime().UnixNano() != mtime {
			t.Errorf("%s: %q, %v, mode %v, mtime %v; want %q, 0640, %d", path, got, err, fi.Mode(), fi.ModTime().UnixNano(), want, mtime)
		}
	}
	if _, err := os.Lstat(dir + "/d.txt"); err == nil || len(leftovers(t, dir)) != 0 {
		t.Errorf("d.txt, whose bytes are not the version's, was left (or a temporary file): %v %q", err, leftovers(t, dir))
	}

	b.gets = nil
	res, err = Versions(context.Background(), b, root, vs, l.options(Options{Only: "sub"}))
	if err != nil || res.Same != 1 || res.Restored != 0 || len(b.gets) != 0 {
		t.Fatalf("again with Only sub: %+v, %v, GETs %q; want sub/e.txt the same, no request", res, err, b.gets)
	}
}
