package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Region is the region the gateway is started with and clients sign for.
const Region = "us-east-1"

const (
	// readyTimeout bounds how long Start waits for a launched gateway to
	// answer a signed request.
	readyTimeout = 30 * time.Second
	// portAttempts is how many free ports Start tries when the gateway
	// loses the race for the port it was given.
	portAttempts = 5
	// logTailBytes is how much of the gateway's log errors quote.
	logTailBytes = 4 << 10
)

// Server names an S3 implementation Start can run.
type Server string

const (
	// Versitygw is the Versity S3 Gateway with its posix backend, the
	// server of every test (the zero Options.Server).
	Versitygw Server = "versitygw"
	// Moto is moto's S3 emulator (moto_server), the second, independent
	// implementation the uploader's contract tests also run on. It keeps
	// objects in memory.
	Moto Server = "moto"
)

// Options configure Start. The zero value is ready to use.
type Options struct {
	// Server is the implementation to start; empty means Versitygw. The
	// fields below that name versitygw do not apply to Moto, which keeps
	// objects in memory (Root must be empty), always allows versioning
	// and finds its binary with FindMoto.
	Server Server
	// Root is the posix backend's root directory: each bucket is a folder
	// of it. It is created if missing and left in place by Stop, so a later
	// gateway on it serves the same objects. If empty, Start uses a new
	// temporary directory that Stop removes. Should Root's file system lack
	// extended attributes, object metadata goes to a hidden directory next
	// to it, "."+base(Root)+".versitygw-meta".
	Root string
	// Binary is the server's executable. If empty, Start calls Find (or
	// FindMoto).
	Binary string
	// AccessKey and SecretKey are the gateway's root credentials. Each one
	// left empty is replaced by a random value.
	AccessKey, SecretKey string
	// Logf receives progress messages, such as the one-time installation of
	// versitygw. Nil means silent.
	Logf func(format string, args ...any)
	// Versioning lets buckets have versioning (and Object Lock, which
	// needs it): versitygw keeps old versions in a directory of its own,
	// next to the metadata. Buckets still start without it.
	Versioning bool
}

// Gateway is a running S3 server process (versitygw, or moto) serving the
// S3 API over plain HTTP on a loopback port. Its exported fields are
// read-only. Stop it when done.
type Gateway struct {
	// Server is the implementation running.
	Server Server
	// Endpoint is the S3 endpoint, "http://127.0.0.1:PORT". Use path-style
	// addressing; virtual-hosted buckets are not served.
	Endpoint string
	// AccessKey and SecretKey are the root credentials; Region is the
	// signing region.
	AccessKey, SecretKey, Region string
	// Root is the posix root directory: bucket B's object K is the file
	// Root/B/K. Empty for Moto.
	Root string
	// LogFile holds the server's stdout and stderr (a banner, then one
	// line per request). Stop removes it.
	LogFile string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // the process's exit status, valid after done

	tmp      string // temporary directory owned by this Gateway
	versions string // versitygw's --versioning-dir; "" without
	stopOnce sync.Once
	stopErr  error
}

// errPortInUse reports that versitygw could not bind its port, which another
// process took between our probe and its start.
var errPortInUse = errors.New("port already in use")

// errNoXattrs reports that the root's file system has no user extended
// attributes, where versitygw keeps object metadata by default.
var errNoXattrs = errors.New("file system without extended attributes")

