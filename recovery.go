package coffer

import (
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/tyler-smith/go-bip39"
)

// A recovery key is 256 random bits that the account holder keeps on paper
// (the recovery kit): as 24 BIP-39 English words, the last of which carries
// an 8-bit SHA-256 checksum, or as a QR code of the same words. No device
// keeps it and the server never sees it.
//
// Everything the account chain needs from it is derived with HKDF-SHA256
// (no salt: the key is uniformly random) under its own label:
//
//   - a hybrid signing key (NewHybridKeyFromSeed of a derived seed), with
//     which the recovery key authors add-device and set-recovery links;
//   - an X-Wing key pair (KEM().NewPrivateKey of a derived 32-byte seed,
//     X-Wing's own private key format), to which
//     devices wrap the account's user key, so the recovery key alone
//     restores it.
//
// The chain does not carry the recovery signing key until it signs. It
// carries a commitment, SHA-256 over LabelRecoveryCommitment, the account
// id, the signing key and the encryption key, and the encryption key itself
// (devices wrap to it). A link the recovery key signs names its signing
// key, and the verifier checks it against the commitment.

// Labels of the recovery key's derivations and commitment.
const (
	LabelRecoverySigningSeed    = "coffer/v2/recovery-seed/signing"
	LabelRecoveryEncryptionSeed = "coffer/v2/recovery-seed/encryption"
	LabelRecoveryCommitment     = "coffer/v2/recovery-commitment"
)

// RecoveryKeySize is the size of a recovery key, and RecoveryWordCount the
// number of words that spell it.
const (
	RecoveryKeySize   = 32
	RecoveryWordCount = 24
)

// RecoveryKey is an account's recovery key. It is a secret: never log it.
type RecoveryKey [RecoveryKeySize]byte

// NewRecoveryKey returns a fresh random recovery key.
func NewRecoveryKey() *RecoveryKey {
	k := new(RecoveryKey)
	rand.Read(k[:]) // crypto/rand.Read never fails and never returns short.
	return k
}

// SigningKey derives the recovery key's hybrid signing key.
func (k *RecoveryKey) SigningKey() *HybridPrivateKey {
	seed := deriveKey(k[:], LabelRecoverySigningSeed, HybridSeedSize)
	sk, err := NewHybridKeyFromSeed(seed)
	if err != nil {
		panic("coffer: " + err.Error()) // the seed has the right size
	}
	return sk
}

// EncryptionKey derives the recovery key's X-Wing key pair.
func (k *RecoveryKey) EncryptionKey() hpke.PrivateKey {
	seed := deriveKey(k[:], LabelRecoveryEncryptionSeed, 32)
	dk, err := KEM().NewPrivateKey(seed)
	if err != nil {
		panic("coffer: x-wing key: " + err.Error()) // every 32-byte seed is a key
	}
	return dk
}

// Commitment returns the recovery commitment of k for account.
func (k *RecoveryKey) Commitment(account AccountID) [32]byte {
	return RecoveryCommitment(account, k.SigningKey().Public(), k.EncryptionKey().PublicKey().Bytes())
}

// RecoveryCommitment is SHA-256 of SignedMessage(LabelRecoveryCommitment,
// account ‖ signing key ‖ encryption key). Binding the account id keeps one
// kit's commitment from meaning anything in another account.
func RecoveryCommitment(account AccountID, signingKey HybridPublicKey, encryptionKey []byte) [32]byte {
	body := make([]byte, 0, 16+HybridPublicKeySize+len(encryptionKey))
	body = append(body, account[:]...)
	body = append(body, signingKey.Bytes()...)
	body = append(body, encryptionKey...)
	return sha256.Sum256(SignedMessage(LabelRecoveryCommitment, body))
}

// Words returns the 24 BIP-39 words of k, lowercase, separated by single
// spaces. That one line is also what the kit's QR code holds and what
// `coffer recover` reads.
func (k *RecoveryKey) Words() string {
	w, err := bip39.NewMnemonic(k[:])
	if err != nil {
		panic("coffer: bip39: " + err.Error()) // 256 bits is a valid entropy size
	}
	return w
}

// ParseRecoveryWords parses the words of a recovery kit. It accepts any
// case and any whitespace between words. The error, an *Error with code
// EINVALID, names the first unknown word and its position, or says that
// the checksum does not match (a word is wrong or words are out of order).
// It never repeats the valid words, which are the secret.
func ParseRecoveryWords(s string) (*RecoveryKey, error) {
	words := strings.Fields(strings.ToLower(s))
	if len(words) != RecoveryWordCount {
		return nil, Errorf(EINVALID, "a recovery kit has %d words, got %d", RecoveryWordCount, len(words))
	}
	for i, w := range words {
		if _, ok := bip39.GetWordIndex(w); !ok {
			return nil, Errorf(EINVALID, "word %d (%q) is not a recovery-kit word: check its spelling", i+1, truncate(w, 20))
		}
	}
	entropy, err := bip39.EntropyFromMnemonic(strings.Join(words, " "))
	if err != nil {
		if err == bip39.ErrChecksumIncorrect {
			return nil, Errorf(EINVALID, "the recovery words do not match their checksum: a word is wrong or out of order")
		}
		return nil, Errorf(EINVALID, "the recovery words do not decode")
	}
	defer clear(entropy)
	if len(entropy) != RecoveryKeySize {
		return nil, Errorf(EINVALID, "the recovery words decode to %d bytes, not %d", len(entropy), RecoveryKeySize)
	}
	k := new(RecoveryKey)
	copy(k[:], entropy)
	return k, nil
}

// String hides the key, so that a recovery key printed by mistake (%v in a
// log line) shows no secret.
func (k RecoveryKey) String() string { return "coffer.RecoveryKey(redacted)" }

// GoString hides the key from %#v too.
func (k RecoveryKey) GoString() string { return k.String() }

// Format hides the key from every verb, %x and %s included.
func (k RecoveryKey) Format(f fmt.State, verb rune) { fmt.Fprint(f, k.String()) }
