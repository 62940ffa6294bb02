package coffer

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"sync"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Suite v2 signatures are hybrid: an Ed25519 signature and an ML-DSA-65
// signature (FIPS 204, circl's sign/mldsa/mldsa65) over the same
// domain-separated message, SignedMessage(label, body). ML-DSA additionally
// takes the label as its context string, so the post-quantum half binds
// the purpose twice. A hybrid signature verifies only when both halves
// verify: it stays unforgeable as long as either scheme does, so a future
// quantum adversary who can forge Ed25519 still cannot sign, and a flaw in
// the young ML-DSA implementations still leaves Ed25519 standing.
//
// Encodings are fixed-size concatenations, Ed25519 half first:
//
//	public key: ed25519 [32] ‖ ml-dsa-65 [1952]   (HybridPublicKeySize)
//	signature:  ed25519 [64] ‖ ml-dsa-65 [3309]   (HybridSignatureSize)
//
// They carry no version byte of their own: every structure that holds one
// (an account link, a suite v2 commit or header) starts with its own
// version, which names the suite and so the sizes.
//
// A key pair comes from one 32-byte seed. HKDF-SHA256 (no salt: the seed
// is uniformly random) expands it under two labels into the Ed25519 seed
// and the ML-DSA-65 seed (its ξ), so a device, or a recovery kit, stores one
// secret and re-derives both halves.

// Suite v2 sizes.
const (
	SuiteV2 = 2

	HybridPublicKeySize = ed25519.PublicKeySize + mldsa65.PublicKeySize // 1984
	HybridSignatureSize = ed25519.SignatureSize + mldsa65.SignatureSize // 3373
	HybridSeedSize      = 32
)

// Labels of suite v2 that derive hybrid keys. The HKDF info strings are
// labels like every other domain separator.
const (
	LabelHybridSeedEd25519 = "coffer/v2/hybrid-seed/ed25519"
	LabelHybridSeedMLDSA   = "coffer/v2/hybrid-seed/ml-dsa-65"
)

// HybridPublicKey is a parsed suite v2 signing key. Its zero value is not a
// key: get one from ParseHybridPublicKey or HybridPrivateKey.Public.
//
// A parsed key holds its 1,984 bytes, not its expanded ML-DSA-65 form:
// circl's expanded public key (the matrix A and t1 in NTT form) is about
// 40 KB, and a state of 100,000 members kept 4 GB of them, once in each
// client and again in cofferd. Verify expands through expandedKeys, which
// keeps the keys that sign often (admins, committers) expanded.
type HybridPublicKey struct {
	raw *[HybridPublicKeySize]byte
	ml  *mldsa65.PublicKey // set only for a key pair's own public half
}

// HybridPrivateKey is a suite v2 signing key pair.
type HybridPrivateKey struct {
	ed  ed25519.PrivateKey
	ml  *mldsa65.PrivateKey
	pub HybridPublicKey
}

// NewHybridKeyFromSeed derives a key pair from a 32-byte seed. The same seed
// always gives the same key pair.
func NewHybridKeyFromSeed(seed []byte) (*HybridPrivateKey, error) {
	if len(seed) != HybridSeedSize {
		return nil, Errorf(EINVALID, "hybrid key seed must be %d bytes, got %d", HybridSeedSize, len(seed))
	}
	edSeed := deriveKey(seed, LabelHybridSeedEd25519, ed25519.SeedSize)
	mlSeed := deriveKey(seed, LabelHybridSeedMLDSA, mldsa65.SeedSize)
	ed := ed25519.NewKeyFromSeed(edSeed)
	mlPub, mlPriv := mldsa65.NewKeyFromSeed((*[mldsa65.SeedSize]byte)(mlSeed))
	raw := new([HybridPublicKeySize]byte)
	copy(raw[:ed25519.PublicKeySize], ed[ed25519.SeedSize:])
	mlPub.Pack((*[mldsa65.PublicKeySize]byte)(raw[ed25519.PublicKeySize:]))
	clear(edSeed)
	clear(mlSeed)
	return &HybridPrivateKey{ed: ed, ml: mlPriv, pub: HybridPublicKey{raw: raw, ml: mlPub}}, nil
}

// deriveKey is HKDF-SHA256 of a uniformly random secret under a label.
func deriveKey(secret []byte, label string, n int) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, label, n)
	if err != nil {
		// Only an output longer than 255 hash lengths fails.
		panic("coffer: hkdf: " + err.Error())
	}
	return k
}

// Public returns the public half.
func (k *HybridPrivateKey) Public() HybridPublicKey { return k.pub }

// Ed25519PrivateKey returns the Ed25519 half alone, for the suite v1
// structures an account still signs with its user key (group commits and
// resource headers, until they move to suite v2). An Ed25519 half stripped
// from a hybrid signature cannot pass as a suite v1 signature: every signed
// body starts with its version byte, and each verifier accepts only its
// own suite's version.
func (k *HybridPrivateKey) Ed25519PrivateKey() ed25519.PrivateKey {
	return append(ed25519.PrivateKey(nil), k.ed...)
}

// Sign signs body for the purpose named by label. The ML-DSA half is hedged
// (FIPS 204's default: fresh randomness mixed into a deterministic nonce),
// which keeps a fault or a weak random source from leaking the key.
func (k *HybridPrivateKey) Sign(label string, body []byte) []byte {
	return k.sign(label, body, true)
}

