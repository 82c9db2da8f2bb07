package main

// The first hour of a new user (issue 15): help that reads right, typos
// and stray arguments answered with a suggestion and exit status 2,
// settings checked before any request, and a stderr filter that hides
// secrets without garbling paths.

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloudkeeper-backup/cloudkeeper/scanner/scantest"
)

// commandPaths are the words that name every command of the app, "sync"
// or "bench scale", without urfave/cli's help command.
func commandPaths(t *testing.T) map[string]*cli.Command {
	t.Helper()
	paths := map[string]*cli.Command{}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Name == "help" {
				continue
			}
			paths[prefix+c.Name] = c
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", newApp(io.Discard, io.Discard).Commands)
	if len(paths) < 10 {
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	return paths
}

// Every flag of every command, as --help shows it: a flag that takes a
// value names it (never urfave/cli's meaningless "value"), and a flag that
// takes none shows no placeholder (a backticked word in its usage would
// become one).
func TestHelpShowsMeaningfulPlaceholders(t *testing.T) {
	e := newEnv(t, scantest.Dir{})
	column := regexp.MustCompile(`^   (-\S.*?)(?:\s{2,}|\t)`)
	for path, cmd := range commandPaths(t) {
		r := e.run(append(strings.Fields(path), "--help")...)
		if r.code != 0 {
			t.Errorf("%s --help: exit %d\n%s", path, r.code, r.stderr)
			continue
		}
		shown := map[string]string{} // flag name -> its help column
		for _, line := range strings.Split(r.stdout, "\n") {
			if m := column.FindStringSubmatch(line); m != nil {
				name := strings.TrimLeft(strings.Fields(m[1])[0], "-")
				shown[strings.TrimSuffix(name, ",")] = m[1]
			}
		}
		for _, f := range cmd.Flags {
			name := f.Names()[0]
			col, ok := shown[name]
			if !ok {
				t.Errorf("%s --help does not show --%s:\n%s", path, name, r.stdout)
				continue
			}
			_, isBool := f.(*cli.BoolFlag)
			words := strings.Fields(strings.ReplaceAll(col, ",", ""))
			var placeholders []string
			for _, w := range words {
				if !strings.HasPrefix(w, "-") {
					placeholders = append(placeholders, w)
				}
			}
			switch {
			case isBool && len(placeholders) > 0:
				t.Errorf("%s: bool flag shown as %q: it takes no value", path, col)
			case !isBool && len(placeholders) == 0:
				t.Errorf("%s: flag shown as %q: no placeholder for its value", path, col)
			case strings.Contains(" "+col+" ", " value "):
				t.Errorf("%s: flag shown as %q: say what the value is", path, col)
			}
		}
	}
}

// killAfter makes a command stop after d (exit 124), with timeout(1).
func killAfter(d time.Duration) func(*exec.Cmd) {
	return func(cmd *exec.Cmd) {
		path, err := exec.LookPath("timeout")
		if err != nil {
			return
		}
		cmd.Args = append([]string{path, fmt.Sprint(d.Seconds()), cmd.Path}, cmd.Args[1:]...)
		cmd.Path = path
	}
}

// Usage mistakes exit 2 with one line that says what is wrong and, where
// one fits, what was meant; none runs the command.
func TestUsageMistakesSuggestAndExit2(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	other := t.TempDir()
	base := e.baseArgs()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sycn"}, `unknown command "sycn": did you mean sync?`},
		{[]string{"stauts"}, `unknown command "stauts": did you mean status?`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (see cloudkeeper --help)`},
		{[]string{"help", "sycn"}, `unknown command "sycn": did you mean sync?`},
		{[]string{"manifest", "rebiuld"}, `unknown command "manifest rebiuld": did you mean manifest rebuild?`},
		{append([]string{"sync", "--dryrun"}, base...), "flag provided but not defined: -dryrun: did you mean --dry-run?"},
		{append([]string{"watch", "--push-intervall", "1s"}, base...), "did you mean --push-interval?"},
		{append(append([]string{"sync"}, base...), "-n", other), `sync takes no arguments, got "` + other + `": did you mean --source ` + other + `?`},
		{append(append([]string{"watch"}, base...), other), `did you mean --source ` + other + `?`},
		{append(append([]string{"status"}, base...), "extra"), `status takes no arguments, got "extra"`},
		{append(append([]string{"verify"}, base...), "--deep", "deep"), `verify takes no arguments, got "deep": did you mean --deep?`},
		{append(append([]string{"restore", "--to", other}, base...), "a.txt"), `restore takes no arguments, got "a.txt": did you mean --path a.txt?`},
		{append(append([]string{"manifest", "rebuild"}, base...), other), `manifest rebuild takes no arguments, got "` + other + `": did you mean --source ` + other + `?`},
		{[]string{"demo", "now"}, `demo takes no arguments, got "now"`},
		{[]string{"bench", "modes", "--help"}, `bench takes no arguments, got "modes": did you mean --modes?`},
		{[]string{"bench", "scael"}, `bench takes no arguments, got "scael": did you mean bench scale?`},
		{[]string{"bench", "scale", "--dir", other, "--files", "10", "--only", "nochange", "--runs", "1", "extra"}, `bench scale takes no arguments, got "extra"`},
		{[]string{"completion", "bash", "zsh"}, `completion takes one argument, bash or zsh`},
		{[]string{"completion", "fish"}, `completion: say bash or zsh`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			e.t = t
			e.proxy.Reset()
			// A command that ignored the stray argument would run: watch
			// until stopped, bench for minutes.
			e.cmd = killAfter(30 * time.Second)
			defer func() { e.cmd = nil }()
			r := e.run(c.args...)
			if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q\nstdout %q\nwant exit 2 and one line with %q", r.code, r.stderr, r.stdout, c.want)
			}
			if r.stdout != "" || e.proxy.Stats().Requests != 0 {
				t.Fatalf("the command ran: %d requests, stdout %q", e.proxy.Stats().Requests, r.stdout)
			}
		})
	}
	e.t = t
	if r := e.run(); r.code != 0 || !strings.Contains(r.stdout, "COMMANDS:") {
		t.Fatalf("no arguments: exit %d, want the help:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := e.run("manifest"); r.code != 0 || !strings.Contains(r.stdout, "rebuild") {
		t.Fatalf("manifest: exit %d, want its help:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// An endpoint that is not an http or https URL is refused before any
// request, with what to write instead; one with credentials in it is
// refused without showing them.
func TestMalformedEndpointIsAUsageError(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	for _, c := range []struct{ endpoint, want string }{
		{"127.0.0.1:43843", `endpoint "127.0.0.1:43843" has no scheme: write http://127.0.0.1:43843 (or https://127.0.0.1:43843 if the server uses TLS)`},
		{"localhost:9000", `endpoint "localhost:9000" has no scheme: write http://localhost:9000 (or https://localhost:9000`},
		{"minio.example.com", `endpoint "minio.example.com" has no scheme: write http://minio.example.com (or https://`},
		{"ftp://example.com", `endpoint "ftp://example.com": the scheme must be http or https`},
		{"http://", `endpoint "http://" has no host`},
		{"http://exa mple.com", `endpoint "http://exa mple.com" is not a URL`},
		{"http://example.com?x=1", `endpoint "http://example.com?x=1": a query or fragment has no place in an endpoint`},
		{"https://user:hunter2@example.com", `the endpoint has a user name or password in it: give credentials as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`},
	} {
		t.Run(c.endpoint, func(t *testing.T) {
			e.t = t
			r := e.run("sync", "--source", e.src, "--bucket", e.bucket, "--endpoint", c.endpoint)
			if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line with %q", r.code, r.stderr, c.want)
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Fatalf("the password is shown: %q", r.stderr)
			}
		})
	}
	e.t = t
	e.cmd = func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL=127.0.0.1:1") }
	r := e.run("sync", "--source", e.src, "--bucket", e.bucket)
	if r.code != 2 || !strings.Contains(r.stderr, `endpoint "127.0.0.1:1" has no scheme`) || !strings.Contains(r.stderr, "AWS_ENDPOINT_URL") {
		t.Fatalf("from the environment: exit %d, stderr %q", r.code, r.stderr)
	}
}

