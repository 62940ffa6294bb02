package coffer

import (
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// qrPrefixV2 starts the QR payload of a suite v2 account, so a scanner
// never mistakes it for a suite v1 identity's.
const qrPrefixV2 = "coffer:v2:"

// SafetyNumber returns the account's 60-digit safety number, or "" before
// the genesis.
func (s *AccountState) SafetyNumber() string {
	if s.Seq == 0 {
		return ""
	}
	return s.Fingerprint().SafetyNumber()
}

// QRPayload returns "coffer:v2:<handle>:<base64url of the first 32 bytes
// of the account fingerprint>", or "" before the genesis.
func (s *AccountState) QRPayload() string {
	if s.Seq == 0 {
		return ""
	}
	f := s.Fingerprint()
	return qrPrefixV2 + string(s.Handle) + ":" + base64.RawURLEncoding.EncodeToString(f[:32])
}

// MatchVerificationCode reports whether code, as typed or scanned, matches
// the account: its safety number with or without spaces, or its QR
// payload. Like the fingerprint itself, the answer does not change as
// devices come and go.
func (s *AccountState) MatchVerificationCode(code string) bool {
	if s.Seq == 0 {
		return false
	}
	code = strings.TrimSpace(code)
	if strings.HasPrefix(code, qrPrefixV2) {
		return subtle.ConstantTimeCompare([]byte(code), []byte(s.QRPayload())) == 1
	}
	digits := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, code)
	want := strings.ReplaceAll(s.SafetyNumber(), " ", "")
	return subtle.ConstantTimeCompare([]byte(digits), []byte(want)) == 1
}
