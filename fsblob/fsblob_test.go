package fsblob_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/blobtest"
	"github.com/cofferhq/coffer/fsblob"
)

func newStore(t *testing.T) *fsblob.Store {
	t.Helper()
	s, err := fsblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBlobStore(t *testing.T) {
	blobtest.TestBlobStore(t, func(t *testing.T) coffer.BlobStore { return newStore(t) })
}

func TestBlobFileLayout(t *testing.T) {
	s := newStore(t)
	key := coffer.NewBlobKey()
	blobtest.MustPut(t, s, key, []byte("ciphertext"))
	fi, err := os.Stat(filepath.Join(s.Dir(), key[:2], key))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("blob file mode %v is readable by others", fi.Mode())
	}
}

// A process that dies mid-upload leaves a temporary file. Walk never reports
// it, and removes it once it is older than TempMaxAge.
func TestBlobStaleTempRemoved(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	key := coffer.NewBlobKey()
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half an upload"))
	// No Commit, no Abort: the process "crashed".
	temps, _ := filepath.Glob(filepath.Join(s.Dir(), key[:2], ".tmp-*"))
	if len(temps) != 1 {
		t.Fatalf("found %d temporary files, want 1", len(temps))
	}
	walk := func() (n int) {
		if err := s.Walk(ctx, func(string, time.Time) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if walk() != 0 {
		t.Fatal("Walk reported an uncommitted blob")
	}
	if _, err := os.Stat(temps[0]); err != nil {
		t.Fatalf("a fresh temporary file was removed: %v", err)
	}
	s.Now = func() time.Time { return time.Now().Add(fsblob.TempMaxAge + time.Minute) }
	walk()
	if _, err := os.Stat(temps[0]); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file still there: %v", err)
	}
}

// Files that are not blobs are neither reported nor removed.
func TestBlobWalkIgnoresStrangers(t *testing.T) {
	s := newStore(t)
	os.WriteFile(filepath.Join(s.Dir(), "README"), []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(s.Dir(), "ab"), 0o700)
	os.WriteFile(filepath.Join(s.Dir(), "ab", "cd0123456789abcdef0123456789abcd"), []byte("wrong dir"), 0o600)
	n := 0
	if err := s.Walk(context.Background(), func(string, time.Time) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("Walk reported %d strangers", n)
	}
}
