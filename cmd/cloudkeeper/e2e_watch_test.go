package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// watcher is a running "cloudkeeper watch".
type watcher struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr strings.Builder
	done   chan struct{}
}

func (e *env) watch(t *testing.T, extraEnv []string, args ...string) *watcher {
	t.Helper()
	w := &watcher{done: make(chan struct{})}
	w.cmd = exec.Command(binPath, append(append([]string{"watch"}, e.baseArgs()...), args...)...)
	w.cmd.Env = append(e.environ(), extraEnv...)
	w.cmd.Dir = e.state
	stderr, _ := w.cmd.StderrPipe()
	w.cmd.Stdout = io.Discard
	if e.cmd != nil {
		e.cmd(w.cmd)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			w.mu.Lock()
			w.stderr.WriteString(sc.Text() + "\n")
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
	return w
}

func (w *watcher) log() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.String()
}

// waitFor polls until the log has s.
func (w *watcher) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(w.log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", s, w.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (w *watcher) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("watch exited with %v:\n%s", err, w.log())
	}
	if !strings.Contains(w.log(), "stopped by signal") {
		t.Fatalf("log:\n%s", w.log())
	}
}

// waitBucket polls until the bucket equals the tree.
func (e *env) waitBucket(t *testing.T, w *watcher) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if bucketIsTree(t, e) {
			return
		}
		if time.Now().After(deadline) {
			e.checkBucketIsTree()
			t.Fatalf("bucket never matched the tree; log:\n%s", w.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bucketIsTree reports whether the bucket's objects under the prefix are the
// tree's files, byte for byte.
func bucketIsTree(t *testing.T, e *env) bool {
	objs := gwtestObjects(t, e)
	files := scantest.Files(t, e.src)
	if len(objs) != len(files) {
		return false
	}
	for rel, content := range files {
		if o, ok := objs[e.prefix+rel]; !ok || string(o.Body) != content {
			return false
		}
	}
	return true
}

// The watch pushes what changed through the same diff and upload as sync:
// a moved folder is server-side copies, not uploads.
func TestWatchPushesChanges(t *testing.T) {
	e := newEnv(t, scantest.Dir{"docs": scantest.Dir{"a.txt": scantest.File{Content: "alpha"}, "b.txt": scantest.File{Content: "beta"}}, "c.txt": scantest.File{Content: "gamma"}})
	w := e.watch(t, nil, "--push-interval", "500ms", "--persist-interval", "200ms")
	w.waitFor(t, "full sync why=\"start-up")
	e.waitBucket(t, w)

	time.Sleep(2100 * time.Millisecond) // let the hashes age past the racily-clean window
	e.proxy.Reset()
	os.Rename(e.path("docs"), e.path("papers"))
	scantest.Write(t, e.src, "c.txt", "gamma, edited")
	scantest.Write(t, e.src, "new/deep/file.txt", "created in a new folder")
	e.waitBucket(t, w)
	st := e.proxy.Stats()
	if st.ByOp["CopyObject"] != 2 || st.ByOp["PutObject"] != 2 {
		t.Errorf("requests %v: want the move as 2 copies and 2 uploads (the edit, the new file)", st.ByOp)
	}
	w.stop(t)
}

// The original daemon's .env sets the intervals; changes made while the
// watch was not running are found by its start-up scan, unless
// --events-only, which trusts the events alone.
func TestWatchOriginalIntervalsAndOfflineChanges(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	env := []string{"S3_BACKUP_INTERVAL=1", "S3_BACKUP_INTERVAL_UNIT=seconds", "DB_PERSISTENCE_INTERVAL=1", "DB_PERSISTENCE_INTERVAL_UNIT=second"}
	w := e.watch(t, env)
	w.waitFor(t, "push=1s persist=1s hybrid=true")
	e.waitBucket(t, w)
	w.stop(t)

	scantest.Write(t, e.src, "offline.txt", "written while not watching")
	w = e.watch(t, env, "--events-only")
	time.Sleep(2500 * time.Millisecond) // two pushes
	if bucketIsTree(t, e) {
		t.Fatal("--events-only found a change made while it was not running")
	}
	w.stop(t)
	w = e.watch(t, env)
	e.waitBucket(t, w)
	w.stop(t)
}

// Dirty paths are saved to the manifest and survive a restart: a change
// seen by one watch is pushed by the next, with no event for it.
func TestWatchPersistsDirtyPaths(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	e.sync(0)
	w := e.watch(t, nil, "--events-only", "--push-interval", "1h", "--persist-interval", "100ms")
	w.waitFor(t, "watching")
	time.Sleep(200 * time.Millisecond)
	scantest.Write(t, e.src, "seen.txt", "seen by the first watch")
	time.Sleep(500 * time.Millisecond)
	w.stop(t)
	if bucketIsTree(t, e) {
		t.Fatal("pushed before the push interval")
	}
	w = e.watch(t, nil, "--events-only", "--push-interval", "300ms")
	e.waitBucket(t, w)
	w.stop(t)
	if _, err := os.Stat(filepath.Join(e.src, "seen.txt")); err != nil {
		t.Fatal(err)
	}
}

// waitObject polls until the bucket holds rel.
func (e *env) waitObject(t *testing.T, w *watcher, rel string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok := gwtestObjects(t, e)[e.prefix+rel]; ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never pushed; log:\n%s", rel, w.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A dirty folder the watch cannot even stat (its parent lost its search
// permission; a dead mount says ENOTCONN) is reported, and nothing at it or
// under it is deleted: not knowing is not a deletion. The next push, once
// it can be read, finishes the job.
func TestWatchUnstatableFolderIsKept(t *testing.T) {
	tree := scantest.Dir{"P": scantest.Dir{"D": scantest.Dir{"a.txt": scantest.File{Content: "a"}, "b.txt": scantest.File{Content: "b"}}}}
	want := []string{"laptop/P/D/a.txt", "laptop/P/D/b.txt"}
	for _, name := range []string{"o1", "o2", "o3"} { // so that --max-delete would let P/D go
		tree[name] = scantest.File{Content: name}
		want = append(want, "laptop/"+name)
	}
	e := newNobodyEnv(t, tree)
	e.sync(0)
	w := e.watch(t, nil, "--events-only", "--push-interval", "300ms")
	w.waitFor(t, "watching")
	// Root may still move things in P once it is closed: no push can see P
	// readable with D moved.
	os.Chmod(e.path("P"), 0o600)
	t.Cleanup(func() { os.Chmod(e.path("P"), 0o755) })
	os.Rename(e.path("P/D"), e.path("P/E"))
	w.waitFor(t, "run incomplete")
	keys := scantestKeys(t, e)
	if !slices.Equal(keys, want) {
		t.Fatalf("bucket %q, want %q; log:\n%s", keys, want, w.log())
	}
	for _, p := range []string{"P/D", "P/E"} {
		if want := "ERROR cannot back up path=" + p + " error=\"cannot look up path, nothing at or under it is changed"; !strings.Contains(w.log(), want) {
			t.Errorf("log lacks %q:\n%s", want, w.log())
		}
	}
	os.Chmod(e.path("P"), 0o755)
	e.waitBucket(t, w)
	w.stop(t)
}

// A folder-only exclude ("node_modules/") leaves out a dirty folder that is
// the excluded folder itself, as the full walk does: removed and made
// again (rm -rf node_modules && npm install), it is not pushed.
func TestWatchFolderOnlyExcludeOfADirtyFolder(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"keep.txt":     scantest.File{Content: "keep"},
		"node_modules": scantest.Dir{"m.js": scantest.File{Content: "m"}},
		"src":          scantest.Dir{"a.go": scantest.File{Content: "a"}, "node_modules": scantest.Dir{"n.js": scantest.File{Content: "n"}}},
	})
	e.sync(0, "--exclude", "node_modules/")
	w := e.watch(t, nil, "--events-only", "--push-interval", "300ms", "--exclude", "node_modules/")
	w.waitFor(t, "watching")
	os.RemoveAll(e.path("node_modules"))
	scantest.Write(t, e.src, "node_modules/m.js", "reinstalled")
	scantest.Write(t, e.src, "node_modules/pkg/index.js", "reinstalled")
	os.RemoveAll(e.path("src/node_modules"))
	scantest.Write(t, e.src, "src/node_modules/n.js", "reinstalled")
	scantest.Write(t, e.src, "src/node_modules/n.js", "edited in place") // a scope under an excluded folder
	scantest.Write(t, e.src, "marker.txt", "written last")               // pushed with the others or after them
	e.waitObject(t, w, "marker.txt")
	if keys, want := scantestKeys(t, e), []string{"laptop/keep.txt", "laptop/marker.txt", "laptop/src/a.go"}; !slices.Equal(keys, want) {
		t.Fatalf("bucket %q, want %q; log:\n%s", keys, want, w.log())
	}
	w.stop(t)
}

// A dry run changes neither the bucket nor the manifest: it does not save
// its dirty paths in it, and it does not create one.
func TestWatchDryRunLeavesTheManifestAlone(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "alpha"}})
	dryWatch := func(manifestPath, write string, args ...string) {
		t.Helper()
		w := e.watch(t, nil, append([]string{"--dry-run", "--manifest", manifestPath, "--events-only", "--push-interval", "300ms", "--persist-interval", "100ms"}, args...)...)
		w.waitFor(t, "watching")
		scantest.Write(t, e.src, write, "seen by a dry run")
		w.waitFor(t, "dry run: nothing was changed")
		time.Sleep(300 * time.Millisecond) // a persist interval or more
		w.stop(t)
	}

	manifestPath := filepath.Join(e.state, "m.db")
	e.sync(0, "--manifest", manifestPath)
	before := map[string]string{}
	for _, s := range []string{"", "-wal"} {
		before[s] = sha(t, manifestPath+s)
	}
	e.proxy.Reset()
	dryWatch(manifestPath, "b.txt")
	for s, h := range before {
		if sha(t, manifestPath+s) != h {
			t.Errorf("a dry run changed the manifest file %s", manifestPath+s)
		}
	}
	// Each push checks the bucket (read-only), and sends nothing else.
	if st := e.proxy.Stats(); st.Requests != st.ByOp["HeadBucket"] {
		t.Errorf("a dry run sent %v, want only HeadBucket", st.ByOp)
	}
	// What the dry run saw is not waiting in the manifest either: a real
	// watch that trusts events alone has nothing to push.
	w := e.watch(t, nil, "--manifest", manifestPath, "--events-only", "--push-interval", "300ms")
	w.waitFor(t, "watching")
	time.Sleep(700 * time.Millisecond) // two pushes
	w.stop(t)
	if strings.Contains(w.log(), "pushing dirty paths") {
		t.Errorf("a real watch pushed dirty paths saved by a dry run:\n%s", w.log())
	}

	// A new manifest over the objects above: as the real watch would, the
	// dry one stops unless told they may be there.
	fresh := filepath.Join(e.state, "new.db")
	dryWatch(fresh, "c.txt", "--allow-existing")
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("a dry run created the manifest: %v", err)
	}
}
