package coffer

import (
	"bytes"
	"runtime"
	"testing"
)

// A parsed hybrid key must stay small: a group state holds one per
// member, and the expanded ML-DSA-65 form is about 40 KB. Parsing keeps
// the encoding only; Verify expands through the shared cache, so a key
// verified twice is expanded once.
func TestParsedHybridKeyStaysPacked(t *testing.T) {
	const n = 200
	encs := make([][]byte, n)
	for i := range encs {
		k, err := NewHybridKeyFromSeed(bytes.Repeat([]byte{byte(i), byte(i >> 8), 7, 9}, 8))
		if err != nil {
			t.Fatal(err)
		}
		encs[i] = k.Public().Bytes()
	}
	keys := make([]HybridPublicKey, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, enc := range encs {
		var err error
		if keys[i], err = ParseHybridPublicKey(enc); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 4096 {
		t.Fatalf("parsing a hybrid key allocates %d bytes; it should keep its 1,984-byte encoding only", per)
	}

	signer, err := NewHybridKeyFromSeed(bytes.Repeat([]byte{42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sig := signer.Sign("coffer/test/cache", []byte("body"))
	parsed, err := ParseHybridPublicKey(signer.Public().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Verify("coffer/test/cache", []byte("body"), sig); err != nil {
		t.Fatal(err)
	}
	first := parsed.mldsa()
	again, _ := ParseHybridPublicKey(signer.Public().Bytes())
	if again.mldsa() != first {
		t.Fatal("a key verified before was expanded again")
	}
	// The cache is keyed by the whole encoding: another key never gets
	// this expansion.
	if keys[0].mldsa() == first {
		t.Fatal("two keys share one expansion")
	}
	if err := keys[0].Verify("coffer/test/cache", []byte("body"), sig); err == nil {
		t.Fatal("another key verified the signature")
	}
}
