package coffer_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/cofferhq/coffer"
)

// MustHybridKey returns test hybrid key n, from a fixed seed.
func MustHybridKey(tb testing.TB, n int) *coffer.HybridPrivateKey {
	tb.Helper()
	seed := sha256.Sum256(fmt.Appendf(nil, "coffer hybrid test %d", n))
	k, err := coffer.NewHybridKeyFromSeed(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

const testLabelV2 = "coffer/v2/test"

func TestHybridSignVerify(t *testing.T) {
	k := MustHybridKey(t, 1)
	body := []byte("a body")
	sig := k.Sign(testLabelV2, body)
	if len(sig) != coffer.HybridSignatureSize {
		t.Fatalf("signature is %d bytes, want %d", len(sig), coffer.HybridSignatureSize)
	}
	if err := k.Public().Verify(testLabelV2, body, sig); err != nil {
		t.Fatal(err)
	}
	// Hedged signing: two signatures of one body differ in their ML-DSA half
	// only (Ed25519 is deterministic), and both verify.
	sig2 := k.Sign(testLabelV2, body)
	if !bytes.Equal(sig[:64], sig2[:64]) || bytes.Equal(sig[64:], sig2[64:]) {
		t.Errorf("hedged signing: Ed25519 halves equal %t, ML-DSA halves equal %t", bytes.Equal(sig[:64], sig2[:64]), bytes.Equal(sig[64:], sig2[64:]))
	}
	if err := k.Public().Verify(testLabelV2, body, sig2); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		label       string
		body, sig   []byte
		wantMessage string
	}{
		{"other body", testLabelV2, []byte("another body"), sig, "neither"},
		{"other label", "coffer/v2/other", body, sig, "neither"},
		{"empty", testLabelV2, body, nil, "must be"},
		{"Ed25519 alone", testLabelV2, body, sig[:64], "must be"},
		{"ML-DSA alone", testLabelV2, body, sig[64:], "must be"},
	} {
		err := k.Public().Verify(tc.label, tc.body, tc.sig)
		if err == nil || !strings.Contains(coffer.ErrorMessage(err), tc.wantMessage) {
			t.Errorf("%s: Verify = %v, want an error saying %q", tc.name, err, tc.wantMessage)
		}
	}
	if err := MustHybridKey(t, 2).Public().Verify(testLabelV2, body, sig); err == nil {
		t.Errorf("a signature verified under another key")
	}
	if err := (coffer.HybridPublicKey{}).Verify(testLabelV2, body, sig); err == nil {
		t.Errorf("the zero key verified a signature")
	}
}

func TestHybridKeyFromSeed(t *testing.T) {
	a, b := MustHybridKey(t, 1), MustHybridKey(t, 1)
	if !a.Public().Equal(b.Public()) {
		t.Errorf("one seed gave two keys")
	}
	if a.Public().Equal(MustHybridKey(t, 2).Public()) {
		t.Errorf("two seeds gave one key")
	}
	// The halves are independent derivations: neither is the seed itself,
	// and they differ from each other's derivation.
	seed := sha256.Sum256([]byte("coffer hybrid test 1"))
	if bytes.Equal(ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey), a.Public().Ed25519()) {
		t.Errorf("the Ed25519 half uses the seed directly")
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := coffer.NewHybridKeyFromSeed(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte seed was accepted", n)
		}
	}
	if err := coffer.CheckSigningKey(a.Public().Ed25519()); err != nil {
		t.Errorf("derived Ed25519 half fails CheckSigningKey: %v", err)
	}
}

func TestParseHybridPublicKey(t *testing.T) {
	pub := MustHybridKey(t, 1).Public()
	raw := pub.Bytes()
	if len(raw) != coffer.HybridPublicKeySize {
		t.Fatalf("public key is %d bytes, want %d", len(raw), coffer.HybridPublicKeySize)
	}
	got, err := coffer.ParseHybridPublicKey(raw)
	if err != nil || !got.Equal(pub) || !bytes.Equal(got.Bytes(), raw) {
		t.Fatalf("round trip: %v", err)
	}
	raw[0] ^= 1 // the parsed key must not alias its input
	if !got.Equal(pub) {
		t.Errorf("the parsed key aliases its input")
	}
	raw[0] ^= 1
	for _, n := range []int{0, coffer.HybridPublicKeySize - 1, coffer.HybridPublicKeySize + 1, 32, 1952} {
		if _, err := coffer.ParseHybridPublicKey(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte key was accepted", n)
		}
	}
	// Every weak Ed25519 key of the signing-key vectors is refused as the
	// Ed25519 half of a hybrid key.
	for _, c := range signingKeyCases {
		ed, _ := hex.DecodeString(c.key)
		if len(ed) != 32 {
			continue
		}
		k := append(append([]byte(nil), ed...), raw[32:]...)
		_, err := coffer.ParseHybridPublicKey(k)
		if (err == nil) != (c.expect == "valid") {
			t.Errorf("%s: ParseHybridPublicKey = %v, want valid = %t", c.name, err, c.expect == "valid")
		}
	}
}

