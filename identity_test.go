package coffer_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cofferhq/coffer"
)

// MustPublicIdentity returns a fresh random identity for handle.
func MustPublicIdentity(tb testing.TB, handle string) (coffer.PublicIdentity, ed25519.PrivateKey) {
	tb.Helper()
	pub, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	dk, err := coffer.KEM().GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	return coffer.PublicIdentity{Handle: coffer.Handle(handle), SigningKey: pub, EncryptionKey: dk.PublicKey().Bytes()}, sk
}

func TestPublicIdentityRoundTrip(t *testing.T) {
	for _, handle := range []string{"abc", "alice", "a.very_long-handle.0123456789xyz"} {
		id, _ := MustPublicIdentity(t, handle)
		enc := id.Marshal()
		if want := 1 + 1 + len(handle) + 1 + 32 + 2 + 1216; len(enc) != want {
			t.Errorf("%s: encoding is %d bytes, want %d", handle, len(enc), want)
		}
		got, err := coffer.ParsePublicIdentity(enc)
		if err != nil {
			t.Fatalf("%s: %v", handle, err)
		}
		if !got.Equal(id) || !bytes.Equal(got.Marshal(), enc) {
			t.Fatalf("%s: round trip changed the identity", handle)
		}
		// The parsed identity does not alias the input.
		enc[len(enc)-1] ^= 1
		if !got.Equal(id) {
			t.Fatalf("%s: the parsed identity aliases its input", handle)
		}
	}
}

