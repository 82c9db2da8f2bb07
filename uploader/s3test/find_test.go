//go:build unix

package s3test_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader/s3test"
)

// findEnv gives Find a PATH holding only the scripts the test writes to the
// returned directory, an empty cache and no CLOUDKEEPER_VERSITYGW.
func findEnv(t *testing.T) (bin, cache string) {
	bin, cache = t.TempDir(), t.TempDir()
	t.Setenv("PATH", bin)
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv(s3test.EnvBinary, "")
	return bin, cache
}

func TestFindLookupOrder(t *testing.T) {
	ctx := context.Background()
	bin, cache := findEnv(t)
	cached := filepath.Join(cache, "cloudkeeper", "versitygw-v1.8.0", "versitygw")
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, cached, "")
	if got, err := s3test.Find(ctx, nil); err != nil || got != cached {
		t.Errorf("with a cached binary: %q, %v; want %q", got, err, cached)
	}

	onPath := filepath.Join(bin, "versitygw")
	writeScript(t, onPath, "")
	if got, err := s3test.Find(ctx, nil); err != nil || got != onPath {
		t.Errorf("with versitygw on PATH: %q, %v; want %q", got, err, onPath)
	}

	fromEnv := filepath.Join(t.TempDir(), "my-versitygw")
	writeScript(t, fromEnv, "")
	t.Setenv(s3test.EnvBinary, fromEnv)
	if got, err := s3test.Find(ctx, nil); err != nil || got != fromEnv {
		t.Errorf("with %s set: %q, %v; want %q", s3test.EnvBinary, got, err, fromEnv)
	}

	// A variable naming no executable is an error, not a fallback.
	if err := os.Chmod(fromEnv, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s3test.Find(ctx, nil); err == nil || !strings.Contains(err.Error(), s3test.EnvBinary) {
		t.Errorf("with %s naming a non-executable file: %v, want an error naming the variable", s3test.EnvBinary, err)
	}
	t.Setenv(s3test.EnvBinary, filepath.Join(t.TempDir(), "missing"))
	if _, err := s3test.Find(ctx, nil); err == nil {
		t.Errorf("with %s naming a missing file: no error", s3test.EnvBinary)
	}
}

// TestFindInstallsOnce runs Find from several goroutines with a fake "go"
// that takes a while to "install" versitygw: exactly one install must run,
// and every caller must get the installed binary. (flock locks belong to
// open files, so goroutines contend just like processes do.)
func TestFindInstallsOnce(t *testing.T) {
	bin, cache := findEnv(t)
	calls := filepath.Join(t.TempDir(), "calls")
	writeScript(t, filepath.Join(bin, "go"), fmt.Sprintf(`echo "$*" >> '%s'
/bin/sleep 1
/bin/cp "$0" "$GOBIN/versitygw"
`, calls))

	var (
		mu   sync.Mutex
		logs []string
	)
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	const callers = 4
	paths := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { paths[i], errs[i] = s3test.Find(context.Background(), logf) })
	}
	wg.Wait()

	dir := filepath.Join(cache, "cloudkeeper", "versitygw-v1.8.0")
	want := filepath.Join(dir, "versitygw")
	for i := range callers {
		if errs[i] != nil || paths[i] != want {
			t.Errorf("caller %d: %q, %v; want %q", i, paths[i], errs[i], want)
		}
	}
	got, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(got); s != "install github.com/versity/versitygw/cmd/versitygw@v1.8.0\n" {
		t.Errorf("go was run as:\n%s\nwant exactly one install of versitygw@v1.8.0", s)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "installing versitygw v1.8.0 (first run only") {
		t.Errorf("progress messages: %q", logs)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "versitygw" && e.Name() != "install.lock" {
			t.Errorf("left behind in the cache: %s", e.Name())
		}
	}
}

func TestFindInstallFailure(t *testing.T) {
	bin, cache := findEnv(t)
	writeScript(t, filepath.Join(bin, "go"), "echo 'go: module lookup disabled by GOPROXY=off' >&2\nexit 1\n")
	_, err := s3test.Find(context.Background(), t.Logf)
	if err == nil {
		t.Fatal("Find succeeded with a failing go install")
	}
	for _, want := range []string{"GOPROXY=off", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0", s3test.EnvBinary} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	dir := filepath.Join(cache, "cloudkeeper", "versitygw-v1.8.0")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "install.lock" {
			t.Errorf("left behind in the cache: %s", e.Name())
		}
	}
}

// FindMoto takes $CLOUDKEEPER_TEST_MOTO, then moto_server on PATH; without
// either, or with "off", its error is ErrNoMoto, on which tests skip.
func TestFindMoto(t *testing.T) {
	bin, _ := findEnv(t)
	t.Setenv(s3test.EnvMoto, "")
	if _, err := s3test.FindMoto(); !errors.Is(err, s3test.ErrNoMoto) || !strings.Contains(err.Error(), "pip install") {
		t.Errorf("nothing on PATH: %v, want ErrNoMoto and how to install it", err)
	}
	onPath := filepath.Join(bin, "moto_server")
	writeScript(t, onPath, "exit 0\n")
	if p, err := s3test.FindMoto(); err != nil || p != onPath {
		t.Errorf("on PATH: %q, %v; want %s", p, err, onPath)
	}
	chosen := filepath.Join(t.TempDir(), "my-moto")
	writeScript(t, chosen, "exit 0\n")
	t.Setenv(s3test.EnvMoto, chosen)
	if p, err := s3test.FindMoto(); err != nil || p != chosen {
		t.Errorf("%s=%s: %q, %v", s3test.EnvMoto, chosen, p, err)
	}
	t.Setenv(s3test.EnvMoto, chosen+"-missing")
	if _, err := s3test.FindMoto(); err == nil || errors.Is(err, s3test.ErrNoMoto) {
		t.Errorf("a missing %s: %v, want an error that does not skip", s3test.EnvMoto, err)
	}
	t.Setenv(s3test.EnvMoto, "off")
	if _, err := s3test.FindMoto(); !errors.Is(err, s3test.ErrNoMoto) {
		t.Errorf("%s=off: %v, want ErrNoMoto", s3test.EnvMoto, err)
	}
}
