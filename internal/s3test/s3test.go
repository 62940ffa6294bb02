// Package s3test runs a real S3 server for tests: versitygw, an S3 gateway
// over a POSIX directory (Apache-2.0), on a free loopback port.
//
// The first test that asks starts one server for the whole test binary, in
// a temporary directory; each test gets a fresh bucket of its own. A
// watchdog process stops the server and removes the directory when the
// test binary exits, however it exits.
//
// versitygw is found on PATH, in GOBIN or GOPATH/bin, or in a cache
// directory under the system's temporary directory; when it is in none of
// these, it is installed there with `go install` at the pinned Version, so
// `go test ./...` needs no separate step (about three minutes the first
// time). If that fails the test fails: it is never skipped.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the versitygw release the tests run.
const Version = "v1.8.0"

// Install is the command that installs versitygw; .ci/run runs it ahead of
// the tests.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Region is the region the server answers for.
const Region = "us-east-1"

// Server is a running versitygw.
type Server struct {
	// Endpoint is host:port, plain HTTP on loopback.
	Endpoint string
	// AccessKey and SecretKey are the server's only credentials, random
	// per test binary.
	AccessKey, SecretKey string
	// Dir holds one subdirectory per bucket.
	Dir string
	// Pid is versitygw's process id.
	Pid int

	client *minio.Client
}

var (
	once    sync.Once
	shared  *Server
	initErr error
	//lint:ignore U1000 never read: holding the pipe's write end here keeps its finalizer from closing it (see startWatchdog)
	tether *os.File
)

// Start returns the test binary's server, starting it if needed.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := Launch()
	if err != nil {
		tb.Fatalf("s3test: %v", err)
	}
	return s
}

// Launch is Start for programs that are not tests (coffer-bench): it
// returns the process's server, starting it if needed. The server stops
// when the process exits.
func Launch() (*Server, error) {
	once.Do(func() { shared, initErr = start() })
	return shared, initErr
}

// MakeBucket creates an empty bucket and returns its name.
func (s *Server) MakeBucket(ctx context.Context) (string, error) {
	name := "b-" + randomHex(8)
	return name, s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region})
}

// NewBucket creates an empty bucket for this test and removes it when the
// test ends.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := s.MakeBucket(ctx)
	if err != nil {
		tb.Fatalf("s3test: create bucket: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(filepath.Join(s.Dir, name)) })
	return name
}

// URL is the -blob-url of bucket/prefix on this server.
func (s *Server) URL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=http://" + s.Endpoint + "&region=" + Region
}

// Env returns the standard AWS environment variables holding this
// server's credentials, for a child process.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_SESSION_TOKEN="}
}

// Creds returns the server's credentials.
func (s *Server) Creds() *credentials.Credentials {
	return credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")
}

// SetEnv points the standard AWS environment variables at this server's
// credentials for the rest of the test, for code that reads them the
// way cofferd does. Like t.Setenv, it cannot be used in parallel tests.
func (s *Server) SetEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
}

// Client returns a client for inspecting buckets directly.
func (s *Server) Client() *minio.Client { return s.client }

func start() (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "coffer-s3test-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: filepath.Join(root, "data"), AccessKey: "k" + randomHex(10), SecretKey: randomHex(20)}
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	// A port picked free can be taken before versitygw binds it; try again.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
		lastErr = s.run(bin, root)
		if lastErr == nil {
			return s, nil
		}
	}
	os.RemoveAll(root)
	return nil, lastErr
}

// run starts versitygw and waits until it answers.
func (s *Server) run(bin, root string) error {
	logf, err := os.Create(filepath.Join(root, "versitygw.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", Region, "--keep-alive", "--quiet",
		"--port", s.Endpoint, "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.client, err = minio.New(s.Endpoint, &minio.Options{Creds: s.Creds(), Region: Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		cmd.Process.Kill()
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = s.client.ListBuckets(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("versitygw exited (%v) before answering:\n%s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return fmt.Errorf("versitygw at %s did not answer within 30s: %v", s.Endpoint, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Pid = cmd.Process.Pid
	return startWatchdog(cmd.Process.Pid, root)
}

// startWatchdog makes sure the server does not outlive the test binary, as
// pgtest's watchdog does for PostgreSQL: a shell process holds the read end
// of a pipe whose only write end is in this process. When this process
// exits, however it exits, the kernel closes the write end; the watchdog
// reads EOF, stops versitygw and removes the directory. It runs in its own
// process group, so a Ctrl-C aimed at the tests does not kill it first.
func startWatchdog(pid int, root string) error {
	const script = `
cat >/dev/null
kill -TERM "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$1" 2>/dev/null
rm -rf "$2"
`
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", script, "s3test-watchdog", fmt.Sprint(pid), root)
	cmd.Stdin = r
	// Stdout and stderr stay nil (/dev/null): go test waits for every
	// holder of the test binary's output to close it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("watchdog: %w", err)
	}
	go cmd.Wait()
	tether = w
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// binary returns the path of versitygw, installing it when it is nowhere
// to be found.
func binary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var dirs []string
		if lines[0] != "" {
			dirs = append(dirs, lines[0])
		}
		if len(lines) > 1 {
			for _, p := range filepath.SplitList(lines[1]) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
		for _, d := range dirs {
			if p := filepath.Join(d, "versitygw"); isExecutable(p) {
				return p, nil
			}
		}
	}
	// A fixed cache directory per version, so later runs and other test
	// binaries find it. A lock keeps test binaries running in parallel
	// from installing it twice at once.
	dir := filepath.Join(os.TempDir(), "coffer-versitygw-"+Version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "versitygw")
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if isExecutable(bin) {
		return bin, nil
	}
	cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+Version)
	// Outside any module, so this module's go.mod plays no part, and into
	// the cache directory, not the user's GOPATH/bin.
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("versitygw is not installed (not on PATH, GOBIN or GOPATH/bin) and installing it failed: %v\n%s\ninstall it with\n\t%s", err, out, Install)
	}
	return bin, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
