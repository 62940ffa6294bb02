package e2e_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecondDevServerRefuses: a second `cofferd -dev` on a data directory
// in use refuses with a message naming the running process, and never
// touches the running server: its PostgreSQL keeps its pid and it keeps
// answering /readyz. A second start on another directory but the same
// port fails before initdb, leaving no cluster behind.
func TestSecondDevServerRefuses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs cofferd with its own PostgreSQL")
	}
	bin := mustBuildCofferd(t)
	data := filepath.Join(t.TempDir(), "c")
	url := fmt.Sprintf("http://127.0.0.1:%d", FreePort(t))
	first := startDev(t, bin, data, strings.TrimPrefix(url, "http://"))
	first.waitReady(t, url)
	pgPID, err := postmasterPID(data)
	if err != nil {
		t.Fatal(err)
	}

	second := startDev(t, bin, data, fmt.Sprintf("127.0.0.1:%d", FreePort(t)))
	select {
	case <-second.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the second cofferd -dev on %s is still running\n%s", data, second.log)
	}
	if second.err == nil {
		t.Fatalf("the second cofferd -dev exited 0\n%s", second.log)
	}
	msg := second.log.String()
	if !strings.Contains(msg, "in use") || !strings.Contains(msg, fmt.Sprint(first.cmd.Process.Pid)) {
		t.Errorf("the refusal does not name the running process (pid %d):\n%s", first.cmd.Process.Pid, msg)
	}
	if strings.Contains(msg, "stopping postgres") || strings.Contains(msg, "started postgres") {
		t.Errorf("the second start touched PostgreSQL:\n%s", msg)
	}
	if pid, err := postmasterPID(data); err != nil || pid != pgPID || !running(pgPID) {
		t.Fatalf("the first server's PostgreSQL changed: pid %d → %d (%v), running %v", pgPID, pid, err, running(pgPID))
	}
	for range 3 {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatalf("the first server stopped answering: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the first server is not ready after the refused start: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Another directory, the first server's port: refused before initdb.
	other := filepath.Join(t.TempDir(), "d")
	third := startDev(t, bin, other, strings.TrimPrefix(url, "http://"))
	select {
	case <-third.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("cofferd -dev on a port in use is still running\n%s", third.log)
	}
	if third.err == nil || !strings.Contains(third.log.String(), "listen") {
		t.Fatalf("cofferd -dev on a port in use: %v\n%s", third.err, third.log)
	}
	if _, err := os.Stat(filepath.Join(other, "postgres")); !os.IsNotExist(err) {
		t.Errorf("a start on a port in use made a cluster first: %v", err)
	}
	if ln, err := net.Listen("tcp", strings.TrimPrefix(url, "http://")); err == nil {
		ln.Close()
		t.Fatal("the first server lost its port")
	}
	first.stop(t, data)
}
