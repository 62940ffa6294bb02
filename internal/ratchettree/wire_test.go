package ratchettree

import (
	"bytes"
	"errors"
	"testing"
)

func TestWireRoundTrip(t *testing.T) {
	g := mustGenesis(t, "wire", 7)
	_, _, _, err := Create(g.tree, g.ctx, 0, Spec{Removes: []uint32{3}, Untrusted: []uint32{0}})
	if err == nil {
		t.Fatal("the committer demoted itself")
	}
	c, _, _, err := Create(g.tree, g.ctx, 1, Spec{Removes: []uint32{3}, Untrusted: []uint32{0}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.MarshalBinary()
	d, err := ParseCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(g.tree, 1, d, []uint32{0}); err != nil {
		t.Fatal(err)
	}
	b2, _ := d.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("commit does not round-trip")
	}
	tb, _ := g.tree.MarshalBinary()
	tr, err := ParseTree(tb)
	if err != nil || tr.Hash() != g.tree.Hash() {
		t.Fatalf("tree does not round-trip: %v", err)
	}
	// Every truncation fails cleanly, and every byte flip either fails
	// to parse or fails Verify: nothing in the encoding is unchecked.
	for i := 0; i < len(b); i += 97 {
		if _, err := ParseCommit(b[:i]); err == nil {
			t.Fatalf("truncated at %d parsed", i)
		}
		m := bytes.Clone(b)
		m[i] ^= 0x40
		if d, err := ParseCommit(m); err == nil {
			if _, err := Verify(g.tree, 1, d, []uint32{0}); err == nil && !inSealed(d, i) {
				t.Fatalf("flip at %d verified", i)
			}
		}
	}
}

// inSealed reports whether offset i of c's encoding lies inside a
// ciphertext body, which only its receiver can check.
func inSealed(c *Commit, i int) bool {
	b, _ := c.MarshalBinary()
	var cts []Ciphertext
	if c.Path != nil {
		cts = c.Path.Ciphertexts
	}
	for _, ct := range cts {
		if j := bytes.Index(b, ct.Sealed); j >= 0 && i >= j && i < j+len(ct.Sealed) {
			return true
		}
	}
	for _, r := range c.Rekey {
		for _, ct := range r.Ciphertexts {
			if j := bytes.Index(b, ct.Sealed); j >= 0 && i >= j && i < j+len(ct.Sealed) {
				return true
			}
		}
	}
	return false
}

func FuzzParseCommit(f *testing.F) {
	g := mustGenesis(f, "fuzz", 3)
	c, _, _, err := Create(g.tree, g.ctx, 0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 2}})
	if err != nil {
		f.Fatal(err)
	}
	b, _ := c.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommit(b)
		if err != nil {
			return
		}
		b2, _ := c.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatal("parse/marshal is not the identity")
		}
	})
}

// TestParseTreeBadKeyFailsSeal: ParseTree checks key sizes only (a stored
// tree's keys came in through commits, which check them); a stored key
// that is not an X-Wing key is refused by the first seal to it, with
// tree-public-key, not used.
func TestParseTreeBadKeyFailsSeal(t *testing.T) {
	var keys [][]byte
	for range 4 {
		dk, err := kem.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, dk.PublicKey().Bytes())
	}
	tr, err := NewTree(keys)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, keys[3])
	for i := range PublicKeySize - 32 { // the ML-KEM part: coefficients over q
		b[at+i] = 0xff
	}
	bad, err := ParseTree(b)
	if err != nil {
		t.Fatalf("a stored tree with a key of the right size: %v", err)
	}
	_, _, _, err = Create(bad, Context{Epoch: 2}, 0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 2}})
	var te *Error
	if !errors.As(err, &te) || te.Rule != RulePublicKey {
		t.Fatalf("sealing to the bad key: %v, want rule %s", err, RulePublicKey)
	}
}
