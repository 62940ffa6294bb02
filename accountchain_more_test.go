package coffer_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
)

// The safety number pins the account (its id and genesis): no later link
// changes it, and another genesis, even for the same id, handle and device,
// changes it.
func TestAccountSafetyNumberStable(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t)
	s0, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	want := s0.Fingerprint().SafetyNumber()
	if want != coffer.AccountFingerprint(testAccountID(1), b.links[0].Hash()).SafetyNumber() {
		t.Fatalf("the state's fingerprint is not AccountFingerprint(id, genesis hash)")
	}
	steps := []func(){
		func() { b.DoAdd(p.d1, p.d2) },
		func() { b.DoAddByRecovery(p.r1, p.d3) },
		func() { b.DoRevoke(p.d2, p.d1) },
		func() { b.DoRotate(p.d3) },
		func() { b.DoSetRecovery(p.d3, p.r2) },
		func() { b.DoAddByRecovery(p.r2, p.d4) },
	}
	for i, step := range steps {
		step()
		s, err := coffer.VerifyAccountChain(nil, b.links)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := s.Fingerprint().SafetyNumber(); got != want {
			t.Errorf("step %d (link %d) changed the safety number", i, s.Seq)
		}
	}

	// A reset: a new genesis for the same id, handle and device, with
	// another user key, is another account to contacts.
	r := &accountBuilder{tb: t, account: testAccountID(1)}
	g := r.Genesis(p.d1, p.r1)
	g.UserKey = testUserKey(t, 7)
	r.Push(g, p.d1.Key, nil)
	s, err := coffer.VerifyAccountChain(nil, r.links)
	if err != nil {
		t.Fatal(err)
	}
	if s.Fingerprint().SafetyNumber() == want {
		t.Errorf("a new genesis kept the safety number")
	}
	if coffer.AccountFingerprint(testAccountID(2), b.links[0].Hash()) == s0.Fingerprint() {
		t.Errorf("the fingerprint does not bind the account id")
	}
	if (&coffer.AccountState{}).Fingerprint() != (coffer.Fingerprint{}) {
		t.Errorf("a state before its genesis has a fingerprint")
	}
}

func TestVerifyAccountChainFromTrusted(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t).DoAdd(p.d1, p.d2)
	trusted, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	n := len(b.links)
	b.DoRevoke(p.d2, p.d1).DoAdd(p.d2, p.d3).DoRotate(p.d3)
	cont, err := coffer.VerifyAccountChain(trusted, b.links[n:])
	if err != nil {
		t.Fatal(err)
	}
	full, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	if cont.Head != full.Head || cont.Seq != full.Seq || len(cont.Devices) != len(full.Devices) ||
		!bytes.Equal(cont.UserKey, full.UserKey) || cont.UserKeyGeneration != 3 || full.UserKeyGeneration != 3 {
		t.Errorf("continuing from a checkpoint differs from verifying from the genesis")
	}
	if trusted.Seq != 2 || len(trusted.Devices) != 2 || trusted.Devices[p.d1.ID] == nil {
		t.Errorf("VerifyAccountChain modified the trusted state")
	}
	// The revoked device's key stays refused after a checkpoint too.
	again := *p.d1
	again.ID = p.d5.ID
	_, err = coffer.VerifyAccountChain(cont, []coffer.SignedLink{signLinkDet(b.AddDevice(p.d2, &again), p.d2.Key, again.Key)})
	checkAccountRule(t, err, coffer.RuleKeyReuse)
	_, err = coffer.VerifyAccountChain(trusted, b.links[n+1:])
	checkAccountRule(t, err, coffer.RuleSeq)

	// Devices record where their wrap of the current user key is.
	for _, d := range full.SortedDevices() {
		if d.WrapSeq != full.UserKeySeq {
			t.Errorf("device %s: wrap at link %d, user key set at %d", d.ID, d.WrapSeq, full.UserKeySeq)
		}
	}
	if full.RecoveryWrapSeq != full.UserKeySeq {
		t.Errorf("recovery wrap at link %d, user key set at %d", full.RecoveryWrapSeq, full.UserKeySeq)
	}

	if _, err := coffer.VerifyAccountChain(&coffer.AccountState{Seq: 3}, b.links[3:]); err == nil {
		t.Errorf("a hand-made state was accepted as a checkpoint")
	}
}

