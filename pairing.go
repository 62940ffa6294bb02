package coffer

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// A pairing links a new device to an account (suite v2). The new device
// posts its public keys and a random nonce under the account's handle and
// shows the pairing code; the user types that code into a device the
// account already has, which fetches the pairing from the server and
// recomputes the code from what it got. The code is 80 bits of a hash of
// the handle, the device's name and keys and the nonce, so a server that swaps the
// keys must find a second preimage of those 80 bits within the pairing's
// few minutes: the approving device then signs an add-device link for
// exactly the keys the new device showed.

// LabelPairingCode is the hash label of a pairing code.
const LabelPairingCode = "coffer/v2/pairing-code"

// PairingNonceSize is the size of a pairing's random nonce.
const PairingNonceSize = 16

var pairingEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// PairingCode returns the code of a pairing: 16 base32 characters in four
// groups of four, as "ABCD-EFGH-IJKL-MNOP".
func PairingCode(handle Handle, d DeviceKeys, nonce []byte) string {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(handle)) })
	b.AddBytes(d.ID[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(d.Name)) })
	if d.SigningKey.raw != nil {
		b.AddBytes(d.SigningKey.Bytes())
	}
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(d.EncryptionKey) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(nonce) })
	h := sha256.Sum256(SignedMessage(LabelPairingCode, b.BytesOrPanic()))
	s := pairingEncoding.EncodeToString(h[:10])
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// ParsePairingCode normalizes a code as a user typed it (any case, with or
// without dashes or spaces) to the form PairingCode returns.
func ParsePairingCode(s string) (string, error) {
	c := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
	if len(c) != 16 {
		return "", Errorf(EINVALID, "a pairing code has 16 letters and digits, as ABCD-EFGH-IJKL-MNOP")
	}
	if _, err := pairingEncoding.DecodeString(c); err != nil {
		return "", Errorf(EINVALID, "a pairing code uses only the letters A-Z and the digits 2-7")
	}
	return c[0:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16], nil
}