func TestParsePublicIdentityRejects(t *testing.T) {
	id, _ := MustPublicIdentity(t, "alice")
	valid := id.Marshal()
	with := func(f func(*coffer.PublicIdentity)) []byte {
		v := id
		f(&v)
		return v.Marshal()
	}
	mangled := func(f func([]byte) []byte) []byte { return f(bytes.Clone(valid)) }
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "malformed"},
		{"version only", []byte{1}, "malformed"},
		{"version 0", mangled(func(b []byte) []byte { b[0] = 0; return b }), "version"},
		{"version 2", mangled(func(b []byte) []byte { b[0] = 2; return b }), "version"},
		{"trailing byte", append(bytes.Clone(valid), 0), "malformed"},
		{"truncated", valid[:len(valid)-1], "malformed"},
		{"empty handle", with(func(p *coffer.PublicIdentity) { p.Handle = "" }), "handle"},
		{"uppercase handle", with(func(p *coffer.PublicIdentity) { p.Handle = "Alice" }), "handle"},
		{"handle of 33 bytes", with(func(p *coffer.PublicIdentity) { p.Handle = coffer.Handle(strings.Repeat("a", 33)) }), "handle"},
		{"handle with a NUL", with(func(p *coffer.PublicIdentity) { p.Handle = "ali\x00ce" }), "handle"},
		{"signing key of 31 bytes", with(func(p *coffer.PublicIdentity) { p.SigningKey = p.SigningKey[:31] }), "signing key"},
		{"no signing key", with(func(p *coffer.PublicIdentity) { p.SigningKey = nil }), "signing key"},
		{"encryption key of 1215 bytes", with(func(p *coffer.PublicIdentity) { p.EncryptionKey = p.EncryptionKey[:1215] }), "encryption key"},
		{"encryption key of 1217 bytes", with(func(p *coffer.PublicIdentity) { p.EncryptionKey = append(bytes.Clone(p.EncryptionKey), 0) }), "encryption key"},
		{"X25519 key only", with(func(p *coffer.PublicIdentity) { p.EncryptionKey = p.EncryptionKey[1184:] }), "encryption key"},
		{"ML-KEM coefficients out of range", with(func(p *coffer.PublicIdentity) {
			p.EncryptionKey = bytes.Repeat([]byte{0xff}, coffer.EncryptionKeySize)
		}), "not a valid MLKEM768-X25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := coffer.ParsePublicIdentity(tt.data)
			if coffer.ErrorCode(err) != coffer.EINVALID {
				t.Fatalf("error %v, want code invalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

// TestParsePublicIdentityMangling changes every byte of a valid encoding
// in several ways. Each variant must fail to parse or, where the change
// lands inside key material that stays structurally valid, parse into a
// different identity whose encoding is exactly the variant: no two
// encodings ever mean the same identity.
func TestParsePublicIdentityMangling(t *testing.T) {
	id, _ := MustPublicIdentity(t, "alice")
	valid := id.Marshal()
	var accepted int
	for i := range valid {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(valid)
			b[i] ^= x
			got, err := coffer.ParsePublicIdentity(b)
			if err != nil {
				if coffer.ErrorCode(err) != coffer.EINVALID {
					t.Fatalf("byte %d ^ %#x: error %v is not invalid", i, x, err)
				}
				continue
			}
			accepted++
			// The version and the three length prefixes admit no change.
			if i == 0 || i == 1 || i == 7 || i == 40 || i == 41 {
				t.Fatalf("byte %d ^ %#x: a changed version or length was accepted", i, x)
			}
			if got.Equal(id) {
				t.Fatalf("byte %d ^ %#x: a different encoding parses to the same identity", i, x)
			}
			if !bytes.Equal(got.Marshal(), b) {
				t.Fatalf("byte %d ^ %#x: the parsed identity re-encodes differently", i, x)
			}
		}
	}
	for n := range len(valid) {
		if _, err := coffer.ParsePublicIdentity(valid[:n]); err == nil {
			t.Fatalf("a %d-byte prefix parses", n)
		}
	}
	t.Logf("%d of %d single-byte changes parse (into other identities)", accepted, 3*len(valid))
}

func TestVerifySelfSignature(t *testing.T) {
	id, sk := MustPublicIdentity(t, "alice")
	sig := coffer.Sign(sk, coffer.LabelIdentity, id.Marshal())
	if err := id.VerifySelfSignature(sig); err != nil {
		t.Fatal(err)
	}
	renamed := id
	renamed.Handle = "alicf"
	_, otherKey := MustPublicIdentity(t, "mallory")
	for name, tt := range map[string]struct {
		id  coffer.PublicIdentity
		sig []byte
	}{
		"other handle":         {renamed, sig},
		"other label":          {id, coffer.Sign(sk, coffer.LabelLogin, id.Marshal())},
		"other key":            {id, coffer.Sign(otherKey, coffer.LabelIdentity, id.Marshal())},
		"truncated signature":  {id, sig[:63]},
		"empty signature":      {id, nil},
		"signature of nothing": {id, coffer.Sign(sk, coffer.LabelIdentity, nil)},
	} {
		if err := tt.id.VerifySelfSignature(tt.sig); coffer.ErrorCode(err) != coffer.EINVALID {
			t.Errorf("%s: %v, want an invalid error", name, err)
		}
	}
}

func FuzzParsePublicIdentity(f *testing.F) {
	for _, h := range []string{"abc", "alice", "a.very_long-handle.0123456789xyz"} {
		id, _ := MustPublicIdentity(f, h)
		f.Add(id.Marshal())
	}
	id, _ := MustPublicIdentity(f, "alice")
	f.Add(append(id.Marshal(), 0))
	f.Add(id.Marshal()[:40])
	f.Add([]byte{1, 3, 'a', 'b', 'c', 32})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := coffer.ParsePublicIdentity(data)
		if err != nil {
			if coffer.ErrorCode(err) != coffer.EINVALID {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		if !bytes.Equal(got.Marshal(), data) {
			t.Fatalf("Marshal(Parse(%x)) = %x", data, got.Marshal())
		}
		again, err := coffer.ParsePublicIdentity(got.Marshal())
		if err != nil || !again.Equal(got) {
			t.Fatalf("the re-encoding does not parse back: %v", err)
		}
		if err := coffer.CheckSigningKey(got.SigningKey); err != nil {
			t.Fatal(err)
		}
		if err := coffer.CheckEncryptionKey(got.EncryptionKey); err != nil {
			t.Fatal(err)
		}
		coffer.FingerprintOf(got).SafetyNumber()
	})
}

var canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestParseIDs(t *testing.T) {
	id := coffer.NewAccountID()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"generated", id.String(), true},
		{"nil uuid", "00000000-0000-0000-0000-000000000000", true},
		{"uppercase", strings.ToUpper(id.String()), false},
		{"no dashes", strings.ReplaceAll(id.String(), "-", ""), false},
		{"braces", "{" + id.String() + "}", false},
		{"urn", "urn:uuid:" + id.String(), false},
		{"short", id.String()[:35], false},
		{"long", id.String() + "0", false},
		{"dash misplaced", "0000000-00000-0000-0000-000000000000", false},
		{"non-hex", "g0000000-0000-0000-0000-000000000000", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := coffer.ParseAccountID(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseAccountID(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				if coffer.ErrorCode(err) != coffer.EINVALID {
					t.Errorf("code %q, want invalid", coffer.ErrorCode(err))
				}
				return
			}
			if a.String() != tt.in {
				t.Errorf("String() = %q, want %q", a.String(), tt.in)
			}
		})
	}
	for range 100 {
		for _, s := range []string{coffer.NewAccountID().String(), coffer.NewGroupID().String(), coffer.NewResourceID().String()} {
			if !canonicalUUID.MatchString(s) || s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
				t.Fatalf("%s is not a lowercase version 4 UUID", s)
			}
		}
	}
}

