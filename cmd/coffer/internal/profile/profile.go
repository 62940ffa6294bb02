// Package profile is where the coffer CLI keeps one identity on disk: a
// directory holding the device's key store and the server it talks to.
// Several profiles on one machine are several identities (alice, bob and
// carol in the walkthrough), each chosen with --profile or COFFER_PROFILE.
//
// Layout of a profile directory (0700):
//
//	config.json   {"server": "http://127.0.0.1:8080", "log_key": "…",
//	               "cacert": "/path/ca.pem", "cert": "…", "key": "…"} (0600)
//	vault.json    how the keys are locked: OS keyring or passphrase (0600)
//	vault.age     the data key under the passphrase (age scrypt), if so
//	keys/         an internal/keyvault store: every blob encrypted (0700/0600):
//	              private identity, refresh token, verified contacts,
//	              verified group states, and cli/session, the current
//	              access token, so that each command does not spend a
//	              refresh (session.go)
//
// config.json and vault.json hold nothing secret. Nothing in keys/ is
// readable without the data key, which the OS keyring or the passphrase
// guards (see internal/keyvault). A profile of an older version, with
// plaintext keys, is encrypted in place the first time it is opened.
package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/keyvault"
)

// EnvVar names the profile directory when --profile is not given.
const EnvVar = "COFFER_PROFILE"

const (
	configFile = "config.json"
)

// ErrNotInitialized is returned by Load when the profile has no
// config.json: `coffer init` was never run for it.
var ErrNotInitialized = errors.New("profile is not initialized")

// Config is the non-secret configuration of a profile.
type Config struct {
	// Server is the base URL of the cofferd this identity is registered on.
	Server string `json:"server"`
	// LogKey, if set, is the transparency log's verifier key to pin instead
	// of trusting the one the server names on first use.
	LogKey string `json:"log_key,omitempty"`
	// Witnesses are the cosignature/v1 verifier keys of the witnesses this
	// profile trusts, and Quorum how many must cosign a checkpoint
	// (clientlib.Options.Witnesses and Quorum).
	Witnesses []string `json:"witnesses,omitempty"`
	Quorum    int      `json:"quorum,omitempty"`
	// CACert, Cert and Key are absolute paths of PEM files: a CA to verify
	// the server with instead of the system roots, and a client certificate
	// and key for servers that require mutual TLS. The files stay where the
	// user keeps them; only their paths are stored.
	CACert string `json:"cacert,omitempty"`
	Cert   string `json:"cert,omitempty"`
	Key    string `json:"key,omitempty"`
}

// Dir picks the profile directory: the flag value, else $COFFER_PROFILE,
// else <user config dir>/coffer (~/.config/coffer on Linux). getenv and
// userConfigDir are parameters so tests need not touch the environment.
func Dir(flagValue string, getenv func(string) string, userConfigDir func() (string, error)) (string, error) {
	dir := flagValue
	if dir == "" {
		dir = getenv(EnvVar)
	}
	if dir == "" {
		base, err := userConfigDir()
		if err != nil {
			return "", fmt.Errorf("no profile directory: pass --profile DIR or set %s (%v)", EnvVar, err)
		}
		dir = filepath.Join(base, "coffer")
	}
	return filepath.Abs(dir)
}

// Profile is an opened profile directory.
type Profile struct {
	Dir string
	// Vault says how KeyStore found or made the key store: its custody,
	// and whether it encrypted a plaintext store of an older version. Nil
	// until KeyStore succeeds.
	Vault *keyvault.Info
	ks    *keyvault.Store
}

// New returns the profile at dir without touching the disk, so read-only
// commands on a missing profile do not create it.
func New(dir string) *Profile { return &Profile{Dir: dir} }

// Exists reports whether the profile has been initialized.
func (p *Profile) Exists() bool {
	_, err := os.Stat(filepath.Join(p.Dir, configFile))
	return err == nil
}

// Load reads config.json; ErrNotInitialized if there is none.
func (p *Profile) Load() (*Config, error) {
	b, err := os.ReadFile(filepath.Join(p.Dir, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotInitialized
	}
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", filepath.Join(p.Dir, configFile), err)
	}
	if c.Server == "" {
		return nil, fmt.Errorf("%s names no server", filepath.Join(p.Dir, configFile))
	}
	return &c, nil
}

// Save writes config.json atomically with mode 0600, creating the profile
// directory (0700) if needed.
func (p *Profile) Save(c *Config) error {
	if err := p.mkdir(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(p.Dir, ".config-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(p.Dir, configFile))
}

// KeyStore opens the profile's encrypted key store, creating it (and the
// directories, 0700) if needed, with the data key from opts. It unlocks
// once: later calls return the same store.
func (p *Profile) KeyStore(opts keyvault.Options) (clientlib.KeyStore, error) {
	if p.ks != nil {
		return p.ks, nil
	}
	if err := p.mkdir(); err != nil {
		return nil, err
	}
	ks, info, err := keyvault.Open(p.Dir, opts)
	if err != nil {
		return nil, err
	}
	// An older version cached the access token in plaintext here.
	if err := os.Remove(filepath.Join(p.Dir, legacySessionFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	p.ks, p.Vault = ks, info
	return ks, nil
}

// mkdir creates the profile directory 0700. An existing directory keeps its
// mode: --profile may name a directory the user made on purpose, and
// chmod-ing it (think --profile /tmp) would be worse than leaving it; the
// secrets are protected by keys/ (0700) and its 0600 files anyway.
func (p *Profile) mkdir() error {
	return os.MkdirAll(p.Dir, 0o700)
}