// The hybrid-signature vectors are in testdata/hybridsig, one case per file:
//
//	expect: valid | ed25519 | ml-dsa | both | signature-size | key-invalid
//	comment: what the case shows
//	label: the label the verifier uses
//	body: hex of the signed body
//	key: base64 of the hybrid public key
//	sig: base64 of the hybrid signature
//
// expect names which check fails: ed25519 or ml-dsa for one half, both for
// both halves, signature-size for a signature of the wrong length, and
// key-invalid when ParseHybridPublicKey refuses the key. Run
// `go test -run TestHybridSigVectors -update` to rewrite them.
const hybridSigDir = "testdata/hybridsig"

type hybridSigCase struct {
	name, expect, comment, label string
	body                         []byte
	key                          []byte
	sig                          []byte
}

func hybridSigCases(tb testing.TB) []hybridSigCase {
	a, b := MustHybridKey(tb, 1), MustHybridKey(tb, 2)
	aEd, aML := coffer.HybridHalves(a)
	_, bML := coffer.HybridHalves(b)
	key := a.Public().Bytes()
	body := []byte("a hybrid-signed body")
	good := a.SignDeterministic(testLabelV2, body)
	msg := coffer.SignedMessage(testLabelV2, body)

	mlSig := func(sk *mldsa65.PrivateKey, m []byte, ctx string) []byte {
		s := make([]byte, mldsa65.SignatureSize)
		if err := mldsa65.SignTo(sk, m, []byte(ctx), false, s); err != nil {
			tb.Fatal(err)
		}
		return s
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(s []byte, i int) []byte { s = bytes.Clone(s); s[i] ^= 0x01; return s }
	otherLabel := "coffer/v2/other"
	identity := make([]byte, 32)
	identity[0] = 1

	return []hybridSigCase{
		{"valid", "valid", "both halves over the label's message, ML-DSA-65 with the label as context", testLabelV2, body, key, good},
		{"valid-empty-body", "valid", "an empty body", testLabelV2, nil, key, a.SignDeterministic(testLabelV2, nil)},
		{"ed25519-bit-flip", "ed25519", "one bit of the Ed25519 half flipped", testLabelV2, body, key, flip(good, 5)},
		{"ed25519-s-flip", "ed25519", "one bit of the Ed25519 s scalar flipped", testLabelV2, body, key, flip(good, 40)},
		{"ed25519-other-label", "ed25519", "the Ed25519 half signs the body under another label", testLabelV2, body, key,
			cat(ed25519.Sign(aEd, coffer.SignedMessage(otherLabel, body)), good[64:])},
		{"ed25519-raw-body", "ed25519", "the Ed25519 half signs the body without its label", testLabelV2, body, key,
			cat(ed25519.Sign(aEd, body), good[64:])},
		{"ml-dsa-bit-flip", "ml-dsa", "one bit of the ML-DSA-65 half flipped", testLabelV2, body, key, flip(good, 64+100)},
		{"ml-dsa-last-byte", "ml-dsa", "the last byte of the ML-DSA-65 half (its hint encoding) changed", testLabelV2, body, key, flip(good, coffer.HybridSignatureSize-1)},
		{"ml-dsa-no-context", "ml-dsa", "the ML-DSA-65 half over the right message but with an empty context", testLabelV2, body, key,
			cat(good[:64], mlSig(aML, msg, ""))},
		{"ml-dsa-other-context", "ml-dsa", "the ML-DSA-65 half over the right message with another label as context", testLabelV2, body, key,
			cat(good[:64], mlSig(aML, msg, otherLabel))},
		{"ml-dsa-other-key", "ml-dsa", "halves from two keys: Ed25519 by the key, ML-DSA-65 by another key", testLabelV2, body, key,
			cat(good[:64], mlSig(bML, msg, testLabelV2))},
		{"swapped-halves", "both", "the ML-DSA-65 half first and the Ed25519 half last, same total length", testLabelV2, body, key,
			cat(good[64:], good[:64])},
		{"swapped-with-other-signature", "ml-dsa", "the ML-DSA-65 half taken from the key's signature of another body", testLabelV2, body, key,
			cat(good[:64], a.SignDeterministic(testLabelV2, []byte("another body"))[64:])},
		{"wrong-label", "both", "a valid signature under another label", otherLabel, body, key, good},
		{"wrong-body", "both", "a valid signature of another body", testLabelV2, []byte("another body"), key, good},
		{"zero-signature", "both", "all zero bytes", testLabelV2, body, key, make([]byte, coffer.HybridSignatureSize)},
		{"signature-short", "signature-size", "one byte short", testLabelV2, body, key, good[:len(good)-1]},
		{"signature-long", "signature-size", "one byte appended", testLabelV2, body, key, cat(good, []byte{0})},
		{"signature-ed25519-only", "signature-size", "the Ed25519 half alone", testLabelV2, body, key, good[:64]},
		{"signature-ml-dsa-only", "signature-size", "the ML-DSA-65 half alone", testLabelV2, body, key, good[64:]},
		{"key-short", "key-invalid", "the public key one byte short", testLabelV2, body, key[:len(key)-1], good},
		{"key-ed25519-identity", "key-invalid", "the Ed25519 half of the key is the identity point", testLabelV2, body, cat(identity, key[32:]), good},
		{"key-swapped", "key-invalid", "the key's halves in the wrong order", testLabelV2, body, cat(key[32:], key[:32]), good},
	}
}

// hybridSigVerdict classifies what the verifier says about a case.
func hybridSigVerdict(label string, body, key, sig []byte) string {
	pub, err := coffer.ParseHybridPublicKey(key)
	if err != nil {
		return "key-invalid"
	}
	err = pub.Verify(label, body, sig)
	if err == nil {
		return "valid"
	}
	msg := coffer.ErrorMessage(err)
	for _, v := range []struct{ substr, verdict string }{
		{"neither", "both"}, {"Ed25519 half", "ed25519"}, {"ML-DSA-65 half", "ml-dsa"}, {"must be", "signature-size"},
	} {
		if strings.Contains(msg, v.substr) {
			return v.verdict
		}
	}
	return "unknown: " + msg
}

func encodeHybridSigCase(c hybridSigCase) []byte {
	return fmt.Appendf(nil, "expect: %s\ncomment: %s\nlabel: %s\nbody: %x\nkey: %s\nsig: %s\n",
		c.expect, c.comment, c.label, c.body,
		base64.StdEncoding.EncodeToString(c.key), base64.StdEncoding.EncodeToString(c.sig))
}

func TestHybridSigVectors(t *testing.T) {
	cases := hybridSigCases(t)
	want := map[string][]byte{}
	for _, c := range cases {
		want[c.name+".txt"] = encodeHybridSigCase(c)
		if got := hybridSigVerdict(c.label, c.body, c.key, c.sig); got != c.expect {
			t.Errorf("case %s: verifier says %s, case expects %s", c.name, got, c.expect)
		}
	}
	writeVectors(t, hybridSigDir, want)

	files, err := filepath.Glob(filepath.Join(hybridSigDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s (%v): run go test -run TestHybridSigVectors -update", hybridSigDir, err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[name]; !ok {
			t.Errorf("%s has no case", name)
		} else if !bytes.Equal(data, w) {
			t.Errorf("%s differs from what its case generates: run go test -run TestHybridSigVectors -update", name)
		}
		h := parseVectorHeader(t, data)
		body, err1 := hex.DecodeString(h["body"])
		key, err2 := base64.StdEncoding.DecodeString(h["key"])
		sig, err3 := base64.StdEncoding.DecodeString(h["sig"])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s: bad encoding: %v %v %v", name, err1, err2, err3)
		}
		if got := hybridSigVerdict(h["label"], body, key, sig); got != h["expect"] {
			t.Errorf("%s: verifier says %s, vector expects %s", name, got, h["expect"])
		}
	}
	for name := range want {
		if _, err := os.Stat(filepath.Join(hybridSigDir, name)); err != nil {
			t.Errorf("case %s has no vector file: run go test -run TestHybridSigVectors -update", name)
		}
	}
}

