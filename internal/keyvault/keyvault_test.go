package keyvault_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/keyvault"
)

// testWorkFactor keeps scrypt at about a millisecond.
const testWorkFactor = 10

func withPassphrase(p string) keyvault.Options {
	return keyvault.Options{
		Passphrase:       func(bool) ([]byte, error) { return []byte(p), nil },
		ScryptWorkFactor: testWorkFactor,
	}
}

func mustOpen(t *testing.T, dir string, opts keyvault.Options) (*keyvault.Store, *keyvault.Info) {
	t.Helper()
	s, info, err := keyvault.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, info
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// encodings returns the forms a secret could be written in: raw, hex in
// both cases, and base64 in both alphabets at every alignment.
func encodings(v []byte) map[string][]byte {
	out := map[string][]byte{
		"raw": v,
		"hex": []byte(hex.EncodeToString(v)),
		"HEX": []byte(strings.ToUpper(hex.EncodeToString(v))),
	}
	for name, enc := range map[string]*base64.Encoding{"base64": base64.RawStdEncoding, "base64url": base64.RawURLEncoding} {
		for skip := range 3 {
			n := (len(v) - skip) / 3 * 3
			out[name+string(rune('0'+skip))] = []byte(enc.EncodeToString(v[skip : skip+n]))
		}
	}
	return out
}

// mustHoldNoSecret fails if any file under dir contains a secret in any
// encoding.
func mustHoldNoSecret(t *testing.T, dir string, secrets ...[]byte) {
	t.Helper()
	found, files, err := findSecrets(dir, secrets)
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("nothing on disk to scan")
	}
	for _, f := range found {
		t.Error(f)
	}
}

func findSecrets(dir string, secrets [][]byte) (found []string, files int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, s := range secrets {
			for enc, needle := range encodings(s) {
				if bytes.Contains(b, needle) {
					found = append(found, fmt.Sprintf("%s holds secret %d (%s)", path, i, enc))
				}
			}
		}
		return nil
	})
	return found, files, err
}

func TestScannerFindsPlaintext(t *testing.T) {
	dir := t.TempDir()
	secret := randomBytes(32)
	for _, v := range []string{"x" + base64.StdEncoding.EncodeToString(secret), hex.EncodeToString(secret), "ab" + string(secret)} {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if found, _, err := findSecrets(dir, [][]byte{secret}); err != nil || len(found) == 0 {
			t.Fatalf("the scanner missed a secret in %q: %v", v, err)
		}
	}
}

func TestPassphraseVaultHoldsNoSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profile")
	seed, token := randomBytes(64), []byte(base64.RawURLEncoding.EncodeToString(randomBytes(32)))
	s, info := mustOpen(t, dir, withPassphrase("correct horse"))
	if !info.Created || info.Custody != keyvault.CustodyPassphrase {
		t.Fatalf("new vault: %+v", info)
	}
	for name, v := range map[string][]byte{"identity": seed, "session/refresh": token} {
		if err := s.Put(name, v); err != nil {
			t.Fatal(err)
		}
	}
	mustHoldNoSecret(t, dir, seed, token)

	s2, info := mustOpen(t, dir, withPassphrase("correct horse"))
	if info.Created || info.Migrated != 0 {
		t.Fatalf("reopened vault: %+v", info)
	}
	if got, err := s2.Get("identity"); err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("Get(identity) = %x, %v", got, err)
	}
	if _, err := s2.Get("absent"); !errors.Is(err, clientlib.ErrNotFound) {
		t.Fatalf("Get(absent) = %v, want ErrNotFound", err)
	}
	if err := s2.Delete("identity"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get("identity"); !errors.Is(err, clientlib.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	for path, mode := range map[string]os.FileMode{
		dir:                                        0o700,
		filepath.Join(dir, "vault.json"):           0o600,
		filepath.Join(dir, "vault.age"):            0o600,
		filepath.Join(dir, "keys"):                 0o700,
		filepath.Join(dir, "keys/session"):         0o700,
		filepath.Join(dir, "keys/session/refresh"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
}

// snapshot reads every file under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			out[path] = string(b)
		}
		return err
	})
	return out
}

func TestWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, withPassphrase("right"))
	if err := s.Put("identity", []byte("the seed")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	for _, wrong := range []string{"wrong", "righ", "right ", "Right"} {
		_, _, err := keyvault.Open(dir, withPassphrase(wrong))
		if !errors.Is(err, keyvault.ErrWrongPassphrase) {
			t.Errorf("Open with %q: %v, want ErrWrongPassphrase", wrong, err)
		}
	}
	if _, _, err := keyvault.Open(dir, keyvault.Options{}); !errors.Is(err, keyvault.ErrNoPassphrase) {
		t.Errorf("Open without a passphrase: %v, want ErrNoPassphrase", err)
	}
	if _, _, err := keyvault.Open(dir, withPassphrase("")); !errors.Is(err, keyvault.ErrNoPassphrase) {
		t.Errorf("Open with an empty passphrase: %v, want ErrNoPassphrase", err)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Fatalf("failed opens changed the files: %d before, %d after", len(before), len(after))
	}
	for path, b := range before {
		if after[path] != b {
			t.Errorf("a failed open changed %s", path)
		}
	}
	s, _ = mustOpen(t, dir, withPassphrase("right"))
	if got, err := s.Get("identity"); err != nil || string(got) != "the seed" {
		t.Fatalf("after wrong passphrases: %q, %v", got, err)
	}
}

func TestNewVaultWithoutPassphraseWritesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	if _, _, err := keyvault.Open(dir, keyvault.Options{}); !errors.Is(err, keyvault.ErrNoPassphrase) {
		t.Fatalf("Open = %v, want ErrNoPassphrase", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "vault.json")); !os.IsNotExist(err) {
		t.Fatalf("a vault without a key was recorded: %v", err)
	}
}

func TestMigratePlaintextProfile(t *testing.T) {
	dir := t.TempDir()
	old, err := clientlib.NewFileKeyStore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{
		"identity":        append([]byte{1, 5}, append([]byte("alice"), randomBytes(64)...)...),
		"session/refresh": []byte(base64.RawURLEncoding.EncodeToString(randomBytes(32))),
		"group/abc/state": []byte(`{"epoch_key":"` + hex.EncodeToString(randomBytes(32)) + `"}`),
		"contact/bob":     randomBytes(40),
	}
	var secrets [][]byte
	for name, v := range blobs {
		if err := old.Put(name, v); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, v)
	}
	// Without a passphrase nothing moves: the plaintext store stays as it
	// was, readable by the older version.
	if _, _, err := keyvault.Open(dir, keyvault.Options{}); !errors.Is(err, keyvault.ErrNoPassphrase) {
		t.Fatalf("Open without a passphrase: %v", err)
	}
	if got, _ := old.Get("identity"); !bytes.Equal(got, blobs["identity"]) {
		t.Fatal("a refused migration changed the store")
	}

	s, info := mustOpen(t, dir, withPassphrase("pw"))
	if !info.Created || info.Migrated != len(blobs) {
		t.Fatalf("migration: %+v, want %d blobs migrated", info, len(blobs))
	}
	mustHoldNoSecret(t, dir, secrets...)
	for name, v := range blobs {
		if got, err := s.Get(name); err != nil || !bytes.Equal(got, v) {
			t.Errorf("after migration Get(%s) = %q, %v", name, got, err)
		}
	}
	_, info = mustOpen(t, dir, withPassphrase("pw"))
	if info.Migrated != 0 || info.Created {
		t.Fatalf("second open: %+v", info)
	}
}

func TestInterruptedMigrationResumes(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, withPassphrase("pw"))
	if err := s.Put("identity", []byte("encrypted already")); err != nil {
		t.Fatal(err)
	}
	// A crash after vault.json was written with the migrating mark and
	// before the last plaintext blob was encrypted.
	mb, err := os.ReadFile(filepath.Join(dir, "vault.json"))
	if err != nil {
		t.Fatal(err)
	}
	mb = bytes.Replace(mb, []byte(`"custody"`), []byte(`"migrating": true, "custody"`), 1)
	if err := os.WriteFile(filepath.Join(dir, "vault.json"), mb, 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := randomBytes(32)
	if err := os.WriteFile(filepath.Join(dir, "keys", "refresh"), leftover, 0o600); err != nil {
		t.Fatal(err)
	}
	s, info := mustOpen(t, dir, withPassphrase("pw"))
	if info.Migrated != 1 {
		t.Fatalf("resumed migration: %+v", info)
	}
	mustHoldNoSecret(t, dir, leftover)
	if got, err := s.Get("refresh"); err != nil || !bytes.Equal(got, leftover) {
		t.Fatalf("Get(refresh) = %x, %v", got, err)
	}
	if got, err := s.Get("identity"); err != nil || string(got) != "encrypted already" {
		t.Fatalf("Get(identity) = %q, %v", got, err)
	}
}

func TestPlaintextOrSwappedBlobIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, withPassphrase("pw"))
	if err := s.Put("identity", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("contact/bob", []byte("bob")); err != nil {
		t.Fatal(err)
	}
	// A plaintext blob planted after the migration is not read.
	if err := os.WriteFile(filepath.Join(dir, "keys", "planted"), []byte("plain"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("planted"); err == nil {
		t.Error("a plaintext blob was read from an encrypted vault")
	}
	// A blob moved to another name does not decrypt there.
	b, err := os.ReadFile(filepath.Join(dir, "keys", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "contact", "bob"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("contact/bob"); err == nil {
		t.Error("a blob swapped to another name decrypted")
	}
	// Every flipped byte of a blob is caught.
	for i := range b {
		mangled := bytes.Clone(b)
		mangled[i] ^= 0x01
		if err := os.WriteFile(filepath.Join(dir, "keys", "identity"), mangled, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get("identity"); err == nil {
			t.Fatalf("byte %d flipped: the blob still decrypted", i)
		}
	}
}

func TestKeyringCustody(t *testing.T) {
	keyring.MockInit()
	kr := keyvault.OSKeyring{}
	dir := t.TempDir()
	noPassphrase := keyvault.Options{Keyring: kr}
	s, info := mustOpen(t, dir, noPassphrase)
	if info.Custody != keyvault.CustodyKeyring {
		t.Fatalf("with a keyring: custody %q", info.Custody)
	}
	seed := randomBytes(32)
	if err := s.Put("identity", seed); err != nil {
		t.Fatal(err)
	}
	mustHoldNoSecret(t, dir, seed)
	if _, err := os.Stat(filepath.Join(dir, "vault.age")); !os.IsNotExist(err) {
		t.Errorf("a keyring vault wrote vault.age: %v", err)
	}
	s, _ = mustOpen(t, dir, noPassphrase)
	if got, err := s.Get("identity"); err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("reopened from the keyring: %x, %v", got, err)
	}
	// The same profile where the keyring cannot be reached: a clear error,
	// and a passphrase does not help.
	if _, _, err := keyvault.Open(dir, withPassphrase("pw")); !errors.Is(err, keyvault.ErrKeyringUnavailable) {
		t.Fatalf("without the keyring: %v, want ErrKeyringUnavailable", err)
	}
	// The keyring lost the item.
	keyring.MockInit()
	if _, _, err := keyvault.Open(dir, noPassphrase); !errors.Is(err, keyvault.ErrKeyringUnavailable) {
		t.Fatalf("with the item gone: %v, want ErrKeyringUnavailable", err)
	}

	// A passphrase the user gave on purpose wins over the keyring.
	opts := withPassphrase("pw")
	opts.Keyring, opts.PreferPassphrase = kr, true
	if _, info := mustOpen(t, t.TempDir(), opts); info.Custody != keyvault.CustodyPassphrase {
		t.Errorf("PreferPassphrase: custody %q", info.Custody)
	}
	// A keyring that fails (a D-Bus without a Secret Service) falls back to
	// the passphrase, and says why when there is none.
	keyring.MockInitWithError(errors.New("org.freedesktop.secrets was not provided"))
	opts.PreferPassphrase = false
	if _, info := mustOpen(t, t.TempDir(), opts); info.Custody != keyvault.CustodyPassphrase {
		t.Errorf("failing keyring: custody %q", info.Custody)
	}
	_, _, err := keyvault.Open(t.TempDir(), keyvault.Options{Keyring: kr})
	if !errors.Is(err, keyvault.ErrNoPassphrase) || !strings.Contains(err.Error(), "secrets was not provided") {
		t.Errorf("failing keyring, no passphrase: %v", err)
	}
}

func TestSystemKeyringHeadless(t *testing.T) {
	if _, err := os.Stat("/run/user/" + itoa(os.Getuid()) + "/bus"); err == nil {
		t.Skip("this machine has a user D-Bus")
	}
	if k := keyvault.SystemKeyring(func(string) string { return "" }); k != nil && isUnixLike() {
		t.Fatalf("SystemKeyring without a D-Bus session = %T, want nil", k)
	}
}
