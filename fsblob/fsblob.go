// Package fsblob is the filesystem coffer.BlobStore, cofferd's default.
//
// A blob with key k lives at DIR/k[0:2]/k, two hex digits of fan-out so no
// directory grows past a few thousand entries per million blobs. A new blob
// is written to a temporary file in the same directory, synced, renamed
// onto its name, and the directory is synced: the classic sequence after
// which a crash leaves either no blob or the whole blob, never a torn one.
//
// Temporary files are named ".tmp-<key>-<random>" and are never reported by
// Walk. Those left behind by a crashed process are removed by Walk once they
// have not been written for TempMaxAge.
package fsblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cofferhq/coffer"
)

// TempMaxAge is how long a temporary file may go unwritten before Walk
// treats it as the remains of a crashed upload. A live upload writes far
// more often than that.
const TempMaxAge = time.Hour

const tmpPrefix = ".tmp-"

// Store is a BlobStore rooted at a directory.
type Store struct {
	dir string
	// Now is the clock for the temporary-file age check.
	Now func() time.Time

	mkdirMu sync.Mutex
	made    map[string]bool // fan-out directories known to exist
}

var _ coffer.BlobStore = (*Store)(nil)

// New returns a store rooted at dir, creating it (mode 0700) if needed.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fsblob: no directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	return &Store{dir: abs, Now: time.Now, made: map[string]bool{}}, nil
}

// Dir returns the root directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the file that holds the committed blob key. Operators and
// tests use it; the server never needs it.
func (s *Store) Path(key string) string {
	return filepath.Join(s.dir, key[:2], key)
}

func checkKey(key string) error {
	if !coffer.ValidBlobKey(key) {
		return coffer.Errorf(coffer.EINVALID, "malformed blob key")
	}
	return nil
}

func notFound() error { return coffer.Errorf(coffer.ENOTFOUND, "no such blob") }

func (s *Store) fanout(key string) (string, error) {
	d := filepath.Join(s.dir, key[:2])
	s.mkdirMu.Lock()
	defer s.mkdirMu.Unlock()
	if s.made[d] {
		return d, nil
	}
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("fsblob: %w", err)
	}
	// The new directory entry must itself survive a crash.
	if err := syncDir(s.dir); err != nil {
		return "", err
	}
	s.made[d] = true
	return d, nil
}

// Create implements coffer.BlobStore.
func (s *Store) Create(ctx context.Context, key string) (coffer.BlobWriter, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	d, err := s.fanout(key)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(d, tmpPrefix+key+"-*")
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	return &writer{f: f, dir: d, final: filepath.Join(d, key)}, nil
}

type writer struct {
	f     *os.File
	dir   string
	final string
	done  bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("fsblob: write after Commit or Abort")
	}
	return w.f.Write(p)
}

// ReadFrom lets io.Copy hand the writer its source directly, so the file's
// own ReadFrom (copy_file_range, splice) can apply.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if w.done {
		return 0, errors.New("fsblob: write after Commit or Abort")
	}
	return w.f.ReadFrom(r)
}

func (w *writer) Commit() error {
	if w.done {
		return errors.New("fsblob: Commit after Commit or Abort")
	}
	w.done = true
	name := w.f.Name()
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, w.final)
	}
	if err == nil {
		return syncDir(w.dir)
	}
	os.Remove(name)
	return fmt.Errorf("fsblob: commit: %w", err)
}

func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	name := w.f.Name()
	w.f.Close()
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsblob: abort: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsblob: sync directory: %w", err)
	}
	return nil
}

// Open implements coffer.BlobStore. The returned Blob is an *os.File
// underneath, so serving it can use sendfile.
func (s *Store) Open(ctx context.Context, key string) (coffer.Blob, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound()
	}
	if err != nil {
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fsblob: %w", err)
	}
	return &blob{File: f, size: fi.Size()}, nil
}

type blob struct {
	*os.File
	size int64
}

func (b *blob) Size() int64 { return b.size }

// Delete implements coffer.BlobStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := os.Remove(s.Path(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsblob: %w", err)
	}
	return nil
}

// Walk implements coffer.BlobStore. Along the way it removes temporary
// files older than TempMaxAge, and ignores any other file that is not a
// blob, so an operator's stray file is never reported as a key.
func (s *Store) Walk(ctx context.Context, fn func(key string, modTime time.Time) error) error {
	tops, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("fsblob: %w", err)
	}
	staleBefore := s.Now().Add(-TempMaxAge)
	for _, top := range tops {
		if !top.IsDir() || len(top.Name()) != 2 {
			continue
		}
		d := filepath.Join(s.dir, top.Name())
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("fsblob: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := e.Name()
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			}
			if err != nil {
				return fmt.Errorf("fsblob: %w", err)
			}
			switch {
			case strings.HasPrefix(name, tmpPrefix):
				if info.ModTime().Before(staleBefore) {
					os.Remove(filepath.Join(d, name))
				}
			case e.Type().IsRegular() && coffer.ValidBlobKey(name) && name[:2] == top.Name():
				if err := fn(name, info.ModTime()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
