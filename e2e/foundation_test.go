package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/translog"
)

func TestRegisterLoginLookup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	bob := MustClient(t, srv, "bob")

	if alice.AccountID().IsZero() || alice.AccountID() == bob.AccountID() {
		t.Fatalf("account ids %s and %s", alice.AccountID(), bob.AccountID())
	}
	if err := alice.Login(ctx); err != nil {
		t.Fatalf("login again: %v", err)
	}

	byHandle, err := bob.Lookup(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	byID, err := bob.LookupID(ctx, alice.AccountID())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*clientlib.Account{byHandle, byID} {
		if a.ID != alice.AccountID() || !a.Identity.Equal(alice.Identity().Public()) {
			t.Fatalf("lookup returned %s %q, want alice's account and keys", a.ID, a.Identity.Handle)
		}
	}
	// What bob's app shows is what alice's app shows: the out-of-band
	// comparison works on the keys the server returned.
	if got := coffer.FingerprintOf(byHandle.Identity).SafetyNumber(); got != alice.Identity().SafetyNumber() {
		t.Fatalf("bob computes safety number %s for alice, alice shows %s", got, alice.Identity().SafetyNumber())
	}
	if self, err := alice.Lookup(ctx, "alice"); err != nil || self.ID != alice.AccountID() {
		t.Fatalf("alice looks herself up: %v", err)
	}

	_, err = bob.Lookup(ctx, "carol")
	wantCode(t, err, coffer.ENOTFOUND)
	_, err = bob.LookupID(ctx, coffer.NewAccountID())
	wantCode(t, err, coffer.ENOTFOUND)
	_, err = bob.Lookup(ctx, "Not A Handle")
	wantCode(t, err, coffer.EINVALID)
}

func TestRegisterDuplicateHandle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")

	impostor := MustNewClient(t, srv.URL(), NewCanaryKeyStore())
	wantCode(t, impostor.Register(ctx, "alice"), coffer.ECONFLICT)
	if !impostor.AccountID().IsZero() {
		t.Errorf("the refused client holds account %s", impostor.AccountID())
	}
	// A refused registration cannot log in as the handle either: the
	// server checks the signature against the registered key.
	wantCode(t, impostor.Login(ctx), coffer.EUNAUTHORIZED)

	// The handle still belongs to the first account.
	if err := alice.Login(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := alice.Lookup(ctx, "alice")
	if err != nil || a.ID != alice.AccountID() || !a.Identity.Equal(alice.Identity().Public()) {
		t.Fatalf("after the refused duplicate, alice is %v, %v", a, err)
	}
}

// TestRefreshKeepsSessionAlive drops a client's access token by starting a
// new client on the same key store: the first authenticated call must renew
// the session with the stored refresh token, not by signing in again.
func TestRefreshKeepsSessionAlive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	ks := KeyStore(t, alice)
	oldRefresh, err := ks.Get("session/refresh")
	if err != nil {
		t.Fatal(err)
	}

	refreshes := srv.RequestCount(t, "POST", "/v1/auth/refresh")
	challenges := srv.RequestCount(t, "POST", "/v1/auth/challenge")
	restarted := MustNewClient(t, srv.URL(), ks)
	if restarted.AccountID() != alice.AccountID() || restarted.Identity() == nil {
		t.Fatal("a client on the same key store did not load the identity and account")
	}
	a, err := restarted.Lookup(ctx, "alice")
	if err != nil || a.ID != alice.AccountID() {
		t.Fatalf("lookup without an access token: %v", err)
	}
	if got := srv.RequestCount(t, "POST", "/v1/auth/refresh") - refreshes; got != 1 {
		t.Errorf("%d refreshes, want 1", got)
	}
	if got := srv.RequestCount(t, "POST", "/v1/auth/challenge") - challenges; got != 0 {
		t.Errorf("%d challenges: the client signed in again instead of refreshing", got)
	}
	newRefresh, err := ks.Get("session/refresh")
	if err != nil || bytes.Equal(newRefresh, oldRefresh) {
		t.Fatalf("the refresh token was not rotated in the key store (%v)", err)
	}
	// And again, on the rotated token.
	if _, err := MustNewClient(t, srv.URL(), ks).LookupID(ctx, alice.AccountID()); err != nil {
		t.Fatal(err)
	}

	// After logout the session is gone, but the device key still signs in.
	if err := restarted.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Get("session/refresh"); !errors.Is(err, clientlib.ErrNotFound) {
		t.Fatalf("refresh token still stored after logout: %v", err)
	}
	if _, err := restarted.Lookup(ctx, "alice"); err != nil {
		t.Fatalf("after logout: %v", err)
	}
}

