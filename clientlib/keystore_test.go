package clientlib_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/clientlib"
)

// keyStores are the implementations every KeyStore test runs against.
var keyStores = []struct {
	name string
	open func(tb testing.TB) clientlib.KeyStore
}{
	{"memory", func(testing.TB) clientlib.KeyStore { return clientlib.NewMemoryKeyStore() }},
	{"file", func(tb testing.TB) clientlib.KeyStore {
		return MustFileKeyStore(tb, filepath.Join(tb.TempDir(), "keys"))
	}},
}

func MustFileKeyStore(tb testing.TB, dir string) *clientlib.FileKeyStore {
	tb.Helper()
	ks, err := clientlib.NewFileKeyStore(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

func mustGet(tb testing.TB, ks clientlib.KeyStore, name string) []byte {
	tb.Helper()
	v, err := ks.Get(name)
	if err != nil {
		tb.Fatalf("Get(%q): %v", name, err)
	}
	return v
}

func mustPut(tb testing.TB, ks clientlib.KeyStore, name string, value []byte) {
	tb.Helper()
	if err := ks.Put(name, value); err != nil {
		tb.Fatalf("Put(%q): %v", name, err)
	}
}

func TestKeyStore(t *testing.T) {
	for _, impl := range keyStores {
		t.Run(impl.name, func(t *testing.T) {
			ks := impl.open(t)

			if _, err := ks.Get("identity"); !errors.Is(err, clientlib.ErrNotFound) {
				t.Fatalf("Get of an absent name: %v, want ErrNotFound", err)
			}
			mustPut(t, ks, "identity", []byte("v1"))
			if got := mustGet(t, ks, "identity"); string(got) != "v1" {
				t.Fatalf("Get = %q, want v1", got)
			}
			mustPut(t, ks, "identity", []byte("v2"))
			if got := mustGet(t, ks, "identity"); string(got) != "v2" {
				t.Fatalf("Get after overwrite = %q, want v2", got)
			}

			// Nested names, empty and binary values.
			mustPut(t, ks, "group/0c0ffe00-9a11-4e2d-8b1e-000000000001/state", []byte{0, 1, 2, 0xff})
			mustPut(t, ks, "session/refresh", nil)
			if got := mustGet(t, ks, "session/refresh"); len(got) != 0 {
				t.Fatalf("empty value came back as %q", got)
			}
			if got := mustGet(t, ks, "group/0c0ffe00-9a11-4e2d-8b1e-000000000001/state"); !bytes.Equal(got, []byte{0, 1, 2, 0xff}) {
				t.Fatalf("binary value came back as %x", got)
			}

			// Neither the caller's slice nor the returned one aliases the
			// stored value.
			in := []byte("secret")
			mustPut(t, ks, "contacts/bob", in)
			in[0] = 'X'
			out := mustGet(t, ks, "contacts/bob")
			out[1] = 'Y'
			if got := mustGet(t, ks, "contacts/bob"); string(got) != "secret" {
				t.Fatalf("stored value changed to %q through an alias", got)
			}

			if err := ks.Delete("identity"); err != nil {
				t.Fatal(err)
			}
			if _, err := ks.Get("identity"); !errors.Is(err, clientlib.ErrNotFound) {
				t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
			}
			if err := ks.Delete("identity"); err != nil {
				t.Fatalf("Delete of an absent name: %v, want nil", err)
			}
			if got := mustGet(t, ks, "contacts/bob"); string(got) != "secret" {
				t.Fatalf("Delete removed another name: %q", got)
			}
		})
	}
}

func TestKeyStoreNames(t *testing.T) {
	valid := []string{"identity", "session/refresh", "contacts/a.b_c-d", "group/0c0ffe00-9a11-4e2d-8b1e-000000000001/state",
		"...", ".hidden", strings.Repeat("a", 200)}
	invalid := []string{"", "/identity", "identity/", "a//b", "..", ".", "../identity", "a/../../b", "a/./b",
		"with space", "tab\t", "back\\slash", "colon:", "ünïcode", "nul\x00", "new\nline", strings.Repeat("a", 201)}
	for _, impl := range keyStores {
		t.Run(impl.name, func(t *testing.T) {
			ks := impl.open(t)
			for _, name := range valid {
				mustPut(t, ks, name, []byte(name))
				if got := mustGet(t, ks, name); string(got) != name {
					t.Errorf("Get(%q) = %q", name, got)
				}
			}
			for _, name := range invalid {
				if err := ks.Put(name, []byte("x")); err == nil || errors.Is(err, clientlib.ErrNotFound) {
					t.Errorf("Put(%q): %v, want an invalid-name error", name, err)
				}
				if _, err := ks.Get(name); err == nil || errors.Is(err, clientlib.ErrNotFound) {
					t.Errorf("Get(%q): %v, want an invalid-name error", name, err)
				}
				if err := ks.Delete(name); err == nil {
					t.Errorf("Delete(%q) succeeded", name)
				}
			}
		})
	}
}

// TestFileKeyStoreStaysInItsDirectory checks that no name reaches a file
// outside the store's directory.
func TestFileKeyStoreStaysInItsDirectory(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	if err := os.WriteFile(outside, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks := MustFileKeyStore(t, filepath.Join(root, "keys"))
	for _, name := range []string{"../outside", "a/../../outside"} {
		if err := ks.Put(name, []byte("overwritten")); err == nil {
			t.Errorf("Put(%q) succeeded", name)
		}
		if v, err := ks.Get(name); err == nil {
			t.Errorf("Get(%q) read %q", name, v)
		}
		if err := ks.Delete(name); err == nil {
			t.Errorf("Delete(%q) succeeded", name)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "not a key" {
		t.Fatalf("the file outside the store is now %q, %v", b, err)
	}
}

func TestFileKeyStorePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	// A directory that already exists with looser permissions is tightened.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ks := MustFileKeyStore(t, dir)
	mustPut(t, ks, "identity", []byte("seed"))
	mustPut(t, ks, "group/g1/state", []byte("state"))

	wantMode := map[string]fs.FileMode{
		".":              fs.ModeDir | 0o700,
		"identity":       0o600,
		"group":          fs.ModeDir | 0o700,
		"group/g1":       fs.ModeDir | 0o700,
		"group/g1/state": 0o600,
	}
	for name, want := range wantMode {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}

	// A second store on the same directory sees the same blobs.
	if got := mustGet(t, MustFileKeyStore(t, dir), "group/g1/state"); string(got) != "state" {
		t.Fatalf("reopened store reads %q", got)
	}
}

// tempFiles lists what a failed or finished Put may have left behind.
func tempFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// TestFileKeyStoreFailedWrite makes the final rename of a Put fail, after
// the temporary file was written: the old state must be intact and no
// partial or temporary file may remain.
func TestFileKeyStoreFailedWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks := MustFileKeyStore(t, dir)
	mustPut(t, ks, "group/g1/state", []byte("old state"))

	// "group" is a directory, so renaming a file over it fails (as root
	// too, which ignores permission bits).
	if err := ks.Put("group", []byte("new value")); err == nil {
		t.Fatal("Put over a directory succeeded")
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left after a failed Put: %v", left)
	}
	if got := mustGet(t, ks, "group/g1/state"); string(got) != "old state" {
		t.Errorf("a failed Put changed another blob: %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "group")); err != nil || !fi.IsDir() {
		t.Errorf("a failed Put replaced the directory: %v, %v", fi, err)
	}

	// A parent that is a file: the temporary file cannot even be created.
	mustPut(t, ks, "identity", []byte("seed"))
	if err := ks.Put("identity/child", []byte("x")); err == nil {
		t.Fatal("Put under a file succeeded")
	}
	if got := mustGet(t, ks, "identity"); string(got) != "seed" {
		t.Errorf("identity changed to %q", got)
	}

	if os.Geteuid() != 0 {
		// Without root, an unwritable directory makes the write fail too.
		mustPut(t, ks, "session/refresh", []byte("old token"))
		sub := filepath.Join(dir, "session")
		if err := os.Chmod(sub, 0o500); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(sub, 0o700)
		if err := ks.Put("session/refresh", []byte("new token")); err == nil {
			t.Fatal("Put into a read-only directory succeeded")
		}
		if got := mustGet(t, ks, "session/refresh"); string(got) != "old token" {
			t.Errorf("a failed Put left %q", got)
		}
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestFileKeyStoreAtomicReplace reads a blob while it is being replaced:
// every read returns one whole value, never a torn or missing one.
func TestFileKeyStoreAtomicReplace(t *testing.T) {
	ks := MustFileKeyStore(t, filepath.Join(t.TempDir(), "keys"))
	a := bytes.Repeat([]byte{'a'}, 256<<10)
	b := bytes.Repeat([]byte{'b'}, 256<<10)
	mustPut(t, ks, "group/g/state", a)

	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				v, err := ks.Get("group/g/state")
				if err != nil {
					t.Errorf("Get during a replace: %v", err)
					return
				}
				if !bytes.Equal(v, a) && !bytes.Equal(v, b) {
					t.Errorf("Get during a replace returned a torn value of %d bytes", len(v))
					return
				}
			}
		})
	}
	for i := range 50 {
		mustPut(t, ks, "group/g/state", [][]byte{a, b}[i%2])
	}
	close(done)
	wg.Wait()
}

func TestKeyStoreConcurrentPuts(t *testing.T) {
	for _, impl := range keyStores {
		t.Run(impl.name, func(t *testing.T) {
			ks := impl.open(t)
			const writers, rounds = 8, 25
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for r := range rounds {
						// Each writer's own names, and one name they all share.
						if err := ks.Put(fmt.Sprintf("group/w%d/r%d", w, r), []byte(fmt.Sprint(w, r))); err != nil {
							t.Error(err)
						}
						if err := ks.Put("session/refresh", []byte(fmt.Sprintf("token-%d-%d", w, r))); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			for w := range writers {
				for r := range rounds {
					if got := mustGet(t, ks, fmt.Sprintf("group/w%d/r%d", w, r)); string(got) != fmt.Sprint(w, r) {
						t.Fatalf("group/w%d/r%d = %q", w, r, got)
					}
				}
			}
			got := string(mustGet(t, ks, "session/refresh"))
			var w, r int
			if _, err := fmt.Sscanf(got, "token-%d-%d", &w, &r); err != nil || r != rounds-1 {
				t.Fatalf("shared name holds %q, want some writer's last value", got)
			}
		})
	}
	dir := filepath.Join(t.TempDir(), "keys")
	ks := MustFileKeyStore(t, dir)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := ks.Put("identity", []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left after concurrent Puts: %v", left)
	}
}
