package coffer

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
)

// precheckChain is a genesis by one owner followed by n-1 rotations, signed
// with key.
func precheckChain(tb testing.TB, n int) ([]SignedCommit, ed25519.PrivateKey) {
	tb.Helper()
	seed := sha256.Sum256([]byte("coffer precheck test owner"))
	key := ed25519.NewKeyFromSeed(seed[:])
	dk, err := KEM().DeriveKeyPair(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	g := GroupID{1, 2, 3, 4, 5, 6, 0x40, 8, 0x80, 10, 11, 12, 13, 14, 15, 16}
	owner := AccountID{9, 9, 9, 9, 9, 9, 0x40, 9, 0x80, 9, 9, 9, 9, 9, 9, 9}
	c := &Commit{Group: g, Seq: 1, Epoch: 1, Author: owner, KeyCommitment: sha256.Sum256([]byte{1}),
		Ops: []Op{{Kind: OpAdd, Member: owner, Handle: "owner", SigningKey: key.Public().(ed25519.PublicKey),
			EncryptionKey: dk.PublicKey().Bytes(), Role: RoleOwner}}}
	var out []SignedCommit
	for len(out) < n {
		sc := SignCommit(c, key)
		out = append(out, sc)
		c = &Commit{Group: g, Seq: c.Seq + 1, Prev: sc.Hash(), Epoch: c.Epoch + 1, Author: owner,
			KeyCommitment: sha256.Sum256([]byte{byte(c.Seq + 1), byte((c.Seq + 1) >> 8)}), Ops: []Op{{Kind: OpRotate}}}
	}
	return out, key
}

func wantRule(tb testing.TB, err error, rule string) {
	tb.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Rule != rule {
		tb.Fatalf("error %v, want rule %s", err, rule)
	}
}

// TestVerifyWindowAppliesOnlyVerifiedSignatures: a window whose signatures
// are checked in parallel applies nothing past a bad signature in its
// middle, and fails exactly at that commit.
func TestVerifyWindowAppliesOnlyVerifiedSignatures(t *testing.T) {
	commits, _ := precheckChain(t, 200)
	for _, bad := range []int{0, 1, 77, 150, 199} {
		cs := slices.Clone(commits)
		cs[bad].Signature = slices.Clone(cs[bad].Signature)
		cs[bad].Signature[5] ^= 0x20
		s := new(GroupState)
		s.reindex()
		at, err := s.verifyWindow(cs, nil)
		if at != bad {
			t.Errorf("bad signature at %d: failed at %d (%v)", bad, at, err)
		}
		wantRule(t, err, RuleSignature)
		if s.Seq != uint64(bad) {
			t.Errorf("bad signature at %d: the state was applied up to seq %d, want %d", bad, s.Seq, bad)
		}
	}
}

// TestApplyWindowChecksTheRequiredKey: the result of a signature checked
// ahead counts only for the key it was checked under. Told that a bad
// signature verified under some other key, the rules still check it under
// the author's key and refuse it; a good one checked under a wrong key is
// checked again and accepted.
func TestApplyWindowChecksTheRequiredKey(t *testing.T) {
	commits, _ := precheckChain(t, 40)
	other, _, _ := ed25519.GenerateKey(nil)
	prepare := func(cs []SignedCommit) []parsedCommit {
		parsed := make([]parsedCommit, len(cs))
		for i, sc := range cs {
			c, err := ParseCommit(sc.Body)
			if err != nil {
				t.Fatal(err)
			}
			parsed[i] = parsedCommit{c: c, hash: sc.Hash(), signer: commitSigner{ed: other}, checked: true}
		}
		return parsed
	}

	cs := slices.Clone(commits)
	cs[20].Signature = slices.Clone(cs[20].Signature)
	cs[20].Signature[0] ^= 1
	s := new(GroupState)
	s.reindex()
	at, err := s.applyWindow(cs, prepare(cs), nil)
	if at != 20 {
		t.Errorf("failed at %d (%v), want 20", at, err)
	}
	wantRule(t, err, RuleSignature)

	s = new(GroupState)
	s.reindex()
	if _, err := s.applyWindow(commits, prepare(commits), nil); err != nil || s.Seq != 40 {
		t.Errorf("valid chain with wrong expected keys: seq %d, %v", s.Seq, err)
	}
}