// A bucket name no S3 server takes is refused before any request, in one
// line that says why; one the server refuses (400 to HeadBucket) is one
// fatal line too, not one error per file.
func TestInvalidBucketNameIsOneLine(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}, "b.txt": scantest.File{Content: "b"}})
	for _, c := range []struct{ bucket, want string }{
		{"ck", `bucket name "ck" is not valid: it has 2 characters, a bucket name has 3 to 63`},
		{"my/bucket", `bucket name "my/bucket" is not valid: "/" is not allowed (lowercase letters, digits, '.' and '-')`},
		{"-bucket", `bucket name "-bucket" is not valid: it must start with a letter or a digit`},
		{"192.168.1.10", `bucket name "192.168.1.10" is not valid: it has the form of an IP address`},
		{strings.Repeat("a", 256), `is not valid: it has 256 characters, a bucket name has 3 to 63`},
	} {
		t.Run(c.bucket, func(t *testing.T) {
			e.t = t
			e.proxy.Reset()
			r := e.run("sync", "--source", e.src, "--bucket", c.bucket, "--endpoint", e.proxy.URL)
			if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line with %q", r.code, r.stderr, c.want)
			}
			if n := e.proxy.Stats().Requests; n != 0 {
				t.Fatalf("%d requests sent", n)
			}
		})
	}
	// Uppercase and underscores are the legacy names of old us-east-1
	// buckets (and "..", a last '-'): sent to the server, which here
	// refuses them.
	e.t = t
	e.proxy.Reset()
	r := e.run("sync", "--source", e.src, "--bucket", "Legacy_Bucket", "--endpoint", e.proxy.URL)
	if e.proxy.Stats().ByOp["HeadBucket"] != 1 {
		t.Fatalf("a legacy name is not sent to the server: %v\n%s", e.ops(), r.stderr)
	}
	if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, `bucket "Legacy_Bucket" at `+e.proxy.URL+`: the server answers 400 Bad Request: check the bucket name (--bucket / S3_BUCKET)`) {
		t.Fatalf("exit %d, stderr %q; want one fatal line", r.code, r.stderr)
	}
}

