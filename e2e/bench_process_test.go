package e2e_test

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/pgtest"
)

// A benchmark that reports the client's memory runs cofferd as its own
// process: in one process the heap is the client's and the server's
// together.

// databaseServer is a cofferd whose database a benchmark writes to
// directly (*Server, benchProcess).
type databaseServer interface {
	URL() string
	DatabaseURL() string
}

// benchProcess is cofferd in a child process, with its own database.
type benchProcess struct {
	p     *cofferdtest.Process
	dbURL string
}

func (s *benchProcess) URL() string         { return s.p.URL }
func (s *benchProcess) DatabaseURL() string { return s.dbURL }

// startBenchProcess starts cofferd as a process, configured like
// MustServer, with extra flags.
func startBenchProcess(tb testing.TB, extra ...string) *benchProcess {
	tb.Helper()
	bin := cofferdtest.BuildCofferd(tb)
	addr, err := cofferdtest.FreeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	dbURL := pgtest.NewURL(tb)
	dir := tb.TempDir()
	sink := NewLogSink()
	tb.Cleanup(func() { sink.Check(tb) })
	args := append([]string{
		"-database-url", dbURL,
		"-data", dir,
		"-blob-dir", dir + "/blobs",
		"-jwt-key", MustKeyFile(tb, dir, "jwt.key", "server JWT signing key"),
		"-log-key", MustKeyFile(tb, dir, "log.key", "server transparency log key"),
		"-log-origin", "coffer.e2e",
		"-origin", "http://" + addr,
		"-auth-rate-limit", "1000000",
	}, extra...)
	p := cofferdtest.StartProcess(tb, bin, cofferdtest.ProcessOptions{Addr: addr, Args: args, Output: sink})
	return &benchProcess{p: p, dbURL: dbURL}
}

// newProcessClient registers a client of srv.
func newProcessClient(tb testing.TB, srv databaseServer, handle string, opts *clientlib.Options) (*clientlib.Client, *clientlib.MemoryKeyStore) {
	tb.Helper()
	ks := NewCanaryKeyStore()
	c := MustNewClientWith(tb, srv.URL(), ks, opts)
	if err := c.Register(tb.Context(), handle); err != nil {
		tb.Fatalf("register %s: %v", handle, err)
	}
	return c, ks.MemoryKeyStore
}

// resetPeakRSS resets the process's peak resident set to its current one
// (Linux: clear_refs 5) and returns the current one, in bytes.
func (s *benchProcess) resetPeakRSS(tb testing.TB) int64 {
	tb.Helper()
	if err := os.WriteFile("/proc/"+strconv.Itoa(s.p.Pid)+"/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatal(err)
	}
	return s.status(tb, "VmRSS:")
}

// peakRSS is the process's peak resident set since the last reset.
func (s *benchProcess) peakRSS(tb testing.TB) int64 { return s.status(tb, "VmHWM:") }

func (s *benchProcess) status(tb testing.TB, field string) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.p.Pid) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", field, s.p.Pid)
	return 0
}

// cpuTime is the user and system time a process has used so far (Linux:
// /proc/PID/stat, in clock ticks of 10 ms).
func cpuTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("cannot parse /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// cpuTime is cofferd's CPU time so far.
func (s *benchProcess) cpuTime(tb testing.TB) time.Duration { return cpuTime(tb, s.p.Pid) }
