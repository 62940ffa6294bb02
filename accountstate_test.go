package coffer_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
)

func mustMarshalAccount(tb testing.TB, s *coffer.AccountState) []byte {
	tb.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// A checkpoint restores the state exactly: verification resumes from it as
// from the genesis, and the rules that need history (no reused device id or
// key) still hold.
func TestAccountStateCheckpoint(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t).DoAdd(p.d1, p.d2).DoAddByRecovery(p.r1, p.d3).DoRevoke(p.d3, p.d1).DoSetRecovery(p.d2, p.r2)
	s, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	data := mustMarshalAccount(t, s)
	var r coffer.AccountState
	if err := r.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustMarshalAccount(t, &r), data) {
		t.Fatalf("the restored state encodes differently")
	}
	if r.Fingerprint() != s.Fingerprint() || r.Head != s.Head || len(r.Devices) != 2 || !bytes.Equal(r.UserKey, s.UserKey) {
		t.Fatalf("the restored state differs")
	}
	n := len(b.links)
	b.DoRotate(p.d2).DoAdd(p.d3, p.d4)
	cont, err := coffer.VerifyAccountChain(&r, b.links[n:])
	if err != nil {
		t.Fatal(err)
	}
	full, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustMarshalAccount(t, cont), mustMarshalAccount(t, full)) {
		t.Errorf("continuing from a restored checkpoint differs from verifying from the genesis")
	}
	// History survives the checkpoint: the revoked device 1 cannot return,
	// by id or by keys.
	at := &accountBuilder{tb: t, account: testAccountID(1), head: &coffer.AccountLink{Seq: r.Seq}, headHash: r.Head}
	_, err = coffer.VerifyAccountChain(&r, []coffer.SignedLink{signLinkDet(at.AddDevice(p.d2, p.d1), p.d2.Key, p.d1.Key)})
	checkAccountRule(t, err, coffer.RuleDuplicateDevice)
	again := *p.d1
	again.ID = p.d5.ID
	_, err = coffer.VerifyAccountChain(&r, []coffer.SignedLink{signLinkDet(at.AddDevice(p.d2, &again), p.d2.Key, again.Key)})
	checkAccountRule(t, err, coffer.RuleKeyReuse)

	if _, err := (&coffer.AccountState{}).MarshalBinary(); err == nil {
		t.Errorf("a state before its genesis encoded")
	}
	// Every truncation, and a trailing byte, is refused and leaves the
	// target unchanged.
	for _, bad := range [][]byte{nil, data[:1], data[:len(data)/2], data[:len(data)-1], append(bytes.Clone(data), 0)} {
		keep := r
		if err := r.UnmarshalBinary(bad); err == nil {
			t.Errorf("a %d-byte truncation or extension was accepted", len(bad))
		}
		if r.Head != keep.Head || r.Seq != keep.Seq {
			t.Errorf("a refused checkpoint changed the state")
		}
	}
	// A flipped version byte, or a flipped last byte of the key history
	// (which breaks its order or its link to the current keys), is refused.
	for _, i := range []int{0, len(data) - 1} {
		m := bytes.Clone(data)
		m[i] ^= 0xff
		if err := new(coffer.AccountState).UnmarshalBinary(m); err == nil {
			t.Errorf("byte %d flipped was accepted", i)
		}
	}
}

// FuzzAccountStateUnmarshal: a stored checkpoint comes back from the
// device key store or the server's database. A corrupt one must be refused
// without a panic; an accepted one re-encodes to the same bytes.
func FuzzAccountStateUnmarshal(f *testing.F) {
	p := MustAccountCast(f)
	b := MustAccount(f).DoAdd(p.d1, p.d2).DoRevoke(p.d2, p.d1)
	s, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mustMarshalAccount(f, s))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var st coffer.AccountState
		if err := st.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := st.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted state does not re-encode to its input: %v", err)
		}
		_ = st.Fingerprint()
		_ = st.SortedDevices()
	})
}

// TestAccountMemberKeys: an account's suite v2 member keys are its current
// user keys, bound to its id, origin, handle and generation; a rotation
// gives new keys with a new hash, and the identity groups use today keeps
// the Ed25519 half of the same hybrid key.
func TestAccountMemberKeys(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t)
	s1, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	k1 := s1.MemberKeys()
	if k1.Account != s1.Account || k1.Origin != s1.Origin || k1.Handle != s1.Handle || k1.Generation != 1 ||
		!k1.SigningKey.Equal(s1.UserSigningKey) || !bytes.Equal(k1.EncryptionKey, s1.UserKey) {
		t.Fatalf("member keys do not match the account state")
	}
	if parsed, err := coffer.ParseMemberKeys(k1.Marshal()); err != nil || parsed.Hash() != k1.Hash() {
		t.Fatalf("member keys do not round-trip: %v", err)
	}
	if !bytes.Equal(s1.Identity().SigningKey, s1.UserSigningKey.Ed25519()) {
		t.Fatal("the suite v1 identity does not carry the Ed25519 half of the user signing key")
	}
	s2, err := coffer.VerifyAccountChain(nil, b.DoRotate(p.d1).links)
	if err != nil {
		t.Fatal(err)
	}
	k2 := s2.MemberKeys()
	if k2.Generation != 2 || k2.Hash() == k1.Hash() || k2.SigningKey.Equal(k1.SigningKey) {
		t.Fatalf("a rotation did not give new member keys")
	}
	if (&coffer.AccountState{}).MemberKeys() != nil {
		t.Fatal("member keys before the genesis")
	}
}
