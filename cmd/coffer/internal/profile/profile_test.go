package profile_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/cmd/coffer/internal/profile"
	"github.com/cofferhq/coffer/internal/keyvault"
)

// testVault locks test profiles with a passphrase at a cheap scrypt cost.
var testVault = keyvault.Options{
	Passphrase:       func(bool) ([]byte, error) { return []byte("test passphrase"), nil },
	ScryptWorkFactor: 10,
}

func TestDir(t *testing.T) {
	configDir := func() (string, error) { return "/home/u/.config", nil }
	noConfigDir := func() (string, error) { return "", errors.New("$HOME is not defined") }
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == profile.EnvVar {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		flag    string
		env     string
		config  func() (string, error)
		want    string
		wantErr bool
	}{
		{"flag wins", "/p/flag", "/p/env", configDir, "/p/flag", false},
		{"env next", "", "/p/env", configDir, "/p/env", false},
		{"config dir last", "", "", configDir, "/home/u/.config/coffer", false},
		{"nothing to go on", "", "", noConfigDir, "", true},
		{"flag without a config dir", "/p/flag", "", noConfigDir, "/p/flag", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := profile.Dir(tt.flag, env(tt.env), tt.config)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Dir = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
	// A relative directory is made absolute, so that messages name it fully.
	got, err := profile.Dir("rel", env(""), configDir)
	if err != nil || !filepath.IsAbs(got) {
		t.Fatalf("Dir(rel) = %q, %v; want an absolute path", got, err)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "alice")
	p := profile.New(dir)
	if _, err := p.Load(); !errors.Is(err, profile.ErrNotInitialized) {
		t.Fatalf("Load of a new profile: %v, want ErrNotInitialized", err)
	}
	if p.Exists() {
		t.Fatal("a new profile exists")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Load created the profile directory (%v): read-only commands must not", err)
	}
	want := &profile.Config{Server: "http://127.0.0.1:8080", LogKey: "coffer.dev+1234+abc", Witnesses: []string{"w1+1+a", "w2+2+b"}, Quorum: 1}
	if err := p.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := p.Load()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, want)
	}
	if _, err := p.KeyStore(testVault); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{
		dir:                               0o700,
		filepath.Join(dir, "config.json"): 0o600,
		filepath.Join(dir, "keys"):        0o700,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".config-*")); len(leftovers) > 0 {
		t.Errorf("Save left temporary files: %v", leftovers)
	}
}

func TestLoadCorrupt(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":  "server = x",
		"no server": `{"log_key": "k"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := profile.New(dir).Load()
			if err == nil || errors.Is(err, profile.ErrNotInitialized) {
				t.Fatalf("Load = %v, want an error naming the corrupt file", err)
			}
		})
	}
}

// TestSessionIsEncrypted: the cached access token is kept in the encrypted
// key store, and the plaintext session.json of older versions is removed.
func TestSessionIsEncrypted(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "session.json")
	if err := os.WriteFile(legacy, []byte(`{"access_token":"old-plaintext-token"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := profile.New(dir)
	if err := p.SaveSession(&profile.Session{AccessToken: "x"}); err == nil {
		t.Fatal("SaveSession before the key store was opened succeeded")
	}
	if _, err := p.KeyStore(testVault); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("the plaintext session.json of an older version is still there: %v", err)
	}
	token := "eyJhbGciOiJFZERTQSJ9.secret-access-token-payload.sig"
	exp := time.Now().Add(time.Hour)
	if err := p.SaveSession(&profile.Session{Server: "s", Account: "a", AccessToken: token, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if strings.Contains(string(b), "secret-access-token") {
			t.Errorf("%s holds the access token in plaintext", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	reopened := profile.New(dir)
	if _, err := reopened.KeyStore(testVault); err != nil {
		t.Fatal(err)
	}
	if s := reopened.LoadSession("s", "a", time.Now()); s == nil || s.AccessToken != token {
		t.Fatalf("LoadSession = %+v", s)
	}
	if err := reopened.SaveSession(nil); err != nil {
		t.Fatal(err)
	}
	if s := reopened.LoadSession("s", "a", time.Now()); s != nil {
		t.Fatalf("after SaveSession(nil): %+v", s)
	}
}
