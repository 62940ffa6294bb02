package coffer_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
)

// The fingerprint vectors are in testdata/fingerprint, one case per file:
// "name: value" lines, starting with the expected outcome.
//
//	expect: success | malformed identity
//	comment: what the case shows
//	handle: the handle                       (success)
//	signing seed: hex, ed25519.NewKeyFromSeed (success)
//	encryption ikm: hex, KEM().DeriveKeyPair  (success)
//	identity: hex of the canonical encoding
//	fingerprint: hex of the 64-byte hash     (success)
//	safety number: 12 groups of 5 digits     (success)
//	qr payload: coffer:v1:<handle>:<base64url> (success)
//
// Every key derives from a fixed seed, so another implementation can
// rebuild each identity from the file and must reach the same bytes. Run
// `go test -run TestFingerprintVectors -update` to regenerate them after a
// deliberate change (there should be none: suite v1 is frozen).

func init() {
	// Shared with the other vector tests of the package: whoever registers
	// -update first wins.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the test vectors under testdata/ instead of checking them")
	}
}

func updateFingerprintVectors() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const fingerprintDir = "testdata/fingerprint"

type fingerprintVector struct {
	name          string // file name without .txt
	expect        string
	comment       string
	handle        string
	signingSeed   []byte
	encryptionIKM []byte
	identity      []byte
	fingerprint   []byte
	safetyNumber  string
	qrPayload     string
}

// vectorSeed is a fixed 32-byte value per label.
func vectorSeed(label string) []byte {
	s := sha256.Sum256([]byte("coffer/v1 test vector: " + label))
	return s[:]
}

// deriveIdentity rebuilds a public identity from a vector's seeds.
func deriveIdentity(tb testing.TB, handle string, signingSeed, ikm []byte) coffer.PublicIdentity {
	tb.Helper()
	if len(signingSeed) != ed25519.SeedSize {
		tb.Fatalf("signing seed is %d bytes, want %d", len(signingSeed), ed25519.SeedSize)
	}
	dk, err := coffer.KEM().DeriveKeyPair(ikm)
	if err != nil {
		tb.Fatalf("DeriveKeyPair: %v", err)
	}
	return coffer.PublicIdentity{
		Handle:        coffer.Handle(handle),
		SigningKey:    ed25519.NewKeyFromSeed(signingSeed).Public().(ed25519.PublicKey),
		EncryptionKey: dk.PublicKey().Bytes(),
	}
}

// fingerprintCases are the vectors that -update writes.
func fingerprintCases(tb testing.TB) []fingerprintVector {
	tb.Helper()
	success := func(name, comment, handle, seedLabel, ikmLabel string) fingerprintVector {
		v := fingerprintVector{name: name, expect: "success", comment: comment, handle: handle,
			signingSeed: vectorSeed("signing " + seedLabel), encryptionIKM: vectorSeed("encryption " + ikmLabel)}
		id := deriveIdentity(tb, handle, v.signingSeed, v.encryptionIKM)
		f := coffer.FingerprintOf(id)
		v.identity, v.fingerprint = id.Marshal(), f[:]
		v.safetyNumber, v.qrPayload = f.SafetyNumber(), f.QRPayload(id.Handle)
		return v
	}
	malformed := func(name, comment string, mangle func([]byte) []byte) fingerprintVector {
		base := success("", "", "alice", "alice", "alice")
		return fingerprintVector{name: name, expect: "malformed identity", comment: comment,
			identity: mangle(slices.Clone(base.identity))}
	}
	return []fingerprintVector{
		success("alice", "a typical identity", "alice", "alice", "alice"),
		success("bob", "another identity", "bob", "bob", "bob"),
		success("alice-other-handle", "alice's keys under another handle: the handle is bound, so every value differs",
			"alice2", "alice", "alice"),
		success("alice-other-signing-key", "alice's handle and encryption key with another signing key",
			"alice", "mallory", "alice"),
		success("alice-other-encryption-key", "alice's handle and signing key with another encryption key",
			"alice", "alice", "mallory"),
		success("shortest-handle", "a handle of the minimum length, 3", "abc", "abc", "abc"),
		success("longest-handle", "a handle of the maximum length, 32, with every punctuation allowed",
			"a.very_long-handle.0123456789xyz", "long", "long"),
		malformed("malformed-version", "version byte 2 is not suite v1", func(b []byte) []byte { b[0] = 2; return b }),
		malformed("malformed-trailing-byte", "a byte after the encryption key", func(b []byte) []byte { return append(b, 0) }),
		malformed("malformed-uppercase-handle", "handles are lowercase", func(b []byte) []byte { b[2] = 'A'; return b }),
		malformed("malformed-short-signing-key", "the signing key's length prefix says 31", func(b []byte) []byte {
			// version, handle length, "alice", signing key length.
			b[7] = 31
			return b
		}),
		malformed("malformed-encryption-key", "a 1216-byte encryption key whose ML-KEM part does not decode",
			func(b []byte) []byte {
				ek := b[len(b)-coffer.EncryptionKeySize:]
				for i := range 1184 {
					ek[i] = 0xff
				}
				return b
			}),
	}
}