// The output filter hides secret values but not identifiers: a path that
// contains the access key id is shown as it is, one that contains the
// secret key is not.
func TestStderrRedactsSecretsNotPaths(t *testing.T) {
	e := newEnv(t, scantest.Dir{
		"a.txt":                       scantest.File{Content: "a"},
		gwAccess() + "_930.h":         scantest.Symlink{Target: "a.txt"},
		"notes-" + gwSecret() + ".h":  scantest.Symlink{Target: "a.txt"},
		"copy-" + gwSecret() + ".txt": scantest.File{Content: "b"},
	})
	r := e.sync(0, "-v") // skipped symlinks are named at -v

	// stdout too: the change line of a file whose name holds the secret.
	if strings.Contains(r.stdout, gwSecret()) || !strings.Contains(r.stdout, "copy-[redacted AWS_SECRET_ACCESS_KEY].txt") {
		t.Errorf("the secret is not redacted on stdout:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "skipped path="+gwAccess()+"_930.h ") {
		t.Errorf("the path with the access key id is garbled:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "skipped path=notes-[redacted AWS_SECRET_ACCESS_KEY].h ") {
		t.Errorf("the secret is not redacted:\n%s", r.stderr)
	}
}

// Help is asked for in every way a user types it, for the app and every
// command: each shows the help on stdout and exits 0.
func TestHelpInEveryFormExitsZero(t *testing.T) {
	e := newEnv(t, scantest.Dir{})
	asks := [][]string{{"--help"}, {"-h"}, {"help"}, {}}
	for path := range commandPaths(t) {
		words := strings.Fields(path)
		asks = append(asks, append(words, "--help"), append(words, "-h"))
		if len(words) == 1 {
			asks = append(asks, []string{"help", path})
		} else {
			asks = append(asks, append(append([]string{}, words[0], "help"), words[1:]...))
		}
	}
	for _, args := range asks {
		r := e.run(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "USAGE:") || r.stderr != "" {
			t.Errorf("cloudkeeper %s: exit %d, stderr %q, stdout %.80q; want the help and exit 0", strings.Join(args, " "), r.code, r.stderr, r.stdout)
		}
	}
}

// A mistyped subcommand after a group's help is a usage error with a
// suggestion, as "help sycn" is; a duration flag that does not parse says
// what it wants.
func TestHelpTypoAndBadDurationAreUsageErrors(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a.txt": scantest.File{Content: "a"}})
	base := e.baseArgs()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"manifest", "help", "rebiuld"}, `unknown command "manifest rebiuld": did you mean manifest rebuild?`},
		{[]string{"bench", "help", "scael"}, `unknown command "bench scael": did you mean bench scale?`},
		{append([]string{"sync", "--every", "1x"}, base...), `--every "1x": want a duration such as 24h, 30m or 90s`},
		{append([]string{"sync", "--retry-max-wait", "5"}, base...), `--retry-max-wait "5": want a duration such as 24h, 30m or 90s`},
		{append([]string{"sync", "--reconcile-every=week"}, base...), `--reconcile-every "week": want a duration`},
		{append([]string{"status", "--max-age", "1d"}, base...), `--max-age "1d": want a duration`},
		{append([]string{"watch", "--rescan", "x"}, base...), `--rescan "x": want a duration`},
		{append([]string{"watch", "--push-interval", "1 h"}, base...), `--push-interval "1 h": want a duration`},
		{append([]string{"watch", "--persist-interval", "ten"}, base...), `--persist-interval "ten": want a duration`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			e.t = t
			e.proxy.Reset()
			r := e.run(c.args...)
			if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q\nwant exit 2 and one line with %q", r.code, r.stderr, c.want)
			}
			if e.proxy.Stats().Requests != 0 {
				t.Fatalf("the command ran")
			}
		})
	}
}

