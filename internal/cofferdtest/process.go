package cofferdtest

// Running cofferd as an operating-system process: the binary built from
// ./cmd/cofferd, configured only by its flags and environment, as an
// operator runs it. Tests of deployments with several replicas need this:
// replicas in one process share memory that real replicas do not.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildCofferd builds ./cmd/cofferd once per test binary and returns the
// path of the binary. The test binary's TestMain removes it with
// RemoveBuild after the tests.
func BuildCofferd(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		if build.dir, err = os.MkdirTemp("", "coffer-cofferdtest-"); err != nil {
			build.err = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		bin := filepath.Join(build.dir, "cofferd")
		cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/cofferd")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/cofferd: %v\n%s", err, out)
			return
		}
		build.bin = bin
	})
	if build.err != nil {
		tb.Fatalf("cofferdtest: %v", build.err)
	}
	return build.bin
}

// RemoveBuild removes the binaries BuildCofferd and BuildCofferAudit
// built, if any. Call it from TestMain after the tests have run.
func RemoveBuild() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	if auditBuild.dir != "" {
		os.RemoveAll(auditBuild.dir)
	}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cofferdtest: cannot find the module root (go.mod)")
		}
		dir = parent
	}
}

// ProcessOptions configure StartProcess.
type ProcessOptions struct {
	// Args are cofferd's flags, without -addr, which StartProcess picks.
	Args []string
	// Addr, if set, is the listen address instead of a free loopback port
	// (for a witness started first that must name cofferd's URL).
	Addr string
	// Env is added to the test's environment, from which every COFFER_*
	// and AWS_* variable is removed first, so that only Args and Env
	// configure the process.
	Env []string
	// Output receives the process's standard output and error (default:
	// discarded).
	Output io.Writer
	// ReadyTimeout bounds the wait for /readyz (default 2 minutes: a
	// loaded machine starts slowly).
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before it kills
	// the process (default 1 minute).
	StopTimeout time.Duration
}

// Process is a running cofferd process.
type Process struct {
	// URL is its base URL, http://127.0.0.1:PORT.
	URL string
	// Pid is its process id.
	Pid int

	cmd         *exec.Cmd
	out         *tailBuffer
	exited      chan struct{} // closed once the process has exited
	err         error         // cmd.Wait's result, after exited
	stopTimeout time.Duration
	stopOnce    sync.Once
	stopErr     error
}

// StartProcess runs bin (see BuildCofferd) with opts on a free loopback
// port, waits until /readyz answers 200, and stops it when the test ends
// if the test has not stopped it itself.
func StartProcess(tb testing.TB, bin string, opts ProcessOptions) *Process {
	tb.Helper()
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = time.Minute
	}
	// A port found free can be taken before cofferd binds it: try again
	// with another one then.
	var lastErr error
	for range 3 {
		p, err := startProcess(tb, bin, opts)
		if err == nil {
			return p
		}
		lastErr = err
		if opts.Addr != "" || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	tb.Fatalf("cofferdtest: %v", lastErr)
	return nil
}

func startProcess(tb testing.TB, bin string, opts ProcessOptions) (*Process, error) {
	addr := opts.Addr
	if addr == "" {
		var err error
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}

	p := &Process{URL: "http://" + addr, out: &tailBuffer{max: 64 << 10}, exited: make(chan struct{}), stopTimeout: opts.StopTimeout}
	p.cmd = exec.Command(bin, append([]string{"-addr", addr}, opts.Args...)...)
	p.cmd.Dir = tb.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") && !strings.HasPrefix(kv, "AWS_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, opts.Env...)
	var out io.Writer = p.out
	if opts.Output != nil {
		out = io.MultiWriter(p.out, opts.Output)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	p.Pid = p.cmd.Process.Pid
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(opts.ReadyTimeout); err != nil {
		p.Stop()
		return nil, err
	}
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Errorf("cofferdtest: %v", err)
		}
	})
	return p, nil
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (p *Process) waitReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("cofferd at %s exited before it was ready: %v\n%s", p.URL, p.err, p.out)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cofferd at %s not ready after %v\n%s", p.URL, timeout, p.out)
		}
	}
}

// Stop sends SIGTERM and waits for the process to exit, killing it if it
// is still running after the stop timeout. It returns an error unless the
// process exited by itself with status 0. Later calls return the first
// call's result.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("cofferd at %s had exited before it was stopped: %v", p.URL, p.err)
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.err != nil {
				p.stopErr = fmt.Errorf("cofferd at %s after SIGTERM: %v", p.URL, p.err)
			}
		case <-time.After(p.stopTimeout):
			p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("cofferd at %s still running %v after SIGTERM; killed", p.URL, p.stopTimeout)
		}
	})
	return p.stopErr
}

// Output returns the last 64 KiB the process wrote.
func (p *Process) Output() string { return p.out.String() }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if over := t.b.Len() - t.max; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.b.String()
}
