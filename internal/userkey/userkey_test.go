package userkey_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/userkey"
)

func TestSealOpen(t *testing.T) {
	account := coffer.NewAccountID()
	dev := coffer.NewDeviceID()
	seed := make([]byte, coffer.DeviceSeedSize)
	_, dk, err := coffer.DeviceKeysFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	uk, err := userkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	want := uk.PublicKey().Bytes()
	w, err := userkey.Seal(dk.PublicKey().Bytes(), account, 3, userkey.Recipient{Device: dev}, uk)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != coffer.WrapSize {
		t.Fatalf("wrap is %d bytes", len(w))
	}
	got, err := userkey.Open(dk, account, 3, userkey.Recipient{Device: dev}, w, want)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.PublicKey().Bytes()) != string(want) {
		t.Fatalf("opened another key")
	}

	other, _ := userkey.Generate()
	_, otherDK, _ := coffer.DeviceKeysFromSeed(append([]byte{1}, seed[1:]...))
	bad := append([]byte(nil), w...)
	bad[len(bad)-1] ^= 1
	for _, tc := range []struct {
		name string
		open func() error
	}{
		{"other device id", func() error {
			_, err := userkey.Open(dk, account, 3, userkey.Recipient{Device: coffer.NewDeviceID()}, w, want)
			return err
		}},
		{"as the recovery key", func() error {
			_, err := userkey.Open(dk, account, 3, userkey.RecoveryRecipient, w, want)
			return err
		}},
		{"other generation", func() error {
			_, err := userkey.Open(dk, account, 4, userkey.Recipient{Device: dev}, w, want)
			return err
		}},
		{"other account", func() error {
			_, err := userkey.Open(dk, coffer.NewAccountID(), 3, userkey.Recipient{Device: dev}, w, want)
			return err
		}},
		{"other private key", func() error {
			_, err := userkey.Open(otherDK, account, 3, userkey.Recipient{Device: dev}, w, want)
			return err
		}},
		{"altered", func() error {
			_, err := userkey.Open(dk, account, 3, userkey.Recipient{Device: dev}, bad, want)
			return err
		}},
		{"short", func() error {
			_, err := userkey.Open(dk, account, 3, userkey.Recipient{Device: dev}, w[:100], want)
			return err
		}},
		{"not the chain's user key", func() error {
			_, err := userkey.Open(dk, account, 3, userkey.Recipient{Device: dev}, w, other.PublicKey().Bytes())
			return err
		}},
	} {
		if err := tc.open(); !coffer.IsSecurity(err) {
			t.Errorf("%s: err = %v, want a security error", tc.name, err)
		}
	}
}