// "cloudkeeper version" and "cloudkeeper --version" say which build this
// is: the module's version and VCS revision, Go's version and the AWS
// SDK's, as the build recorded them.
func TestVersionNamesTheBuild(t *testing.T) {
	e := newEnv(t, scantest.Dir{})
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	want := []string{"cloudkeeper ", runtime.Version()}
	for _, d := range info.Deps {
		if d.Path == "github.com/aws/aws-sdk-go-v2" || d.Path == "github.com/aws/aws-sdk-go-v2/service/s3" {
			want = append(want, strings.TrimPrefix(d.Path, "github.com/aws/")+" "+d.Version)
		}
	}
	if len(want) != 4 {
		t.Fatalf("the SDK is not in the test binary's build info: %v", want)
	}
	// The revision, if the build recorded it (GOFLAGS=-buildvcs=false
	// does not): buildVersion's test covers it.
	if out, err := exec.Command("go", "version", "-m", binPath).Output(); err == nil {
		if _, rev, ok := strings.Cut(string(out), "vcs.revision="); ok {
			want = append(want, "revision "+rev[:12])
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := e.run(args...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || r.stderr != "" || len(lines) > 3 || !strings.HasPrefix(r.stdout, "cloudkeeper ") {
			t.Fatalf("cloudkeeper %s: exit %d, stderr %q, stdout %q", args[0], r.code, r.stderr, r.stdout)
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("cloudkeeper %s: %q does not say %q", args[0], r.stdout, w)
			}
		}
	}
}

// With --log-format json (or CLOUDKEEPER_LOG_FORMAT=json) a usage error
// found before the logger exists is a JSON line too: a program that reads
// stderr as JSON never meets a plain one.
func TestUsageErrorsFollowTheLogFormat(t *testing.T) {
	e := newEnv(t, scantest.Dir{"a": scantest.File{Content: "a"}})
	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"bad duration", []string{"--log-format", "json", "--every", "1x"}, nil},
		{"stray argument", []string{"--log-format=json", "extra"}, nil},
		{"from the environment", []string{"--frobnicate"}, []string{"CLOUDKEEPER_LOG_FORMAT=json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.cmd = func(cmd *exec.Cmd) { cmd.Env = append(cmd.Env, c.env...) }
			defer func() { e.cmd = nil }()
			r := e.run(append(append([]string{"sync"}, e.baseArgs()...), c.args...)...)
			line := strings.TrimSpace(r.stderr)
			var v map[string]any
			if r.code != 2 || strings.Contains(line, "\n") || json.Unmarshal([]byte(line), &v) != nil || v["level"] != "ERROR" || v["msg"] == "" {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one JSON line at level ERROR", r.code, r.stderr)
			}
		})
	}
}