func FuzzParseIDs(f *testing.F) {
	for _, s := range []string{
		coffer.NewAccountID().String(), "00000000-0000-0000-0000-000000000000",
		"0C0FFE00-9A11-4E2D-8B1E-000000000001", "alice", "a.very_long-handle.0123456789xyz",
		"ab", "Alice", "reader", "writer", "admin", "owner", "none", "role(5)", "", "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkErr := func(what string, err error) {
			if coffer.ErrorCode(err) != coffer.EINVALID {
				t.Fatalf("%s(%q): error %v is not invalid", what, s, err)
			}
			// Messages quote at most a short prefix of the input.
			if msg := coffer.ErrorMessage(err); len(msg) > 400 {
				t.Fatalf("%s: a %d-byte message for a %d-byte input", what, len(msg), len(s))
			}
		}

		a, aerr := coffer.ParseAccountID(s)
		g, gerr := coffer.ParseGroupID(s)
		r, rerr := coffer.ParseResourceID(s)
		if (aerr == nil) != (gerr == nil) || (aerr == nil) != (rerr == nil) {
			t.Fatalf("the id parsers disagree on %q: %v, %v, %v", s, aerr, gerr, rerr)
		}
		if aerr != nil {
			checkErr("ParseAccountID", aerr)
		} else {
			if a.String() != s || g.String() != s || r.String() != s || !canonicalUUID.MatchString(s) {
				t.Fatalf("ParseAccountID(%q) accepted a non-canonical id (%s)", s, a)
			}
			var back coffer.AccountID
			text, _ := a.MarshalText()
			if err := back.UnmarshalText(text); err != nil || back != a {
				t.Fatalf("text round trip of %s: %v", a, err)
			}
		}

		h, err := coffer.ParseHandle(s)
		if err != nil {
			checkErr("ParseHandle", err)
		} else {
			if h.String() != s || len(s) < 3 || len(s) > 32 || !utf8.ValidString(s) {
				t.Fatalf("ParseHandle accepted %q", s)
			}
			for _, c := range s {
				if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
					t.Fatalf("ParseHandle accepted %q with %q", s, c)
				}
			}
		}

		role, err := coffer.ParseRole(s)
		if err != nil {
			checkErr("ParseRole", err)
			var back coffer.Role
			if back.UnmarshalText([]byte(s)) == nil {
				t.Fatalf("UnmarshalText accepts %q, ParseRole does not", s)
			}
		} else {
			if !role.Valid() || role.String() != s {
				t.Fatalf("ParseRole(%q) = %v", s, role)
			}
			text, _ := role.MarshalText()
			if string(text) != s {
				t.Fatalf("MarshalText(%v) = %q", role, text)
			}
		}
	})
}
