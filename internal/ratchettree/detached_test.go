package ratchettree

import (
	"bytes"
	"testing"
)

// TestDetachedCommit: the signed part round-trips, VerifySigned agrees
// with Verify and names exactly the ciphertexts Create made, and a member
// receives from the signed part with the ciphertexts attached.
func TestDetachedCommit(t *testing.T) {
	g := mustGenesis(t, "detached", 11)
	for _, spec := range []Spec{
		{Path: &PathSpec{Op: OpRemove, Leaf: 4}},
		{Removes: []uint32{7}, Untrusted: []uint32{7}},
		{Rekey: []uint32{Root(11)}},
	} {
		c, nt, secrets, err := Create(g.tree, g.ctx, 0, spec)
		if err != nil {
			t.Fatal(err)
		}
		signed := c.Detached().MarshalSigned()
		d, rest, err := ParseSigned(append(signed, 9, 9))
		if err != nil || !bytes.Equal(rest, []byte{9, 9}) {
			t.Fatalf("parse: %v, rest %v", err, rest)
		}
		if !bytes.Equal(d.MarshalSigned(), signed) {
			t.Fatal("signed part does not round-trip")
		}
		vt, addrs, err := VerifySigned(g.tree, 0, d, spec.Untrusted)
		if err != nil {
			t.Fatal(err)
		}
		if vt.Hash() != nt.Hash() {
			t.Fatal("VerifySigned and Create disagree on the tree")
		}
		cts := c.Ciphertexts()
		if err := CheckCiphertexts(addrs, cts); err != nil {
			t.Fatal(err)
		}
		// The signed part with ciphertexts is not a signed part.
		if _, _, err := VerifySigned(g.tree, 0, c, spec.Untrusted); err == nil {
			t.Fatal("VerifySigned took a commit with ciphertexts")
		}
		// Each shape fault of the ciphertexts beside it.
		wantRule(t, CheckCiphertexts(addrs, cts[1:]), RuleCiphertexts)
		wantRule(t, CheckCiphertexts(addrs, append(cts[:len(cts):len(cts)], cts[0])), RuleCiphertexts)
		swapped := append([]Ciphertext(nil), cts...)
		swapped[0].Recipient, swapped[0].Node = swapped[0].Node, swapped[0].Recipient
		wantRule(t, CheckCiphertexts(addrs, swapped), RuleCiphertexts)
		short := append([]Ciphertext(nil), cts...)
		short[0].Sealed = short[0].Sealed[1:]
		wantRule(t, CheckCiphertexts(addrs, short), RuleShape)
		// A member receives from the signed part and the ciphertexts.
		ch := []byte("commit hash")
		want := EpochKey(secrets[Root(c.Leaves)], ch)
		m := *g.members[3]
		m.secrets = map[uint32][]byte{}
		for x, s := range g.members[3].secrets {
			m.secrets[x] = s
		}
		got, err := m.Receive(g.ctx, d.Attach(cts), ch)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("receive: %v", err)
		}
		// Without its ciphertext, the member reports it withheld.
		var others []Ciphertext
		for _, ct := range cts {
			if !IsAncestor(ct.Recipient, LeafNode(3)) {
				others = append(others, ct)
			}
		}
		_, err = g.members[3].Receive(g.ctx, d.Attach(others), ch)
		wantRule(t, err, RuleWithheld)
	}
}

// TestVerifyStart: a tree's first commit starts from the committer alone.
func TestVerifyStart(t *testing.T) {
	k0 := leafKey(t, "start/0").PublicKey().Bytes()
	t0, _ := NewTree([][]byte{k0})
	one := &Commit{Leaves: 1, TreeHash: t0.Hash()}
	if _, addrs, err := VerifyStart(k0, one); err != nil || len(addrs) != 0 {
		t.Fatalf("one-leaf start: %v", err)
	}
	bad := *one
	bad.TreeHash[0] ^= 1
	_, _, err := VerifyStart(k0, &bad)
	wantRule(t, err, RuleTreeHash)
	_, _, err = VerifyStart(nil, one)
	wantRule(t, err, RulePublicKey)
	adds := []LeafKey{{Leaf: 1, Key: leafKey(t, "start/1").PublicKey().Bytes()}, {Leaf: 2, Key: leafKey(t, "start/2").PublicKey().Bytes()}}
	c, _, _, err := Create(t0, Context{Epoch: 1}, 0, Spec{Adds: adds})
	if err != nil {
		t.Fatal(err)
	}
	if _, addrs, err := VerifyStart(k0, c.Detached()); err != nil || CheckCiphertexts(addrs, c.Ciphertexts()) != nil {
		t.Fatalf("start: %v", err)
	}
	rm := c.Detached()
	rm.Removes = []uint32{0}
	_, _, err = VerifyStart(k0, rm)
	wantRule(t, err, RuleShape)
}
