package coffer

import (
	"crypto/ed25519"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// SignDeterministic signs like Sign but without the ML-DSA-65 hedge, so
// that test vectors regenerate byte for byte.
func (k *HybridPrivateKey) SignDeterministic(label string, body []byte) []byte {
	return k.sign(label, body, false)
}

// HybridHalves exposes the two private halves, so tests can build
// signatures the API never makes (one half under another label or key).
func HybridHalves(k *HybridPrivateKey) (ed25519.PrivateKey, *mldsa65.PrivateKey) {
	return k.ed, k.ml
}
