package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner"
	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

const cacheTag = scanner.CacheTagSignature + "\n# This file is a cache directory tag created by a test.\n"

// keysWant fails the test unless the bucket holds exactly these paths
// (under the prefix).
func (e *env) keysWant(t *testing.T, paths ...string) {
	t.Helper()
	var want []string
	for _, p := range paths {
		want = append(want, e.prefix+p)
	}
	slices.Sort(want)
	if got := scantestKeys(t, e); !slices.Equal(got, want) {
		t.Fatalf("bucket %q, want %q", got, want)
	}
}

// Patterns come from --exclude-from files (comments and blank lines
// ignored) and from CLOUDKEEPER_EXCLUDE in the .env file (commas, with \,
// for a comma in a pattern), together; a missing file is a usage error
// naming it, before any request.
func TestSyncExcludeFromAndEnv(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"keep.txt":   scantest.File{Content: "keep"},
		"a.tmp":      scantest.File{Content: "tmp"},
		"we,ird.txt": scantest.File{Content: "comma"},
		"build":      scantest.Dir{"out.o": scantest.File{Content: "o"}},
		"logs":       scantest.Dir{"x.log": scantest.File{Content: "log"}},
		"src":        scantest.Dir{"a.go": scantest.File{Content: "go"}, "b.o": scantest.File{Content: "o"}},
	})
	excludes := filepath.Join(e.state, "excludes")
	os.WriteFile(excludes, []byte("# build output\n*.o\n\n  build/  \n"), 0o644)
	more := filepath.Join(e.state, "more excludes")
	os.WriteFile(more, []byte("*.tmp\n"), 0o644)
	os.WriteFile(filepath.Join(e.state, ".env"), []byte(`CLOUDKEEPER_EXCLUDE='logs/, we\,ird.txt'`+"\n"), 0o600)

	r := e.sync(2, "--exclude-from", filepath.Join(e.state, "nope"))
	if !strings.Contains(r.stderr, filepath.Join(e.state, "nope")) || !strings.Contains(r.stderr, "--exclude-from") || e.proxy.Stats().Requests != 0 {
		t.Fatalf("a missing exclude file: stderr %q, %d requests", r.stderr, e.proxy.Stats().Requests)
	}
	r = e.sync(0, "--exclude-from", excludes, "--exclude-from", more)
	if strings.Contains(r.stderr, "not a setting") {
		t.Errorf("CLOUDKEEPER_EXCLUDE in the .env file warned: %s", r.stderr)
	}
	e.keysWant(t, "keep.txt", "src/a.go")

	// The same from the environment, a newline between the patterns; the
	// command line's --exclude replaces CLOUDKEEPER_EXCLUDE, as a flag
	// replaces its variable.
	os.Remove(filepath.Join(e.state, ".env"))
	env := e.cmd
	e.cmd = func(c *exec.Cmd) {
		c.Env = append(c.Env, "CLOUDKEEPER_EXCLUDE_FROM="+excludes+","+more, "CLOUDKEEPER_EXCLUDE=logs/\nwe\\,ird.txt")
	}
	if r := e.sync(0, "--dry-run"); len(r.lines()) != 0 {
		t.Fatalf("the environment's excludes: %q", r.lines())
	}
	if r := e.sync(0, "--dry-run", "--exclude", "logs/"); !slices.Equal(r.lines(), []string{"add     we,ird.txt (5 B)"}) {
		t.Fatalf("--exclude with CLOUDKEEPER_EXCLUDE: %q", r.lines())
	}
	e.cmd = env
}

