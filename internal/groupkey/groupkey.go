// Package groupkey holds the epoch keys of a group and everything derived
// from them: the key commitment that goes into a signed commit, the per-member
// HPKE wraps, the history links between epochs, and the encryption of small
// metadata blobs.
//
// The construction, in plain words:
//
//   - An epoch key K is 32 random bytes. Every key used under it is derived
//     with HKDF-SHA256(secret = K, salt = none, info = label ‖ 0 ‖ context),
//     where label is one of coffer's "coffer/v1/<purpose>" labels and context
//     is the fixed-length encoding of the group id (16 bytes), the epoch
//     (8 bytes, big endian) and, where there is one, the member id (16 bytes).
//     Different purposes use different labels, so no derived key is ever the
//     same as another, and every derived key is bound to its group and epoch.
//   - The key commitment is one such derivation, published in the commit. It
//     is collision resistant in K, so a member who unwraps a K that matches
//     it knows it holds the same key as every other member.
//   - A wrap is HPKE base mode (X-Wing, HKDF-SHA256, AES-256-GCM) of K to a
//     member's encryption key, with info = label ‖ 0 ‖ group ‖ epoch ‖ member,
//     so a wrap moved to another member, epoch or group does not open.
//   - A history link seals K_e with AES-256-GCM under a key derived from
//     K_{e+1}, so whoever holds the newer key can walk back through history.
//   - Metadata is sealed with AES-256-GCM under a key derived from K for the
//     metadata's purpose and the object it describes: the group for a group's
//     name, the resource id and version for a resource's metadata. The object
//     is in the HKDF info and again in the additional data, so each object
//     version has its own key and a blob moved to another object neither
//     opens under that object's key nor authenticates as it.
//
// AES-256-GCM is always used through cipher.NewGCMWithRandomNonce: a random
// 96-bit nonce is prepended to the ciphertext. Every key here seals few
// messages (one link per epoch, one blob per object version), far below the
// 2^32 messages per key at which random nonces would start to risk a repeat.
package groupkey

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cofferhq/coffer"
)

// EpochKey is the symmetric key of one epoch of a group.
type EpochKey [coffer.EpochKeySize]byte

// NewEpochKey returns a fresh random epoch key.
func NewEpochKey() EpochKey {
	var k EpochKey
	rand.Read(k[:]) // crypto/rand.Read never fails and never returns short.
	return k
}

// String and GoString keep epoch keys out of logs and error messages that
// format a value with %v or %#v by accident. Code that must serialize a key
// uses k[:] explicitly.
func (EpochKey) String() string   { return "groupkey.EpochKey(redacted)" }
func (EpochKey) GoString() string { return "groupkey.EpochKey(redacted)" }

// The suite-v1 HPKE ciphersuite for wraps. The KEM comes from coffer.KEM.
var (
	wrapKDF  = hpke.HKDFSHA256()
	wrapAEAD = hpke.AES256GCM()
)

// bindContext encodes a group, an epoch and optional fixed-length extras. Every
// field has a fixed length (ids 16 bytes, epoch 8), so the concatenation is
// unambiguous without length prefixes.
func bindContext(g coffer.GroupID, epoch uint64, extra ...[]byte) []byte {
	n := len(g) + 8
	for _, e := range extra {
		n += len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, g[:]...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	for _, e := range extra {
		b = append(b, e...)
	}
	return b
}

// derive returns the 32-byte key for label and ctx under secret.
//
// HKDF with no salt is the textbook use for a uniformly random secret: the
// extract step only needs to be a PRF keyed by the secret, and the info string
// carries all the domain separation.
func derive(secret []byte, label string, ctx []byte) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, string(coffer.SignedMessage(label, ctx)), 32)
	if err != nil {
		// hkdf.Key fails only for output lengths above 255*32 bytes.
		panic("groupkey: HKDF failed: " + err.Error())
	}
	return k
}

// newAEAD returns AES-256-GCM with random prepended nonces under key.
func newAEAD(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("groupkey: " + err.Error()) // key is always 32 bytes
	}
	a, err := cipher.NewGCMWithRandomNonce(b)
	if err != nil {
		panic("groupkey: " + err.Error())
	}
	return a
}

// Commitment returns the key commitment to k for group g at epoch. It is
// published in the signed commit that starts the epoch. Members check the key
// they unwrap against it, which catches a server that hands different members
// different keys or swaps wraps between epochs.
func Commitment(k EpochKey, g coffer.GroupID, epoch uint64) [32]byte {
	return [32]byte(derive(k[:], coffer.LabelKeyCommitment, bindContext(g, epoch)))
}

// LabelTreeEpochSecret separates a tree epoch's secret from the root
// node secret it comes from.
const LabelTreeEpochSecret = "coffer/v2/tree-epoch-secret"

// TreeEpochSecret is the secret of the tree epoch g's commit at epoch
// starts, one-way from the root node secret: the key commitment commits
// to it, the epoch key is HKDF(it, salt = commit hash), and wraps and
// history links carry it. The root node secret itself stays with the
// root's subtree: it gives the node's private key, and once the tree
// grows that node is an inner node that later commits seal path secrets
// to, so a history link carrying it would let a member who joined later
// open them after its removal.
func TreeEpochSecret(rootNodeSecret []byte, g coffer.GroupID, epoch uint64) []byte {
	return derive(rootNodeSecret, LabelTreeEpochSecret, bindContext(g, epoch))
}

