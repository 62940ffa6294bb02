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
