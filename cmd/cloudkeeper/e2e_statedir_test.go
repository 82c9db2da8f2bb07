package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// The README's systemd unit: no User=, so no $HOME, and the .env as the
// whole environment (env -i), with StateDirectory=cloudkeeper giving
// $STATE_DIRECTORY. The run must back up, its manifest in that folder, and
// status (same environment) must find it.
func TestSystemdEnvironmentWithoutAHome(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	stateDir := filepath.Join(t.TempDir(), "var-lib-cloudkeeper")
	if err := os.Mkdir(stateDir, 0o755); err != nil { // systemd makes it
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), ".env")
	os.WriteFile(envFile, []byte("BACKUP_DIR="+e.src+"\nS3_BUCKET="+e.bucket+"\nS3_BUCKET_PREFIX="+e.prefix+
		"\nAWS_ENDPOINT_URL_S3="+e.proxy.URL+"\nAWS_ACCESS_KEY_ID="+gw.AccessKey+"\nAWS_SECRET_ACCESS_KEY="+gw.SecretKey+"\n"), 0o600)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binPath, append(args, "--env-file", envFile)...)
		cmd.Env = []string{"STATE_DIRECTORY=" + stateDir} // no HOME, no XDG_STATE_HOME, no PATH
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("sync"); err != nil || !strings.Contains(out, "add     a.txt") {
		t.Fatalf("sync without a home folder: %v\n%s", err, out)
	}
	dbs, _ := filepath.Glob(filepath.Join(stateDir, e.bucket+"-*.db"))
	if len(dbs) != 1 {
		t.Fatalf("manifests in $STATE_DIRECTORY: %v", dbs)
	}
	if out, err := run("status"); err != nil || !strings.Contains(out, "manifest:     "+dbs[0]) {
		t.Fatalf("status: %v\n%s", err, out)
	}
}
