package coffer_test

import (
	"bytes"
	"crypto/ed25519"
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

// The resource-header signature vectors are in testdata/resourceheader,
// one case per file:
//
//	expect: valid | suite | signature | header
//	comment: what the case shows
//	verifier: ed25519 (SignedHeader.Verify) | hybrid (SignedHeader.VerifyHybrid)
//	key: base64 of the author's key: 32 bytes of Ed25519 or a hybrid key
//	body: hex of the header body
//	sig: base64 of the signature
//	header hash: hex of HeaderHash(body), for valid cases
//
// expect names the check that fails: suite when the body's version byte is
// not the verifier's, signature when the signature does not verify, header
// when it verifies over a body that is no header. Every key derives from a
// fixed seed (MustHybridKey; the Ed25519 key is the Ed25519 half of hybrid
// key 1) and every hybrid signature is made without the ML-DSA hedge, so
// `go test -run TestResourceHeaderVectors -update` rewrites the files byte
// for byte.
const resourceHeaderDir = "testdata/resourceheader"

type resourceHeaderCase struct {
	name, expect, comment, verifier string
	key, body, sig                  []byte
}

// fixedResourceHeader is a header with fixed ids, as the vectors need.
func fixedResourceHeader(suite uint8, version uint64) *coffer.ResourceHeader {
	h := &coffer.ResourceHeader{
		Suite:       suite,
		Resource:    coffer.ResourceID{0x5e, 0x5e, 0x5e, 15: 1},
		Group:       coffer.GroupID{0x0c, 0x0f, 0xfe, 15: 1},
		Epoch:       5,
		Author:      coffer.AccountID{0xa0, 0xa0, 15: 1},
		Version:     version,
		TreeRoot:    [32]byte{0x7e, 31: 1},
		Chunks:      2,
		ContentSize: 64<<10 + 16 + 300,
		MetaHash:    [32]byte{0x3e, 31: 1},
		Created:     1_795_000_000_000,
	}
	if version > 1 {
		h.Prev = coffer.HeaderHash(fixedResourceHeader(suite, version-1).Marshal())
	}
	return h
}

func resourceHeaderCases(tb testing.TB) []resourceHeaderCase {
	a, b := MustHybridKey(tb, 1), MustHybridKey(tb, 2)
	aEd, aML := coffer.HybridHalves(a)
	bEd, bML := coffer.HybridHalves(b)
	key, edKey := a.Public().Bytes(), []byte(a.Public().Ed25519())
	label := coffer.LabelResourceHeader

	v3 := fixedResourceHeader(coffer.ResourceSuiteHybrid, 1).Marshal()
	v2 := fixedResourceHeader(0, 1).Marshal()
	v3next := fixedResourceHeader(coffer.ResourceSuiteHybrid, 2).Marshal()
	hy := func(k *coffer.HybridPrivateKey, label string, body []byte) []byte {
		return k.SignDeterministic(label, body)
	}
	ed := func(body []byte) []byte { return coffer.Sign(aEd, label, body) }
	good := hy(a, label, v3)
	msg := coffer.SignedMessage(label, v3)
	mlSig := func(sk *mldsa65.PrivateKey, m []byte, ctx string) []byte {
		s := make([]byte, mldsa65.SignatureSize)
		if err := mldsa65.SignTo(sk, m, []byte(ctx), false, s); err != nil {
			tb.Fatal(err)
		}
		return s
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	version := func(body []byte, v byte) []byte { body = bytes.Clone(body); body[0] = v; return body }
	edit := func(f func(*coffer.ResourceHeader)) []byte {
		h := fixedResourceHeader(coffer.ResourceSuiteHybrid, 1)
		f(h)
		return h.Marshal()
	}
	reattributed := edit(func(h *coffer.ResourceHeader) { h.Author[0] ^= 1 })
	noChunks := edit(func(h *coffer.ResourceHeader) { h.Chunks = 0 })

	return []resourceHeaderCase{
		{"valid-hybrid", "valid", "a version-3 header of version 1 of a resource", "hybrid", key, v3, good},
		{"valid-hybrid-replace", "valid", "a version-3 header of version 2, its prev the HeaderHash of valid-hybrid's body", "hybrid", key, v3next, hy(a, label, v3next)},
		{"valid-ed25519", "valid", "the same fields as valid-hybrid as a version-2 header, signed with the hybrid key's Ed25519 half", "ed25519", edKey, v2, ed(v2)},

		// Across suites.
		{"suite-hybrid-cut-to-ed25519", "suite", "valid-hybrid with its signature cut to the Ed25519 half, a valid Ed25519 signature of the body, checked as Ed25519", "ed25519", edKey, v3, good[:64]},
		{"suite-hybrid-body-ed25519-signature", "suite", "a version-3 body signed with Ed25519 alone, checked as Ed25519", "ed25519", edKey, v3, ed(v3)},
		{"suite-hybrid-body-hybrid-signature-as-ed25519", "suite", "valid-hybrid checked as Ed25519", "ed25519", edKey, v3, good},
		{"suite-ed25519-body-hybrid-signature", "suite", "a version-2 body with a valid hybrid signature, checked as hybrid", "hybrid", key, v2, hy(a, label, v2)},
		{"suite-ed25519-body-ed25519-signature", "suite", "valid-ed25519's body and signature, checked as hybrid", "hybrid", key, v2, ed(v2)},
		{"suite-ed25519-body-padded-signature", "suite", "a version-2 body, its Ed25519 signature followed by the ML-DSA-65 half of a hybrid signature of it", "hybrid", key, v2,
			cat(ed(v2), hy(a, label, v2)[64:])},
		{"suite-version-4", "suite", "version byte 4 with a valid hybrid signature", "hybrid", key, version(v3, 4), hy(a, label, version(v3, 4))},
		{"suite-version-1", "suite", "version byte 1 with a valid Ed25519 signature", "ed25519", edKey, version(v2, 1), ed(version(v2, 1))},
		{"suite-version-0", "suite", "version byte 0 with a valid hybrid signature", "hybrid", key, version(v3, 0), hy(a, label, version(v3, 0))},
		{"signature-version-lowered", "signature", "valid-hybrid's body relabelled version 2, with its signature's Ed25519 half", "ed25519", edKey, version(v3, 2), good[:64]},
		{"signature-version-raised", "signature", "a hybrid signature of a version-2 body, the body relabelled version 3", "hybrid", key, version(v2, 3), hy(a, label, v2)},

		// One half.
		{"signature-ed25519-half-only", "signature", "the Ed25519 half valid, the ML-DSA-65 half from the signature of another header", "hybrid", key, v3,
			cat(good[:64], hy(a, label, v3next)[64:])},
		{"signature-ml-dsa-half-only", "signature", "the ML-DSA-65 half valid, the Ed25519 half from the signature of another header", "hybrid", key, v3,
			cat(hy(a, label, v3next)[:64], good[64:])},
		{"signature-ml-dsa-other-key", "signature", "the Ed25519 half valid, the ML-DSA-65 half by another key", "hybrid", key, v3,
			cat(good[:64], mlSig(bML, msg, label))},
		{"signature-ed25519-other-key", "signature", "the ML-DSA-65 half valid, the Ed25519 half by another key", "hybrid", key, v3,
			cat(ed25519.Sign(bEd, msg), good[64:])},
		{"signature-ml-dsa-no-context", "signature", "the ML-DSA-65 half over the right message with an empty context", "hybrid", key, v3,
			cat(good[:64], mlSig(aML, msg, ""))},
		{"signature-ml-dsa-other-context", "signature", "the ML-DSA-65 half over the right message with the commit label as context", "hybrid", key, v3,
			cat(good[:64], mlSig(aML, msg, coffer.LabelCommit))},
		{"signature-bare-body", "signature", "both halves over the body without its label", "hybrid", key, v3,
			cat(ed25519.Sign(aEd, v3), mlSig(aML, v3, ""))},
		{"signature-halves-swapped", "signature", "the ML-DSA-65 half first", "hybrid", key, v3, cat(good[64:], good[:64])},

		// Lengths.
		{"signature-empty", "signature", "no signature", "hybrid", key, v3, nil},
		{"signature-short", "signature", "one byte short", "hybrid", key, v3, good[:len(good)-1]},
		{"signature-long", "signature", "one byte appended", "hybrid", key, v3, cat(good, []byte{0})},
		{"signature-ed25519-length", "signature", "the Ed25519 half alone, checked as hybrid", "hybrid", key, v3, good[:64]},
		{"signature-ml-dsa-length", "signature", "the ML-DSA-65 half alone", "hybrid", key, v3, good[64:]},
		{"signature-zero", "signature", "all zero bytes", "hybrid", key, v3, make([]byte, coffer.HybridSignatureSize)},

		// Other labels.
		{"signature-label-commit", "signature", "a hybrid signature of the body under the commit label", "hybrid", key, v3, hy(a, coffer.LabelCommit, v3)},
		{"signature-label-delete", "signature", "a hybrid signature of the body under the resource-delete label", "hybrid", key, v3, hy(a, coffer.LabelResourceDelete, v3)},
		{"signature-label-header-hash", "signature", "a hybrid signature of the body under the header-hash label", "hybrid", key, v3, hy(a, coffer.LabelResourceHeaderHash, v3)},
		{"signature-label-v2", "signature", "a hybrid signature of the body under coffer/v2/resource-header", "hybrid", key, v3, hy(a, "coffer/v2/resource-header", v3)},

		// Keys and bodies.
		{"signature-other-author", "signature", "valid-hybrid checked under another member's key", "hybrid", b.Public().Bytes(), v3, good},
		{"signature-forged-by-other-member", "signature", "another member signed the header that names the author", "hybrid", key, v3, hy(b, label, v3)},
		{"signature-reattributed", "signature", "valid-hybrid's signature over a body naming another author", "hybrid", key, reattributed, good},
		{"signature-other-version", "signature", "valid-hybrid-replace's signature over valid-hybrid's body", "hybrid", key, v3, hy(a, label, v3next)},
		{"signature-body-truncated", "signature", "valid-hybrid's body without its last byte", "hybrid", key, v3[:len(v3)-1], good},
		{"signature-body-extended", "signature", "valid-hybrid's body with a byte appended", "hybrid", key, cat(v3, []byte{0}), good},
		{"header-signed-truncated", "header", "a valid hybrid signature over valid-hybrid's body without its last byte", "hybrid", key, v3[:len(v3)-1], hy(a, label, v3[:len(v3)-1])},
		{"header-signed-extended", "header", "a valid hybrid signature over valid-hybrid's body with a byte appended", "hybrid", key, cat(v3, []byte{0}), hy(a, label, cat(v3, []byte{0}))},
		{"header-signed-no-chunks", "header", "a valid hybrid signature over a version-3 header that counts no chunks", "hybrid", key, noChunks, hy(a, label, noChunks)},
		{"header-ed25519-signed-extended", "header", "a valid Ed25519 signature over valid-ed25519's body with a byte appended", "ed25519", edKey, cat(v2, []byte{0}), ed(cat(v2, []byte{0}))},
	}
}

// resourceHeaderVerdict classifies what the verifier says about a case. A
// valid header must also re-encode to its body with the suite it came in.
func resourceHeaderVerdict(verifier string, key, body, sig []byte) string {
	sh := coffer.SignedHeader{Body: body, Signature: sig}
	var (
		h   *coffer.ResourceHeader
		err error
	)
	switch verifier {
	case "ed25519":
		h, err = sh.Verify(ed25519.PublicKey(key))
	case "hybrid":
		pub, perr := coffer.ParseHybridPublicKey(key)
		if perr != nil {
			return "key: " + perr.Error()
		}
		h, err = sh.VerifyHybrid(pub)
	default:
		return "unknown verifier " + verifier
	}
	if err == nil {
		if !bytes.Equal(h.Marshal(), body) || (h.Suite == coffer.ResourceSuiteHybrid) != (verifier == "hybrid") {
			return "valid, but it re-encodes to another body"
		}
		return "valid"
	}
	if coffer.ErrorCode(err) != coffer.EINVALID {
		return "error of another code: " + err.Error()
	}
	msg := coffer.ErrorMessage(err)
	switch {
	case strings.HasPrefix(msg, "resource header version") && strings.Contains(msg, "header (version"):
		return "suite"
	case strings.HasPrefix(msg, "resource header signature"):
		return "signature"
	}
	return "header"
}

func encodeResourceHeaderCase(c resourceHeaderCase) []byte {
	b := fmt.Appendf(nil, "expect: %s\ncomment: %s\nverifier: %s\nkey: %s\nbody: %x\nsig: %s\n",
		c.expect, c.comment, c.verifier, base64.StdEncoding.EncodeToString(c.key), c.body, base64.StdEncoding.EncodeToString(c.sig))
	if c.expect == "valid" {
		b = fmt.Appendf(b, "header hash: %x\n", coffer.HeaderHash(c.body))
	}
	return b
}

func TestResourceHeaderVectors(t *testing.T) {
	cases := resourceHeaderCases(t)
	want := map[string][]byte{}
	seen := map[string]bool{}
	for _, c := range cases {
		want[c.name+".txt"] = encodeResourceHeaderCase(c)
		seen[c.expect] = true
		if got := resourceHeaderVerdict(c.verifier, c.key, c.body, c.sig); got != c.expect {
			t.Errorf("case %s: verifier says %s, case expects %s", c.name, got, c.expect)
		}
	}
	for _, e := range []string{"valid", "suite", "signature", "header"} {
		if !seen[e] {
			t.Errorf("no case expects %s", e)
		}
	}
	writeVectors(t, resourceHeaderDir, want)

	files, err := filepath.Glob(filepath.Join(resourceHeaderDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s (%v): run go test -run TestResourceHeaderVectors -update", resourceHeaderDir, err)
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
			t.Errorf("%s differs from what its case generates: run go test -run TestResourceHeaderVectors -update", name)
		}
		h := parseVectorHeader(t, data)
		key, err1 := base64.StdEncoding.DecodeString(h["key"])
		body, err2 := hex.DecodeString(h["body"])
		sig, err3 := base64.StdEncoding.DecodeString(h["sig"])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s: bad encoding: %v %v %v", name, err1, err2, err3)
		}
		if got := resourceHeaderVerdict(h["verifier"], key, body, sig); got != h["expect"] {
			t.Errorf("%s: verifier says %s, vector expects %s", name, got, h["expect"])
		}
		if hh, ok := h["header hash"]; ok || h["expect"] == "valid" {
			if sum := coffer.HeaderHash(body); hh != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: header hash %s, HeaderHash gives %x", name, hh, sum)
			}
		}
	}
	for name := range want {
		if _, err := os.Stat(filepath.Join(resourceHeaderDir, name)); err != nil {
			t.Errorf("case %s has no vector file: run go test -run TestResourceHeaderVectors -update", name)
		}
	}
}
