// Package keyvault keeps a desktop client's key store encrypted at rest. It
// is what the coffer CLI's profile stores its device secrets in: the
// identity's signing and X-Wing seeds, the refresh and access tokens, the
// account's keys and everything else clientlib puts in a KeyStore.
//
// Construction: a random 256-bit data key encrypts every blob with
// AES-256-GCM (a fresh random 96-bit nonce per write; the blob's name and a
// versioned label are the additional data, so that blobs cannot be swapped
// between names). The data key itself is held in one of two custodies,
// chosen when the vault is made and recorded in vault.json:
//
//   - keyring: the OS keyring (macOS Keychain, Windows Credential Manager,
//     the Secret Service on Linux) through github.com/zalando/go-keyring;
//   - passphrase: vault.age, the data key encrypted with filippo.io/age's
//     scrypt recipient under the user's passphrase.
//
// Layout under the vault directory (0700; files 0600):
//
//	vault.json   {"version":1,"custody":"passphrase"|"keyring",…} nothing secret
//	vault.age    the age-encrypted data key (passphrase custody only)
//	keys/        one encrypted blob per name (a clientlib.FileKeyStore)
//
// A directory with keys/ but no vault.json was written by a version that
// kept blobs in plaintext: Open encrypts them in place and reports it. No
// code path writes a plaintext blob.
package keyvault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/clientlib"
)

// Errors of Open that callers explain to the user.
var (
	// ErrWrongPassphrase: the passphrase does not open vault.age. Nothing
	// was changed on disk.
	ErrWrongPassphrase = errors.New("keyvault: wrong passphrase")
	// ErrNoPassphrase: the vault needs a passphrase and none was given.
	ErrNoPassphrase = errors.New("keyvault: a passphrase is needed")
	// ErrKeyringUnavailable: the vault's data key is in the OS keyring and
	// the keyring cannot be reached, or no longer holds it.
	ErrKeyringUnavailable = errors.New("keyvault: the OS keyring is unavailable")
)

// blobMagic starts every encrypted blob. A plaintext blob of an older
// version never starts with it (the identity starts with a version byte,
// tokens are base64url, states are JSON), which is what lets an
// interrupted migration resume blob by blob.
var blobMagic = []byte("coffer-keyvault-v1\n")

// blobLabel is the HKDF info that derives the blob key from the data key and
// the prefix of each blob's additional data.
const blobLabel = "coffer/v1/keyvault-blob"

// dataKeySize is the size of the random data key.
const dataKeySize = 32

// Store is an encrypted clientlib.KeyStore: what Open returns.
type Store struct {
	files *clientlib.FileKeyStore
	aead  cipher.AEAD
}

var _ clientlib.KeyStore = (*Store)(nil)

func newStore(files *clientlib.FileKeyStore, dataKey []byte) (*Store, error) {
	if len(dataKey) != dataKeySize {
		return nil, fmt.Errorf("keyvault: the data key is %d bytes, want %d", len(dataKey), dataKeySize)
	}
	k, err := hkdf.Key(sha256.New, dataKey, nil, blobLabel, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	// AES-256-GCM with random nonces: a profile writes far fewer than the
	// 2^32 blobs under one key after which random 96-bit nonces would risk
	// a collision.
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Store{files: files, aead: aead}, nil
}

func additionalData(name string) []byte {
	return []byte(blobLabel + "\x00" + name)
}

func (s *Store) seal(name string, value []byte) []byte {
	out := make([]byte, 0, len(blobMagic)+s.aead.NonceSize()+len(value)+s.aead.Overhead())
	out = append(out, blobMagic...)
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, value, additionalData(name))
}

func (s *Store) open(name string, blob []byte) ([]byte, error) {
	if !bytes.HasPrefix(blob, blobMagic) {
		return nil, fmt.Errorf("keyvault: %s is not encrypted: the profile was changed by an older coffer or by hand", name)
	}
	rest := blob[len(blobMagic):]
	if len(rest) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, fmt.Errorf("keyvault: %s is truncated", name)
	}
	nonce, ct := rest[:s.aead.NonceSize()], rest[s.aead.NonceSize():]
	v, err := s.aead.Open(nil, nonce, ct, additionalData(name))
	if err != nil {
		return nil, fmt.Errorf("keyvault: %s does not decrypt: it was damaged, or belongs to another profile", name)
	}
	return v, nil
}

// Put encrypts value and stores it under name.
func (s *Store) Put(name string, value []byte) error {
	return s.files.Put(name, s.seal(name, value))
}

// Get returns the decrypted value of name, or clientlib.ErrNotFound.
func (s *Store) Get(name string) ([]byte, error) {
	b, err := s.files.Get(name)
	if err != nil {
		return nil, err
	}
	return s.open(name, b)
}

// Delete removes name.
func (s *Store) Delete(name string) error { return s.files.Delete(name) }
