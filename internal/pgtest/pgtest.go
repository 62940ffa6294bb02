// Package pgtest gives each test a fresh, migrated PostgreSQL database.
//
// The first test that asks for a database starts one private cluster for the
// whole test binary (package pgcluster, fsync off, in a temporary directory)
// and migrates a template database once with store.Migrate. Every NewURL then
// clones the template with CREATE DATABASE ... TEMPLATE, which takes a few
// milliseconds, and drops the clone when the test ends. Tests may run in
// parallel, and so may test binaries: each has its own cluster.
//
// If COFFER_TEST_DATABASE_URL is set, that server is used instead of a
// private cluster; its user needs the CREATEDB privilege.
//
// A package that uses pgtest calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer/internal/pgcluster"
	"github.com/cofferhq/coffer/migrations"
	"github.com/cofferhq/coffer/store"
)

// EnvURL names the environment variable that points the tests at an existing
// server. Its database is used for administration (creating and dropping the
// test databases); the URL may be a postgres:// URL or a keyword/value string.
const EnvURL = "COFFER_TEST_DATABASE_URL"

// server is what the test binary shares: one server, one template.
type server struct {
	admin    *pgxpool.Pool // connected to the administration database
	baseURL  string        // URL of the administration database
	template string        // name of the migrated template database

	// Only for a private cluster:
	cluster *pgcluster.Cluster
	root    string   // temporary directory holding data and socket
	tether  *os.File // see startWatchdog
}

var (
	setupOnce sync.Once
	shared    *server
	setupErr  error
)

// Main runs the tests, then stops the cluster and removes its files. Call it
// from TestMain. Without it, the watchdog still cleans up when the test
// binary exits, just not before.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.close()
	}
	os.Exit(code)
}

// NewURL creates an empty database with the current schema for this test,
// and returns its connection URL. The database is dropped when the test ends.
// If no server is available, the test fails (it is never skipped: a test run
// that silently skips the database tests would be worse than a failure).
func NewURL(tb testing.TB) string {
	tb.Helper()
	s := get(tb)
	name := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(s.template)); err != nil {
		tb.Fatalf("pgtest: create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends sessions a test left open, so a leaked connection
		// cannot make the drop fail.
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop test database: %v", err)
		}
	})
	u, err := withDatabase(s.baseURL, name)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// NewPool returns a connection pool to a fresh database from NewURL. The pool
// is closed, and the database dropped, when the test ends.
func NewPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	u := NewURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	// Registered after NewURL's cleanup, so it runs before the drop.
	tb.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	return pool
}

func get(tb testing.TB) *server {
	tb.Helper()
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		tb.Fatal(setupErr)
	}
	return shared
}

func setup() (*server, error) {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "pgtest")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	s := &server{}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	if s.baseURL = os.Getenv(EnvURL); s.baseURL == "" {
		if err := s.startCluster(ctx, logger); err != nil {
			return nil, err
		}
	}
	var err error
	if s.admin, err = pgxpool.New(ctx, s.baseURL); err != nil {
		return nil, fmt.Errorf("pgtest: connect: %w", err)
	}
	if s.template, err = s.buildTemplate(ctx, logger); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (s *server) startCluster(ctx context.Context, logger *slog.Logger) error {
	if _, err := pgcluster.FindBinaries(); err != nil {
		return fmt.Errorf("pgtest: %w (or set %s to use an existing server)", err, EnvURL)
	}
	base := os.TempDir()
	// The socket lives under root, and socket paths are short (see pgcluster).
	if len(base) > 50 {
		base = "/tmp"
	}
	var err error
	if s.root, err = os.MkdirTemp(base, "coffer-pgtest-"); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	dataDir := filepath.Join(s.root, "data")
	if err := s.startWatchdog(dataDir); err != nil {
		return err
	}
	s.cluster, err = pgcluster.Start(ctx, pgcluster.Options{
		DataDir:   dataDir,
		SocketDir: filepath.Join(s.root, "s"),
		Fsync:     false, // throwaway data
		Logger:    logger,
		ExtraConfig: []string{
			// Parallel tests each hold a pool; the default of 100 is tight.
			"max_connections=300",
			// Durability costs that buy nothing for throwaway data.
			"full_page_writes=off",
			"synchronous_commit=off",
		},
	})
	if err != nil {
		return err
	}
	s.baseURL = s.cluster.URL("postgres")
	return nil
}

