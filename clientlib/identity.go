package clientlib

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"errors"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer"
)

// Identity is the device's private identity: an Ed25519 signing key and an
// X-Wing (MLKEM768-X25519) decryption key. Both are generated here, from
// crypto/rand, and stored only in the KeyStore. The fields are unexported so
// a private key cannot be logged or serialised by accident.
type Identity struct {
	handle  coffer.Handle
	signing ed25519.PrivateKey
	decrypt hpke.PrivateKey
	encSeed []byte
	public  coffer.PublicIdentity
	// acct is the verified chain of the suite v2 account whose user key
	// this identity derives from; nil for a suite v1 identity.
	acct *coffer.AccountState
	// hybrid is that account's hybrid user signing key, whose Ed25519 half
	// is signing; nil for a suite v1 identity.
	hybrid *coffer.HybridPrivateKey
}

// GenerateIdentity creates a fresh identity for handle.
func GenerateIdentity(handle coffer.Handle) (*Identity, error) {
	if _, err := coffer.ParseHandle(string(handle)); err != nil {
		return nil, err
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	encSeed := make([]byte, coffer.EncryptionSecretSize)
	rand.Read(encSeed)
	return newIdentity(handle, seed, encSeed)
}

func newIdentity(handle coffer.Handle, seed, encSeed []byte) (*Identity, error) {
	dk, err := coffer.KEM().NewPrivateKey(encSeed)
	if err != nil {
		return nil, err
	}
	sk := ed25519.NewKeyFromSeed(seed)
	id := &Identity{handle: handle, signing: sk, decrypt: dk, encSeed: encSeed}
	id.public = coffer.PublicIdentity{
		Handle:        handle,
		SigningKey:    sk.Public().(ed25519.PublicKey),
		EncryptionKey: dk.PublicKey().Bytes(),
	}
	return id, nil
}

// Public returns the public identity.
func (id *Identity) Public() coffer.PublicIdentity { return id.public }

// Handle returns the identity's handle.
func (id *Identity) Handle() coffer.Handle { return id.handle }

// SelfSignature signs the canonical public identity.
func (id *Identity) SelfSignature() []byte {
	return coffer.Sign(id.signing, coffer.LabelIdentity, id.public.Marshal())
}

// SafetyNumber returns the 60-digit safety number others compare. A suite
// v2 account's pins the account (its id and genesis), so it does not change
// when devices come and go or the user key rotates.
func (id *Identity) SafetyNumber() string {
	if id.acct != nil {
		return id.acct.SafetyNumber()
	}
	return coffer.FingerprintOf(id.public).SafetyNumber()
}

// QRPayload returns the string to render as a QR code for scanning.
func (id *Identity) QRPayload() string {
	if id.acct != nil {
		return id.acct.QRPayload()
	}
	return coffer.FingerprintOf(id.public).QRPayload(id.handle)
}

// marshalPrivate encodes the private identity for the KeyStore only.
func (id *Identity) marshalPrivate() []byte {
	var b cryptobyte.Builder
	b.AddUint8(coffer.SuiteV1)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(id.handle)) })
	b.AddBytes(id.signing.Seed())
	b.AddBytes(id.encSeed)
	return b.BytesOrPanic()
}

func parsePrivateIdentity(data []byte) (*Identity, error) {
	s := cryptobyte.String(data)
	var (
		v             uint8
		handle        cryptobyte.String
		seed, encSeed []byte
	)
	if !s.ReadUint8(&v) || v != coffer.SuiteV1 || !s.ReadUint8LengthPrefixed(&handle) ||
		!s.ReadBytes(&seed, ed25519.SeedSize) || !s.ReadBytes(&encSeed, coffer.EncryptionSecretSize) || !s.Empty() {
		return nil, errors.New("clientlib: stored identity is corrupt")
	}
	h, err := coffer.ParseHandle(string(handle))
	if err != nil {
		return nil, err
	}
	return newIdentity(h, append([]byte(nil), seed...), append([]byte(nil), encSeed...))
}
