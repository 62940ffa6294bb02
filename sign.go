package coffer

import (
	"crypto/ed25519"
)

// Domain-separation labels. Each signature, HPKE info string, AEAD additional
// data and KDF info in the protocol starts with exactly one of these, so no
// value made for one purpose verifies or decrypts in another. The version is
// part of the label: suite v2 gets new labels and never reuses these.
const (
	LabelIdentity       = "coffer/v1/identity"        // self-signature of a public identity
	LabelFingerprint    = "coffer/v1/fingerprint"     // safety-number hash
	LabelLogin          = "coffer/v1/login"           // challenge-response statement
	LabelCommit         = "coffer/v1/commit"          // membership commit signature
	LabelCommitHash     = "coffer/v1/commit-hash"     // hash chaining commits
	LabelKeyCommitment  = "coffer/v1/key-commitment"  // commitment to an epoch key
	LabelWrap           = "coffer/v1/wrap"            // HPKE info of an epoch-key wrap
	LabelHistoryLink    = "coffer/v1/history-link"    // K_e sealed under K_{e+1}
	LabelGroupMeta      = "coffer/v1/group-meta"      // encrypted group name/description
	LabelResourceKey    = "coffer/v1/resource-key"    // age stanza key for a resource
	LabelResourceMeta   = "coffer/v1/resource-meta"   // encrypted resource metadata
	LabelResourceHeader = "coffer/v1/resource-header" // author's signature over a resource
	LabelLogLeaf        = "coffer/v1/log-leaf"        // transparency log entries
)

// SignedMessage is the exact byte string that is signed for body under label:
// label, a zero byte, then body. Labels contain no zero byte, so the split
// is unambiguous.
func SignedMessage(label string, body []byte) []byte {
	return appendSignedMessage(make([]byte, 0, len(label)+1+len(body)), label, body)
}

// appendSignedMessage appends SignedMessage(label, body) to m.
func appendSignedMessage(m []byte, label string, body []byte) []byte {
	m = append(m, label...)
	m = append(m, 0)
	return append(m, body...)
}

// Sign signs body for the purpose named by label.
func Sign(key ed25519.PrivateKey, label string, body []byte) []byte {
	return ed25519.Sign(key, SignedMessage(label, body))
}

// VerifySignature reports whether sig is key's signature of body under label.
// It rejects keys and signatures of the wrong length instead of panicking.
func VerifySignature(key ed25519.PublicKey, label string, body, sig []byte) bool {
	if len(key) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(key, SignedMessage(label, body), sig)
}
