package verify

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/cloudkeeper-backup/cloudkeeper/manifest"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
	"github.com/cloudkeeper-backup/cloudkeeper/uploader/readertest"
)

func expect(body string) Expected {
	return Expected{Hash: scanner.Digest(blake3.Sum256([]byte(body))), Size: int64(len(body))}
}

// bucket holds one object of each kind of problem, and the manifest that
// they are problems against.
func bucket() (*readertest.Fake, map[string]Expected) {
	f := readertest.NewFake()
	m := map[string]Expected{}
	good := func(path, body string) {
		f.Put(manifest.Key("p/", path), []byte(body), readertest.Meta([]byte(body), 1, 0o644))
		m[path] = expect(body)
	}
	good("good", "good")
	m["missing"] = expect("gone")
	f.Put("p/extra", []byte("planted"), readertest.Meta([]byte("planted"), 1, 0o644))
	good("wrong-size", "four")
	m["wrong-size"] = expect("five!")
	good("wrong-hash", "same")
	m["wrong-hash"] = expect("diff")
	good("bad-bytes", "true")
	f.Put("p/bad-bytes", []byte("lies"), readertest.Meta([]byte("true"), 1, 0o644)) // same size, other bytes
	good("short-read", "true")
	meta := readertest.Meta([]byte("true"), 1, 0o644)
	meta.Size = 5 // Get says 5 bytes, the body has 4
	f.Put("p/short-read", []byte("true"), meta)
	m["short-read"] = Expected{Hash: meta.Hash, Size: 4}
	good("no-mtime", "x")
	meta = readertest.Meta([]byte("x"), 1, 0o644)
	meta.MtimeErr = errors.New("no x-amz-meta-mtime")
	f.Put("p/no-mtime", []byte("x"), meta)
	good("no-hash", "y")
	f.Put("p/no-hash", []byte("y"), readertest.NoMeta(1))
	f.Put("p/../escape", []byte("z"), readertest.Meta([]byte("z"), 1, 0o644))
	good("unreadable", "u")
	good("deleted-meanwhile", "d")
	f.Err = func(op, key string) error {
		switch key {
		case "p/unreadable":
			return errors.New("head p/unreadable: connection reset")
		case "p/deleted-meanwhile":
			return uploader.ErrNotFound
		}
		return nil
	}
	f.Put("p/folder/", nil, readertest.NoMeta(0))
	return f, m
}

