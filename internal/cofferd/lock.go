package cofferd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataLock is an exclusive flock on DATA/cofferd.lock, held for the life of
// a dev-mode process. Everything under the data directory (the PostgreSQL
// cluster, keys, blobs, the log file) belongs to the holder: without the
// lock, a second `cofferd -dev` on the same directory would take the
// running cluster for a leftover and stop it. The kernel drops the lock
// when the holder dies, however it dies, so a crash never leaves it stale.
type dataLock struct {
	f *os.File
}

// errDataDirInUse is returned when another process holds the lock.
var errDataDirInUse = errors.New("data directory in use")

// lockDataDir takes the lock or says which process holds it.
func lockDataDir(dir string) (*dataLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, "cofferd.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := describeHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is used by %s; stop that server first, or give this one another -data", errDataDirInUse, dir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder's pid, for the message a second start prints. It is
	// written only while holding the lock, so a reader sees the holder's.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataLock{f: f}, nil
}

// describeHolder names the process that wrote its pid into the lock file,
// with its program name when /proc shows it. Only argv[0]: the rest of a
// command line may hold a database password.
func describeHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return "another process"
	}
	desc := fmt.Sprintf("process %d", pid)
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(cmd) > 0 {
		prog, _, _ := strings.Cut(string(cmd), "\x00")
		desc = fmt.Sprintf("%s (pid %d)", filepath.Base(prog), pid)
	}
	return desc
}

func (l *dataLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}
