package keyvault

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/cofferhq/coffer/clientlib"
)

// Custodies of the data key, as vault.json names them.
const (
	CustodyKeyring    = "keyring"
	CustodyPassphrase = "passphrase"
)

const (
	metaFile  = "vault.json"
	ageFile   = "vault.age"
	keysDir   = "keys"
	formatV1  = 1
	maxAgeLen = 64 << 10 // vault.age holds 32 bytes; anything larger is not ours
)

// KeyringService is the service name under which data keys are kept in the
// OS keyring; the item's user is the vault's random id.
const KeyringService = "coffer"

// meta is vault.json. It holds nothing secret.
type meta struct {
	Version int    `json:"version"`
	Custody string `json:"custody"`
	// KeyringUser names the keyring item (custody keyring): a random id, so
	// that moving the directory keeps it working.
	KeyringUser string `json:"keyring_user,omitempty"`
	// Migrating is set while the plaintext blobs of an older version are
	// being encrypted; Open resumes the work when it finds it set.
	Migrating bool `json:"migrating,omitempty"`
}

// Options say where a vault's data key may come from.
type Options struct {
	// Passphrase returns the passphrase; confirm asks for it to be typed
	// twice, when a new vault is made. It returns ErrNoPassphrase when there
	// is no way to get one. Nil means no passphrase.
	Passphrase func(confirm bool) ([]byte, error)
	// PreferPassphrase makes a new vault use passphrase custody even when a
	// keyring is available: the user gave a passphrase on purpose.
	PreferPassphrase bool
	// Keyring is the OS keyring, or nil where there is none.
	Keyring Keyring
	// ScryptWorkFactor is log2 of scrypt's cost for a new vault.age; 0 is
	// age's default (2^18, about a second). Only tests lower it.
	ScryptWorkFactor int
}

// Info describes what Open found or did.
type Info struct {
	Custody string
	// Created is set when Open made the vault.
	Created bool
	// Migrated counts the plaintext blobs of an older version that Open
	// encrypted.
	Migrated int
}

// Open opens the vault in dir, making it when there is none and encrypting
// the plaintext key store an older version left there. The data key is
// unlocked once and kept for the life of the Store.
func Open(dir string, opts Options) (*Store, *Info, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("keyvault: %w", err)
	}
	m, err := readMeta(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return create(dir, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	dataKey, err := unlock(dir, m, opts)
	if err != nil {
		return nil, nil, err
	}
	s, err := openStore(dir, dataKey)
	if err != nil {
		return nil, nil, err
	}
	info := &Info{Custody: m.Custody}
	if m.Migrating {
		if info.Migrated, err = finishMigration(dir, s, m); err != nil {
			return nil, nil, err
		}
	}
	return s, info, nil
}

func openStore(dir string, dataKey []byte) (*Store, error) {
	files, err := clientlib.NewFileKeyStore(filepath.Join(dir, keysDir))
	if err != nil {
		return nil, err
	}
	return newStore(files, dataKey)
}

func readMeta(dir string) (*meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("keyvault: %s is corrupt: %w", filepath.Join(dir, metaFile), err)
	}
	if m.Version != formatV1 {
		return nil, fmt.Errorf("keyvault: %s has version %d; this coffer reads version %d: upgrade coffer",
			filepath.Join(dir, metaFile), m.Version, formatV1)
	}
	switch m.Custody {
	case CustodyPassphrase:
	case CustodyKeyring:
		if m.KeyringUser == "" {
			return nil, fmt.Errorf("keyvault: %s names no keyring item", filepath.Join(dir, metaFile))
		}
	default:
		return nil, fmt.Errorf("keyvault: %s has an unknown custody %q", filepath.Join(dir, metaFile), m.Custody)
	}
	return &m, nil
}

// unlock returns the data key from the vault's custody.
func unlock(dir string, m *meta, opts Options) ([]byte, error) {
	if m.Custody == CustodyKeyring {
		if opts.Keyring == nil {
			return nil, fmt.Errorf("%w: this profile's keys are locked by the OS keyring (item %s/%s), which cannot be reached here",
				ErrKeyringUnavailable, KeyringService, m.KeyringUser)
		}
		enc, err := opts.Keyring.Get(KeyringService, m.KeyringUser)
		if err != nil {
			return nil, fmt.Errorf("%w: reading item %s/%s: %v", ErrKeyringUnavailable, KeyringService, m.KeyringUser, err)
		}
		k, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(k) != dataKeySize {
			return nil, fmt.Errorf("%w: item %s/%s does not hold a coffer key", ErrKeyringUnavailable, KeyringService, m.KeyringUser)
		}
		return k, nil
	}
	f, err := os.Open(filepath.Join(dir, ageFile))
	if err != nil {
		return nil, fmt.Errorf("keyvault: the passphrase-locked key is missing: %w", err)
	}
	defer f.Close()
	if opts.Passphrase == nil {
		return nil, fmt.Errorf("%w to unlock this profile's keys", ErrNoPassphrase)
	}
	pass, err := opts.Passphrase(false)
	if err != nil {
		return nil, err
	}
	if len(pass) == 0 {
		return nil, fmt.Errorf("%w: the passphrase is empty", ErrNoPassphrase)
	}
	id, err := age.NewScryptIdentity(string(pass))
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	r, err := age.Decrypt(f, id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) || errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("keyvault: %s: %w", filepath.Join(dir, ageFile), err)
	}
	k, err := io.ReadAll(io.LimitReader(r, maxAgeLen))
	if err != nil {
		return nil, fmt.Errorf("keyvault: %s: %w", filepath.Join(dir, ageFile), err)
	}
	if len(k) != dataKeySize {
		return nil, fmt.Errorf("keyvault: %s does not hold a coffer key", filepath.Join(dir, ageFile))
	}
	return k, nil
}