// Start launches versitygw with the posix backend on a free 127.0.0.1 port
// and returns once it answers signed S3 requests. ctx bounds the start-up
// (including a first-time install by Find), not the gateway's life: the
// process runs until Stop, or until the calling process dies (on Linux it is
// started with a parent-death signal, so a killed test binary leaves no
// gateway behind).
func Start(ctx context.Context, opts Options) (*Gateway, error) {
	if opts.Server == "" {
		opts.Server = Versitygw
	}
	bin, err := findBinary(ctx, opts)
	if err != nil {
		return nil, err
	}
	access, secret := opts.AccessKey, opts.SecretKey
	if access == "" {
		access = rand.Text()[:20] // base32: A-Z and 2-7
	}
	if secret == "" {
		secret = (rand.Text() + rand.Text())[:40]
	}
	tmp, err := os.MkdirTemp("", "cloudkeeper-"+string(opts.Server)+"-")
	if err != nil {
		return nil, fmt.Errorf("gateway: creating temporary directory: %w", err)
	}
	g := &Gateway{Server: opts.Server, AccessKey: access, SecretKey: secret, Region: Region, tmp: tmp}
	if opts.Server == Versitygw {
		err = g.prepareRoot(opts)
	} else if opts.Root != "" {
		err = fmt.Errorf("gateway: %s keeps objects in memory: Root %q is for versitygw", opts.Server, opts.Root)
	}
	if err == nil {
		err = g.launchRetrying(ctx, opts, bin)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return g, nil
}

// findBinary is opts.Binary, or the server's executable found by Find or
// FindMoto.
func findBinary(ctx context.Context, opts Options) (string, error) {
	switch {
	case opts.Server != Versitygw && opts.Server != Moto:
		return "", fmt.Errorf("gateway: unknown S3 server %q (want %s or %s)", opts.Server, Versitygw, Moto)
	case opts.Binary != "":
		return opts.Binary, nil
	case opts.Server == Moto:
		return FindMoto()
	}
	return Find(ctx, opts.Logf)
}

// prepareRoot sets versitygw's root (created here) and versioning
// directory (created at launch) from opts.
func (g *Gateway) prepareRoot(opts Options) error {
	g.Root = filepath.Join(g.tmp, "root")
	if opts.Root != "" {
		root, err := filepath.Abs(opts.Root)
		if err != nil {
			return fmt.Errorf("gateway: resolving root %q: %w", opts.Root, err)
		}
		g.Root = root
	}
	if err := os.MkdirAll(g.Root, 0o755); err != nil {
		return fmt.Errorf("gateway: creating root: %w", err)
	}
	if opts.Versioning {
		g.versions = filepath.Join(g.tmp, "versions")
		if opts.Root != "" {
			g.versions = filepath.Join(filepath.Dir(g.Root), "."+filepath.Base(g.Root)+".versitygw-versions")
		}
	}
	return nil
}

// launchRetrying launches the server, on another port if it loses the race
// for the one it was given, and for versitygw with its metadata in a side
// directory if the root has no extended attributes.
func (g *Gateway) launchRetrying(ctx context.Context, opts Options, bin string) error {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	sidecar := "" // metadata in xattrs of the objects' files
	for attempt := 1; ; attempt++ {
		g.LogFile = filepath.Join(g.tmp, string(g.Server)+"-"+strconv.Itoa(attempt)+".log")
		err := g.launch(ctx, bin, sidecar)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errNoXattrs) && sidecar == "":
			// tmpfs before Linux 6.6, for one, has no user xattrs.
			// Keep a persistent root's metadata next to it, under a
			// name that root is not a prefix of: versitygw v1.8.0
			// refuses a sidecar path that merely starts with root's.
			sidecar = filepath.Join(g.tmp, "meta")
			if opts.Root != "" {
				sidecar = filepath.Join(filepath.Dir(g.Root), "."+filepath.Base(g.Root)+".versitygw-meta")
			}
			logf("gateway: %s has no extended attributes; keeping object metadata in %s", g.Root, sidecar)
			if err := os.MkdirAll(sidecar, 0o755); err != nil {
				return fmt.Errorf("gateway: creating metadata directory: %w", err)
			}
		case errors.Is(err, errPortInUse) && attempt < portAttempts:
		default:
			return err
		}
	}
}

// launch starts the process on a free port and waits until it is ready. On
// error the process has been killed and reaped.
// If sidecar is not empty, versitygw keeps object metadata in that directory
// rather than in extended attributes.
func (g *Gateway) launch(ctx context.Context, bin, sidecar string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	g.Endpoint = "http://" + addr

	logFile, err := os.Create(g.LogFile)
	if err != nil {
		return fmt.Errorf("gateway: creating log file: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor

	args, err := g.args(addr, sidecar)
	if err != nil {
		return err
	}
	g.cmd = exec.Command(bin, args...)
	g.cmd.Env = childEnv(g.Server, os.Environ())
	g.cmd.Stdout = logFile
	g.cmd.Stderr = logFile
	g.cmd.SysProcAttr = sysProcAttr()
	if err := g.cmd.Start(); err != nil {
		return fmt.Errorf("gateway: starting %s: %w", bin, err)
	}
	g.done = make(chan struct{})
	go func() {
		g.err = g.cmd.Wait()
		close(g.done)
	}()

	if err := g.waitReady(ctx); err != nil {
		g.kill()
		return err
	}
	return nil
}

// args are the server's command-line arguments: it listens on addr, and
// versitygw keeps metadata in sidecar if that is not empty.
func (g *Gateway) args(addr, sidecar string) ([]string, error) {
	if g.Server == Moto {
		return motoArgs(addr), nil
	}
	args := []string{
		"--port", addr,
		"--access", g.AccessKey,
		"--secret", g.SecretKey,
		"--region", g.Region,
		// Without it versitygw closes the connection after every
		// response, which distorts benchmarks.
		"--keep-alive",
		"posix",
	}
	if sidecar != "" {
		args = append(args, "--sidecar", sidecar)
	}
	if g.versions != "" {
		if err := os.MkdirAll(g.versions, 0o755); err != nil {
			return nil, fmt.Errorf("gateway: creating versioning directory: %w", err)
		}
		args = append(args, "--versioning-dir", g.versions)
	}
	return append(args, g.Root), nil
}

// waitReady polls the gateway with a signed ListBuckets until it succeeds.
// A signed request, rather than any HTTP answer, proves that the server on
// the port is this process: another gateway with other keys would refuse it.
func (g *Gateway) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	defer transport.CloseIdleConnections()
	client := g.Client(func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: transport, Timeout: 2 * time.Second}
		o.RetryMaxAttempts = 1
	})

	var lastErr error
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		select {
		case <-g.done:
			tail := g.logTail()
			switch {
			case bytes.Contains(tail, []byte("address already in use")), // versitygw
				bytes.Contains(tail, []byte("is in use by another program")): // moto (werkzeug)
				return fmt.Errorf("gateway: %s on %s: %w", g.Server, g.Endpoint, errPortInUse)
			case bytes.Contains(tail, []byte("xattrs are not supported")):
				return fmt.Errorf("gateway: versitygw root %s: %w", g.Root, errNoXattrs)
			}
			return fmt.Errorf("gateway: %s exited during start-up (%v); log %s ends with:\n%s",
				g.Server, g.err, g.LogFile, tail)
		case <-ctx.Done():
			return fmt.Errorf("gateway: %s on %s not ready: %w (last attempt: %v); log %s ends with:\n%s",
				g.Server, g.Endpoint, context.Cause(ctx), lastErr, g.LogFile, g.logTail())
		case <-time.After(delay):
		}
		_, lastErr = client.ListBuckets(ctx, &s3.ListBucketsInput{})
		if lastErr == nil {
			return nil
		}
	}
}

