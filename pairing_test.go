package coffer_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
)

func TestPairingCodeBindsEverything(t *testing.T) {
	d, o := MustTestDevice(t, 1), MustTestDevice(t, 2)
	nonce := bytes.Repeat([]byte{7}, coffer.PairingNonceSize)
	code := coffer.PairingCode("alice", d.Keys(), nonce)
	if len(code) != 19 || code != coffer.PairingCode("alice", d.Keys(), nonce) {
		t.Fatalf("code %q is not stable or not 19 characters", code)
	}
	swappedSigning := d.Keys()
	swappedSigning.SigningKey = o.Key.Public()
	swappedEnc := d.Keys()
	swappedEnc.EncryptionKey = o.Enc
	swappedID := d.Keys()
	swappedID.ID = o.ID
	for name, other := range map[string]string{
		"handle":         coffer.PairingCode("mallory", d.Keys(), nonce),
		"signing key":    coffer.PairingCode("alice", swappedSigning, nonce),
		"encryption key": coffer.PairingCode("alice", swappedEnc, nonce),
		"device id":      coffer.PairingCode("alice", swappedID, nonce),
		"nonce":          coffer.PairingCode("alice", d.Keys(), bytes.Repeat([]byte{8}, coffer.PairingNonceSize)),
	} {
		if other == code {
			t.Errorf("changing the %s keeps the code", name)
		}
	}
	for _, typed := range []string{code, "  " + code + "\n", bytes.NewBuffer(bytes.ToLower([]byte(code))).String(), string(bytes.ReplaceAll([]byte(code), []byte("-"), nil))} {
		got, err := coffer.ParsePairingCode(typed)
		if err != nil || got != code {
			t.Errorf("ParsePairingCode(%q) = %q, %v", typed, got, err)
		}
	}
	for _, bad := range []string{"", "ABCD-EFGH", code + "A", "ABCD-EFGH-IJKL-MNO1", "ABCD-EFGH-IJKL-MN0P"} {
		if _, err := coffer.ParsePairingCode(bad); err == nil {
			t.Errorf("ParsePairingCode(%q) accepted", bad)
		}
	}
}

func TestAccountIdentityFollowsRotations(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t)
	s, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	id := s.Identity()
	if id.Handle != "alice" || !bytes.Equal(id.SigningKey, testUserSigningKey(t, 1)) || !bytes.Equal(id.EncryptionKey, testUserKey(t, 1)) {
		t.Fatalf("genesis identity is not the user key's")
	}
	fp := s.Fingerprint()
	b.DoAdd(p.d1, p.d2).DoRevoke(p.d2, p.d1)
	s2, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	id2 := s2.Identity()
	if !bytes.Equal(id2.SigningKey, testUserSigningKey(t, 2)) || !bytes.Equal(id2.EncryptionKey, testUserKey(t, 2)) {
		t.Fatalf("identity after the revocation is not the new user key's")
	}
	if s2.Fingerprint() != fp {
		t.Fatalf("the account fingerprint changed with a device")
	}
	enc, err := s2.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var r coffer.AccountState
	if err := r.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	if !r.Identity().Equal(id2) {
		t.Fatalf("the checkpoint lost the user signing key")
	}
}

func FuzzParsePairingCode(f *testing.F) {
	f.Add(coffer.PairingCode("alice", MustTestDevice(f, 1).Keys(), make([]byte, coffer.PairingNonceSize)))
	f.Add("abcd efgh ijkl mnop")
	f.Add("----")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := coffer.ParsePairingCode(s)
		if err != nil {
			return
		}
		again, err := coffer.ParsePairingCode(c)
		if err != nil || again != c {
			t.Fatalf("a parsed code %q does not parse to itself: %q, %v", c, again, err)
		}
	})
}
