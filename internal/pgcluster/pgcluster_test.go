package pgcluster_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer/internal/pgcluster"
)

func TestFindBinaries(t *testing.T) {
	dir, err := pgcluster.FindBinaries()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinaries() = %s, which has no %s: %v", dir, name, err)
		}
	}
}

// TestRestartKeepsData starts a cluster, writes a row, stops it, and starts it
// again on the same data directory, as dev mode does between runs.
func TestRestartKeepsData(t *testing.T) {
	ctx := t.Context()
	dataDir := filepath.Join(t.TempDir(), "nested", "data")

	// Fsync on, as in dev mode, whose data must survive.
	fsync := func(o *pgcluster.Options) { o.Fsync = true }
	c := MustStart(t, dataDir, fsync)
	exec1(t, c, "CREATE TABLE kept (v text)")
	exec1(t, c, "INSERT INTO kept VALUES ('still here')")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		t.Error("connected after Stop")
	}

	c = MustStart(t, dataDir, fsync)
	if got := query1(t, c, "SELECT v FROM kept"); got != "still here" {
		t.Errorf("after restart: got %q, want %q", got, "still here")
	}
	if got := query1(t, c, "SELECT current_user"); got != "postgres" {
		t.Errorf("current_user = %q, want postgres", got)
	}
	if got := query1(t, c, "SHOW fsync"); got != "on" {
		t.Errorf("fsync = %q, want on", got)
	}
	if got := query1(t, c, "SHOW listen_addresses"); got != "" {
		t.Errorf("listen_addresses = %q, want none", got)
	}
}

// TestStaleLock covers the ways a data directory can be left behind by a
// process that died without calling Stop, or by a server that crashed.
func TestStaleLock(t *testing.T) {
	t.Run("server still running", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		leftover := MustStart(t, dataDir)
		// A second Start on the same data directory, as after a crash of
		// the process that owned leftover.
		c := MustStart(t, dataDir)
		query1(t, c, "SELECT 1")
		if _, err := pgx.Connect(t.Context(), leftover.URL("postgres")); err == nil {
			t.Error("the leftover server still accepts connections")
		}
	})
	t.Run("server killed", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		MustStart(t, dataDir)
		pid := readPID(t, dataDir)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitForChildren(t, dataDir)
		c := MustStart(t, dataDir)
		query1(t, c, "SELECT 1")
	})
	t.Run("pid reused by another process", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		c := MustStart(t, dataDir)
		lockFile := readLockFile(t, dataDir)
		c.Stop()
		// A live process that is not postgres, run by the server's user so
		// that postgres itself would take it for a running server, gets the
		// recorded pid.
		other := exec.Command("sleep", "60")
		if os.Geteuid() == 0 {
			other.SysProcAttr = &syscall.SysProcAttr{Credential: ownerOf(t, dataDir)}
		}
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Process.Kill(); other.Wait() })
		writeLockFile(t, dataDir, other.Process.Pid, lockFile)

		c = MustStart(t, dataDir)
		query1(t, c, "SELECT 1")
		if err := syscall.Kill(other.Process.Pid, 0); err != nil {
			t.Errorf("the unrelated process was harmed: %v", err)
		}
	})
	t.Run("pid gone", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		c := MustStart(t, dataDir)
		lockFile := readLockFile(t, dataDir)
		c.Stop()
		gone := exec.Command("true")
		if err := gone.Run(); err != nil {
			t.Fatal(err)
		}
		writeLockFile(t, dataDir, gone.Process.Pid, lockFile)
		c = MustStart(t, dataDir)
		query1(t, c, "SELECT 1")
	})
}

