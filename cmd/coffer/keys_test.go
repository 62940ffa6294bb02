package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/profile"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/keyvault"
)

// profileSecrets opens a profile's key store as the CLI does and returns
// the secrets in it: the identity's two seeds and the refresh token.
func profileSecrets(t *testing.T, dir string, opts keyvault.Options) [][]byte {
	t.Helper()
	ks, _, err := keyvault.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return storeSecrets(t, ks)
}

func storeSecrets(t *testing.T, ks clientlib.KeyStore) [][]byte {
	t.Helper()
	id, err := ks.Get("identity")
	if err != nil {
		t.Fatal(err)
	}
	// version | handle length | handle | Ed25519 seed | X-Wing seed
	if len(id) < 2 || len(id) != 2+int(id[1])+64 {
		t.Fatalf("the identity blob is %d bytes: update this test", len(id))
	}
	rest := id[2+int(id[1]):]
	out := [][]byte{rest[:32], rest[32:64]}
	if tok, err := ks.Get("session/refresh"); err == nil {
		out = append(out, tok)
	}
	return out
}

// mustNotLeak fails if any file under dir holds a secret raw, in hex or in
// base64 (either alphabet, any alignment).
func mustNotLeak(t *testing.T, dir string, secrets [][]byte) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, s := range secrets {
			needles := [][]byte{s, []byte(hex.EncodeToString(s)), []byte(strings.ToUpper(hex.EncodeToString(s)))}
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				for skip := range 3 {
					n := (len(s) - skip) / 3 * 3
					needles = append(needles, []byte(enc.EncodeToString(s[skip:skip+n])))
				}
			}
			for _, nd := range needles {
				if bytes.Contains(b, nd) {
					t.Errorf("%s holds secret %d of the profile", path, i)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("only %d files in the profile", files)
	}
}

var testVault = keyvault.Options{
	Passphrase:       func(bool) ([]byte, error) { return []byte(testPassphraseEnv[passphraseEnvVar]), nil },
	ScryptWorkFactor: 10,
}