// TestDevMode is the zero-configuration acceptance test: the real cofferd
// binary with -dev starts its own PostgreSQL under the data directory,
// serves, stops cleanly on SIGINT, and keeps its data for the next start.
func TestDevMode(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs cofferd with its own PostgreSQL")
	}
	ctx := context.Background()
	bin := mustBuildCofferd(t)
	data := filepath.Join(t.TempDir(), "c")
	url := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	addr := strings.TrimPrefix(url, "http://")

	first := startDev(t, bin, data, addr)
	first.waitReady(t, url)
	if b, err := os.ReadFile(filepath.Join(data, "database-url")); err != nil || len(bytes.TrimSpace(b)) == 0 {
		t.Fatalf("%s/database-url: %q, %v", data, b, err)
	}
	for file, kind := range map[string]string{"jwt.key": "dev JWT signing key", "log.key": "dev transparency log key"} {
		if _, err := os.Stat(filepath.Join(data, file)); err == nil {
			RecordKeyFileSecret(t, filepath.Join(data, file), kind)
		}
	}
	recordWitnessKeySecret(t, filepath.Join(data, "witness.key"))
	ks := NewCanaryKeyStore()
	c := MustNewClient(t, url, ks)
	if err := c.Register(ctx, "devuser"); err != nil {
		t.Fatalf("register: %v", err)
	}
	id := c.AccountID()
	// Dev mode runs a co-located witness, says it is for development only,
	// and serves the checkpoint with its cosignature.
	if log := first.log.String(); !strings.Contains(log, "co-located witness") || !strings.Contains(log, "for development only") {
		t.Fatalf("the dev log does not say that its witness is for development only:\n%s", log)
	}
	waitDevCosigned(t, url, data, 1)
	first.stop(t, data)

	second := startDev(t, bin, data, addr)
	second.waitReady(t, url)
	// The same client, on the same keys, signs in to the restarted server:
	// the account survived.
	if err := c.Login(ctx); err != nil {
		t.Fatalf("login after restart: %v", err)
	}
	a, err := c.Lookup(ctx, "devuser")
	if err != nil || a.ID != id {
		t.Fatalf("after restart, devuser is %v, %v; want account %s", a, err, id)
	}
	// The dev witness kept its state: it cosigns the restarted server's
	// checkpoints, which extend the ones it cosigned before.
	waitDevCosigned(t, url, data, 1)
	second.stop(t, data)
}

// recordWitnessKeySecret records the seed of a witness signer key file
// (PRIVATE+KEY+name+hash+base64(alg ‖ seed)) for the suite's log scan.
func recordWitnessKeySecret(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(strings.TrimSpace(string(b)), "+", 5)
	seed, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if len(parts) != 5 || err != nil || len(seed) != 33 {
		t.Fatalf("%s is not a witness signer key", file)
	}
	RecordSecret("dev witness key", seed[1:])
}

