package coffer_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

// The signing-key vectors are in testdata/signingkey, one case per file:
//
//	expect: valid | small-order | non-canonical | not-a-point | wrong-size
//	comment: what the case shows
//	key: hex of the candidate public key
//
// expect names the first check of coffer.CheckSigningKey that refuses the
// key (size, decoding, canonical re-encoding, cofactor multiple). Run
// `go test -run TestSigningKeyVectors -update` to rewrite the files from
// signingKeyCases.
const signingKeyDir = "testdata/signingkey"

type signingKeyCase struct {
	name, expect, comment, key string
}

var signingKeyCases = []signingKeyCase{
	// Keys that must be accepted.
	{"valid-basepoint", "valid", "the edwards25519 base point, of prime order", "5866666666666666666666666666666666666666666666666666666666666666"},
	{"valid-rfc8032", "valid", "the public key of RFC 8032 test 1", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"},
	{"valid-mixed-order", "valid", "base point plus a point of order 8: its cofactor multiple is not the identity, so the rule does not refuse it", "da99e28ba529cdde35a25fba9059e78ecaee239f99755b9b1aa4f65df00803e2"},

	// The eight points of small order, canonically encoded.
	{"small-order-identity", "small-order", "the identity point (order 1): the signature (identity, 0) verifies for every message", "0100000000000000000000000000000000000000000000000000000000000000"},
	{"small-order-2", "small-order", "the point of order 2, y = -1", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	{"small-order-4", "small-order", "a point of order 4, y = 0", "0000000000000000000000000000000000000000000000000000000000000000"},
	{"small-order-4-neg", "small-order", "the other point of order 4, y = 0 with the sign bit set", "0000000000000000000000000000000000000000000000000000000000000080"},
	{"small-order-8a", "small-order", "a point of order 8", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"},
	{"small-order-8a-neg", "small-order", "its negation, a point of order 8", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"},
	{"small-order-8b", "small-order", "a point of order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"},
	{"small-order-8b-neg", "small-order", "its negation, a point of order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"},

	// Non-canonical encodings, which crypto/ed25519 accepts.
	{"non-canonical-y-p", "non-canonical", "y = p, which reduces to 0 (a point of order 4)", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	{"non-canonical-identity", "non-canonical", "y = p+1, the identity encoded above p", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	{"non-canonical-identity-sign", "non-canonical", "the identity with the sign bit set (x = 0 is never negative)", "0100000000000000000000000000000000000000000000000000000000000080"},
	{"non-canonical-large-order", "non-canonical", "y = p+3, another encoding of the large-order point with y = 3", "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	{"non-canonical-y-max", "non-canonical", "y = 2^255-1 = p+18", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},

	// Not a key at all.
	{"not-a-point", "not-a-point", "y = 2 has no x on the curve", "0200000000000000000000000000000000000000000000000000000000000000"},
	{"wrong-size-short", "wrong-size", "31 bytes", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f70751"},
	{"wrong-size-long", "wrong-size", "33 bytes", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a00"},
}

// signingKeyVerdict classifies CheckSigningKey's answer as a vector's expect.
func signingKeyVerdict(err error) string {
	if err == nil {
		return "valid"
	}
	msg := coffer.ErrorMessage(err)
	for _, v := range []struct{ substr, verdict string }{
		{"small order", "small-order"}, {"canonical", "non-canonical"}, {"not a point", "not-a-point"}, {"bytes", "wrong-size"},
	} {
		if strings.Contains(msg, v.substr) {
			return v.verdict
		}
	}
	return "unknown: " + msg
}

func encodeSigningKeyCase(c signingKeyCase) []byte {
	return fmt.Appendf(nil, "expect: %s\ncomment: %s\nkey: %s\n", c.expect, c.comment, c.key)
}

// TestSigningKeyVectors checks every vector file on its own and that the
// files are exactly signingKeyCases, so removing one fails.
func TestSigningKeyVectors(t *testing.T) {
	want := map[string][]byte{}
	for _, c := range signingKeyCases {
		want[c.name+".txt"] = encodeSigningKeyCase(c)
	}
	if updateVectors() {
		if err := os.RemoveAll(signingKeyDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(signingKeyDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			if err := os.WriteFile(filepath.Join(signingKeyDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(signingKeyDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, file := range files {
		name := filepath.Base(file)
		seen[name] = true
		t.Run(strings.TrimSuffix(name, ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := want[name]; !ok {
				t.Errorf("%s has no case in signingKeyCases", name)
			} else if !bytes.Equal(data, w) {
				t.Errorf("%s differs from its case: run go test -run TestSigningKeyVectors -update", name)
			}
			fields := map[string]string{}
			for line := range strings.Lines(string(data)) {
				k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
				fields[k] = v
			}
			key, err := hex.DecodeString(fields["key"])
			if err != nil {
				t.Fatal(err)
			}
			if got := signingKeyVerdict(coffer.CheckSigningKey(key)); got != fields["expect"] {
				t.Errorf("CheckSigningKey(%s) = %s, want %s", fields["key"], got, fields["expect"])
			}
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("case %s has no vector file: run go test -run TestSigningKeyVectors -update", name)
		}
	}
}

// TestIdentityPointKeyForgesEverything shows why small-order keys are
// refused: crypto/ed25519 alone accepts one fixed signature for every message
// under the identity point, and every entry point refuses that key.
func TestIdentityPointKeyForgesEverything(t *testing.T) {
	identity, _ := hex.DecodeString("0100000000000000000000000000000000000000000000000000000000000000")
	forged := append(bytes.Clone(identity), make([]byte, 32)...) // R = identity, s = 0
	for _, msg := range []string{"pay mallory", "add mallory as owner"} {
		if !coffer.VerifySignature(ed25519.PublicKey(identity), coffer.LabelCommit, []byte(msg), forged) {
			t.Fatalf("the forged signature no longer verifies for %q: the premise of this test changed", msg)
		}
	}

	honest := deriveIdentity(t, "mallory", vectorSeed("weak key honest"), vectorSeed("weak key ikm"))
	weak := honest
	weak.SigningKey = identity
	if _, err := coffer.ParsePublicIdentity(weak.Marshal()); err == nil {
		t.Errorf("ParsePublicIdentity accepted an identity-point signing key")
	}
	if _, err := coffer.ParseStoredPublicIdentity(weak.Marshal()); err == nil {
		t.Errorf("ParseStoredPublicIdentity accepted an identity-point signing key")
	}
	if _, err := coffer.ParsePublicIdentity(honest.Marshal()); err != nil {
		t.Errorf("ParsePublicIdentity refused an honest identity: %v", err)
	}
}
