// Package pgcluster starts and stops a private PostgreSQL cluster from the
// installed server binaries. Dev mode (`cofferd -dev`) keeps one under its data
// directory, and the test harness (internal/pgtest) runs a throwaway one per
// test binary.
//
// The cluster listens only on a unix socket, never on TCP, and the socket file
// is 0700, owned by the server's user (in a 0700 directory of that user, unless
// the caller chose the directory). That is why it can use trust
// authentication: only that user and root can connect.
//
// initdb and postgres refuse to run as root. When the calling process is root,
// every server binary runs as the "postgres" OS user, and the directories it
// needs are handed to that user. Otherwise they run as the current user.
//
// The package is Unix-only: it switches user through syscall.Credential.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// port is the port number in the socket file's name (.s.PGSQL.5432). No TCP
// port is opened, so clusters in distinct socket directories never clash.
const port = 5432

// maxSocketPath is the usable length of a unix socket path (sun_path is 108
// bytes on Linux, 104 on BSDs, including the terminating NUL).
const maxSocketPath = 103

// socketFile is the longest file postgres puts in the socket directory.
var socketFile = fmt.Sprintf(".s.PGSQL.%d.lock", port)

// notFound is the error text when the server binaries are missing. It says what
// to install because that is the only fix.
const notFound = "PostgreSQL 15+ server binaries not found (initdb, pg_ctl); install them, e.g. apt-get install postgresql"

// FindBinaries returns the directory holding initdb and pg_ctl. It looks on
// PATH first, then in /usr/lib/postgresql/<highest version>/bin, where Debian
// and Ubuntu install the server without putting it on PATH.
func FindBinaries() (binDir string, err error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(initdb)
		// pg_ctl must come from the same installation as initdb, or the
		// cluster it starts may not match the data directory's version.
		if isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Sort by numeric version, highest first: "9.6" < "15" < "17".
	slices.SortFunc(dirs, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(b)), filepath.Base(filepath.Dir(a)))
	})
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	return "", errors.New(notFound)
}

// compareVersions compares dotted numeric versions such as "9.6" and "15".
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Options configure Start.
type Options struct {
	// DataDir is the cluster's data directory. It is created and initialized
	// when it holds no cluster yet, and reused otherwise.
	DataDir string
	// SocketDir is the directory of the unix socket. Empty means a fresh
	// temporary directory with a short path, removed by Stop: unix socket
	// paths are limited to about 107 bytes, which deep data directories
	// easily exceed.
	SocketDir string
	// Fsync makes the server flush writes to disk. Keep it on for data that
	// must survive a crash (dev mode); turn it off only for throwaway
	// clusters (tests), where it makes everything several times faster.
	Fsync bool
	// Logger receives what the cluster does. Nil discards it.
	Logger *slog.Logger
	// ExtraConfig holds more server settings, each "name=value", passed to
	// postgres as -c options (for example "max_connections=300").
	ExtraConfig []string
}

// Cluster is a running private PostgreSQL cluster.
type Cluster struct {
	binDir       string
	dataDir      string
	socketDir    string
	ownSocketDir bool                // Stop removes socketDir
	cred         *syscall.Credential // nil: run as the current user
	logger       *slog.Logger
	stopOnce     sync.Once
	stopErr      error
}

// Start initializes the cluster in opts.DataDir unless it already holds one,
// and starts the server. The server keeps running until Stop; it is a
// separate process and outlives the caller if the caller dies without calling
// Stop, in which case the next Start on the same DataDir stops it first.
//
// Only one process may use a DataDir at a time.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: no data directory given")
	}
	binDir, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{binDir: binDir, logger: opts.Logger}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgcluster: running as root needs a \"postgres\" OS user to own the cluster, because initdb and postgres refuse root: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		// Groups is empty on purpose: the server gets no supplementary
		// groups, so serverCanSearch needs to consider only uid and gid.
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}

	if c.dataDir, err = c.prepareDir(opts.DataDir); err != nil {
		return nil, err
	}
	if err := c.prepareSocketDir(opts.SocketDir); err != nil {
		return nil, err
	}
	// From here on a failure must not leave our temporary socket directory.
	ok := false
	defer func() {
		if !ok && c.ownSocketDir {
			os.RemoveAll(c.socketDir)
		}
	}()

	if err := c.initIfNeeded(ctx, opts.Fsync); err != nil {
		return nil, err
	}
	if err := c.clearStaleLock(ctx); err != nil {
		return nil, err
	}
	if err := c.start(ctx, opts); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// prepareDir creates dir if needed, resolves it to an absolute path without
