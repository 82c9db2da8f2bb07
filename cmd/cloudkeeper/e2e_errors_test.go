package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// Errors that stop a run are one line on stderr that says what is wrong,
// with exit status 1 (2 for usage), and never show a secret.
func TestSyncFatalErrorsAreOneClearLine(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	closed := closedEndpoint(t)
	for _, c := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"missing bucket", []string{"--bucket", "no-such-bucket-anywhere"}, nil, 1, `bucket "no-such-bucket-anywhere" at ` + e.proxy.URL + ` does not exist`},
		{"bad credentials", nil, []string{"AWS_SECRET_ACCESS_KEY=not-the-secret-at-all"}, 1, "rejected the credentials (SignatureDoesNotMatch)"},
		{"unreachable endpoint", []string{"--endpoint", closed}, nil, 1, "cannot reach S3 at " + closed + ": connection refused"},
		{"missing source", []string{"--source", filepath.Join(e.src, "not-mounted")}, nil, 1, "source folder " + filepath.Join(e.src, "not-mounted") + " does not exist (is the disk mounted?): check --source / BACKUP_DIR"},
		{"no bucket", []string{"--bucket", ""}, nil, 2, "no bucket: set --bucket or S3_BUCKET"},
		// The README's .env has AWS_REGION=eu-west-1; an S3-compatible
		// server that wants us-east-1 refuses the signature and says so.
		{"wrong region", []string{"--region", "eu-west-1"}, nil, 1, "expects the region us-east-1: set --region or AWS_REGION=us-east-1"},
		// AWS itself (no endpoint) and no region anywhere: a missing setting.
		{"no region", []string{"--endpoint", ""}, nil, 2, "no region: set --region or AWS_REGION"},
		{"unknown flag", []string{"--frobnicate"}, nil, 2, "flag provided but not defined: -frobnicate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.cmd = func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, c.env...) }
			defer func() { e.cmd = nil }()
			r := e.run(append(append([]string{"sync"}, e.baseArgs()...), c.args...)...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			last := lines[len(lines)-1]
			if r.code != c.code || !strings.Contains(last, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, c.code, c.want)
			}
			if strings.Contains(r.stderr, "not-the-secret-at-all") {
				t.Fatalf("secret in stderr: %q", r.stderr)
			}
		})
	}
}

