package clientlib

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// ErrNotFound is returned by KeyStore.Get when no blob has the name.
var ErrNotFound = errors.New("clientlib: key store: not found")

// KeyStore is the device storage for everything the client must keep:
// private keys, session tokens, verified contacts and the highest verified
// state of each group. Mobile apps implement it with the iOS Keychain or the
// Android Keystore. Names are short ASCII paths such as "identity" or
// "group/<id>/state"; Get of an absent name returns ErrNotFound.
type KeyStore interface {
	Put(name string, value []byte) error
	Get(name string) ([]byte, error)
	Delete(name string) error
}

var keyNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+(/[a-zA-Z0-9._-]+)*$`)

func checkKeyName(name string) error {
	if len(name) > 200 || !keyNameRE.MatchString(name) {
		return fmt.Errorf("clientlib: key store: invalid name %q", name)
	}
	// "." and ".." match the pattern but would step out of a FileKeyStore.
	for _, seg := range strings.Split(name, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("clientlib: key store: invalid name %q", name)
		}
	}
	return nil
}

// MemoryKeyStore keeps blobs in memory, for tests and ephemeral sessions.
type MemoryKeyStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemoryKeyStore returns an empty in-memory store.
func NewMemoryKeyStore() *MemoryKeyStore { return &MemoryKeyStore{m: map[string][]byte{}} }

func (s *MemoryKeyStore) Put(name string, value []byte) error {
	if err := checkKeyName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = append([]byte(nil), value...)
	return nil
}

func (s *MemoryKeyStore) Get(name string) ([]byte, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *MemoryKeyStore) Delete(name string) error {
	if err := checkKeyName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

// FileKeyStore keeps each blob in its own file under a directory. Files are
// 0600 and directories 0700, so other local users cannot read the keys, and
// every write goes to a temporary file that is synced and renamed over the
// old one: a crash leaves either the old or the new value, never a torn one.
type FileKeyStore struct {
	dir string
	mu  sync.Mutex
}

// NewFileKeyStore opens (creating if needed) a store rooted at dir.
func NewFileKeyStore(dir string) (*FileKeyStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("clientlib: key store: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("clientlib: key store: %w", err)
	}
	return &FileKeyStore{dir: dir}, nil
}

func (s *FileKeyStore) path(name string) string {
	return filepath.Join(s.dir, filepath.FromSlash(name))
}

func (s *FileKeyStore) Put(name string, value []byte) error {
	if err := checkKeyName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	if _, err := f.Write(value); err != nil {
		f.Close()
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	return nil
}

func (s *FileKeyStore) Get(name string) ([]byte, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("clientlib: key store: %w", err)
	}
	return b, nil
}

func (s *FileKeyStore) Delete(name string) error {
	if err := checkKeyName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Remove(s.path(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clientlib: key store: %w", err)
	}
	return nil
}