func (k *HybridPrivateKey) sign(label string, body []byte, hedged bool) []byte {
	msg := SignedMessage(label, body)
	sig := make([]byte, HybridSignatureSize)
	copy(sig, ed25519.Sign(k.ed, msg))
	// SignTo fails only for a context over 255 bytes, or when crypto/rand
	// fails, which it never does; every label is short.
	if err := mldsa65.SignTo(k.ml, msg, []byte(label), hedged, sig[ed25519.SignatureSize:]); err != nil {
		panic("coffer: ml-dsa-65 sign: " + err.Error())
	}
	return sig
}

// ParseHybridPublicKey parses the fixed-size encoding of a hybrid public
// key. It checks the Ed25519 half with CheckSigningKey (canonical, not of
// small order). Every 1952-byte string is the canonical encoding of some
// ML-DSA-65 public key, so that half needs no check beyond its length.
// The key does not alias b.
func ParseHybridPublicKey(b []byte) (HybridPublicKey, error) {
	if len(b) != HybridPublicKeySize {
		return HybridPublicKey{}, Errorf(EINVALID, "hybrid signing key must be %d bytes, got %d", HybridPublicKeySize, len(b))
	}
	if err := CheckSigningKey(b[:ed25519.PublicKeySize]); err != nil {
		return HybridPublicKey{}, err
	}
	raw := new([HybridPublicKeySize]byte)
	copy(raw[:], b)
	return HybridPublicKey{raw: raw}, nil
}

// expandedKeys caches expanded ML-DSA-65 public keys by their encoding.
// Expansion costs about 0.1 ms, as much as half a verification, so a
// signer verified over and over (the admins of a long chain) is expanded
// once; a member verified once (its account genesis) passes through. The
// bound keeps it near 10 MB.
var expandedKeys, _ = lru.New[[mldsa65.PublicKeySize]byte, *mldsa65.PublicKey](256)

// signedMessages holds buffers for the message Verify checks (the
// SignedMessage encoding, which both halves sign). A new member verifies
// about 250 MB of commits at 100,000 members; a fresh buffer per commit
// was about a second of its CPU in copying into new memory.
var signedMessages = sync.Pool{New: func() any { return new([]byte) }}

// mldsa returns k's expanded ML-DSA-65 half.
func (k HybridPublicKey) mldsa() *mldsa65.PublicKey {
	if k.ml != nil {
		return k.ml
	}
	enc := (*[mldsa65.PublicKeySize]byte)(k.raw[ed25519.PublicKeySize:])
	if ml, ok := expandedKeys.Get(*enc); ok {
		return ml
	}
	ml := new(mldsa65.PublicKey)
	ml.Unpack(enc)
	expandedKeys.Add(*enc, ml)
	return ml
}

// Bytes returns the encoding of k, or nil for the zero value.
func (k HybridPublicKey) Bytes() []byte {
	if k.raw == nil {
		return nil
	}
	return append([]byte(nil), k.raw[:]...)
}

// IsZero reports whether k is the zero value, which is no key.
func (k HybridPublicKey) IsZero() bool { return k.raw == nil }

// Equal reports whether k and o are the same key.
func (k HybridPublicKey) Equal(o HybridPublicKey) bool {
	if k.raw == nil || o.raw == nil {
		return k.raw == o.raw
	}
	return subtle.ConstantTimeCompare(k.raw[:], o.raw[:]) == 1
}

// Ed25519 returns the Ed25519 half, for the places that still speak suite
// v1 (and for point checks).
func (k HybridPublicKey) Ed25519() ed25519.PublicKey {
	if k.raw == nil {
		return nil
	}
	return ed25519.PublicKey(append([]byte(nil), k.raw[:ed25519.PublicKeySize]...))
}

// Verify checks that sig is k's hybrid signature of body under label. The
// error says which check failed (its size, the Ed25519 half, the ML-DSA-65
// half); both halves are always checked, and either failing fails the
// signature. The error is an *Error with code EINVALID.
func (k HybridPublicKey) Verify(label string, body, sig []byte) error {
	if k.raw == nil {
		return Errorf(EINVALID, "no hybrid signing key")
	}
	if len(sig) != HybridSignatureSize {
		return Errorf(EINVALID, "hybrid signature must be %d bytes, got %d", HybridSignatureSize, len(sig))
	}
	buf := signedMessages.Get().(*[]byte)
	msg := appendSignedMessage((*buf)[:0], label, body)
	edOK := ed25519.Verify(ed25519.PublicKey(k.raw[:ed25519.PublicKeySize]), msg, sig[:ed25519.SignatureSize])
	mlOK := mldsa65.Verify(k.mldsa(), msg, []byte(label), sig[ed25519.SignatureSize:])
	*buf = msg
	signedMessages.Put(buf)
	switch {
	case !edOK && !mlOK:
		return Errorf(EINVALID, "hybrid signature: neither the Ed25519 half nor the ML-DSA-65 half verifies")
	case !edOK:
		return Errorf(EINVALID, "hybrid signature: the Ed25519 half does not verify")
	case !mlOK:
		return Errorf(EINVALID, "hybrid signature: the ML-DSA-65 half does not verify")
	}
	return nil
}