// waitDevCosigned waits until the dev server serves a checkpoint of at least
// size leaves cosigned by the witness whose key is DATA/witness.pub.
func waitDevCosigned(t *testing.T, url, data string, size int64) {
	t.Helper()
	logKey, err1 := os.ReadFile(filepath.Join(data, "log.pub"))
	wkey, err2 := os.ReadFile(filepath.Join(data, "witness.pub"))
	if err1 != nil || err2 != nil {
		t.Fatalf("dev mode keys: %v %v", err1, err2)
	}
	lv, err := translog.NewVerifier(string(logKey))
	if err != nil {
		t.Fatal(err)
	}
	wv, err := translog.NewWitnessVerifier(string(wkey))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/v1/log/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			c, err := translog.OpenCosigned(string(b), lv, []*translog.WitnessVerifier{wv})
			if err == nil && c.Checkpoint.Size >= size && len(c.Witnessed) == 1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size >= %d cosigned by the dev witness (last: %v)", size, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustBuildCofferd builds ./cmd/cofferd into a temporary directory.
func mustBuildCofferd(tb testing.TB) string {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(tb.TempDir(), "cofferd")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/cofferd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/cofferd: %v\n%s", err, out)
	}
	return bin
}

// devProcess is a cofferd -dev child process.
type devProcess struct {
	cmd    *exec.Cmd
	log    *LogSink
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, once exited is closed
}

func startDev(tb testing.TB, bin, data, addr string, extra ...string) *devProcess {
	tb.Helper()
	p := &devProcess{log: NewLogSink(), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"-dev", "-data", data, "-addr", addr}, extra...)...)
	// Only the flags configure it, not the environment of the test run.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COFFER_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		p.kill(tb, data)
		p.log.Check(tb)
	})
	return p
}

// waitReady waits up to a minute for /healthz and /readyz to answer 200.
func (p *devProcess) waitReady(tb testing.TB, url string) {
	tb.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := hc.Get(url + path)
			if err != nil {
				ok = false
				break
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				ok = false
			}
		}
		if ok {
			return
		}
		select {
		case <-p.exited:
			tb.Fatalf("cofferd -dev exited before it was ready: %v\n%s", p.err, p.log)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cofferd -dev not ready after 60 s\n%s", p.log)
		}
	}
}

// postmasterPID reads the PID of the dev cluster's postmaster.
func postmasterPID(data string) (int, error) {
	b, err := os.ReadFile(filepath.Join(data, "postgres", "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// running reports whether pid is a live process (not gone, not a zombie
// that only waits to be reaped).
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(stat[bytes.LastIndexByte(stat, ')')+1:]), " ")
	return !strings.HasPrefix(after, "Z") && !strings.HasPrefix(after, "X")
}

// stop sends SIGINT and requires a clean exit (status 0) that also stopped
// the private PostgreSQL.
func (p *devProcess) stop(tb testing.TB, data string) {
	tb.Helper()
	pid, err := postmasterPID(data)
	if err != nil {
		tb.Fatalf("the dev cluster has no postmaster.pid while serving: %v", err)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			tb.Fatalf("cofferd -dev after SIGINT: %v (want exit status 0)\n%s", p.err, p.log)
		}
	case <-time.After(60 * time.Second):
		tb.Fatalf("cofferd -dev still running 60 s after SIGINT\n%s", p.log)
	}
	if _, err := os.Stat(filepath.Join(data, "postgres", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		tb.Errorf("postmaster.pid still there after cofferd exited: %v", err)
	}
	for i := 0; running(pid); i++ {
		if i == 50 {
			tb.Fatalf("PostgreSQL (pid %d) still runs after cofferd exited", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill ends a process a failed test left running, and its PostgreSQL,
// which would otherwise outlive the test.
func (p *devProcess) kill(tb testing.TB, data string) {
	select {
	case <-p.exited:
		return
	default:
	}
	pid, pidErr := postmasterPID(data)
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return
	case <-time.After(30 * time.Second):
	}
	p.cmd.Process.Kill()
	<-p.exited
	if pidErr == nil && running(pid) {
		tb.Logf("stopping PostgreSQL (pid %d) left by a killed cofferd", pid)
		syscall.Kill(pid, syscall.SIGQUIT)
	}
}