// A folder that holds a marker (--exclude-if-present, or a valid
// CACHEDIR.TAG with --exclude-caches) is left out: what it held before
// stays in the bucket, untouched, and verify and status are content; -v
// names each folder once and the summary counts them. --delete-excluded
// deletes those objects, within --max-delete, and a dry run lists them.
func TestSyncExcludeMarkers(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"keep.txt": scantest.File{Content: "keep"},
		"private":  scantest.Dir{"secret.txt": scantest.File{Content: "secret"}, "sub": scantest.Dir{"deep.txt": scantest.File{Content: "deep"}}},
		"cache":    scantest.Dir{"blob": scantest.File{Content: "blob"}},
		"fake":     scantest.Dir{"f": scantest.File{Content: "f"}},
	})
	e.sync(0)
	scantest.Write(t, e.src, "private/.nobackup", "")
	scantest.Write(t, e.src, "private/new.txt", "never backed up")
	scantest.Write(t, e.src, "private/sub/deep.txt", "edited, not backed up")
	scantest.Write(t, e.src, "cache/CACHEDIR.TAG", cacheTag)
	scantest.Write(t, e.src, "fake/CACHEDIR.TAG", "Signature: 00000000000000000000000000000000\n")
	markers := []string{"--exclude-if-present", ".nobackup", "--exclude-caches"}

	r := e.sync(0, append(markers, "-v")...)
	if want := []string{"add     fake/CACHEDIR.TAG (44 B)"}; !slices.Equal(r.lines(), want) {
		t.Fatalf("changes %q, want %q", r.lines(), want)
	}
	e.wantOps(map[string]int64{"PutObject": 1})
	if !strings.HasSuffix(r.summary(), "; 2 folders excluded by a marker file") {
		t.Errorf("summary %q", r.summary())
	}
	for _, want := range []string{`excluded folder path=cache reason="holds a valid CACHEDIR.TAG (--exclude-caches)"`, `excluded folder path=private reason="holds .nobackup (--exclude-if-present)"`} {
		if strings.Count(r.stderr, want) != 1 {
			t.Errorf("stderr lacks one %q:\n%s", want, r.stderr)
		}
	}
	before := []string{"cache/blob", "fake/CACHEDIR.TAG", "fake/f", "keep.txt", "private/secret.txt", "private/sub/deep.txt"}
	e.keysWant(t, before...)
	if body := gwtestObjects(t, e)[e.prefix+"private/sub/deep.txt"].Body; string(body) != "deep" {
		t.Errorf("an excluded file's object was rewritten: %q", body)
	}
	e.cmdWant(0, "verify", e.baseArgs()...)
	e.cmdWant(0, "status", e.baseArgs()...)
	if r := e.sync(0, append(markers, "--json")...); len(r.lines()) != 0 || !e.onlyBucketCheck() || !strings.Contains(r.stdout, `"excluded_folders":2`) {
		t.Fatalf("a second run: %q, %v", r.stdout, e.ops())
	}

	del := append(markers, "--delete-excluded")
	r = e.sync(0, append(del, "--dry-run")...)
	wantDeletes := []string{"delete  cache/blob", "delete  private/secret.txt", "delete  private/sub/deep.txt"}
	if !slices.Equal(r.lines(), wantDeletes) {
		t.Fatalf("dry run: %q, want %q", r.lines(), wantDeletes)
	}
	r = e.sync(1, append(del, "--max-delete", "2")...)
	if !strings.Contains(r.stderr, "--max-delete") {
		t.Errorf("refused run's stderr: %s", r.stderr)
	}
	e.keysWant(t, before...)
	r = e.sync(0, del...)
	if !slices.Equal(r.lines(), wantDeletes) {
		t.Fatalf("changes %q, want %q", r.lines(), wantDeletes)
	}
	e.keysWant(t, "fake/CACHEDIR.TAG", "fake/f", "keep.txt")
	e.cmdWant(0, "verify", e.baseArgs()...)

	// The marker gone, the folder is backed up again, as it is now.
	os.Remove(e.path("private/.nobackup"))
	e.sync(0, del...)
	e.keysWant(t, "fake/CACHEDIR.TAG", "fake/f", "keep.txt", "private/new.txt", "private/secret.txt", "private/sub/deep.txt")
}

// --delete-excluded deletes what a pattern excludes too; without it, the
// objects stay, as they always have.
func TestSyncDeleteExcludedByPattern(t *testing.T) {
	e := newEnv(t, scantest.Dir{"keep.txt": scantest.File{Content: "keep"}, "a.tmp": scantest.File{Content: "tmp"}, "b.tmp": scantest.File{Content: "tmp2"}})
	e.sync(0)
	if r := e.sync(0, "--exclude", "*.tmp"); len(r.lines()) != 0 {
		t.Fatalf("without --delete-excluded: %q", r.lines())
	}
	e.keysWant(t, "a.tmp", "b.tmp", "keep.txt")
	r := e.sync(0, "--exclude", "*.tmp", "--delete-excluded", "--max-delete", "100%")
	if want := []string{"delete  a.tmp", "delete  b.tmp"}; !slices.Equal(r.lines(), want) {
		t.Fatalf("changes %q, want %q", r.lines(), want)
	}
	e.keysWant(t, "keep.txt")
}

// In a watch, a marker made leaves its folder out from the next push on (a
// file edited in it is not pushed), and with --delete-excluded the push
// that sees the marker deletes the folder's objects.
func TestWatchExcludeMarkers(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"keep.txt": scantest.File{Content: "keep"},
		"cache":    scantest.Dir{"blob": scantest.File{Content: "blob"}, "sub": scantest.Dir{"x": scantest.File{Content: "x"}}},
	})
	e.sync(0)
	w := e.watch(t, nil, "--events-only", "--push-interval", "300ms", "--exclude-caches", "-v")
	w.waitFor(t, "watching")
	scantest.Write(t, e.src, "cache/CACHEDIR.TAG", cacheTag)
	scantest.Write(t, e.src, "cache/sub/x", "edited while excluded")
	scantest.Write(t, e.src, "marker.txt", "written last")
	e.waitObject(t, w, "marker.txt")
	w.waitFor(t, "excluded folder path=cache")
	w.stop(t)
	e.keysWant(t, "cache/blob", "cache/sub/x", "keep.txt", "marker.txt")
	if body := gwtestObjects(t, e)[e.prefix+"cache/sub/x"].Body; string(body) != "x" {
		t.Fatalf("a file in an excluded folder was pushed: %q", body)
	}

	w = e.watch(t, nil, "--events-only", "--push-interval", "300ms", "--exclude-caches", "--delete-excluded", "--max-delete", "100%")
	w.waitFor(t, "watching")
	scantest.Write(t, e.src, "cache/CACHEDIR.TAG", cacheTag) // the tag's event stands for its folder
	deadline := time.Now().Add(15 * time.Second)
	for len(scantestKeys(t, e)) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("bucket %q; log:\n%s", scantestKeys(t, e), w.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.stop(t)
	e.keysWant(t, "keep.txt", "marker.txt")
}