// TestInterruptedInit starts where a first start was cut short during
// initdb (Ctrl-C in dev mode): the cluster must be complete afterwards.
func TestInterruptedInit(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	partial := dataDir + ".initdb"
	if err := os.MkdirAll(filepath.Join(partial, "base"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(partial, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := MustStart(t, dataDir)
	if got := query1(t, c, "SELECT datname FROM pg_database WHERE datname = 'postgres'"); got != "postgres" {
		t.Errorf("no postgres database")
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the partial directory is still there: %v", err)
	}
}

// TestNotOurs checks that Start leaves alone a directory that holds something
// other than a cluster, rather than giving it to postgres or initializing it.
func TestNotOurs(t *testing.T) {
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := ownerOf(t, dataDir)
	_, err := pgcluster.Start(t.Context(), pgcluster.Options{DataDir: dataDir})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Start on a directory with other files: err = %v, want one saying it is not empty", err)
	}
	if after := ownerOf(t, dataDir); after.Uid != before.Uid || after.Gid != before.Gid {
		t.Errorf("owner changed from %v to %v", before, after)
	}
}

func TestSocketDirTooLong(t *testing.T) {
	_, err := pgcluster.Start(t.Context(), pgcluster.Options{
		DataDir:   filepath.Join(t.TempDir(), "data"),
		SocketDir: filepath.Join(t.TempDir(), strings.Repeat("s", 120)),
	})
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("Start with a long socket directory: err = %v, want one saying it is too long", err)
	}
}

func TestURL(t *testing.T) {
	c := MustStart(t, filepath.Join(t.TempDir(), "data"))
	u := c.URL("some_db")
	if !strings.HasPrefix(u, "postgres://postgres@/some_db?host=/") {
		t.Errorf("URL = %q", u)
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database != "some_db" || cfg.User != "postgres" || !strings.HasPrefix(cfg.Host, "/") {
		t.Errorf("URL %q parses to database %q, user %q, host %q", u, cfg.Database, cfg.User, cfg.Host)
	}
}

// MustStart starts a cluster on dataDir and stops it when the test ends.
// Fsync is off, as in the tests of other packages, unless opts turns it on.
func MustStart(tb testing.TB, dataDir string, opts ...func(*pgcluster.Options)) *pgcluster.Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := pgcluster.Options{DataDir: dataDir, Logger: slog.New(slog.NewTextHandler(tb.Output(), nil))}
	for _, opt := range opts {
		opt(&o)
	}
	c, err := pgcluster.Start(ctx, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

func exec1(tb testing.TB, c *pgcluster.Cluster, sql string) {
	tb.Helper()
	conn := connect(tb, c)
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

func query1(tb testing.TB, c *pgcluster.Cluster, sql string) string {
	tb.Helper()
	conn := connect(tb, c)
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return s
}

func connect(tb testing.TB, c *pgcluster.Cluster) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), c.URL("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func readLockFile(tb testing.TB, dataDir string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func readPID(tb testing.TB, dataDir string) int {
	tb.Helper()
	first, _, _ := strings.Cut(readLockFile(tb, dataDir), "\n")
	pid, err := strconv.Atoi(first)
	if err != nil {
		tb.Fatal(err)
	}
	return pid
}

// writeLockFile makes dataDir look as if a server with pid had crashed there:
// it writes the lock file a real server wrote, with pid as its first line.
func writeLockFile(tb testing.TB, dataDir string, pid int, lockFile string) {
	tb.Helper()
	_, rest, _ := strings.Cut(lockFile, "\n")
	path := filepath.Join(dataDir, "postmaster.pid")
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"+rest), 0o600); err != nil {
		tb.Fatal(err)
	}
	owner := ownerOf(tb, dataDir)
	if err := os.Chown(path, int(owner.Uid), int(owner.Gid)); err != nil {
		tb.Fatal(err)
	}
}

func ownerOf(tb testing.TB, path string) *syscall.Credential {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return &syscall.Credential{Uid: st.Uid, Gid: st.Gid}
}

// waitForChildren waits until the server processes of a killed postmaster
// have noticed and exited; postgres refuses to start while they live.
func waitForChildren(tb testing.TB, dataDir string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
		busy := false
		for _, p := range procs {
			if cwd, _ := os.Readlink(p); cwd == dataDir {
				stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
				if !strings.Contains(string(stat), ") Z") {
					busy = true
				}
			}
		}
		if !busy {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatal("the killed server's processes did not exit")
}
