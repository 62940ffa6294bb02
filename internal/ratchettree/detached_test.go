package ratchettree

import (
	"bytes"
	"slices"
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
		if len(signed) != c.SignedSize() || len(signed) > 64+36*(len(c.Adds)+len(c.Rekey))+4*len(c.Removes)+40*20 {
			t.Fatalf("signed part is %d bytes: keys are not digests", len(signed))
		}
		// A client verifies the digests alone; the server verifies with
		// the keys beside the commit, each parsed.
		vt, addrs, err := VerifySignedKeys(g.tree, 0, d, spec.Untrusted, KeySizes)
		if err != nil {
			t.Fatal(err)
		}
		if vt.Hash() != nt.Hash() {
			t.Fatal("VerifySigned and Create disagree on the tree")
		}
		if pt, _, err := VerifySigned(g.tree, 0, d, spec.Untrusted); err != nil || pt.Hash() != nt.Hash() {
			t.Fatalf("VerifySigned of the digests alone: %v", err)
		}
		withKeys, err := d.WithKeys(c.Keys())
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := VerifySigned(g.tree, 0, withKeys, spec.Untrusted)
		if err != nil || st.Hash() != nt.Hash() {
			t.Fatalf("verify with the keys beside: %v", err)
		}
		for x := uint32(0); x < Width(st.Leaves()); x++ {
			if st.Present(x) && (st.PublicKey(x) == nil || KeyDigest(st.PublicKey(x)) != st.Digest(x)) {
				t.Fatalf("node %d: the server's tree lacks its key", x)
			}
		}
		keys := c.Keys()
		wantRule(t, errOf(d.WithKeys(keys[1:])), RulePublicKey)
		wantRule(t, errOf(d.WithKeys(append(slices.Clone(keys), keys[0]))), RulePublicKey)
		if len(keys) > 1 {
			swappedKeys := slices.Clone(keys)
			swappedKeys[0], swappedKeys[len(keys)-1] = swappedKeys[len(keys)-1], swappedKeys[0]
			wantRule(t, errOf(d.WithKeys(swappedKeys)), RulePublicKey)
		}
		// A key that does not match its digest, carried in the commit.
		bad := cloneCommit(withKeys)
		if len(bad.Rekey) > 0 {
			bad.Rekey[0].Digest = KeyDigest(keys[0][1:])
		} else {
			bad.Path.KeyDigests = make([][32]byte, len(bad.Path.PublicKeys))
			bad.Path.KeyDigests[0] = KeyDigest(keys[0][1:])
		}
		wantRule(t, errOf(VerifySigned(g.tree, 0, bad, spec.Untrusted)), RulePublicKey)
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

// errOf is the error of a call's results.
func errOf(v ...any) error {
	if err, ok := v[len(v)-1].(error); ok {
		return err
	}
	return nil
}

// TestDigestTree: a client that verified the signed parts holds a tree of
// key digests, 32 bytes a node; to seal, it fetches the keys it needs and
// holds each to its digest, so a server that serves another key (another
// node's, another group's) is caught before anything is sealed to it.
func TestDigestTree(t *testing.T) {
	g := mustGenesis(t, "digests", 12)
	// The digest tree a client verifies from the signed genesis.
	full := g.tree
	enc, _ := full.MarshalBinary()
	dt := digestOnly(t, full)
	if dt.Hash() != full.Hash() {
		t.Fatal("the digest tree's hash is not the full tree's")
	}
	denc, _ := dt.MarshalBinary()
	if len(denc) >= len(enc)/10 || len(denc) != dt.EncodedSize() {
		t.Fatalf("digest tree encodes in %d bytes (full %d)", len(denc), len(enc))
	}
	back, err := ParseTree(denc)
	if err != nil || back.Hash() != full.Hash() || back.PublicKey(0) != nil || !back.Present(0) {
		t.Fatalf("digest tree round trip: %v", err)
	}
	var asked [][]uint32
	serve := func(src *Tree) FetchKeys {
		return func(nodes []uint32) ([][]byte, error) {
			asked = append(asked, nodes)
			out := make([][]byte, len(nodes))
			for i, x := range nodes {
				out[i] = src.PublicKey(x)
			}
			return out, nil
		}
	}
	spec := Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}, FetchKeys: serve(full)}
	c, nt, _, err := Create(dt, g.ctx, 0, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || len(asked[0]) == 0 {
		t.Fatalf("fetched %v: want one request", asked)
	}
	if vt, err := Verify(full, 0, c, nil); err != nil || vt.Hash() != nt.Hash() {
		t.Fatalf("the commit built on the digest tree does not verify: %v", err)
	}
	if dt.PublicKey(asked[0][0]) != nil {
		t.Fatal("Create changed the tree it was given")
	}
	// No way to fetch, a short answer, another node's key, another
	// group's key, a truncated key: each is RuleNodeProof.
	other := mustGenesis(t, "digests-other", 12)
	for name, fetch := range map[string]FetchKeys{
		"none":  nil,
		"short": func(n []uint32) ([][]byte, error) { k, _ := serve(full)(n); return k[1:], nil },
		"swapped": func(n []uint32) ([][]byte, error) {
			k, _ := serve(full)(n)
			k[0] = full.PublicKey(LeafNode(7))
			return k, nil
		},
		"other-group": serve(other.tree),
		"truncated": func(n []uint32) ([][]byte, error) {
			k, _ := serve(full)(n)
			k[0] = k[0][:100]
			return k, nil
		},
	} {
		_, _, _, err := Create(dt, g.ctx, 0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}, FetchKeys: fetch})
		if e, ok := err.(*Error); !ok || e.Rule != RuleNodeProof {
			t.Errorf("%s: got %v, want rule %s", name, err, RuleNodeProof)
		}
	}
}

// digestOnly is t with every key replaced by its digest, as a client's
// verified tree holds it.
func digestOnly(t *testing.T, full *Tree) *Tree {
	t.Helper()
	dt := full.Clone()
	for x := uint32(0); x < Width(dt.n); x++ {
		if dt.at(x).present {
			dt.mut(x).pub = nil
		}
	}
	return dt
}
