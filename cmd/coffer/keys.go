package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/term"

	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/cmd/coffer/internal/profile"
	"github.com/cofferhq/coffer/internal/keyvault"
)

// The environment that unlocks a profile's keys (see internal/keyvault).
const (
	// passphraseEnvVar holds the passphrase itself, for scripts and tests.
	passphraseEnvVar = "COFFER_PASSPHRASE"
	// passphraseFileEnvVar names a file whose first line is the passphrase,
	// like --passphrase-file.
	passphraseFileEnvVar = "COFFER_PASSPHRASE_FILE"
	// keyringEnvVar set to "off" keeps new profiles out of the OS keyring.
	keyringEnvVar = "COFFER_KEYRING"
	// testScryptEnvVar is for tests only: log2 of scrypt's work factor for
	// a new passphrase-locked profile (1..22; default 18, about a second per
	// unlock). A low value makes the passphrase easy to guess from a copy
	// of the profile: never set it for real keys.
	testScryptEnvVar = "COFFER_TEST_SCRYPT_WORK_FACTOR"
)

// maxPassphraseFile bounds what --passphrase-file reads.
const maxPassphraseFile = 64 << 10

// keyStore opens the profile's encrypted key store, and says so when it
// just encrypted the plaintext keys of an older version.
func (a *app) keyStore(p *profile.Profile) (clientlib.KeyStore, error) {
	opts, err := a.vaultOptions()
	if err != nil {
		return nil, err
	}
	ks, err := p.KeyStore(opts)
	switch {
	case errors.Is(err, keyvault.ErrWrongPassphrase):
		src := a.passphraseSource()
		if src == "" {
			src = "the terminal"
		}
		return nil, fmt.Errorf("wrong passphrase for the keys of profile %s (read from %s); nothing was changed: give the passphrase this profile was made with", p.Dir, src)
	case errors.Is(err, keyvault.ErrNoPassphrase):
		return nil, fmt.Errorf("profile %s: %w\n  set %s, pass --passphrase-file FILE or set %s, or run on a terminal to be asked",
			p.Dir, err, passphraseEnvVar, passphraseFileEnvVar)
	case errors.Is(err, keyvault.ErrKeyringUnavailable):
		return nil, fmt.Errorf("profile %s: %w\n  run coffer in a desktop session where the OS keyring is unlocked", p.Dir, err)
	case err != nil:
		return nil, err
	}
	if p.Vault.Migrated > 0 {
		a.notice("Profile %s was written by an older coffer, with its keys in plaintext: %d key store entries are now encrypted (%s).",
			p.Dir, p.Vault.Migrated, custodyText(p.Vault.Custody))
	} else if p.Vault.Created {
		a.notice("The keys of profile %s are encrypted (%s).", p.Dir, custodyText(p.Vault.Custody))
	}
	return ks, nil
}

func custodyText(custody string) string {
	if custody == keyvault.CustodyKeyring {
		return "the key is in the OS keyring"
	}
	return "locked with your passphrase"
}

// vaultOptions gathers where a passphrase may come from and whether there
// is an OS keyring. A passphrase given by flag or environment also makes a
// new profile use it rather than the keyring: scripts and tests then get
// the same profile on every machine, and never touch a desktop's keyring.
func (a *app) vaultOptions() (keyvault.Options, error) {
	var opts keyvault.Options
	if v := a.getenv(testScryptEnvVar); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 22 {
			return opts, usagef("%s=%q: want a number from 1 to 22 (tests only)", testScryptEnvVar, v)
		}
		opts.ScryptWorkFactor = n
	}
	switch {
	case a.keyring != nil:
		opts.Keyring = a.keyring
	case a.getenv(keyringEnvVar) == "off":
	default:
		opts.Keyring = keyvault.SystemKeyring(a.getenv)
	}
	if a.passphraseSource() != "" {
		opts.PreferPassphrase = true
		opts.Passphrase = func(bool) ([]byte, error) { return a.givenPassphrase() }
		return opts, nil
	}
	if f, ok := a.stdin.(*os.File); ok && !a.noPrompt && term.IsTerminal(int(f.Fd())) {
		opts.Passphrase = func(confirm bool) ([]byte, error) { return a.promptPassphrase(f, confirm) }
	}
	return opts, nil
}

// passphraseSource names where the passphrase comes from, or "" when none
// was given.
func (a *app) passphraseSource() string {
	switch {
	case a.passphraseFile != "":
		return "--passphrase-file"
	case a.getenv(passphraseEnvVar) != "":
		return passphraseEnvVar
	case a.getenv(passphraseFileEnvVar) != "":
		return passphraseFileEnvVar
	}
	return ""
}

func (a *app) givenPassphrase() ([]byte, error) {
	file := a.passphraseFile
	if file == "" && a.getenv(passphraseEnvVar) != "" {
		return []byte(a.getenv(passphraseEnvVar)), nil
	}
	if file == "" {
		file = a.getenv(passphraseFileEnvVar)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	b := make([]byte, maxPassphraseFile+1)
	n, _ := f.Read(b)
	if n > maxPassphraseFile {
		return nil, fmt.Errorf("passphrase file %s is larger than %d bytes", file, maxPassphraseFile)
	}
	// The first line is the passphrase, as with other tools' password files.
	line, _, _ := bytes.Cut(b[:n], []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, fmt.Errorf("%w: passphrase file %s is empty", keyvault.ErrNoPassphrase, file)
	}
	return line, nil
}

// promptPassphrase asks on the terminal, without echo; a new passphrase is
// typed twice.
func (a *app) promptPassphrase(tty *os.File, confirm bool) ([]byte, error) {
	prompt := "Passphrase for this profile's keys: "
	if confirm {
		prompt = "New passphrase to lock this profile's keys: "
	}
	fmt.Fprint(a.stderr, prompt)
	p, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if !confirm {
		return p, nil
	}
	fmt.Fprint(a.stderr, "The same passphrase again: ")
	again, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if !bytes.Equal(p, again) {
		return nil, errors.New("the two passphrases differ; nothing was written")
	}
	return p, nil
}