func run(t *testing.T, f *readertest.Fake, o Options) (Result, map[string]Kind) {
	t.Helper()
	var mu sync.Mutex
	got := map[string]Kind{}
	o.Prefix, o.Concurrency = "p/", 4
	o.Problem = func(p Problem) {
		mu.Lock()
		defer mu.Unlock()
		name := p.Path
		if name == "" {
			name = "key " + p.Key
		}
		if _, dup := got[name]; dup {
			t.Errorf("%s reported twice", name)
		}
		got[name] = p.Kind
	}
	res, err := Run(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	return res, got
}

// Each object is classified by what is wrong with it, against the
// manifest; bytes only with Deep.
func TestClassifiesEachProblem(t *testing.T) {
	f, m := bucket()
	want := map[string]Kind{
		"missing": Missing, "extra": Extra, "wrong-size": WrongSize, "wrong-hash": WrongHash,
		"no-mtime": BadMetadata, "no-hash": BadMetadata, "key p/../escape": BadKey,
		"unreadable": Unreadable, "deleted-meanwhile": Missing,
	}
	res, got := run(t, f, Options{Expect: m})
	if !maps.Equal(got, want) {
		t.Errorf("metadata only: %v\nwant %v", got, want)
	}
	if res.Good() || res.Objects != 11 || res.Missing != 2 || res.Extra != 1 || res.Mismatch != 2 || res.Bad != 3 || res.Errors != 1 {
		t.Errorf("metadata only: %+v", res)
	}
	want["bad-bytes"], want["short-read"] = BadBytes, ShortRead
	_, got = run(t, f, Options{Expect: m, Deep: true})
	if !maps.Equal(got, want) {
		t.Errorf("deep: %v\nwant %v", got, want)
	}
}

// Without a manifest the bucket is checked against itself: nothing is
// extra or missing, but what does not describe itself is bad.
func TestWithoutManifestChecksTheBucketAlone(t *testing.T) {
	f, _ := bucket()
	_, got := run(t, f, Options{Deep: true})
	want := map[string]Kind{
		"no-mtime": BadMetadata, "no-hash": BadMetadata, "key p/../escape": BadKey,
		"unreadable": Unreadable, "deleted-meanwhile": Unreadable, "bad-bytes": BadBytes, "short-read": ShortRead,
	}
	if !maps.Equal(got, want) {
		t.Errorf("%v\nwant %v", got, want)
	}
}

// A good backup is good.
func TestGoodBackupIsGood(t *testing.T) {
	f := readertest.NewFake()
	m := map[string]Expected{}
	for _, p := range []string{"a", "d/b", "d/e/c"} {
		f.Put(manifest.Key("p/", p), []byte(p), readertest.Meta([]byte(p), 1, 0o600))
		m[p] = expect(p)
	}
	res, got := run(t, f, Options{Expect: m, Deep: true})
	if !res.Good() || len(got) != 0 || res.Objects != 3 || res.Bytes != 9 {
		t.Errorf("%+v, %v", res, got)
	}
}

// With Repair, what was found becomes the edits that make the next sync
// repair it: missing rows forgotten, differing ones stale, extra objects
// adopted (and counted as adopted if the tree has their file).
func TestRepairCollectsTheEdits(t *testing.T) {
	f, m := bucket()
	f.Put("p/extra-in-tree", []byte("t"), readertest.Meta([]byte("t"), 1, 0o644))
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "extra-in-tree"), []byte("t"), 0o644)
	res, _ := run(t, f, Options{Expect: m, Deep: true, Repair: true, Source: src})
	r := res.Repair
	slices.Sort(r.Forget)
	slices.Sort(r.Stale)
	var adopted []string
	for _, e := range r.Adopt {
		adopted = append(adopted, e.Path)
	}
	slices.Sort(adopted)
	if want := []string{"deleted-meanwhile", "missing"}; !slices.Equal(r.Forget, want) {
		t.Errorf("forget %q, want %q", r.Forget, want)
	}
	if want := []string{"bad-bytes", "no-hash", "no-mtime", "short-read", "wrong-hash", "wrong-size"}; !slices.Equal(r.Stale, want) {
		t.Errorf("stale %q, want %q", r.Stale, want)
	}
	if want := []string{"extra", "extra-in-tree"}; !slices.Equal(adopted, want) {
		t.Errorf("adopt %q, want %q", adopted, want)
	}
	if mk := res.Marked; mk.Missing != 2 || mk.Differ != 6 || mk.Adopted != 1 || mk.Extra != 1 {
		t.Errorf("marked %+v", mk)
	}
}

// A fatal error or a cancelled context ends the check and is returned.
func TestCancelEndsTheCheck(t *testing.T) {
	f, m := bucket()
	ctx, cancel := context.WithCancel(context.Background())
	f.Err = func(op, key string) error { cancel(); return ctx.Err() }
	if _, err := Run(ctx, f, Options{Prefix: "p/", Expect: m}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
}

// Load never creates a manifest: an empty one would make every object
// "extra", and a repair would adopt them all.
func TestLoadMissingManifestIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.db")
	for _, forRepair := range []bool{false, true} {
		m, db, err := Load(context.Background(), path, manifest.Identity{Source: "/src", Bucket: "b"}, forRepair)
		if !errors.Is(err, fs.ErrNotExist) || m != nil || db != nil {
			t.Errorf("forRepair %v: %v, %v, %v; want fs.ErrNotExist", forRepair, m, db, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("forRepair %v: Load created %s", forRepair, path)
		}
	}
}