// symlinks, and makes sure the server's user can reach it and, if it is
// empty, owns it.
func (c *Cluster) prepareDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	// postgres requires 0700 (or 0750) on its data directory.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("pgcluster: create directory: %w", err)
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return "", fmt.Errorf("pgcluster: %w", err)
	}
	if c.cred == nil {
		return dir, nil
	}
	if err := c.chownIfEmpty(dir); err != nil {
		return "", err
	}
	if err := c.makeAncestorsTraversable(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// chownIfEmpty gives dir (not its contents) to the server's user if dir is
// empty, that is, new. A directory that already holds a cluster belongs to the
// server's user since initdb; one that holds anything else is not ours to
// give away (a mistyped -data /tmp must not hand /tmp to postgres), and initdb
// or postgres will say what is wrong with it.
func (c *Cluster) chownIfEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if len(entries) > 0 {
		return nil
	}
	if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgcluster: give %s to the postgres user: %w", dir, err)
	}
	return nil
}

// makeAncestorsTraversable lets the server's user pass through every parent
// of dir, which it needs to open its files by path.
//
// As root, those parents usually belong to root, and some are closed to
// others: `mktemp -d` and t.TempDir() make 0700 directories, so the postgres
// user could not reach `$(mktemp -d)/c`. For each parent the postgres user
// cannot search, we add only the search bit for others (o+x). That lets users
// pass through by name but not list the directory; what lies below stays
// protected by its own permissions (the data and socket directories are 0700
// and belong to postgres). Directories the user can already search are left
// untouched.
func (c *Cluster) makeAncestorsTraversable(dir string) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if !c.serverCanSearch(fi) {
			if err := os.Chmod(p, fi.Mode()|0o001); err != nil {
				return fmt.Errorf("pgcluster: let the postgres user reach %s: %w", dir, err)
			}
			c.logger.Info("made directory traversable for the postgres user", "dir", p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func (c *Cluster) serverCanSearch(fi os.FileInfo) bool {
	st := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == c.cred.Uid:
		return perm&0o100 != 0
	case st.Gid == c.cred.Gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

func (c *Cluster) prepareSocketDir(dir string) error {
	if dir == "" {
		base := os.TempDir()
		// A long $TMPDIR would make the socket path too long; /tmp is short.
		if len(base)+len("/coffer-pg-0123456789/")+len(socketFile) > maxSocketPath {
			base = "/tmp"
		}
		var err error
		if dir, err = os.MkdirTemp(base, "coffer-pg-"); err != nil {
			return fmt.Errorf("pgcluster: create socket directory: %w", err)
		}
		c.ownSocketDir = true
	}
	resolved, err := c.prepareDir(dir)
	if err != nil {
		if c.ownSocketDir {
			os.RemoveAll(dir)
		}
		return err
	}
	c.socketDir = resolved
	dir = resolved
	if n := len(dir) + 1 + len(socketFile); n > maxSocketPath {
		return fmt.Errorf("pgcluster: socket directory %s is too long for a unix socket path (%d bytes, limit %d); choose a shorter one", dir, n, maxSocketPath)
	}
	return nil
}

// initIfNeeded runs initdb unless the data directory already holds a
// cluster, so that a second start reuses the data.
//
// initdb writes PG_VERSION long before it is done, so a run cut short (Ctrl-C
// during the first start of dev mode) would leave a directory that looks like
// a cluster but lacks, say, the postgres database. So initdb works in a
// sibling directory, which is renamed into place only once it is complete.
func (c *Cluster) initIfNeeded(ctx context.Context, fsync bool) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	if entries, err := os.ReadDir(c.dataDir); err != nil || len(entries) > 0 {
		return fmt.Errorf("pgcluster: %s holds no cluster but is not empty; remove it or choose another data directory", c.dataDir)
	}
	partial := c.dataDir + ".initdb"
	if err := os.RemoveAll(partial); err != nil { // left by an interrupted run
		return fmt.Errorf("pgcluster: %w", err)
	}
	partial, err := c.prepareDir(partial)
	if err != nil {
		return err
	}
	// Trust authentication is safe only because of how the server listens
	// (see the package doc).
	args := []string{"-D", partial, "-A", "trust", "-U", "postgres", "--encoding=UTF8", "--no-locale"}
	if !fsync {
		args = append(args, "--no-sync")
	}
	if out, err := c.run(ctx, "initdb", args...); err != nil {
		os.RemoveAll(partial)
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	// A cluster holds no absolute paths, so it can move. Removing the empty
	// data directory first lets the rename take its place.
	if err := os.Remove(c.dataDir); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := os.Rename(partial, c.dataDir); err != nil {
		return fmt.Errorf("pgcluster: move the new cluster into place: %w", err)
	}
	c.logger.Info("initialized cluster", "data_dir", c.dataDir, "version", c.version())
	return nil
}

// clearStaleLock deals with a postmaster.pid that an earlier process left.
//
//   - The pid is gone (the server crashed): postgres copes by itself.
//   - The pid is a postgres server still running on this data directory (its
//     owner died without calling Stop): stop it, since only one process may
//     use a data directory.
//   - The pid is a zombie (the server died, and nobody reaped it, as happens
//     under a container init that does not reap orphans), or it now belongs
//     to an unrelated process (pid reuse, common in containers): postgres
//     would refuse to start, believing another server runs here, so the file
//     is removed.
func (c *Cluster) clearStaleLock(ctx context.Context) error {
	pidFile := filepath.Join(c.dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil // no lock file, or postgres will report why it cannot read it
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return nil
	}
	// Signal 0 only checks existence. EPERM means another user's process,
	// which cannot be our server (postgres treats it as gone as well).
	if syscall.Kill(pid, 0) != nil {
		return nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil // without /proc (not Linux) we cannot tell; postgres decides
	}
	// The state is the field after the command name, which is in
	// parentheses and may itself contain spaces or parentheses.
	_, afterName, _ := strings.Cut(string(stat[bytes.LastIndexByte(stat, ')')+1:]), " ")
	zombie := strings.HasPrefix(afterName, "Z") || strings.HasPrefix(afterName, "X")
	// The postmaster changes its working directory to its data directory,
	// which tells it apart from an unrelated process that reuses its pid.
	cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if !zombie && cwd == c.dataDir {
		c.logger.Warn("stopping postgres left running by an earlier process", "data_dir", c.dataDir, "pid", pid)
		if out, err := c.run(ctx, "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w", "stop"); err != nil {
			return fmt.Errorf("pgcluster: stop leftover postgres (pid %d): %w\n%s", pid, err, out)
		}
		return nil
	}
	c.logger.Warn("removing stale postmaster.pid", "data_dir", c.dataDir, "pid", pid, "zombie", zombie)
	if err := os.Remove(pidFile); err != nil {
		return fmt.Errorf("pgcluster: remove stale lock file: %w", err)
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	serverArgs := []string{
		"-p", strconv.Itoa(port),
		"-k", c.socketDir,
		// No TCP at all: the socket's permissions are the access control
		// (see the package doc).
		"-c", "listen_addresses=",
		"-c", "unix_socket_permissions=0700",
	}
	if !opts.Fsync {
		serverArgs = append(serverArgs, "-c", "fsync=off")
	}
	for _, kv := range opts.ExtraConfig {
		serverArgs = append(serverArgs, "-c", kv)
	}
	// pg_ctl hands -o to a shell, so every argument is quoted.
	quoted := make([]string, len(serverArgs))
	for i, a := range serverArgs {
		quoted[i] = shellQuote(a)
	}
	logFile := c.logFile()
	out, err := c.run(ctx, "pg_ctl", "-D", c.dataDir, "-l", logFile, "-o", strings.Join(quoted, " "), "-w", "start")
	if err != nil {
		return fmt.Errorf("pgcluster: start postgres: %w\n%s\nend of %s:\n%s", err, out, logFile, tail(logFile, 2048))
	}
	c.logger.Info("started postgres", "data_dir", c.dataDir, "socket_dir", c.socketDir, "version", c.version(), "fsync", opts.Fsync)
	return nil
}

// logFile is inside the data directory because the server's user must be
// able to write it, and it then lives as long as the data.
func (c *Cluster) logFile() string { return filepath.Join(c.dataDir, "postgres.log") }

// version is the cluster's major version, for logs.
func (c *Cluster) version() string {
	b, _ := os.ReadFile(filepath.Join(c.dataDir, "PG_VERSION"))
	return strings.TrimSpace(string(b))
}

// URL returns a pgx-compatible connection URL for database dbname as the
// postgres superuser, through the unix socket. It carries no password: the
// socket's permissions are the access control.
func (c *Cluster) URL(dbname string) string {
	q := func(s string) string {
		// '/' is allowed in a query; keeping it makes the URL readable.
		return strings.ReplaceAll(url.QueryEscape(s), "%2F", "/")
	}
	// The port is explicit so that a PGPORT in the environment, which pgx
	// honours, cannot point the client at another socket file.
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable",
		url.PathEscape(dbname), q(c.socketDir), port)
}

// Stop shuts the server down (fast mode: open sessions are ended) and removes
// the socket directory if Start created it. Calling it again does nothing.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		out, err := c.run(context.Background(), "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w", "stop")
		switch _, statErr := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); {
		case err == nil:
			c.logger.Info("stopped postgres", "data_dir", c.dataDir)
		case errors.Is(statErr, os.ErrNotExist):
			// The server was not running any more; nothing to stop.
		default:
			c.stopErr = fmt.Errorf("pgcluster: stop postgres: %w\n%s", err, out)
		}
		if c.ownSocketDir {
			if err := os.RemoveAll(c.socketDir); err != nil && c.stopErr == nil {
				c.stopErr = fmt.Errorf("pgcluster: remove socket directory: %w", err)
			}
		}
	})
	return c.stopErr
}

// run runs one of the server binaries as the server's user, and returns its
// combined output for error messages.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	// The working directory must be one the server's user can enter: the
	// caller's (often /root) may not be, and initdb and postgres complain.
	cmd.Dir = c.dataDir
	cmd.Env = serverEnv()
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return bytes.TrimSpace(out.Bytes()), err
}

// serverEnv is the caller's environment without the libpq and server
// variables (PGDATA, PGPORT, ...), which would otherwise override what the
// command line says, and with a fixed locale so messages are predictable.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns at most the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