// Stop kills the gateway, waits for it to exit and removes the temporary
// directory Start created (with the log file, and the root if Start chose
// it). It is safe to call more than once.
func (g *Gateway) Stop() error {
	g.stopOnce.Do(func() {
		g.kill()
		if err := os.RemoveAll(g.tmp); err != nil {
			g.stopErr = fmt.Errorf("gateway: removing %s: %w", g.tmp, err)
		}
	})
	return g.stopErr
}

// kill ends the process and reaps it. Posix writes are synchronous, so there
// is nothing a graceful shutdown would save.
func (g *Gateway) kill() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	_ = g.cmd.Process.Kill() // fails only if it already exited
	<-g.done
}

// Client returns an S3 client for the gateway: path-style addressing, the
// gateway's static credentials, and checksums only where an operation
// requires them (the SDK's default CRC32 trailers and aws-chunked bodies are
// not what the uploader sends to other S3-compatible servers either). The
// client reads no environment or shared AWS configuration. optFns are applied
// last; for instance set o.BaseEndpoint to a Proxy's URL to go through it, or
// o.RetryMaxAttempts = 1 to see faults unretried.
func (g *Gateway) Client(optFns ...func(*s3.Options)) *s3.Client {
	return s3.New(s3.Options{
		Region:                     g.Region,
		BaseEndpoint:               aws.String(g.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}, optFns...)
}

// CreateBucket creates a bucket through the S3 API.
func (g *Gateway) CreateBucket(ctx context.Context, name string) error {
	if _, err := g.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("gateway: creating bucket %q: %w", name, err)
	}
	return nil
}

// CreateVersionedBucket creates a bucket with versioning enabled; the
// gateway must have been started with Options.Versioning.
func (g *Gateway) CreateVersionedBucket(ctx context.Context, name string) error {
	if err := g.CreateBucket(ctx, name); err != nil {
		return err
	}
	return g.SetVersioning(ctx, name, types.BucketVersioningStatusEnabled)
}

// SetVersioning turns a bucket's versioning on (Enabled) or off
// (Suspended).
func (g *Gateway) SetVersioning(ctx context.Context, name string, status types.BucketVersioningStatus) error {
	_, err := g.Client().PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket: aws.String(name), VersioningConfiguration: &types.VersioningConfiguration{Status: status},
	})
	if err != nil {
		return fmt.Errorf("gateway: versioning of bucket %q: %w", name, err)
	}
	return nil
}

// CreateLockedBucket creates a bucket with Object Lock enabled (and so
// versioning); the gateway must have been started with
// Options.Versioning.
func (g *Gateway) CreateLockedBucket(ctx context.Context, name string) error {
	_, err := g.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)})
	if err != nil {
		return fmt.Errorf("gateway: creating bucket %q with Object Lock: %w", name, err)
	}
	return nil
}

// logTail returns the end of the log file, starting at a line boundary.
func (g *Gateway) logTail() []byte {
	f, err := os.Open(g.LogFile)
	if err != nil {
		return []byte("(" + err.Error() + ")")
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTailBytes {
		if _, err := f.Seek(-logTailBytes, io.SeekEnd); err != nil {
			return []byte("(" + err.Error() + ")")
		}
	}
	b, _ := io.ReadAll(f)
	if len(b) == logTailBytes {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return bytes.TrimSpace(b)
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("gateway: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// childEnv drops the variables the server reads its settings from, so that
// the caller's environment cannot turn on TLS, IAM, webhooks and the like
// (versitygw), or change moto's limits, accounts and endpoints.
func childEnv(server Server, env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if server == Moto && motoSetting(name) {
			continue
		}
		switch {
		case strings.HasPrefix(name, "VGW_"),
			strings.HasPrefix(name, "ROOT_ACCESS_KEY"),
			strings.HasPrefix(name, "ROOT_SECRET"),
			name == "LOGFILE", name == "WEBHOOK":
			continue
		}
		out = append(out, kv)
	}
	return out
}
