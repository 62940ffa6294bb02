package coffer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer/internal/keymemo"
)

// Suite v1 sizes. Every stored key-material value has exactly one of these
// lengths; the server and the auditor reject anything else.
const (
	SuiteV1 = 1

	SigningKeySize       = ed25519.PublicKeySize // 32
	SignatureSize        = ed25519.SignatureSize // 64
	EncryptionKeySize    = 1216                  // X-Wing encapsulation key
	EncryptionSecretSize = 32                    // X-Wing decapsulation seed
	EpochKeySize         = 32
	HashSize             = 32
	// WrapSize is an HPKE single-shot seal of a 32-byte epoch key under
	// X-Wing: 1120 bytes of encapsulated key, 32 of ciphertext, 16 of tag.
	WrapSize = 1120 + EpochKeySize + 16
	// HistoryLinkSize is an AES-256-GCM seal of an epoch key: nonce, key, tag.
	HistoryLinkSize = 12 + EpochKeySize + 16
)

// KEM returns the HPKE KEM of suite v1, MLKEM768-X25519 (X-Wing). It is a
// post-quantum hybrid: a wrap stays secret as long as either ML-KEM-768 or
// X25519 holds, which protects today's wraps against a future quantum
// adversary that records them now.
func KEM() hpke.KEM { return hpke.MLKEM768X25519() }

// PublicIdentity is what an account publishes: its handle and its two public
// keys. It is self-signed with the signing key at registration, and its
// canonical encoding is what fingerprints and commits refer to.
type PublicIdentity struct {
	Handle        Handle
	SigningKey    ed25519.PublicKey // Ed25519, 32 bytes
	EncryptionKey []byte            // X-Wing encapsulation key, 1216 bytes
}

// Marshal returns the canonical encoding: version, handle, signing key and
// encryption key, each length-prefixed. There is exactly one encoding of a
// given identity, so its hash and signatures are stable.
func (id PublicIdentity) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(SuiteV1)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(id.Handle)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(id.SigningKey) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(id.EncryptionKey) })
	return b.BytesOrPanic()
}

// ParsePublicIdentity parses and fully validates a canonical identity
// encoding: the version, the handle syntax, both key sizes, that the signing
// key is a canonical Ed25519 point not of small order (CheckSigningKey), and
// that the encryption key is a valid X-Wing public key.
func ParsePublicIdentity(data []byte) (PublicIdentity, error) {
	return parsePublicIdentity(data, true)
}

// ParseStoredPublicIdentity parses an identity that this device (or this
// server, in its database) stored itself after ParsePublicIdentity or an
// account chain's checks accepted it, or bytes equal to such an identity.
// It checks the structure, the sizes and the signing key (which is cheap),
// but does not expand the X-Wing key again, which costs about as much as
// an HPKE seal and dominates loading thousands of contacts. Never use it
// on other bytes that came from the network.
func ParseStoredPublicIdentity(data []byte) (PublicIdentity, error) {
	return parsePublicIdentity(data, false)
}

func parsePublicIdentity(data []byte, checkKEM bool) (PublicIdentity, error) {
	var (
		s              = cryptobyte.String(data)
		version        uint8
		handle, sk, ek cryptobyte.String
		id             PublicIdentity
	)
	if !s.ReadUint8(&version) || !s.ReadUint8LengthPrefixed(&handle) ||
		!s.ReadUint8LengthPrefixed(&sk) || !s.ReadUint16LengthPrefixed(&ek) || !s.Empty() {
		return id, Errorf(EINVALID, "malformed public identity encoding")
	}
	if version != SuiteV1 {
		return id, Errorf(EINVALID, "unsupported identity version %d", version)
	}
	h, err := ParseHandle(string(handle))
	if err != nil {
		return id, err
	}
	if err := CheckSigningKey(sk); err != nil {
		return id, err
	}
	if len(ek) != EncryptionKeySize {
		return id, Errorf(EINVALID, "encryption key must be %d bytes, got %d", EncryptionKeySize, len(ek))
	}
	if checkKEM {
		if err := CheckEncryptionKey(ek); err != nil {
			return id, err
		}
	}
	// Copy the keys out, so the identity does not alias (or pin) data.
	return PublicIdentity{Handle: h, SigningKey: ed25519.PublicKey(bytes.Clone(sk)), EncryptionKey: bytes.Clone(ek)}, nil
}

// CheckEncryptionKey checks that k is a valid X-Wing public key.
func CheckEncryptionKey(k []byte) error {
	if len(k) != EncryptionKeySize {
		return Errorf(EINVALID, "encryption key must be %d bytes, got %d", EncryptionKeySize, len(k))
	}
	if keymemo.Known(k) {
		return nil
	}
	if _, err := KEM().NewPublicKey(k); err != nil {
		return Errorf(EINVALID, "encryption key is not a valid MLKEM768-X25519 public key")
	}
	// A member's key is also a tree leaf, checked there again.
	keymemo.Remember(k)
	return nil
}

// VerifySelfSignature checks that sig is the identity's own signing key's
// signature over its canonical encoding.
func (id PublicIdentity) VerifySelfSignature(sig []byte) error {
	if !VerifySignature(id.SigningKey, LabelIdentity, id.Marshal(), sig) {
		return Errorf(EINVALID, "identity self-signature does not verify")
	}
	return nil
}

// Equal reports whether two identities have the same handle and keys.
func (id PublicIdentity) Equal(o PublicIdentity) bool {
	return id.Handle == o.Handle && string(id.SigningKey) == string(o.SigningKey) &&
		string(id.EncryptionKey) == string(o.EncryptionKey)
}
