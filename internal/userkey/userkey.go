// Package userkey seals an account's user key (suite v2) to the account's
// devices and to its recovery key, and opens those wraps.
//
// The user key is an X-Wing key pair; its private half is X-Wing's 32-byte
// seed. A wrap is an HPKE single-shot seal (RFC 9180 base mode; suite v1's
// MLKEM768-X25519, HKDF-SHA256 and AES-256-GCM) of that seed, exactly
// coffer.WrapSize bytes. Its info binds the account, the user key's
// generation and the recipient, so the server cannot move a wrap to
// another device, account or generation: it would not open.
//
// Wraps travel inside account links (see coffer.AccountLink). A device
// that opens one must check, with Open, that the key it gets is the user
// key the verified chain records; Open does that check itself.
package userkey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer"
)

var (
	kdf  = hpke.HKDFSHA256()
	aead = hpke.AES256GCM()
)

// Recipient is who a wrap is for: a device, or the recovery key (the zero
// Device).
type Recipient struct {
	Device coffer.DeviceID
}

// RecoveryRecipient is the recovery key as a wrap recipient.
var RecoveryRecipient = Recipient{}

// info is SignedMessage(LabelUserKeyWrap, account ‖ generation ‖ kind ‖
// device id), kind 1 for a device and 2 for the recovery key (whose id is
// 16 zero bytes).
func info(account coffer.AccountID, generation uint64, r Recipient) []byte {
	b := make([]byte, 0, 16+8+1+16)
	b = append(b, account[:]...)
	b = binary.BigEndian.AppendUint64(b, generation)
	if r.Device.IsZero() {
		b = append(b, 2)
	} else {
		b = append(b, 1)
	}
	b = append(b, r.Device[:]...)
	return coffer.SignedMessage(coffer.LabelUserKeyWrap, b)
}

// Generate returns a fresh user key.
func Generate() (hpke.PrivateKey, error) { return coffer.KEM().GenerateKey() }

// Seal wraps the user key uk, of the given generation, to the recipient's
// X-Wing public key. The caller takes that key from a verified account
// chain, never from the server alone.
func Seal(recipientKey []byte, account coffer.AccountID, generation uint64, r Recipient, uk hpke.PrivateKey) ([]byte, error) {
	pk, err := coffer.KEM().NewPublicKey(recipientKey)
	if err != nil {
		return nil, errors.New("userkey: the recipient's key is not an MLKEM768-X25519 key")
	}
	// seed may be uk's own storage: it is not cleared here, or the next
	// seal would wrap zeros.
	seed, err := uk.Bytes()
	if err != nil {
		return nil, fmt.Errorf("userkey: user key: %w", err)
	}
	w, err := hpke.Seal(pk, kdf, aead, info(account, generation, r), seed)
	if err != nil {
		return nil, fmt.Errorf("userkey: seal: %w", err)
	}
	if len(w) != coffer.WrapSize {
		return nil, fmt.Errorf("userkey: wrap is %d bytes, want %d", len(w), coffer.WrapSize)
	}
	return w, nil
}

// Open opens a wrap made by Seal for r, and checks that the key inside is
// want, the user key of that generation in the verified chain. A wrap that
// does not open, or holds another key, is a *coffer.SecurityError: the
// server (or the link's author) handed this device something else.
func Open(priv hpke.PrivateKey, account coffer.AccountID, generation uint64, r Recipient, wrap, want []byte) (hpke.PrivateKey, error) {
	if len(wrap) != coffer.WrapSize {
		return nil, coffer.Security("user-key-wrap", fmt.Errorf("wrap is %d bytes, want %d", len(wrap), coffer.WrapSize))
	}
	seed, err := hpke.Open(priv, kdf, aead, info(account, generation, r), wrap)
	if err != nil {
		return nil, coffer.Security("user-key-wrap", errors.New("the user key wrap does not open for this recipient, account and generation"))
	}
	uk, err := coffer.KEM().NewPrivateKey(seed)
	if err != nil {
		return nil, coffer.Security("user-key-wrap", errors.New("the user key wrap holds no X-Wing key"))
	}
	if subtle.ConstantTimeCompare(uk.PublicKey().Bytes(), want) != 1 {
		return nil, coffer.Security("user-key-wrap", errors.New("the wrapped user key is not the one the account chain records"))
	}
	return uk, nil
}

