package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

const (
	// Version is the versitygw release Find installs.
	Version = "v1.8.0"
	// Package is the versitygw command's import path.
	Package = "github.com/versity/versitygw/cmd/versitygw"
	// EnvBinary names the environment variable that points Find at a
	// versitygw executable.
	EnvBinary = "CLOUDKEEPER_VERSITYGW"
)

// installHint tells a user how to provide versitygw themselves.
const installHint = "install it with: go install " + Package + "@" + Version +
	" (and put $GOBIN on PATH), or set " + EnvBinary + " to its path"

// Find returns the path of a versitygw executable, looking in order at:
//
//  1. $CLOUDKEEPER_VERSITYGW, which must then name an executable file;
//  2. "versitygw" on PATH;
//  3. the copy cached by an earlier install, in
//     <user cache dir>/cloudkeeper/versitygw-v1.8.0/versitygw
//     (os.UserCacheDir: $XDG_CACHE_HOME or ~/.cache on Linux);
//  4. failing all of these, it installs that copy with "go install", which
//     takes about three minutes and needs the Go toolchain and module proxy.
//
// Concurrent callers, in this process or others (go test runs packages in
// parallel), install at most once: they serialise on a lock file next to the
// cached binary, and the binary appears under its final name only once it is
// complete. logf, if not nil, is told about the install. The install stops if
// ctx is done.
//
// The environment variable is consulted before PATH so that it can select a
// particular build even when another versitygw is installed.
func Find(ctx context.Context, logf func(format string, args ...any)) (string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if p := os.Getenv(EnvBinary); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("gateway: %s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}

	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("gateway: versitygw not found on PATH and no cache directory to install it in (%v); %s", err, installHint)
	}
	dir := filepath.Join(cache, "cloudkeeper", "versitygw-"+Version)
	bin := filepath.Join(dir, "versitygw")
	if checkExecutable(bin) == nil {
		return bin, nil
	}
	if err := install(ctx, dir, bin, logf); err != nil {
		return "", fmt.Errorf("gateway: versitygw not found on PATH and installing it failed: %w; %s", err, installHint)
	}
	return bin, nil
}

// install builds versitygw into dir, unless another process does so while we
// wait for the lock.
func install(ctx context.Context, dir, bin string, logf func(string, ...any)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, "install.lock"), func() {
		logf("waiting for another process to finish installing versitygw %s...", Version)
	})
	if err != nil {
		return fmt.Errorf("locking %s: %w", dir, err)
	}
	defer unlock()
	if checkExecutable(bin) == nil {
		return nil // installed while we waited
	}

	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if checkExecutable(goTool) != nil {
			return errors.New("no go command on PATH or in GOROOT")
		}
	}
	// Build into a private directory, then rename: a killed install leaves
	// at worst a stray tmp-* directory, never a truncated binary.
	tmp, err := os.MkdirTemp(dir, "tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	logf("installing versitygw %s (first run only, ~3 minutes)...", Version)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool, "install", Package+"@"+Version)
	cmd.Dir = tmp // outside any module or workspace
	cmd.Env = append(os.Environ(), "GOBIN="+tmp)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s install %s@%s: %w\n%s", goTool, Package, Version, err, bytes.TrimSpace(out.Bytes()))
	}
	if err := os.Rename(filepath.Join(tmp, "versitygw"), bin); err != nil {
		return fmt.Errorf("moving the built binary into place: %w", err)
	}
	logf("installed versitygw %s in %s (%v)", Version, bin, time.Since(start).Round(time.Second))
	return nil
}

// checkExecutable reports why path is not an executable regular file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: path, Err: fs.ErrPermission}
	}
	return nil
}
