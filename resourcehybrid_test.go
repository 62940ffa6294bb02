package coffer_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/cofferhq/coffer"
)

// mustInvalid fails unless err is an EINVALID *coffer.Error.
func mustInvalid(tb testing.TB, what string, err error) {
	tb.Helper()
	var e *coffer.Error
	if !errors.As(err, &e) || e.Code != coffer.EINVALID {
		tb.Errorf("%s: got %v, want an EINVALID *coffer.Error", what, err)
	}
}

func TestResourceHeaderHybridRoundTrip(t *testing.T) {
	h := MustResourceHeader(t)
	h.Suite = coffer.ResourceSuiteHybrid
	b := h.Marshal()
	if len(b) != coffer.ResourceHeaderSize || b[0] != coffer.ResourceSuiteHybrid || coffer.ResourceSuiteHybrid != 3 {
		t.Fatalf("encoding is %d bytes starting with %d, want %d bytes starting with 3", len(b), b[0], coffer.ResourceHeaderSize)
	}
	got, err := coffer.ParseResourceHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Fatalf("round trip changed the header:\n got %+v\nwant %+v", got, h)
	}

	// The two versions of one set of fields differ in the version byte
	// alone, and are two headers: they hash apart, so a Prev or a log leaf
	// names exactly one of them.
	v2 := *h
	v2.Suite = 0
	b2 := v2.Marshal()
	if b2[0] != coffer.ResourceSuite || !bytes.Equal(b2[1:], b[1:]) {
		t.Fatalf("version 2 encoding of the same fields: %x, version 3: %x", b2, b)
	}
	if coffer.HeaderHash(b) == coffer.HeaderHash(b2) {
		t.Errorf("HeaderHash does not cover the version byte")
	}
	got2, err := coffer.ParseResourceHeader(b2)
	if err != nil || got2.Suite != 0 {
		t.Fatalf("version 2 parses as %+v, %v; want Suite 0", got2, err)
	}
	if got2.Suite = coffer.ResourceSuiteHybrid; *got2 != *h {
		t.Errorf("version 2 and 3 parse to different fields")
	}

	// Any Suite other than ResourceSuiteHybrid is the Ed25519 header, as a
	// zero Suite always was; Parse reports it as zero, the one canonical
	// value.
	for _, s := range []uint8{1, coffer.ResourceSuite, 4, 255} {
		v := *h
		v.Suite = s
		if b := v.Marshal(); b[0] != coffer.ResourceSuite {
			t.Errorf("Suite %d marshals as version %d, want %d", s, b[0], coffer.ResourceSuite)
		}
	}
}

// TestParseResourceHeaderVersions: versions 2 and 3 parse, every other
// version byte fails, with the fields of a valid header after it.
func TestParseResourceHeaderVersions(t *testing.T) {
	b := MustResourceHeader(t).Marshal()
	for v := range 256 {
		b[0] = byte(v)
		h, err := coffer.ParseResourceHeader(b)
		switch v {
		case coffer.ResourceSuite:
			if err != nil || h.Suite != 0 {
				t.Errorf("version %d: %+v, %v", v, h, err)
			}
		case coffer.ResourceSuiteHybrid:
			if err != nil || h.Suite != coffer.ResourceSuiteHybrid {
				t.Errorf("version %d: %+v, %v", v, h, err)
			}
		default:
			mustInvalid(t, fmt.Sprintf("version %d", v), err)
		}
	}
}

