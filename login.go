package coffer

import "golang.org/x/crypto/cryptobyte"

// ChallengeSize is the length of a login challenge.
const ChallengeSize = 32

// LoginStatement is what a client signs, under LabelLogin, to log in. It
// binds the server origin as the client sees it (scheme://host:port), so a
// malicious server cannot relay another server's challenge and use the
// signature there, and it binds the account and the single-use challenge.
func LoginStatement(origin string, account AccountID, challenge []byte) []byte {
	var b cryptobyte.Builder
	b.AddUint8(SuiteV1)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(origin)) })
	b.AddBytes(account[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(challenge) })
	return b.BytesOrPanic()
}

// LabelDeviceLogin signs a suite v2 device's login statement, with the
// device's hybrid key (the label is also the ML-DSA-65 context).
const LabelDeviceLogin = "coffer/v2/login"

// DeviceLoginStatement is what a device of a suite v2 account signs, under
// LabelDeviceLogin, to log in. Beside what LoginStatement binds it names
// the device, so the server checks the signature against that device's key
// in the account's chain, and a revoked device, which the chain no longer
// lists, cannot log in whatever keys it still holds.
func DeviceLoginStatement(origin string, account AccountID, device DeviceID, challenge []byte) []byte {
	var b cryptobyte.Builder
	b.AddUint8(SuiteV2)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(origin)) })
	b.AddBytes(account[:])
	b.AddBytes(device[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(challenge) })
	return b.BytesOrPanic()
}
