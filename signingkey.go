package coffer

import (
	"crypto/subtle"

	"filippo.io/edwards25519"
)

// An Ed25519 public key is a point on edwards25519. crypto/ed25519 accepts
// any 32 bytes that decode to a point, including two kinds a signing key
// must never be:
//
//   - A point of small order (the identity and the seven other points whose
//     order divides the cofactor 8). Under such a key the signer's secret
//     plays no part: with the identity as key, the signature (R = identity,
//     s = 0) verifies for every message, so anyone holding the "account"
//     could sign anything and nobody is bound by what it signs.
//   - A non-canonical encoding (a y coordinate at or above p = 2^255-19, or
//     x = 0 with the sign bit set). It names the same point as another,
//     canonical byte string, so two different keys (and two fingerprints)
//     would verify the same signatures.
//
// CheckSigningKey rejects both, and every place a signing key enters the
// protocol calls it: identity parsing (registration on the server, account
// lookups and contacts on clients, transparency-log leaves, the auditor) and
// add ops in commits (the chain verifier). Keys that crypto/ed25519 makes
// from a seed are never small order and always canonical, so no honest key
// is refused.

// CheckSigningKey checks that k is a canonical encoding of an Ed25519 public
// key whose point is not of small order. The error is an *Error with code
// EINVALID.
func CheckSigningKey(k []byte) error {
	if len(k) != SigningKeySize {
		return Errorf(EINVALID, "signing key must be %d bytes, got %d", SigningKeySize, len(k))
	}
	p, err := new(edwards25519.Point).SetBytes(k)
	if err != nil {
		return Errorf(EINVALID, "signing key is not a point on edwards25519")
	}
	// SetBytes accepts non-canonical encodings of valid points; the
	// re-encoding is canonical, so it differs from k exactly when k is not.
	if subtle.ConstantTimeCompare(p.Bytes(), k) != 1 {
		return Errorf(EINVALID, "signing key is not a canonical point encoding")
	}
	// [8]P is the identity exactly when P's order divides 8.
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return Errorf(EINVALID, "signing key is a point of small order")
	}
	return nil
}