// HybridSigningKey returns the account's user signing key for the user key
// uk: the hybrid key coffer.UserSigningKeyFromSeed derives from its seed.
func HybridSigningKey(uk hpke.PrivateKey) (*coffer.HybridPrivateKey, error) {
	seed, err := uk.Bytes()
	if err != nil {
		return nil, fmt.Errorf("userkey: user key: %w", err)
	}
	return coffer.UserSigningKeyFromSeed(seed)
}

// SigningKey returns the Ed25519 half of HybridSigningKey: the signing key
// of the account's suite v1 identity, which signs its group commits and
// resource headers.
func SigningKey(uk hpke.PrivateKey) (ed25519.PrivateKey, error) {
	k, err := HybridSigningKey(uk)
	if err != nil {
		return nil, err
	}
	return k.Ed25519PrivateKey(), nil
}

// A rotation seals the previous user key's seed under the new one, so that
// whoever holds the current user key can walk back through every earlier
// one. The construction is a small object sealed as the rest of Coffer seals
// them: AES-256-GCM with a random nonce (nonce ‖ ciphertext ‖ tag,
// coffer.HistoryLinkSize bytes), under a key that HKDF-SHA256 derives from
// the new seed with LabelPrevUserKey as info, and the account and the new
// generation as additional data, so a sealed seed opens only in the link it
// was made for.

// LabelPrevUserKey derives the key that seals a previous user key.
const LabelPrevUserKey = "coffer/v2/user-key-prev"

func prevAEAD(newSeed []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, newSeed, nil, LabelPrevUserKey, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func prevAD(account coffer.AccountID, generation uint64) []byte {
	return coffer.SignedMessage(LabelPrevUserKey, binary.BigEndian.AppendUint64(append([]byte(nil), account[:]...), generation))
}

// SealPrevious seals prev, the user key of generation-1, under next, the
// user key of generation.
func SealPrevious(next, prev hpke.PrivateKey, account coffer.AccountID, generation uint64) ([]byte, error) {
	nextSeed, err := next.Bytes()
	if err != nil {
		return nil, fmt.Errorf("userkey: user key: %w", err)
	}
	prevSeed, err := prev.Bytes()
	if err != nil {
		return nil, fmt.Errorf("userkey: user key: %w", err)
	}
	a, err := prevAEAD(nextSeed)
	if err != nil {
		return nil, fmt.Errorf("userkey: %w", err)
	}
	nonce := make([]byte, a.NonceSize(), coffer.HistoryLinkSize)
	rand.Read(nonce)
	return a.Seal(nonce, nonce, prevSeed, prevAD(account, generation)), nil
}

// OpenPrevious opens what SealPrevious sealed under next, the user key of
// generation, and checks that it is want, the user key of generation-1 in
// the verified chain. Anything else is a *coffer.SecurityError.
func OpenPrevious(next hpke.PrivateKey, account coffer.AccountID, generation uint64, sealed, want []byte) (hpke.PrivateKey, error) {
	if len(sealed) != coffer.HistoryLinkSize {
		return nil, coffer.Security("user-key-prev", fmt.Errorf("sealed previous user key is %d bytes, want %d", len(sealed), coffer.HistoryLinkSize))
	}
	nextSeed, err := next.Bytes()
	if err != nil {
		return nil, fmt.Errorf("userkey: user key: %w", err)
	}
	a, err := prevAEAD(nextSeed)
	if err != nil {
		return nil, fmt.Errorf("userkey: %w", err)
	}
	n := a.NonceSize()
	seed, err := a.Open(nil, sealed[:n], sealed[n:], prevAD(account, generation))
	if err != nil {
		return nil, coffer.Security("user-key-prev", errors.New("the sealed previous user key does not open under the current one"))
	}
	uk, err := coffer.KEM().NewPrivateKey(seed)
	if err != nil {
		return nil, coffer.Security("user-key-prev", errors.New("the sealed previous user key holds no X-Wing key"))
	}
	if subtle.ConstantTimeCompare(uk.PublicKey().Bytes(), want) != 1 {
		return nil, coffer.Security("user-key-prev", errors.New("the sealed previous user key is not the one the account chain records"))
	}
	return uk, nil
}