// TestChainWithRealWraps runs the account flow with real wraps: each
// device, and the recovery key, opens the wrap that the verified chain
// points it at and gets the chain's current user key.
func TestChainWithRealWraps(t *testing.T) {
	account := coffer.NewAccountID()
	newDevice := func(n byte) (coffer.DeviceID, *coffer.HybridPrivateKey, []byte, func(*coffer.AccountState, []coffer.SignedLink, *testing.T)) {
		seed := make([]byte, coffer.DeviceSeedSize)
		seed[0] = n
		sk, dk, err := coffer.DeviceKeysFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		id := coffer.NewDeviceID()
		check := func(s *coffer.AccountState, links []coffer.SignedLink, t *testing.T) {
			t.Helper()
			d := s.Devices[id]
			l, err := coffer.ParseAccountLink(links[d.WrapSeq-1].Body)
			if err != nil {
				t.Fatal(err)
			}
			w, ok := l.WrapFor(id)
			if !ok {
				t.Fatalf("link %d has no wrap for device %d", d.WrapSeq, n)
			}
			if _, err := userkey.Open(dk, account, s.UserKeyGeneration, userkey.Recipient{Device: id}, w, s.UserKey); err != nil {
				t.Fatalf("device %d: %v", n, err)
			}
		}
		return id, sk, dk.PublicKey().Bytes(), check
	}
	rk := coffer.NewRecoveryKey()
	checkRecovery := func(s *coffer.AccountState, links []coffer.SignedLink, rk *coffer.RecoveryKey) {
		t.Helper()
		l, err := coffer.ParseAccountLink(links[s.RecoveryWrapSeq-1].Body)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := userkey.Open(rk.EncryptionKey(), account, s.UserKeyGeneration, userkey.RecoveryRecipient, l.RecoveryWrap, s.UserKey); err != nil {
			t.Fatalf("recovery at generation %d, wrap in link %d: %v", s.UserKeyGeneration, s.RecoveryWrapSeq, err)
		}
	}

	id1, sk1, enc1, check1 := newDevice(1)
	uk, _ := userkey.Generate()
	seal := func(to []byte, gen uint64, r userkey.Recipient, uk hpke.PrivateKey) []byte {
		t.Helper()
		w, err := userkey.Seal(to, account, gen, r, uk)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	g := &coffer.AccountLink{Account: account, Seq: 1, Kind: coffer.LinkGenesis, AuthorKind: coffer.AuthorDevice, AuthorDevice: id1,
		Origin: "https://coffer.example:443", Handle: "alice",
		Device:  coffer.DeviceKeys{ID: id1, Name: "laptop", SigningKey: sk1.Public(), EncryptionKey: enc1},
		UserKey: uk.PublicKey().Bytes(), UserSigningKey: userSigningPublic(t, uk), RecoveryCommitment: rk.Commitment(account), RecoveryEncryptionKey: rk.EncryptionKey().PublicKey().Bytes(),
		DeviceWraps:  []coffer.DeviceWrap{{Device: id1, Wrap: seal(enc1, 1, userkey.Recipient{Device: id1}, uk)}},
		RecoveryWrap: seal(rk.EncryptionKey().PublicKey().Bytes(), 1, userkey.RecoveryRecipient, uk)}
	links := []coffer.SignedLink{coffer.SignLink(g, sk1, nil)}
	s, err := coffer.VerifyAccountChain(nil, links)
	if err != nil {
		t.Fatal(err)
	}
	check1(s, links, t)
	checkRecovery(s, links, rk)

	// The recovery key adds device 2, wrapping the current user key to it.
	id2, sk2, enc2, check2 := newDevice(2)
	add := &coffer.AccountLink{Account: account, Seq: 2, Prev: s.Head, Kind: coffer.LinkAddDevice, AuthorKind: coffer.AuthorRecovery,
		AuthorRecoveryKey: rk.SigningKey().Public(), Device: coffer.DeviceKeys{ID: id2, Name: "phone", SigningKey: sk2.Public(), EncryptionKey: enc2},
		DeviceWraps: []coffer.DeviceWrap{{Device: id2, Wrap: seal(enc2, 1, userkey.Recipient{Device: id2}, uk)}}}
	links = append(links, coffer.SignLink(add, rk.SigningKey(), sk2))
	if s, err = coffer.VerifyAccountChain(nil, links); err != nil {
		t.Fatal(err)
	}
	check1(s, links, t)
	check2(s, links, t)

	// Device 2 revokes device 1 with a new user key.
	uk2, _ := userkey.Generate()
	rev := &coffer.AccountLink{Account: account, Seq: 3, Prev: s.Head, Kind: coffer.LinkRevokeDevice, AuthorKind: coffer.AuthorDevice,
		AuthorDevice: id2, Revoked: id1, UserKey: uk2.PublicKey().Bytes(), UserSigningKey: userSigningPublic(t, uk2),
		PrevUserKey:  sealPrev(t, uk2, uk, account, 2),
		DeviceWraps:  []coffer.DeviceWrap{{Device: id2, Wrap: seal(enc2, 2, userkey.Recipient{Device: id2}, uk2)}},
		RecoveryWrap: seal(rk.EncryptionKey().PublicKey().Bytes(), 2, userkey.RecoveryRecipient, uk2)}
	links = append(links, coffer.SignLink(rev, sk2, nil))
	if s, err = coffer.VerifyAccountChain(nil, links); err != nil {
		t.Fatal(err)
	}
	check2(s, links, t)
	checkRecovery(s, links, rk)
	if s.Devices[id1] != nil || s.UserKeyGeneration != 2 {
		t.Fatalf("device 1 still current, or generation %d", s.UserKeyGeneration)
	}
	// The new user key walks back to the old one through the sealed
	// previous key in the revocation.
	if _, err := userkey.OpenPrevious(uk2, account, 2, rev.PrevUserKey, g.UserKey); err != nil {
		t.Fatalf("walking back from generation 2: %v", err)
	}
	if !bytes.Equal(s.Identity().SigningKey, userSigningPublic(t, uk2).Ed25519()) || !bytes.Equal(s.Identity().EncryptionKey, uk2.PublicKey().Bytes()) {
		t.Fatalf("the account's identity is not the new user key's")
	}
	// Device 1's old wrap does not open as the new generation's key.
	w1, _ := g.WrapFor(id1)
	_, dk1, _ := coffer.DeviceKeysFromSeed(append([]byte{1}, make([]byte, coffer.DeviceSeedSize-1)...))
	if _, err := userkey.Open(dk1, account, 2, userkey.Recipient{Device: id1}, w1, s.UserKey); err == nil {
		t.Fatalf("the revoked device's old wrap opened as the new user key")
	}
}

func userSigningPublic(t *testing.T, uk hpke.PrivateKey) coffer.HybridPublicKey {
	t.Helper()
	sk, err := userkey.HybridSigningKey(uk)
	if err != nil {
		t.Fatal(err)
	}
	return sk.Public()
}

func sealPrev(t *testing.T, next, prev hpke.PrivateKey, account coffer.AccountID, gen uint64) []byte {
	t.Helper()
	b, err := userkey.SealPrevious(next, prev, account, gen)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSigningKeyDerivesFromSeed(t *testing.T) {
	uk, err := userkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := userkey.SigningKey(uk)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := uk.Bytes()
	again, err := coffer.UserSigningKeyFromSeed(seed)
	if err != nil || !again.Ed25519PrivateKey().Equal(sk) {
		t.Fatalf("the user signing key does not derive from the seed alone")
	}
	other, _ := userkey.Generate()
	osk, _ := userkey.SigningKey(other)
	if osk.Equal(sk) {
		t.Fatalf("two user keys gave one signing key")
	}
	if err := coffer.CheckSigningKey(sk.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
}

func TestSealPrevious(t *testing.T) {
	account, other := coffer.NewAccountID(), coffer.NewAccountID()
	prev, _ := userkey.Generate()
	next, _ := userkey.Generate()
	third, _ := userkey.Generate()
	want := prev.PublicKey().Bytes()
	sealed, err := userkey.SealPrevious(next, prev, account, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != coffer.HistoryLinkSize {
		t.Fatalf("sealed previous key is %d bytes", len(sealed))
	}
	got, err := userkey.OpenPrevious(next, account, 2, sealed, want)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.PublicKey().Bytes()) != string(want) {
		t.Fatal("opened another key")
	}
	flipped := bytes.Clone(sealed)
	flipped[20] ^= 1
	for name, try := range map[string]func() error{
		"another account":    func() error { _, err := userkey.OpenPrevious(next, other, 2, sealed, want); return err },
		"another generation": func() error { _, err := userkey.OpenPrevious(next, account, 3, sealed, want); return err },
		"another user key":   func() error { _, err := userkey.OpenPrevious(third, account, 2, sealed, want); return err },
		"tampered":           func() error { _, err := userkey.OpenPrevious(next, account, 2, flipped, want); return err },
		"truncated":          func() error { _, err := userkey.OpenPrevious(next, account, 2, sealed[:40], want); return err },
		"not the chain's key": func() error {
			_, err := userkey.OpenPrevious(next, account, 2, sealed, third.PublicKey().Bytes())
			return err
		},
	} {
		var se *coffer.SecurityError
		if err := try(); !errors.As(err, &se) {
			t.Errorf("%s: err = %v, want a security error", name, err)
		}
	}
}
