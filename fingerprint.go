package coffer

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strings"
)

// A fingerprint is SHA-512 over the fingerprint label and the identity's
// canonical encoding (version, handle, both public keys). Two people compare
// it out of band, either as a 60-digit safety number or by scanning a QR
// payload, before either wraps a group key for the other.
//
// The safety number takes the first 60 bytes of the hash in twelve 5-byte
// chunks; each chunk, read as a big-endian integer, is reduced mod 100000 to
// a 5-digit group. That keeps about 199 bits: an attacker cannot find a
// second identity with the same number. The QR payload carries the first
// 32 bytes of the hash in base64url, so scanning compares 256 bits.
type Fingerprint [sha512.Size]byte

// FingerprintOf returns the fingerprint of id.
func FingerprintOf(id PublicIdentity) Fingerprint {
	return sha512.Sum512(SignedMessage(LabelFingerprint, id.Marshal()))
}

// SafetyNumber returns 60 digits in 12 space-separated groups of 5.
func (f Fingerprint) SafetyNumber() string {
	var sb strings.Builder
	for i := 0; i < 12; i++ {
		if i > 0 {
			sb.WriteByte(' ')
		}
		var chunk [8]byte
		copy(chunk[3:], f[i*5:i*5+5])
		n := binary.BigEndian.Uint64(chunk[:]) % 100000
		d := []byte{'0', '0', '0', '0', '0'}
		for j := 4; j >= 0; j-- {
			d[j] = byte('0' + n%10)
			n /= 10
		}
		sb.Write(d)
	}
	return sb.String()
}

const qrPrefix = "coffer:v1:"

// QRPayload returns "coffer:v1:<handle>:<base64url of 32 hash bytes>".
func (f Fingerprint) QRPayload(h Handle) string {
	return qrPrefix + string(h) + ":" + base64.RawURLEncoding.EncodeToString(f[:32])
}

// MatchVerificationCode reports whether code, as typed or scanned by a user,
// matches the fingerprint of id. It accepts the safety number with or
// without spaces, or a QR payload for id's handle. The comparison is in
// constant time: the code is a secret-free value, but the habit costs nothing.
func MatchVerificationCode(id PublicIdentity, code string) bool {
	f := FingerprintOf(id)
	code = strings.TrimSpace(code)
	if strings.HasPrefix(code, qrPrefix) {
		return subtle.ConstantTimeCompare([]byte(code), []byte(f.QRPayload(id.Handle))) == 1
	}
	digits := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, code)
	want := strings.ReplaceAll(f.SafetyNumber(), " ", "")
	return subtle.ConstantTimeCompare([]byte(digits), []byte(want)) == 1
}