func (v fingerprintVector) marshal() []byte {
	var b bytes.Buffer
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	line("expect", v.expect)
	line("comment", v.comment)
	line("handle", v.handle)
	line("signing seed", hex.EncodeToString(v.signingSeed))
	line("encryption ikm", hex.EncodeToString(v.encryptionIKM))
	line("identity", hex.EncodeToString(v.identity))
	line("fingerprint", hex.EncodeToString(v.fingerprint))
	line("safety number", v.safetyNumber)
	line("qr payload", v.qrPayload)
	return b.Bytes()
}

func parseFingerprintVector(tb testing.TB, name string, data []byte) fingerprintVector {
	tb.Helper()
	v := fingerprintVector{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	first := true
	for sc.Scan() {
		k, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			tb.Fatalf("%s: line %q is not \"name: value\"", name, sc.Text())
		}
		if first && k != "expect" {
			tb.Fatalf("%s: the first line must be \"expect: ...\"", name)
		}
		first = false
		unhex := func() []byte {
			b, err := hex.DecodeString(val)
			if err != nil {
				tb.Fatalf("%s: %s: %v", name, k, err)
			}
			return b
		}
		switch k {
		case "expect":
			v.expect = val
		case "comment":
			v.comment = val
		case "handle":
			v.handle = val
		case "signing seed":
			v.signingSeed = unhex()
		case "encryption ikm":
			v.encryptionIKM = unhex()
		case "identity":
			v.identity = unhex()
		case "fingerprint":
			v.fingerprint = unhex()
		case "safety number":
			v.safetyNumber = val
		case "qr payload":
			v.qrPayload = val
		default:
			tb.Fatalf("%s: unknown field %q", name, k)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return v
}

var safetyNumberRE = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){11}$`)

func TestFingerprintVectors(t *testing.T) {
	cases := fingerprintCases(t)
	if updateFingerprintVectors() {
		old, _ := filepath.Glob(filepath.Join(fingerprintDir, "*.txt"))
		for _, f := range old {
			os.Remove(f)
		}
		if err := os.MkdirAll(fingerprintDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range cases {
			if err := os.WriteFile(filepath.Join(fingerprintDir, v.name+".txt"), v.marshal(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	files, err := filepath.Glob(filepath.Join(fingerprintDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			v := parseFingerprintVector(t, name, data)
			switch v.expect {
			case "success":
				checkFingerprintSuccess(t, v)
			case "malformed identity":
				if _, err := coffer.ParsePublicIdentity(v.identity); coffer.ErrorCode(err) != coffer.EINVALID {
					t.Fatalf("ParsePublicIdentity: %v, want an invalid error", err)
				}
			default:
				t.Fatalf("unknown expect %q", v.expect)
			}
		})
	}
	// The files and the generator agree: none was lost or edited by hand.
	for _, v := range cases {
		if !seen[v.name] {
			t.Errorf("vector %s.txt is missing; run go test -run TestFingerprintVectors -update", v.name)
			continue
		}
		data, _ := os.ReadFile(filepath.Join(fingerprintDir, v.name+".txt"))
		if !bytes.Equal(data, v.marshal()) {
			t.Errorf("%s.txt differs from what the generator makes", v.name)
		}
	}
}

func checkFingerprintSuccess(t *testing.T, v fingerprintVector) {
	t.Helper()
	id := deriveIdentity(t, v.handle, v.signingSeed, v.encryptionIKM)
	if got := id.Marshal(); !bytes.Equal(got, v.identity) {
		t.Fatalf("canonical encoding\n got %x\nwant %x", got, v.identity)
	}
	parsed, err := coffer.ParsePublicIdentity(v.identity)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.Equal(id) {
		t.Fatal("parsed identity differs from the derived one")
	}
	f := coffer.FingerprintOf(parsed)
	if !bytes.Equal(f[:], v.fingerprint) {
		t.Errorf("fingerprint\n got %x\nwant %x", f[:], v.fingerprint)
	}
	if got := f.SafetyNumber(); got != v.safetyNumber {
		t.Errorf("safety number\n got %s\nwant %s", got, v.safetyNumber)
	}
	if !safetyNumberRE.MatchString(v.safetyNumber) {
		t.Errorf("safety number %q is not 12 groups of 5 digits", v.safetyNumber)
	}
	if got := f.QRPayload(parsed.Handle); got != v.qrPayload {
		t.Errorf("QR payload\n got %s\nwant %s", got, v.qrPayload)
	}
	if !coffer.MatchVerificationCode(parsed, v.safetyNumber) || !coffer.MatchVerificationCode(parsed, v.qrPayload) {
		t.Error("MatchVerificationCode rejects the vector's own codes")
	}
}

func TestMatchVerificationCode(t *testing.T) {
	alice := deriveIdentity(t, "alice", vectorSeed("signing alice"), vectorSeed("encryption alice"))
	bob := deriveIdentity(t, "bob", vectorSeed("signing bob"), vectorSeed("encryption bob"))
	// The same keys under another handle: a server renaming an account.
	renamed := alice
	renamed.Handle = "alicf"

	f := coffer.FingerprintOf(alice)
	number := f.SafetyNumber()
	digits := strings.ReplaceAll(number, " ", "")
	qr := f.QRPayload(alice.Handle)

	tests := []struct {
		name string
		code string
		want bool
	}{
		{"safety number", number, true},
		{"without spaces", digits, true},
		{"with dashes", strings.ReplaceAll(number, " ", "-"), true},
		{"with surrounding whitespace", "  " + number + "\n", true},
		{"QR payload", qr, true},
		{"QR payload with surrounding whitespace", " " + qr + "\n", true},
		{"empty", "", false},
		{"spaces only", "     ", false},
		{"one digit short", digits[:59], false},
		{"one digit more", digits + "0", false},
		{"groups swapped", digits[5:10] + digits[:5] + digits[10:], false},
		{"bob's number", coffer.FingerprintOf(bob).SafetyNumber(), false},
		{"bob's QR payload", coffer.FingerprintOf(bob).QRPayload(bob.Handle), false},
		{"number of the same keys under another handle", coffer.FingerprintOf(renamed).SafetyNumber(), false},
		{"QR payload of the same keys under another handle", coffer.FingerprintOf(renamed).QRPayload(renamed.Handle), false},
		{"QR payload naming another handle", f.QRPayload("bob"), false},
		{"QR payload with padding", qr + "=", false},
		{"QR payload truncated", qr[:len(qr)-1], false},
		{"QR payload in capitals", strings.ToUpper(qr), false},
		{"QR payload with the digits", "coffer:v1:alice:" + digits, false},
		{"the digits with a QR prefix", qr[:len("coffer:v1:")] + digits, false},
		{"full-width digits", strings.Map(func(r rune) rune { return r - '0' + '０' }, digits), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := coffer.MatchVerificationCode(alice, tt.code); got != tt.want {
				t.Errorf("MatchVerificationCode(%q) = %v, want %v", tt.code, got, tt.want)
			}
		})
	}

	t.Run("every single changed digit", func(t *testing.T) {
		for i := range len(digits) {
			for d := byte('0'); d <= '9'; d++ {
				if digits[i] == d {
					continue
				}
				changed := digits[:i] + string(d) + digits[i+1:]
				if coffer.MatchVerificationCode(alice, changed) {
					t.Fatalf("accepted the number with digit %d changed to %c", i, d)
				}
			}
		}
	})
	t.Run("every single changed QR character", func(t *testing.T) {
		for i := range len(qr) {
			changed := []byte(qr)
			changed[i] ^= 0x01
			if coffer.MatchVerificationCode(alice, string(changed)) {
				t.Fatalf("accepted the QR payload with byte %d changed", i)
			}
		}
	})
}

// TestSafetyNumberBindsEverything checks that each part of an identity
// changes the safety number: the version-tagged encoding covers the handle
// and both keys.
func TestSafetyNumberBindsEverything(t *testing.T) {
	base := deriveIdentity(t, "alice", vectorSeed("signing alice"), vectorSeed("encryption alice"))
	variants := map[string]coffer.PublicIdentity{
		"handle":         deriveIdentity(t, "alice2", vectorSeed("signing alice"), vectorSeed("encryption alice")),
		"signing key":    deriveIdentity(t, "alice", vectorSeed("signing mallory"), vectorSeed("encryption alice")),
		"encryption key": deriveIdentity(t, "alice", vectorSeed("signing alice"), vectorSeed("encryption mallory")),
	}
	want := coffer.FingerprintOf(base)
	for part, v := range variants {
		got := coffer.FingerprintOf(v)
		if got.SafetyNumber() == want.SafetyNumber() || got.QRPayload(v.Handle) == want.QRPayload(base.Handle) {
			t.Errorf("changing the %s does not change the codes", part)
		}
	}
}