// writeVectors replaces dir with the files in want when -update is set.
func writeVectors(tb testing.TB, dir string, want map[string][]byte) {
	tb.Helper()
	if !updateVectors() {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for name, data := range want {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// parseVectorHeader reads "key: value" lines up to the first empty line.
func parseVectorHeader(tb testing.TB, data []byte) map[string]string {
	tb.Helper()
	h := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			if k, ok = strings.CutSuffix(line, ":"); !ok {
				tb.Fatalf("bad header line %q", line)
			}
		}
		h[k] = v
	}
	return h
}

// FuzzParseHybridPublicKey: keys arrive from the network in account links.
// The parser must never panic, must accept only the fixed size, and what it
// accepts must re-encode to the same bytes and survive Verify.
func FuzzParseHybridPublicKey(f *testing.F) {
	k := MustHybridKey(f, 1)
	sig := k.Sign(testLabelV2, []byte("body"))
	f.Add(k.Public().Bytes(), sig)
	f.Add([]byte{}, []byte{})
	f.Add(make([]byte, coffer.HybridPublicKeySize), make([]byte, coffer.HybridSignatureSize))
	f.Fuzz(func(t *testing.T, key, sig []byte) {
		pub, err := coffer.ParseHybridPublicKey(key)
		if err != nil {
			return
		}
		if !bytes.Equal(pub.Bytes(), key) {
			t.Fatalf("accepted key does not re-encode to its input")
		}
		if err := coffer.CheckSigningKey(pub.Ed25519()); err != nil {
			t.Fatalf("accepted key has a weak Ed25519 half: %v", err)
		}
		if pub.Verify(testLabelV2, []byte("body"), sig) == nil && !bytes.Equal(key, k.Public().Bytes()) {
			t.Fatalf("a signature by key 1 verified under another key")
		}
	})
}