// A caller that knows which account, deployment or handle it asked for
// has the verifier require it of the genesis.
func TestVerifyAccountChainBindsGenesis(t *testing.T) {
	links := MustAccount(t).links
	for _, tc := range []struct {
		want coffer.AccountState
		rule string
	}{
		{coffer.AccountState{Account: testAccountID(1), Origin: testOrigin, Handle: "alice"}, ""},
		{coffer.AccountState{Account: testAccountID(2)}, coffer.RuleAccount},
		{coffer.AccountState{Origin: "https://other.example:443"}, coffer.RuleOrigin},
		{coffer.AccountState{Origin: "https://coffer.example:8443"}, coffer.RuleOrigin},
		{coffer.AccountState{Handle: "mallory"}, coffer.RuleHandle},
	} {
		_, err := coffer.VerifyAccountChain(&tc.want, links)
		checkAccountRule(t, err, tc.rule)
	}
}

func TestCheckOrigin(t *testing.T) {
	for _, ok := range []string{"https://coffer.example:443", "http://127.0.0.1:8080", "https://[::1]:443"} {
		if err := coffer.CheckOrigin(ok); err != nil {
			t.Errorf("CheckOrigin(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "https://coffer.example", "https://Coffer.example:443", "https://coffer.example:443/",
		"https://coffer.example:443/x", "ftp://coffer.example:21", "https://u@coffer.example:443", "https://:443",
		"https://coffer.example:443?x", "coffer.example:443"} {
		if err := coffer.CheckOrigin(bad); err == nil {
			t.Errorf("CheckOrigin(%q) accepted it", bad)
		}
	}
}

// TestAccountLinkMangled flips each byte of valid links: every variant
// must be refused, by the parser or by the verifier (the signature).
func TestAccountLinkMangled(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t).DoAdd(p.d1, p.d2)
	links := b.links
	rot := signLinkDet(b.Rotate(p.d2), p.d2.Key, nil)
	for _, target := range []struct {
		name  string
		chain []coffer.SignedLink
	}{{"genesis", links[:1]}, {"add-device", links}, {"rotate", b.with(rot)}} {
		last := target.chain[len(target.chain)-1]
		prefix, err := coffer.VerifyAccountChain(nil, target.chain[:len(target.chain)-1])
		if len(target.chain) == 1 {
			prefix, err = nil, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		// Every 5th byte, and every byte of the first 100: a full sweep of
		// the 8 KB genesis costs seconds of signature checks.
		for i := 0; i < len(last.Body); i++ {
			if i >= 100 && i%5 != 0 {
				continue
			}
			m := last
			m.Body = bytes.Clone(last.Body)
			m.Body[i] ^= 0x10
			if _, err := coffer.VerifyAccountChain(prefix, []coffer.SignedLink{m}); err == nil {
				t.Fatalf("%s: flipping byte %d was accepted", target.name, i)
			}
		}
	}
}

// FuzzParseAccountLink: links come from the server. The parser must never
// panic, and what it accepts must be canonical: re-encoding gives the
// same bytes.
func FuzzParseAccountLink(f *testing.F) {
	p := MustAccountCast(f)
	b := MustAccount(f).DoAdd(p.d1, p.d2).DoSetRecovery(p.d2, p.r2).DoRevoke(p.d2, p.d1)
	for _, sl := range b.links {
		f.Add(sl.Body)
	}
	f.Add(signLinkDet(b.Rotate(p.d2), p.d2.Key, nil).Body)
	f.Add([]byte{})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, body []byte) {
		l, err := coffer.ParseAccountLink(body)
		if err != nil {
			var e *coffer.Error
			if !errorsAs(err, &e) || e.Rule == "" {
				t.Fatalf("parse error without a rule: %v", err)
			}
			return
		}
		if !bytes.Equal(l.Marshal(), body) {
			t.Fatalf("accepted link does not re-encode to its input")
		}
	})
}

func TestAccountIdentityFollowsRotations(t *testing.T) {
	p := MustAccountCast(t)
	b := MustAccount(t)
	s, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	id := s.Identity()
	if id.Handle != "alice" || !bytes.Equal(id.SigningKey, testUserSigningKey(t, 1).Ed25519()) || !bytes.Equal(id.EncryptionKey, testUserKey(t, 1)) {
		t.Fatalf("genesis identity is not the user key's")
	}
	fp := s.Fingerprint()
	b.DoAdd(p.d1, p.d2).DoRevoke(p.d2, p.d1)
	s2, err := coffer.VerifyAccountChain(nil, b.links)
	if err != nil {
		t.Fatal(err)
	}
	id2 := s2.Identity()
	if !bytes.Equal(id2.SigningKey, testUserSigningKey(t, 2).Ed25519()) || !bytes.Equal(id2.EncryptionKey, testUserKey(t, 2)) {
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
	if !r.Identity().Equal(id2) || r.Devices[p.d2.ID].Name != "device 2" {
		t.Fatalf("the checkpoint lost the user signing key or a device name")
	}
}