func TestSignedHeaderHybrid(t *testing.T) {
	key := MustHybridKey(t, 1)
	h := MustResourceHeader(t)
	sh := coffer.SignResourceHeaderHybrid(h, key)
	if len(sh.Body) != coffer.ResourceHeaderSize || sh.Body[0] != coffer.ResourceSuiteHybrid || len(sh.Signature) != coffer.HybridSignatureSize {
		t.Fatalf("signed header: body %d bytes, version %d, signature %d bytes", len(sh.Body), sh.Body[0], len(sh.Signature))
	}
	got, err := sh.VerifyHybrid(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	want := *h
	want.Suite = coffer.ResourceSuiteHybrid
	if *got != want {
		t.Fatalf("verified header differs:\n got %+v\nwant %+v", got, &want)
	}
	if h.Suite != 0 {
		t.Errorf("SignResourceHeaderHybrid changed its argument")
	}
	// The key decides the suite: an Ed25519 key makes a version-2 header
	// even of a header that says version 3.
	edKey, _ := coffer.HybridHalves(key)
	edSH := coffer.SignResourceHeader(&want, edKey)
	if edSH.Body[0] != coffer.ResourceSuite {
		t.Fatalf("SignResourceHeader made a version-%d header", edSH.Body[0])
	}
	if got, err := edSH.Verify(key.Public().Ed25519()); err != nil || got.Suite != 0 {
		t.Fatalf("version-2 header: %+v, %v", got, err)
	}
	// Hedged: a second signature differs and verifies too.
	again := coffer.SignResourceHeaderHybrid(h, key)
	if !bytes.Equal(again.Body, sh.Body) || bytes.Equal(again.Signature, sh.Signature) {
		t.Errorf("two signatures of one header: same body %t, same signature %t", bytes.Equal(again.Body, sh.Body), bytes.Equal(again.Signature, sh.Signature))
	}
	if _, err := again.VerifyHybrid(key.Public()); err != nil {
		t.Fatal(err)
	}
}

// TestSignedHeaderNoDowngrade: a version-3 body never verifies as an
// Ed25519 header, and a version-2 body never as a hybrid one, whatever
// signature comes with it, even one that verifies over the body under the
// label with the very key the verifier holds.
func TestSignedHeaderNoDowngrade(t *testing.T) {
	key := MustHybridKey(t, 1)
	pub := key.Public()
	edKey, _ := coffer.HybridHalves(key)
	edPub := pub.Ed25519()
	h := MustResourceHeader(t)
	v3 := coffer.SignResourceHeaderHybrid(h, key)
	v2 := coffer.SignResourceHeader(h, edKey)

	asEd25519 := []struct {
		name string
		sh   coffer.SignedHeader
		// edValid says the signature is a valid Ed25519 signature of the
		// body under the label by the verifier's key, so that only the
		// version byte can refuse it.
		edValid bool
	}{
		// The hybrid signature's first half is a valid Ed25519 signature of
		// the version-3 body under the label, by the key's Ed25519 half.
		{"version 3, the hybrid signature's Ed25519 half", coffer.SignedHeader{Body: v3.Body, Signature: v3.Signature[:ed25519.SignatureSize]}, true},
		{"version 3, an Ed25519 signature of it", coffer.SignedHeader{Body: v3.Body, Signature: coffer.Sign(edKey, coffer.LabelResourceHeader, v3.Body)}, true},
		{"version 3, the whole hybrid signature", v3, false},
		{"version 3 relabelled 2, the Ed25519 half", coffer.SignedHeader{Body: withVersion(v3.Body, coffer.ResourceSuite), Signature: v3.Signature[:ed25519.SignatureSize]}, false},
	}
	for _, tt := range asEd25519 {
		if tt.edValid && !coffer.VerifySignature(edPub, coffer.LabelResourceHeader, tt.sh.Body, tt.sh.Signature) {
			t.Fatalf("%s: the Ed25519 signature does not verify on its own, so the case shows nothing", tt.name)
		}
		_, err := tt.sh.Verify(edPub)
		mustInvalid(t, tt.name, err)
	}

	asHybrid := []struct {
		name string
		sh   coffer.SignedHeader
	}{
		// A full hybrid signature over the version-2 body under the label.
		{"version 2, a hybrid signature of it", coffer.SignedHeader{Body: v2.Body, Signature: key.Sign(coffer.LabelResourceHeader, v2.Body)}},
		{"version 2, its Ed25519 signature", v2},
		{"version 2, its Ed25519 signature and the ML-DSA half of a hybrid one", coffer.SignedHeader{Body: v2.Body,
			Signature: append(bytes.Clone(v2.Signature), key.Sign(coffer.LabelResourceHeader, v2.Body)[ed25519.SignatureSize:]...)}},
		{"version 2 relabelled 3, a hybrid signature of version 2", coffer.SignedHeader{Body: withVersion(v2.Body, coffer.ResourceSuiteHybrid),
			Signature: key.Sign(coffer.LabelResourceHeader, v2.Body)}},
	}
	for _, tt := range asHybrid {
		_, err := tt.sh.VerifyHybrid(pub)
		mustInvalid(t, tt.name, err)
	}

	// Every other version byte, with a signature that verifies over exactly
	// that body, fails both verifiers but its own.
	for v := range 256 {
		body := withVersion(v3.Body, byte(v))
		hy := coffer.SignedHeader{Body: body, Signature: key.SignDeterministic(coffer.LabelResourceHeader, body)}
		ed := coffer.SignedHeader{Body: body, Signature: coffer.Sign(edKey, coffer.LabelResourceHeader, body)}
		if _, err := hy.VerifyHybrid(pub); (err == nil) != (v == coffer.ResourceSuiteHybrid) {
			t.Errorf("version %d as hybrid: %v", v, err)
		}
		if _, err := ed.Verify(edPub); (err == nil) != (v == coffer.ResourceSuite) {
			t.Errorf("version %d as Ed25519: %v", v, err)
		}
		if _, err := hy.Verify(edPub); err == nil {
			t.Errorf("version %d: a hybrid signature verified as Ed25519", v)
		}
		if _, err := ed.VerifyHybrid(pub); err == nil {
			t.Errorf("version %d: an Ed25519 signature verified as hybrid", v)
		}
	}
}

func withVersion(body []byte, v byte) []byte {
	b := bytes.Clone(body)
	b[0] = v
	return b
}

// TestSignedHeaderHybridRejects: every way a hybrid header signature can be
// wrong short of a forgery of both schemes.
func TestSignedHeaderHybridRejects(t *testing.T) {
	key, other := MustHybridKey(t, 1), MustHybridKey(t, 2)
	pub := key.Public()
	edKey, mlKey := coffer.HybridHalves(key)
	otherEd, otherML := coffer.HybridHalves(other)
	h := MustResourceHeader(t)
	sh := coffer.SignResourceHeaderHybrid(h, key)
	body, sig := sh.Body, sh.Signature
	msg := coffer.SignedMessage(coffer.LabelResourceHeader, body)

	h2 := *h
	h2.Version, h2.Prev = 2, [32]byte{1}
	otherBody := coffer.SignResourceHeaderHybrid(&h2, key)
	reattributed := *h
	reattributed.Author = coffer.NewAccountID()
	reattributed.Suite = coffer.ResourceSuiteHybrid

	edHalf := func(sk ed25519.PrivateKey, m []byte) []byte { return ed25519.Sign(sk, m) }
	mlHalf := func(sk *mldsa65.PrivateKey, m []byte, ctx string) []byte {
		s := make([]byte, mldsa65.SignatureSize)
		if err := mldsa65.SignTo(sk, m, []byte(ctx), true, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	signed := func(b []byte) coffer.SignedHeader {
		return coffer.SignedHeader{Body: b, Signature: key.Sign(coffer.LabelResourceHeader, b)}
	}
	underLabel := func(label string) coffer.SignedHeader {
		return coffer.SignedHeader{Body: body, Signature: key.Sign(label, body)}
	}
	zeroChunks := *h
	zeroChunks.Suite, zeroChunks.Chunks = coffer.ResourceSuiteHybrid, 0

	tests := []struct {
		name string
		sh   coffer.SignedHeader
		key  coffer.HybridPublicKey
	}{
		// One half valid, the other not.
		{"Ed25519 half valid, ML-DSA half of another header", coffer.SignedHeader{Body: body, Signature: cat(sig[:64], otherBody.Signature[64:])}, pub},
		{"Ed25519 half valid, ML-DSA half by another key", coffer.SignedHeader{Body: body, Signature: cat(sig[:64], mlHalf(otherML, msg, coffer.LabelResourceHeader))}, pub},
		{"Ed25519 half valid, ML-DSA half without context", coffer.SignedHeader{Body: body, Signature: cat(sig[:64], mlHalf(mlKey, msg, ""))}, pub},
		{"Ed25519 half valid, ML-DSA half with another context", coffer.SignedHeader{Body: body, Signature: cat(sig[:64], mlHalf(mlKey, msg, coffer.LabelCommit))}, pub},
		{"Ed25519 half valid, ML-DSA half zero", coffer.SignedHeader{Body: body, Signature: cat(sig[:64], make([]byte, mldsa65.SignatureSize))}, pub},
		{"Ed25519 half valid, ML-DSA half over the bare body", coffer.SignedHeader{Body: body, Signature: cat(sig[:64], mlHalf(mlKey, body, coffer.LabelResourceHeader))}, pub},
		{"ML-DSA half valid, Ed25519 half of another header", coffer.SignedHeader{Body: body, Signature: cat(otherBody.Signature[:64], sig[64:])}, pub},
		{"ML-DSA half valid, Ed25519 half by another key", coffer.SignedHeader{Body: body, Signature: cat(edHalf(otherEd, msg), sig[64:])}, pub},
		{"ML-DSA half valid, Ed25519 half over the bare body", coffer.SignedHeader{Body: body, Signature: cat(edHalf(edKey, body), sig[64:])}, pub},
		{"ML-DSA half valid, Ed25519 half zero", coffer.SignedHeader{Body: body, Signature: cat(make([]byte, 64), sig[64:])}, pub},
		{"halves swapped", coffer.SignedHeader{Body: body, Signature: cat(sig[64:], sig[:64])}, pub},
		// Lengths.
		{"no signature", coffer.SignedHeader{Body: body}, pub},
		{"Ed25519 half alone", coffer.SignedHeader{Body: body, Signature: sig[:64]}, pub},
		{"ML-DSA half alone", coffer.SignedHeader{Body: body, Signature: sig[64:]}, pub},
		{"one byte short", coffer.SignedHeader{Body: body, Signature: sig[:len(sig)-1]}, pub},
		{"one byte long", coffer.SignedHeader{Body: body, Signature: cat(sig, []byte{0})}, pub},
		{"twice", coffer.SignedHeader{Body: body, Signature: cat(sig, sig)}, pub},
		{"zero signature", coffer.SignedHeader{Body: body, Signature: make([]byte, coffer.HybridSignatureSize)}, pub},
		// Other labels, over the same body.
		{"label commit", underLabel(coffer.LabelCommit), pub},
		{"label resource delete", underLabel(coffer.LabelResourceDelete), pub},
		{"label header hash", underLabel(coffer.LabelResourceHeaderHash), pub},
		{"label resource meta", underLabel(coffer.LabelResourceMeta), pub},
		{"a v2 label", underLabel("coffer/v2/resource-header"), pub},
		{"empty label", underLabel(""), pub},
		// Keys.
		{"another author's key", sh, other.Public()},
		{"forged by another member", coffer.SignResourceHeaderHybrid(h, other), pub},
		{"the zero key", sh, coffer.HybridPublicKey{}},
		// Bodies.
		{"reattributed", coffer.SignedHeader{Body: reattributed.Marshal(), Signature: sig}, pub},
		{"another version's signature", coffer.SignedHeader{Body: body, Signature: otherBody.Signature}, pub},
		{"body truncated", coffer.SignedHeader{Body: body[:len(body)-1], Signature: sig}, pub},
		{"body extended", coffer.SignedHeader{Body: cat(body, []byte{0}), Signature: sig}, pub},
		{"body empty", coffer.SignedHeader{Signature: sig}, pub},
		{"version byte alone", coffer.SignedHeader{Body: body[:1], Signature: sig}, pub},
		// Valid signatures over bodies that are not headers.
		{"signed truncated body", signed(body[:len(body)-1]), pub},
		{"signed extended body", signed(cat(body, []byte{0})), pub},
		{"signed version byte alone", signed(body[:1]), pub},
		{"signed header of no chunks", signed(zeroChunks.Marshal()), pub},
	}
	for _, tt := range tests {
		got, err := tt.sh.VerifyHybrid(tt.key)
		if got != nil {
			t.Errorf("%s: returned a header with the error %v", tt.name, err)
		}
		mustInvalid(t, tt.name, err)
	}
	if _, err := sh.VerifyHybrid(pub); err != nil {
		t.Fatalf("the valid header no longer verifies: %v", err)
	}
}

// TestSignedHeaderHybridMangling flips every bit of the body and one bit of
// every signature byte; each variant must fail to verify.
func TestSignedHeaderHybridMangling(t *testing.T) {
	key := MustHybridKey(t, 1)
	pub := key.Public()
	sh := coffer.SignResourceHeaderHybrid(MustResourceHeader(t), key)
	for i := range sh.Body {
		for bit := range 8 {
			sh.Body[i] ^= 1 << bit
			if _, err := sh.VerifyHybrid(pub); err == nil {
				t.Fatalf("verified with body byte %d bit %d flipped", i, bit)
			}
			sh.Body[i] ^= 1 << bit
		}
	}
	for i := range sh.Signature {
		bit := byte(1) << (i % 8)
		sh.Signature[i] ^= bit
		if _, err := sh.VerifyHybrid(pub); err == nil {
			t.Fatalf("verified with signature byte %d bit %d flipped", i, i%8)
		}
		sh.Signature[i] ^= bit
	}
	if _, err := sh.VerifyHybrid(pub); err != nil {
		t.Fatalf("unmangled header no longer verifies: %v", err)
	}
}

// FuzzSignedHeaderSuites: whatever body and signature arrive, nothing
// verifies under either suite but the two headers signed here, each only
// under its own verifier, and what verifies re-encodes to its body.
func FuzzSignedHeaderSuites(f *testing.F) {
	key := MustHybridKey(f, 1)
	edKey, _ := coffer.HybridHalves(key)
	// Fixed ids: the fuzzing workers run this setup again, and the corpus
	// must name the same headers in each.
	h := fixedResourceHeader(0, 1)
	v3 := coffer.SignResourceHeaderHybrid(h, key)
	v2 := coffer.SignResourceHeader(h, edKey)
	f.Add(v3.Body, v3.Signature)
	f.Add(v2.Body, v2.Signature)
	f.Add(v3.Body, v3.Signature[:64])
	f.Add(v2.Body, key.Sign(coffer.LabelResourceHeader, v2.Body))
	f.Add([]byte{}, []byte{})
	pub, edPub := key.Public(), key.Public().Ed25519()
	f.Fuzz(func(t *testing.T, body, sig []byte) {
		sh := coffer.SignedHeader{Body: body, Signature: sig}
		if got, err := sh.VerifyHybrid(pub); err == nil {
			if !bytes.Equal(body, v3.Body) || got.Suite != coffer.ResourceSuiteHybrid || !bytes.Equal(got.Marshal(), body) {
				t.Fatalf("verified as hybrid: %x", body)
			}
		} else {
			mustInvalid(t, "VerifyHybrid", err)
		}
		if got, err := sh.Verify(edPub); err == nil {
			if !bytes.Equal(body, v2.Body) || got.Suite != 0 || !bytes.Equal(got.Marshal(), body) {
				t.Fatalf("verified as Ed25519: %x", body)
			}
		} else {
			mustInvalid(t, "Verify", err)
		}
	})
}