// LabelTreeKeyCommitment separates a tree group's key commitment, which
// commits to the root node secret, from the commitment to an epoch key.
const LabelTreeKeyCommitment = "coffer/v2/tree-key-commitment"

// TreeCommitment is a tree group's key commitment at epoch: the epoch key
// is HKDF(epoch secret, salt = commit hash) and so cannot be committed to
// inside the commit; the commit commits to the epoch secret instead
// (TreeEpochSecret).
func TreeCommitment(root []byte, g coffer.GroupID, epoch uint64) [32]byte {
	return [32]byte(derive(root, LabelTreeKeyCommitment, bindContext(g, epoch)))
}

// CheckCommitment reports, in constant time, whether want is the commitment
// to k for group g at epoch.
func CheckCommitment(k EpochKey, g coffer.GroupID, epoch uint64, want [32]byte) bool {
	got := Commitment(k, g, epoch)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// wrapInfo binds a wrap to its group, epoch and recipient member: the server
// cannot move a wrap to another member or epoch without it failing to open.
func wrapInfo(g coffer.GroupID, epoch uint64, member coffer.AccountID) []byte {
	return coffer.SignedMessage(coffer.LabelWrap, bindContext(g, epoch, member[:]))
}

// Wrap seals k to a member's X-Wing encryption key. The result is exactly
// coffer.WrapSize bytes: the encapsulated key followed by the AEAD ciphertext.
//
// The caller must have taken recipientEncKey from a verified contact, never
// from the server alone.
func Wrap(recipientEncKey []byte, g coffer.GroupID, epoch uint64, member coffer.AccountID, k EpochKey) ([]byte, error) {
	pk, err := coffer.KEM().NewPublicKey(recipientEncKey)
	if err != nil {
		return nil, fmt.Errorf("groupkey: encryption key of %s is not a valid MLKEM768-X25519 key", member)
	}
	return seal(pk, g, epoch, member, k)
}

func seal(pk hpke.PublicKey, g coffer.GroupID, epoch uint64, member coffer.AccountID, k EpochKey) ([]byte, error) {
	w, err := hpke.Seal(pk, wrapKDF, wrapAEAD, wrapInfo(g, epoch, member), k[:])
	if err != nil {
		return nil, fmt.Errorf("groupkey: sealing epoch key for %s: %w", member, err)
	}
	if len(w) != coffer.WrapSize {
		// Only a change of suite could cause this, and it must not go unnoticed.
		return nil, fmt.Errorf("groupkey: wrap is %d bytes, want %d", len(w), coffer.WrapSize)
	}
	return w, nil
}

// Unwrap opens a wrap made by Wrap for member at epoch of group g. It fails
// if the wrap was made for another member, epoch or group, or was altered.
// The caller must then check the key against the epoch's commitment.
func Unwrap(priv hpke.PrivateKey, g coffer.GroupID, epoch uint64, member coffer.AccountID, wrap []byte) (EpochKey, error) {
	var k EpochKey
	if len(wrap) != coffer.WrapSize {
		return k, fmt.Errorf("groupkey: wrap is %d bytes, want %d", len(wrap), coffer.WrapSize)
	}
	if priv.KEM().ID() != coffer.KEM().ID() {
		return k, errors.New("groupkey: private key is not an MLKEM768-X25519 key")
	}
	pt, err := hpke.Open(priv, wrapKDF, wrapAEAD, wrapInfo(g, epoch, member), wrap)
	if err != nil || len(pt) != len(k) {
		return k, errors.New("groupkey: wrap does not open for this member, group and epoch")
	}
	copy(k[:], pt)
	return k, nil
}

// Recipient is a member who receives a wrap of an epoch key.
type Recipient struct {
	Member        coffer.AccountID
	EncryptionKey []byte // X-Wing encapsulation key, from a verified contact
	// Key, when set, is EncryptionKey already parsed. Parsing an X-Wing key
	// expands the ML-KEM matrix and costs about as much as a seal, so a
	// client that rotates a large group keeps parsed keys between rotations.
	Key hpke.PublicKey
}

// WrapMany wraps k for every recipient, in order: wraps[i] is for
// recipients[i]. It is WrapEach collecting every wrap; if any recipient
// fails, it returns the error of the first failing one in input order, and
// no wraps.
func WrapMany(recipients []Recipient, g coffer.GroupID, epoch uint64, k EpochKey) ([][]byte, error) {
	wraps := make([][]byte, len(recipients))
	err := WrapEach(recipients, g, epoch, k, func(i int, wrap []byte) error {
		wraps[i] = wrap
		return nil
	})
	if err != nil {
		return nil, err
	}
	return wraps, nil
}

// linkContext returns the key-derivation and AAD contexts of the history
// link from olderEpoch to olderEpoch+1. The key is bound to the newer epoch
// (whose key it is derived from) and the AAD to the older epoch (whose key
// it seals), so a link cannot be replayed one step along the chain.
func linkContext(g coffer.GroupID, olderEpoch uint64) (keyInfo, aad []byte, ok bool) {
	if olderEpoch == math.MaxUint64 {
		return nil, nil, false // there is no epoch after it
	}
	return bindContext(g, olderEpoch+1), coffer.SignedMessage(coffer.LabelHistoryLink, bindContext(g, olderEpoch)), true
}

// SealHistoryLink seals older, the key of olderEpoch, under a key derived
// from newer, the key of olderEpoch+1. The result is exactly
// coffer.HistoryLinkSize bytes. Links let a member who joins later read the
// group's history, when the group shares it.
//
// It panics if olderEpoch is the largest uint64, which has no next epoch.
func SealHistoryLink(newer EpochKey, g coffer.GroupID, olderEpoch uint64, older EpochKey) []byte {
	keyInfo, aad, ok := linkContext(g, olderEpoch)
	if !ok {
		panic("groupkey: no epoch follows epoch 2^64-1")
	}
	a := newAEAD(derive(newer[:], coffer.LabelHistoryLink, keyInfo))
	return a.Seal(make([]byte, 0, coffer.HistoryLinkSize), nil, older[:], aad)
}

// OpenHistoryLink opens a link made by SealHistoryLink and returns the key of
// olderEpoch. The caller must check it against that epoch's commitment.
func OpenHistoryLink(newer EpochKey, g coffer.GroupID, olderEpoch uint64, link []byte) (EpochKey, error) {
	var k EpochKey
	keyInfo, aad, ok := linkContext(g, olderEpoch)
	if !ok || len(link) != coffer.HistoryLinkSize {
		return k, errors.New("groupkey: malformed history link")
	}
	a := newAEAD(derive(newer[:], coffer.LabelHistoryLink, keyInfo))
	pt, err := a.Open(nil, nil, link, aad)
	if err != nil {
		return k, errors.New("groupkey: history link does not open for this group and epoch")
	}
	copy(k[:], pt)
	return k, nil
}

// metadataPurposes lists the labels SealMetadata accepts, with the length of
// the binding each requires. The purpose picks the derived key, so letting any
// label through would let a caller derive, say, the history-link key of the
// previous epoch; an allowlist keeps every purpose's key distinct by
// construction. A fixed binding length per purpose keeps the HKDF info (and
// the AAD) an unambiguous concatenation of fixed-length fields.
var metadataPurposes = map[string]int{
	coffer.LabelGroupMeta:    0,                            // the group id is already in the context
	coffer.LabelResourceMeta: len(coffer.ResourceID{}) + 8, // resource id ‖ version (big endian)
}

// metadataKey derives the AES-256-GCM key for the metadata of one object:
// the object's binding is part of the HKDF info, so no two objects (two
// resources, two versions of one resource, or two groups) share a key, and
// learning or misusing one object's key says nothing about another's.
func metadataKey(k EpochKey, g coffer.GroupID, epoch uint64, purpose string, binding []byte) []byte {
	return derive(k[:], purpose, bindContext(g, epoch, binding))
}

func checkMetadataPurpose(purpose string, binding []byte) error {
	n, ok := metadataPurposes[purpose]
	if !ok {
		return fmt.Errorf("groupkey: %q is not a metadata purpose", purpose)
	}
	if len(binding) != n {
		return fmt.Errorf("groupkey: %s binding is %d bytes, want %d", purpose, len(binding), n)
	}
	return nil
}

// SealMetadata encrypts a small metadata blob for one object under a key
// derived from k, purpose and binding. purpose must be coffer.LabelGroupMeta
// (binding empty: the group is the object) or coffer.LabelResourceMeta
// (binding = resource id ‖ version, 24 bytes). The binding is authenticated
// but not stored: opening under another binding fails, so the server cannot
// move metadata between objects. The output is 28 bytes longer than
// plaintext.
//
// It panics on any other purpose or binding length, which is a programming
// error.
func SealMetadata(k EpochKey, g coffer.GroupID, epoch uint64, purpose string, binding, plaintext []byte) []byte {
	if err := checkMetadataPurpose(purpose, binding); err != nil {
		panic(err.Error())
	}
	a := newAEAD(metadataKey(k, g, epoch, purpose, binding))
	return a.Seal(nil, nil, plaintext, coffer.SignedMessage(purpose, bindContext(g, epoch, binding)))
}

// OpenMetadata decrypts a blob made by SealMetadata with the same key, group,
// epoch, purpose and binding.
func OpenMetadata(k EpochKey, g coffer.GroupID, epoch uint64, purpose string, binding, ciphertext []byte) ([]byte, error) {
	if err := checkMetadataPurpose(purpose, binding); err != nil {
		return nil, err
	}
	a := newAEAD(metadataKey(k, g, epoch, purpose, binding))
	pt, err := a.Open(nil, nil, ciphertext, coffer.SignedMessage(purpose, bindContext(g, epoch, binding)))
	if err != nil {
		return nil, errors.New("groupkey: metadata does not open for this object, group and epoch")
	}
	return pt, nil
}