// The original daemon's .env works as it is: its variable names (with the
// old AWS_ACCESS_KEY), its interval settings ignored by sync, and real
// environment variables winning over the file.
func TestSyncWithOriginalDotEnv(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "from .env"}})
	dotenv := "# written for the old daemon\n" +
		"BACKUP_DIR=" + e.src + "\n" +
		"S3_BACKUP_INTERVAL=24\nS3_BACKUP_INTERVAL_UNIT=hours\n" +
		"DB_PERSISTENCE_INTERVAL=10\nDB_PERSISTENCE_INTERVAL_UNIT=minutes\n" +
		"S3_BUCKET=" + e.bucket + "\n" +
		"S3_BUCKET_PREFIX=from-file\n" +
		"AWS_ACCESS_KEY=" + gwAccess() + "\n" +
		"AWS_SECRET_ACCESS_KEY=\"" + gwSecret() + "\"\n" +
		"AWS_REGION=us-east-1\n" +
		"AWS_ENDPOINT_URL=" + e.proxy.URL + "\n"
	if err := os.WriteFile(filepath.Join(e.state, ".env"), []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cmd = func(cmd *exec.Cmd) {
		// Only what a cron job has: no credentials in the environment.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.state}
	}
	r := e.run("sync") // from the folder holding .env
	if r.code != 0 || !slices.Equal(r.lines(), []string{"add     doc.txt (9 B)"}) {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	e.prefix = "from-file/"
	e.checkBucketIsTree()

	// A real environment variable wins over the file.
	e.cmd = func(cmd *exec.Cmd) {
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.state, "S3_BUCKET_PREFIX=from-env"}
	}
	if r := e.run("sync", "--env-file", filepath.Join(e.state, ".env")); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	e.prefix = "from-env/"
	e.checkBucketIsTree()

	// A malformed line is an error naming the file and the line.
	os.WriteFile(filepath.Join(e.state, ".env"), []byte("S3_BUCKET=x\nnot a setting\n"), 0o600)
	r = e.run("sync")
	if r.code != 2 || !strings.Contains(r.stderr, ".env:2: expected KEY=VALUE") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// closedEndpoint is the URL of a loopback port nothing listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func gwAccess() string { return gw.AccessKey }
func gwSecret() string { return gw.SecretKey }

// nobody returns the credentials of an unprivileged user, or skips: as root
// every file is readable, and a permission test would prove nothing.
func nobody(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run cloudkeeper as an unprivileged user (as a normal user, chmod 000 cases would need files of another owner)")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// A folder or file the run cannot read is reported with its path, the run
// goes on and exits 3, and nothing under it is deleted from the bucket.
func TestSyncUnreadablePathsAreKept(t *testing.T) {
	e := newNobodyEnv(t, scantest.Dir{
		"ok.txt":   scantest.File{Content: "ok"},
		"gone.txt": scantest.File{Content: "will be deleted"},
		"private":  scantest.File{Content: "private"},
		"secret":   scantest.Dir{"a.txt": scantest.File{Content: "a"}, "b.txt": scantest.File{Content: "b"}},
	})

	e.sync(0)
	e.checkBucketIsTree()

	os.Chmod(filepath.Join(e.src, "secret"), 0o000)
	os.Chmod(filepath.Join(e.src, "private"), 0o000)
	os.Remove(filepath.Join(e.src, "gone.txt"))
	r := e.sync(3)
	if !slices.Equal(r.lines(), []string{"delete  gone.txt"}) {
		t.Fatalf("got %q", r.lines())
	}
	for _, p := range []string{"ERROR cannot back up path=secret error=\"cannot read folder", "ERROR cannot back up path=private ", "permission denied"} {
		if !strings.Contains(r.stderr, p) {
			t.Errorf("stderr lacks %q:\n%s", p, r.stderr)
		}
	}
	keys := scantestKeys(t, e)
	want := []string{"laptop/ok.txt", "laptop/private", "laptop/secret/a.txt", "laptop/secret/b.txt"}
	if !slices.Equal(keys, want) {
		t.Fatalf("bucket %q, want %q", keys, want)
	}
}

// A folder that can be listed but not searched (mode 0644: readdir works,
// stat of each child fails) is one problem, reported once for the folder,
// and nothing under it is deleted, whether symlinks are followed or not.
func TestSyncUnsearchableFolderIsKept(t *testing.T) {
	for _, args := range [][]string{nil, {"--follow-symlinks"}} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			e := newNobodyEnv(t, scantest.Dir{
				"pub": scantest.Dir{
					"a.txt": scantest.File{Content: "a"},
					"b.txt": scantest.File{Content: "b"},
					"sub":   scantest.Dir{"c.txt": scantest.File{Content: "c"}},
				},
				"gone.txt": scantest.File{Content: "will be deleted"},
				"x.txt":    scantest.File{Content: "x"},
				"y.txt":    scantest.File{Content: "y"},
				"z.txt":    scantest.File{Content: "z"},
			})
			e.sync(0, args...)
			before := scantestKeys(t, e)

			os.Chmod(filepath.Join(e.src, "pub"), 0o644)
			os.Remove(filepath.Join(e.src, "gone.txt"))
			r := e.sync(3, args...)
			if !slices.Equal(r.lines(), []string{"delete  gone.txt"}) {
				t.Fatalf("got %q\n%s", r.lines(), r.stderr)
			}
			if n := strings.Count(r.stderr, "ERROR cannot back up"); n != 1 || !strings.Contains(r.stderr, "ERROR cannot back up path=pub ") ||
				!strings.Contains(r.stderr, "permission denied: the folder can be listed but not searched") {
				t.Errorf("want one error, for pub:\n%s", r.stderr)
			}
			if want := slices.DeleteFunc(before, func(k string) bool { return k == "laptop/gone.txt" }); !slices.Equal(scantestKeys(t, e), want) {
				t.Fatalf("bucket %q, want %q", scantestKeys(t, e), want)
			}
		})
	}
}

// newNobodyEnv is an env whose cloudkeeper runs as the unprivileged user
// (see nobody), with the source and state in world-readable folders (the
// test's own temp folders are private to root). Whatever the test makes
// unreadable in the source is removed anyway at the end: root may.
func newNobodyEnv(t *testing.T, tree scantest.Dir) *env {
	t.Helper()
	cred := nobody(t)
	e := newEnv(t, scantest.Dir{})
	base, err := os.MkdirTemp("", "cloudkeeper-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	e.src, e.state = filepath.Join(base, "src"), filepath.Join(base, "state")
	scantest.Create(t, e.src, tree)
	os.MkdirAll(e.state, 0o700)
	os.Chown(e.state, int(cred.Uid), int(cred.Gid))
	e.cmd = func(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred} }
	return e
}