// create makes a new vault in dir; it encrypts the plaintext blobs an older
// version left in keys/.
func create(dir string, opts Options) (*Store, *Info, error) {
	legacy, err := plaintextBlobs(filepath.Join(dir, keysDir))
	if err != nil {
		return nil, nil, err
	}
	dataKey := make([]byte, dataKeySize)
	rand.Read(dataKey)
	m := &meta{Version: formatV1, Migrating: len(legacy) > 0}
	keyringErr := errors.New("no OS keyring here")
	if opts.Keyring != nil && !opts.PreferPassphrase {
		user := make([]byte, 16)
		rand.Read(user)
		m.KeyringUser = "vault-" + hex.EncodeToString(user)
		if keyringErr = opts.Keyring.Set(KeyringService, m.KeyringUser, base64.StdEncoding.EncodeToString(dataKey)); keyringErr == nil {
			m.Custody = CustodyKeyring
		} else {
			m.KeyringUser = ""
		}
	}
	if m.Custody == "" {
		if err := createPassphraseKey(dir, dataKey, opts); err != nil {
			if errors.Is(err, ErrNoPassphrase) && opts.Keyring != nil {
				err = fmt.Errorf("%w (the OS keyring failed: %v)", err, keyringErr)
			}
			return nil, nil, err
		}
		m.Custody = CustodyPassphrase
	}
	// vault.json is written after the key it names, and before any blob is
	// encrypted: an interrupted Open leaves either no vault (and plaintext
	// blobs, as before) or a vault that the next Open finishes.
	if err := writeMeta(dir, m); err != nil {
		return nil, nil, err
	}
	s, err := openStore(dir, dataKey)
	if err != nil {
		return nil, nil, err
	}
	info := &Info{Custody: m.Custody, Created: true}
	if m.Migrating {
		if info.Migrated, err = finishMigration(dir, s, m); err != nil {
			return nil, nil, err
		}
	}
	return s, info, nil
}

func createPassphraseKey(dir string, dataKey []byte, opts Options) error {
	if opts.Passphrase == nil {
		return fmt.Errorf("%w to lock this profile's keys", ErrNoPassphrase)
	}
	pass, err := opts.Passphrase(true)
	if err != nil {
		return err
	}
	if len(pass) == 0 {
		return fmt.Errorf("%w: the passphrase is empty", ErrNoPassphrase)
	}
	r, err := age.NewScryptRecipient(string(pass))
	if err != nil {
		return fmt.Errorf("keyvault: %w", err)
	}
	if opts.ScryptWorkFactor != 0 {
		if opts.ScryptWorkFactor < 1 || opts.ScryptWorkFactor > 22 {
			return fmt.Errorf("keyvault: scrypt work factor %d is outside 1..22", opts.ScryptWorkFactor)
		}
		r.SetWorkFactor(opts.ScryptWorkFactor)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return fmt.Errorf("keyvault: %w", err)
	}
	if _, err := w.Write(dataKey); err != nil {
		return fmt.Errorf("keyvault: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("keyvault: %w", err)
	}
	return writeFile(filepath.Join(dir, ageFile), buf.Bytes())
}

func writeMeta(dir string, m *meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, metaFile), append(b, '\n'))
}

// plaintextBlobs lists the names of blobs in keysDir that are not
// encrypted: the key store of an older version.
func plaintextBlobs(root string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == root {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, blobMagic) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keyvault: %w", err)
	}
	return names, nil
}

// finishMigration encrypts every plaintext blob, each by an atomic rename
// over the plaintext file, then clears the migrating mark.
func finishMigration(dir string, s *Store, m *meta) (int, error) {
	names, err := plaintextBlobs(filepath.Join(dir, keysDir))
	if err != nil {
		return 0, err
	}
	for _, name := range names {
		v, err := s.files.Get(name)
		if err != nil {
			return 0, err
		}
		if err := s.Put(name, v); err != nil {
			return 0, err
		}
	}
	m.Migrating = false
	return len(names), writeMeta(dir, m)
}

// writeFile replaces path atomically with a 0600 file holding b.
func writeFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("keyvault: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keyvault: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keyvault: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keyvault: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keyvault: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("keyvault: %w", err)
	}
	return nil
}
