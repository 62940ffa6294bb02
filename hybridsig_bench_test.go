package coffer_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/cofferhq/coffer"
)

// BenchmarkSign and BenchmarkVerify put suite v2's hybrid signature beside
// suite v1's Ed25519 alone, in the same run, over the same 200-byte body
// (about a commit without add ops).
func BenchmarkSign(b *testing.B) {
	body := make([]byte, 200)
	h := MustHybridKey(b, 1)
	edKey, _ := coffer.HybridHalves(h)
	b.Run("ed25519", func(b *testing.B) {
		for b.Loop() {
			coffer.Sign(edKey, testLabelV2, body)
		}
		b.ReportMetric(coffer.SignatureSize, "sig-B")
	})
	b.Run("hybrid", func(b *testing.B) {
		for b.Loop() {
			h.Sign(testLabelV2, body)
		}
		b.ReportMetric(coffer.HybridSignatureSize, "sig-B")
	})
}

func BenchmarkVerify(b *testing.B) {
	body := make([]byte, 200)
	h := MustHybridKey(b, 1)
	edKey, _ := coffer.HybridHalves(h)
	edPub := edKey.Public().(ed25519.PublicKey)
	edSig := coffer.Sign(edKey, testLabelV2, body)
	sig := h.Sign(testLabelV2, body)
	raw := h.Public().Bytes()
	b.Run("ed25519", func(b *testing.B) {
		for b.Loop() {
			if !coffer.VerifySignature(edPub, testLabelV2, body, edSig) {
				b.Fatal("does not verify")
			}
		}
		b.ReportMetric(coffer.SigningKeySize, "key-B")
	})
	// A key already parsed, as a verifier holds its members' keys.
	b.Run("hybrid", func(b *testing.B) {
		pub := h.Public()
		for b.Loop() {
			if err := pub.Verify(testLabelV2, body, sig); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(coffer.HybridPublicKeySize, "key-B")
	})
	// A key parsed from its bytes for each signature: the cost for a key
	// seen once (the ML-DSA-65 matrix expansion, and the Ed25519 point checks).
	b.Run("hybrid-parse-key", func(b *testing.B) {
		for b.Loop() {
			pub, err := coffer.ParseHybridPublicKey(raw)
			if err != nil {
				b.Fatal(err)
			}
			if err := pub.Verify(testLabelV2, body, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAccountGenesis verifies an account's genesis link from its
// bytes (parse, X-Wing and hybrid key checks, signature) and reports its
// size.
func BenchmarkAccountGenesis(b *testing.B) {
	links := MustAccount(b).links
	sl := links[0]
	for b.Loop() {
		if _, err := coffer.VerifyAccountChain(nil, links); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(sl.Body)), "body-B")
	b.ReportMetric(float64(len(sl.Body)+len(sl.Signature)), "signed-B")
}

// BenchmarkVerifyAccountChain verifies a chain of ten links: a genesis,
// four added devices, a revocation, rotations and a recovery change.
func BenchmarkVerifyAccountChain(b *testing.B) {
	p := MustAccountCast(b)
	ab := MustAccount(b).DoAdd(p.d1, p.d2).DoAdd(p.d2, p.d3).DoAddByRecovery(p.r1, p.d4).DoAdd(p.d4, p.d5).
		DoRevoke(p.d2, p.d1).DoRotate(p.d3).DoSetRecovery(p.d4, p.r2).DoRotate(p.d5).DoRotate(p.d2)
	size := 0
	for _, sl := range ab.links {
		size += len(sl.Body) + len(sl.Signature) + len(sl.DeviceSignature)
	}
	for b.Loop() {
		if _, err := coffer.VerifyAccountChain(nil, ab.links); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ab.links)), "links")
	b.ReportMetric(float64(size), "chain-B")
}