func scantestKeys(t *testing.T, e *env) []string {
	objs := gwtestObjects(t, e)
	return scantest.Keys(objs)
}

// An https:// endpoint of a plain-HTTP server (or the reverse) is one
// fatal line that says what to write, after one connection: no retries.
func TestEndpointSchemeMismatchIsOneLineNoRetries(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	for _, tls := range []bool{false, true} {
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		addr := srv.Listener.Addr().String()
		given, want := "https://"+addr, "the server at https://"+addr+" speaks plain HTTP: write http://"+addr
		if tls {
			srv.StartTLS()
			given, want = "http://"+addr, "the server at http://"+addr+" uses TLS: write https://"+addr
		} else {
			srv.Start()
		}
		r := e.run("sync", "--source", e.src, "--bucket", e.bucket, "--endpoint", given)
		srv.Close()
		if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and one line with %q", given, r.code, r.stderr, want)
		}
		if n := conns.Load(); n != 1 && !tls {
			t.Errorf("%s: %d connections, want 1 (no retries)", given, n)
		}
	}
}

// A .env key that looks like cloudkeeper's but is no setting (a typo) is
// one WARN line naming the file, line and key, with the key meant; the
// settings it knows, the SDK's AWS_* keys and others' keys are not.
func TestDotEnvUnknownKeyWarns(t *testing.T) {
	e := newEnv(t, scantest.Dir{"doc.txt": scantest.File{Content: "x"}})
	dotenv := "BACKUP_DIR=" + e.src + "\n" +
		"S3_BUCKET=" + e.bucket + "\n" +
		"S3_BUKET=typo\n" + // line 3
		"S3_BACKUP_INTERVAL=24\nS3_BACKUP_INTERVAL_UNIT=hours\n" +
		"DB_PERSISTENCE_INTERVAL=10\nDB_PERSISTENCE_INTERVAL_UNIT=minutes\n" +
		"CLOUDKEEPER_CONCURENCY=4\n" + // line 8
		"AWS_ACCESS_KEY=" + gwAccess() + "\n" +
		"AWS_SECRET_ACCESS_KEY=" + gwSecret() + "\n" +
		"AWS_MAX_ATTEMPTS=3\nAWS_ENDPOINT_URL=" + e.proxy.URL + "\n" +
		"AWS_ENDPOINT_ULR=x\n" + // line 13
		"POSTGRES_PASSWORD=x\nCLOUDKEEPER_NOTIFY_URL=\nBACKUP_FROBNICATE=1\n" // line 16
	envFile := filepath.Join(e.state, ".env")
	if err := os.WriteFile(envFile, []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cmd = func(cmd *exec.Cmd) { cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.state} }
	r := e.run("sync")
	var warns []string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "WARN") {
			warns = append(warns, l)
		}
	}
	want := []string{
		`.env:3: S3_BUKET is not a setting of cloudkeeper: did you mean S3_BUCKET?`,
		`.env:8: CLOUDKEEPER_CONCURENCY is not a setting of cloudkeeper: did you mean CLOUDKEEPER_CONCURRENCY?`,
		`.env:13: AWS_ENDPOINT_ULR is not a setting of cloudkeeper: did you mean AWS_ENDPOINT_URL?`,
		`.env:16: BACKUP_FROBNICATE is not a setting of cloudkeeper`,
	}
	if r.code != 0 || len(warns) != len(want) {
		t.Fatalf("exit %d, warnings:\n%s\nstderr:\n%s", r.code, strings.Join(warns, "\n"), r.stderr)
	}
	for i, w := range want {
		if !strings.Contains(warns[i], w) {
			t.Errorf("warning %q, want %q", warns[i], w)
		}
	}
}

// A key a .env gives twice takes its last value, as a shell sourcing the
// file would (and as cloudkeeper did before it kept the file's lines).
func TestDotEnvLastValueWins(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	envFile := filepath.Join(e.state, "twice.env")
	os.WriteFile(envFile, []byte("S3_BUCKET=no-such-bucket-first\nS3_BUCKET="+e.bucket+"\n"), 0o600)
	r := e.run("sync", "--env-file", envFile, "--source", e.src, "--prefix", e.prefix, "--endpoint", e.proxy.URL)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q: the first S3_BUCKET of the file was used", r.code, r.stderr)
	}
}
