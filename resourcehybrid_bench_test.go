package coffer_test

import (
	"testing"

	"github.com/cofferhq/coffer"
)

// BenchmarkHeaderSign and BenchmarkHeaderVerify put the suite v2 resource
// header (version 3, hybrid) beside the Ed25519 header (version 2), in the
// same run, over the same fields: encoding and signing, then checking the
// signature and parsing. Both report the sizes a reader downloads per
// version: body-B, sig-B and signed-B (their sum).
func BenchmarkHeaderSign(b *testing.B) {
	key := MustHybridKey(b, 1)
	edKey, _ := coffer.HybridHalves(key)
	h := MustResourceHeader(b)
	b.Run("ed25519", func(b *testing.B) {
		var sh coffer.SignedHeader
		for b.Loop() {
			sh = coffer.SignResourceHeader(h, edKey)
		}
		reportHeaderSizes(b, sh)
	})
	b.Run("hybrid", func(b *testing.B) {
		var sh coffer.SignedHeader
		for b.Loop() {
			sh = coffer.SignResourceHeaderHybrid(h, key)
		}
		reportHeaderSizes(b, sh)
	})
}

func BenchmarkHeaderVerify(b *testing.B) {
	key := MustHybridKey(b, 1)
	edKey, _ := coffer.HybridHalves(key)
	h := MustResourceHeader(b)
	b.Run("ed25519", func(b *testing.B) {
		sh, pub := coffer.SignResourceHeader(h, edKey), key.Public().Ed25519()
		for b.Loop() {
			if _, err := sh.Verify(pub); err != nil {
				b.Fatal(err)
			}
		}
		reportHeaderSizes(b, sh)
	})
	// The key already parsed, as a reader holds its group's member keys.
	b.Run("hybrid", func(b *testing.B) {
		sh, pub := coffer.SignResourceHeaderHybrid(h, key), key.Public()
		for b.Loop() {
			if _, err := sh.VerifyHybrid(pub); err != nil {
				b.Fatal(err)
			}
		}
		reportHeaderSizes(b, sh)
	})
}

func reportHeaderSizes(b *testing.B, sh coffer.SignedHeader) {
	b.ReportMetric(float64(len(sh.Body)), "body-B")
	b.ReportMetric(float64(len(sh.Signature)), "sig-B")
	b.ReportMetric(float64(len(sh.Body)+len(sh.Signature)), "signed-B")
}