// TestProfileKeysAtRest: init writes no secret to disk, a wrong passphrase
// fails cleanly and loses nothing, and the passphrase may come from a file.
func TestProfileKeysAtRest(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	dir := filepath.Join(t.TempDir(), "alice")
	code, _, stderr := runCoffer(t, nil, "--profile", dir, "init", "--server", srv.URL(), "--handle", "alice")
	if code != exitOK {
		t.Fatalf("init: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "locked with your passphrase") {
		t.Errorf("init did not say how the keys are kept:\n%s", stderr)
	}
	// group ls logs in with the stored refresh token and caches a session.
	if code, _, stderr := runCoffer(t, nil, "--profile", dir, "group", "ls"); code != exitOK {
		t.Fatalf("group ls: exit %d\n%s", code, stderr)
	}
	secrets := profileSecrets(t, dir, testVault)
	if len(secrets) != 3 {
		t.Fatalf("%d secrets in the store, want the two seeds and the refresh token", len(secrets))
	}
	mustNotLeak(t, dir, secrets)
	for _, f := range []string{"vault.json", "vault.age", "keys/identity", "keys/session/refresh", "keys/cli/session"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, fi.Mode().Perm())
		}
	}

	before := map[string][]byte{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			before[path], _ = os.ReadFile(path)
		}
		return err
	})
	code, _, stderr = runCoffer(t, map[string]string{passphraseEnvVar: "not it"}, "--profile", dir, "group", "ls")
	if code != exitError || !strings.Contains(stderr, "wrong passphrase") || !strings.Contains(stderr, passphraseEnvVar) {
		t.Errorf("wrong passphrase: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCoffer(t, map[string]string{passphraseEnvVar: ""}, "--profile", dir, "whoami")
	if code != exitError || !strings.Contains(stderr, "passphrase") || !strings.Contains(stderr, "--passphrase-file") {
		t.Errorf("no passphrase: exit %d\n%s", code, stderr)
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			if !bytes.Equal(b, before[path]) {
				t.Errorf("a failed unlock changed %s", path)
			}
			delete(before, path)
		}
		return err
	})
	if len(before) != 0 {
		t.Errorf("a failed unlock removed %d files", len(before))
	}

	// The passphrase from a file, by flag or by environment.
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte(testPassphraseEnv[passphraseEnvVar]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := map[string]string{passphraseEnvVar: ""}
	if code, _, stderr := runCoffer(t, noEnv, "--profile", dir, "--passphrase-file", pf, "whoami"); code != exitOK {
		t.Errorf("--passphrase-file: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runCoffer(t, map[string]string{passphraseEnvVar: "", passphraseFileEnvVar: pf}, "--profile", dir, "whoami"); code != exitOK {
		t.Errorf("%s: exit %d\n%s", passphraseFileEnvVar, code, stderr)
	}
	if code, _, stderr := runCoffer(t, noEnv, "--profile", dir, "--passphrase-file", filepath.Join(t.TempDir(), "absent"), "whoami"); code != exitError {
		t.Errorf("a missing passphrase file: exit %d\n%s", code, stderr)
	}
}

// TestMigratePlaintextProfile: a profile of the version that kept its keys
// in plaintext is encrypted on first use with a passphrase, says so, and
// keeps working.
func TestMigratePlaintextProfile(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	dir := filepath.Join(t.TempDir(), "old")
	old, err := clientlib.NewFileKeyStore(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientlib.New(srv.URL(), old, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(context.Background(), "olduser"); err != nil {
		t.Fatal(err)
	}
	if err := profile.New(dir).Save(&profile.Config{Server: srv.URL()}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "session.json"), []byte(`{"access_token":"old"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := storeSecrets(t, old)

	// Without a passphrase nothing changes, and the error says what to do.
	code, _, stderr := runCoffer(t, map[string]string{passphraseEnvVar: ""}, "--profile", dir, "whoami")
	if code != exitError || !strings.Contains(stderr, passphraseEnvVar) {
		t.Fatalf("migration without a passphrase: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "vault.json")); !os.IsNotExist(err) {
		t.Fatalf("a refused migration made a vault: %v", err)
	}

	code, stdout, stderr := runCoffer(t, nil, "--profile", dir, "whoami")
	if code != exitOK || !strings.Contains(stdout, "olduser") {
		t.Fatalf("whoami on an old profile: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "older coffer") || !strings.Contains(stderr, "now encrypted") {
		t.Errorf("the migration was not announced:\n%s", stderr)
	}
	mustNotLeak(t, dir, secrets)
	if _, err := os.Stat(filepath.Join(dir, "session.json")); !os.IsNotExist(err) {
		t.Errorf("the plaintext session.json survived the migration: %v", err)
	}
	code, _, stderr = runCoffer(t, nil, "--profile", dir, "group", "ls")
	if code != exitOK || strings.Contains(stderr, "older coffer") {
		t.Errorf("after the migration: exit %d\n%s", code, stderr)
	}
}

// TestKeyringSelection: with an OS keyring (go-keyring's mock) and no
// passphrase given, a new profile keeps its key there; a passphrase given
// on purpose wins; without a keyring or passphrase, init refuses.
func TestKeyringSelection(t *testing.T) {
	keyring.MockInit()
	srv := cofferdtest.Start(t, nil)
	desktop := map[string]string{passphraseEnvVar: "", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"}
	custody := func(dir string) string {
		b, err := os.ReadFile(filepath.Join(dir, "vault.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Custody string }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m.Custody
	}

	dir := filepath.Join(t.TempDir(), "kr")
	code, _, stderr := runCoffer(t, desktop, "--profile", dir, "init", "--server", srv.URL(), "--handle", "kruser")
	if code != exitOK {
		t.Fatalf("init with a keyring: exit %d\n%s", code, stderr)
	}
	if got := custody(dir); got != keyvault.CustodyKeyring {
		t.Errorf("with a keyring: custody %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "vault.age")); !os.IsNotExist(err) {
		t.Errorf("a keyring profile has vault.age: %v", err)
	}
	if code, _, stderr := runCoffer(t, desktop, "--profile", dir, "group", "ls"); code != exitOK {
		t.Fatalf("group ls from the keyring: exit %d\n%s", code, stderr)
	}
	mustNotLeak(t, dir, profileSecrets(t, dir, keyvault.Options{Keyring: keyvault.OSKeyring{}}))
	// The same profile on a box without the keyring.
	code, _, stderr = runCoffer(t, nil, "--profile", dir, "whoami")
	if code != exitError || !strings.Contains(stderr, "keyring") {
		t.Errorf("keyring profile without a keyring: exit %d\n%s", code, stderr)
	}

	withPass := map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"}
	dir2 := filepath.Join(t.TempDir(), "pp")
	if code, _, stderr := runCoffer(t, withPass, "--profile", dir2, "init", "--server", srv.URL(), "--handle", "ppuser"); code != exitOK {
		t.Fatalf("init with a passphrase: exit %d\n%s", code, stderr)
	}
	if got := custody(dir2); got != keyvault.CustodyPassphrase {
		t.Errorf("a given passphrase: custody %q", got)
	}

	off := map[string]string{passphraseEnvVar: "", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent", keyringEnvVar: "off"}
	dir3 := filepath.Join(t.TempDir(), "none")
	code, _, stderr = runCoffer(t, off, "--profile", dir3, "init", "--server", srv.URL(), "--handle", "nouser")
	if code != exitError || !strings.Contains(stderr, passphraseEnvVar) {
		t.Errorf("init without keyring or passphrase: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir3, "keys", "identity")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("init without a way to lock the keys stored them: %v", err)
	}
}
