package cofferdtest

import (
	"fmt"
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

// Witnesses as operating-system processes: coffer-audit witness serve, as
// an independent witness operator runs it, for tests with three processes
// (cofferd and two witnesses) and for killing a witness mid-flight.

var auditBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildCofferAudit builds ./cmd/coffer-audit once per test binary and
// returns its path; RemoveBuild removes it.
func BuildCofferAudit(tb testing.TB) string {
	tb.Helper()
	auditBuild.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			auditBuild.err = err
			return
		}
		if auditBuild.dir, err = os.MkdirTemp("", "coffer-cofferdtest-audit-"); err != nil {
			auditBuild.err = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		bin := filepath.Join(auditBuild.dir, "coffer-audit")
		cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/coffer-audit")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			auditBuild.err = fmt.Errorf("go build ./cmd/coffer-audit: %v\n%s", err, out)
			return
		}
		auditBuild.bin = bin
	})
	if auditBuild.err != nil {
		tb.Fatalf("cofferdtest: %v", auditBuild.err)
	}
	return auditBuild.bin
}

// WitnessProcess is a running `coffer-audit witness serve`.
type WitnessProcess struct {
	Name     string
	URL      string // http://127.0.0.1:PORT
	Key      string // cosignature/v1 verifier key
	KeyFile  string // its signer key (a secret)
	StateDir string

	bin, logKey, logURL string
	cmd                 *exec.Cmd
	out                 *tailBuffer
	exited              chan struct{}
}

// StartWitnessProcess generates a witness key (coffer-audit witness
// keygen) and serves the witness of the log with verifier key logKey,
// fetching leaves from logURL, on a free loopback port until the test ends.
// cofferd need not run yet: the witness fetches leaves only when pushed to.
func StartWitnessProcess(tb testing.TB, bin, name, logKey, logURL string) *WitnessProcess {
	tb.Helper()
	dir := tb.TempDir()
	w := &WitnessProcess{Name: name, StateDir: filepath.Join(dir, "state"), bin: bin, KeyFile: filepath.Join(dir, "witness.key"),
		logKey: logKey, logURL: logURL}
	out, err := exec.Command(bin, "witness", "keygen", "--name", name, "--key-file", w.KeyFile).Output()
	if err != nil {
		tb.Fatalf("coffer-audit witness keygen: %v", err)
	}
	w.Key = strings.TrimSpace(string(out))
	addr, err := FreeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	w.URL = "http://" + addr
	w.Start(tb)
	tb.Cleanup(func() { w.Kill() })
	return w
}

// Start (re)starts the process on its address and state, and waits until
// it answers.
func (w *WitnessProcess) Start(tb testing.TB) {
	tb.Helper()
	w.out = &tailBuffer{max: 64 << 10}
	w.exited = make(chan struct{})
	w.cmd = exec.Command(w.bin, "witness", "serve", "--listen", strings.TrimPrefix(w.URL, "http://"), "--state", w.StateDir,
		"--key-file", w.KeyFile, "--log-key", w.logKey, "--log-url", w.logURL)
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	if err := w.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := w.exited
	go func() {
		w.cmd.Wait()
		close(exited)
	}()
	hc := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := hc.Get(w.URL + "/checkpoint"); err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			tb.Fatalf("witness %s exited at start:\n%s", w.Name, w.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("witness %s does not answer:\n%s", w.Name, w.out)
		}
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (w *WitnessProcess) Kill() {
	if w.cmd == nil || w.cmd.Process == nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
}

// Output returns the last 64 KiB the process wrote.
func (w *WitnessProcess) Output() string { return w.out.String() }
