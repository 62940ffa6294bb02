package coffer

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// A pairing links a new device to an account (suite v2) through a code the
// user carries from the new device to one the account already has. The
// code is an 80-bit secret that the new device draws and the server never
// sees; the server knows the pairing only by an id hashed from it. From
// the secret, HKDF-SHA256 derives an HMAC-SHA256 key that authenticates
// both directions:
//
//   - the new device's request (handle, device name and keys): the
//     approving device checks it, so a server that swaps in keys of its
//     own gets no add-device link for them;
//   - the approval (the add-device link body the approving device signed):
//     the new device checks it, so a server cannot have a device join an
//     account of the server's making.
//
// Brute-forcing 80 bits from the id or a MAC is out of reach within the
// pairing's few minutes, or at all.

// Labels of pairings.
const (
	LabelPairingID       = "coffer/v2/pairing-id"
	LabelPairingKey      = "coffer/v2/pairing-mac-key"
	LabelPairingRequest  = "coffer/v2/pairing-request"
	LabelPairingApproval = "coffer/v2/pairing-approval"
)

// PairingSecretSize is the size of a pairing code's secret.
const PairingSecretSize = 10

var pairingEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// PairingCode is a pairing's secret as the user sees it: 16 base32
// characters in four groups, as "ABCD-EFGH-IJKL-MNOP". Its String method
// redacts it, so it never reaches a log by accident; Reveal shows it.
type PairingCode struct{ secret [PairingSecretSize]byte }

// NewPairingCode draws a fresh code.
func NewPairingCode() *PairingCode {
	var c PairingCode
	rand.Read(c.secret[:])
	return &c
}

// Reveal returns the code to show the user.
func (c *PairingCode) Reveal() string {
	s := pairingEncoding.EncodeToString(c.secret[:])
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

func (c PairingCode) String() string   { return "coffer.PairingCode(redacted)" }
func (c PairingCode) GoString() string { return c.String() }

// ParsePairingCode reads a code as a user typed it: any case, with or
// without dashes and spaces.
func ParsePairingCode(s string) (*PairingCode, error) {
	t := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
	if len(t) != 16 {
		return nil, Errorf(EINVALID, "a pairing code has 16 letters and digits, as ABCD-EFGH-IJKL-MNOP")
	}
	b, err := pairingEncoding.DecodeString(t)
	if err != nil || len(b) != PairingSecretSize {
		return nil, Errorf(EINVALID, "a pairing code uses only the letters A-Z and the digits 2-7")
	}
	var c PairingCode
	copy(c.secret[:], b)
	return &c, nil
}

// ID is the name the server keeps the pairing under: 32 hex digits of
// SHA-256 of the secret, which do not reveal it.
func (c *PairingCode) ID() string {
	h := sha256.Sum256(SignedMessage(LabelPairingID, c.secret[:]))
	return hex.EncodeToString(h[:16])
}

// CheckPairingID checks the syntax of a pairing id.
func CheckPairingID(id string) error {
	if b, err := hex.DecodeString(id); err != nil || len(b) != 16 || hex.EncodeToString(b) != id {
		return Errorf(EINVALID, "a pairing id is 32 lower-case hex digits")
	}
	return nil
}

func (c *PairingCode) mac(label string, body []byte) []byte {
	k, err := hkdf.Key(sha256.New, c.secret[:], nil, LabelPairingKey, 32)
	if err != nil {
		panic("coffer: hkdf: " + err.Error())
	}
	m := hmac.New(sha256.New, k)
	m.Write(SignedMessage(label, body))
	return m.Sum(nil)
}

func pairingRequestBody(handle Handle, d DeviceKeys) []byte {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(handle)) })
	b.AddBytes(d.ID[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(d.Name)) })
	if d.SigningKey.raw != nil {
		b.AddBytes(d.SigningKey.Bytes())
	}
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(d.EncryptionKey) })
	return b.BytesOrPanic()
}

// RequestMAC authenticates a new device's pairing request.
func (c *PairingCode) RequestMAC(handle Handle, d DeviceKeys) []byte {
	return c.mac(LabelPairingRequest, pairingRequestBody(handle, d))
}

// ApprovalMAC authenticates an approval: the add-device link body.
func (c *PairingCode) ApprovalMAC(linkBody []byte) []byte {
	return c.mac(LabelPairingApproval, linkBody)
}

// CheckRequestMAC and CheckApprovalMAC compare in constant time; a
// mismatch is a *SecurityError, since only the server sits between the two
// devices.
func (c *PairingCode) CheckRequestMAC(handle Handle, d DeviceKeys, mac []byte) error {
	if !hmac.Equal(mac, c.RequestMAC(handle, d)) {
		return Security("pairing", Errorf(EINVALID, "the pairing request was not made with this code: the server may have swapped the new device's keys"))
	}
	return nil
}

func (c *PairingCode) CheckApprovalMAC(linkBody, mac []byte) error {
	if !hmac.Equal(mac, c.ApprovalMAC(linkBody)) {
		return Security("pairing", Errorf(EINVALID, "the approval was not made with this code: it did not come from a device of the account"))
	}
	return nil
}