// startWatchdog makes sure the cluster does not outlive the test binary.
//
// postgres runs detached (pg_ctl starts it in its own session), so it would
// survive a test binary that dies without reaching Main's cleanup: killed by
// `go test -timeout`, by Ctrl-C, or by a call to os.Exit. A parent-death
// signal does not help for the same reason. Instead, a small shell process
// holds the read end of a pipe whose only write end is in this process (Go
// opens files close-on-exec, so postgres does not inherit it). When this
// process exits, however it exits, the kernel closes the write end; the
// watchdog reads EOF, shuts the server down and removes the directory. It
// runs in its own process group so that a Ctrl-C aimed at the tests does not
// kill it first.
func (s *server) startWatchdog(dataDir string) error {
	const script = `
cat >/dev/null
pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || pid=
if [ -n "$pid" ]; then
	kill -INT "$pid" 2>/dev/null # fast shutdown
	i=0
	while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
	kill -QUIT "$pid" 2>/dev/null # immediate shutdown if the fast one stalls
fi
rm -rf "$2"
`
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pgtest: watchdog: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/bin/sh", "-c", script, "pgtest-watchdog", dataDir, s.root)
	cmd.Stdin = r
	// Stdout and stderr stay nil (/dev/null): go test waits for every holder
	// of the test binary's output to close it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("pgtest: watchdog: %w", err)
	}
	// Reap it if it exits early; normally this process exits first.
	go cmd.Wait()
	// Kept in s so the garbage collector never closes it.
	s.tether = w
	return nil
}

// buildTemplate returns the name of a database migrated to the embedded
// schema, creating it if needed.
//
// The name carries a digest of the migration files. On a shared server
// (COFFER_TEST_DATABASE_URL) this lets test binaries built from different
// schemas, run at the same time or one after the other, each find the right
// template without ever dropping one that another binary clones. The template
// is migrated under a temporary name and renamed when complete, so no one
// clones a half-migrated template, and a crashed build leaves only junk, never
// a wrong template.
func (s *server) buildTemplate(ctx context.Context, logger *slog.Logger) (string, error) {
	digest, err := migrationsDigest()
	if err != nil {
		return "", err
	}
	name := "coffer_template_" + digest
	var exists bool
	if err := s.admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("pgtest: look for template database: %w", err)
	}
	if exists {
		return name, nil
	}

	building := name + "_" + randomHex(4)
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident(building)); err != nil {
		return "", fmt.Errorf("pgtest: create template database: %w", err)
	}
	drop := func() {
		s.admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident(building)+" WITH (FORCE)")
	}
	u, err := withDatabase(s.baseURL, building)
	if err != nil {
		drop()
		return "", err
	}
	if err := store.Migrate(ctx, u, logger); err != nil {
		drop()
		return "", fmt.Errorf("pgtest: migrate template database: %w", err)
	}
	// Migrate has closed its connections; the rename waits a few seconds
	// for their server processes to go.
	if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+ident(building)+" RENAME TO "+ident(name)); err != nil {
		drop()
		// Another test binary may have finished first; its template is
		// identical to ours. (Racing renames fail with duplicate_database
		// or with a unique violation in pg_database, depending on timing.)
		if err := s.admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err == nil && exists {
			return name, nil
		}
		return "", fmt.Errorf("pgtest: rename template database: %w", err)
	}
	return name, nil
}

// migrationsDigest is a short hash over the names and contents of the
// embedded migrations.
func migrationsDigest() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("pgtest: read migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (s *server) close() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if s.root != "" {
		os.RemoveAll(s.root)
	}
	if s.tether != nil {
		s.tether.Close() // the watchdog finds nothing left to do
	}
}

// withDatabase returns base with its database name replaced by name.
func withDatabase(base, name string) (string, error) {
	if strings.Contains(base, "://") {
		u, err := url.Parse(base)
		if err != nil {
			// url's errors quote the input, which may hold a password.
			return "", fmt.Errorf("pgtest: %s is not a valid URL", EnvURL)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// Keyword/value form: a later keyword overrides an earlier one.
	return base + " dbname=" + name, nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
