package ratchettree

import (
	"encoding/binary"
)

// A commit travels in three parts: the signed part (everything but the
// ciphertexts, with every public key named by its KeyDigest: leaf keys,
// node keys, tree hash), which the chain's signature covers; the public
// keys beside it, which the server checks against their digests and
// keeps as the tree's nodes (Keys, WithKeys); and the ciphertexts beside
// it, which the server stores per node and recipient and serves each
// member only the ones of its path.
//
//	signed = leaves:u32, removes:u32 leaf:u32..., self-update: u8 [digest:32], adds:u32 (leaf:u32 digest:32)...,
//	         has-path:u8 [op:u8 leaf:u32 has-key:u8 [digest:32] keys:u32 digest:32...],
//	         rekeys:u32 (node:u32 digest:32)..., tree-hash:32

// MarshalSigned encodes the commit's signed part: its encoding without
// any ciphertext and with each public key's digest in its place. A key
// the commit neither carries nor names is encoded as a zero digest, which
// no verifier accepts.
func (c *Commit) MarshalSigned() []byte {
	b := make([]byte, 0, c.signedSize())
	b = binary.BigEndian.AppendUint32(b, c.Leaves)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Removes)))
	for _, l := range c.Removes {
		b = binary.BigEndian.AppendUint32(b, l)
	}
	b = appendDigestOpt(b, c.SelfUpdate, c.SelfUpdateDigest)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Adds)))
	for _, a := range c.Adds {
		b = binary.BigEndian.AppendUint32(b, a.Leaf)
		b = appendDigest(b, a.Key, a.Digest)
	}
	if p := c.Path; p == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1, byte(p.Op))
		b = binary.BigEndian.AppendUint32(b, p.Leaf)
		b = appendDigestOpt(b, p.LeafKey, p.LeafKeyDigest)
		b = binary.BigEndian.AppendUint32(b, uint32(p.numKeys()))
		for i := range p.numKeys() {
			k, d := p.key(i)
			b = appendDigest(b, k, d)
		}
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Rekey)))
	for _, r := range c.Rekey {
		b = binary.BigEndian.AppendUint32(b, r.Node)
		b = appendDigest(b, r.PublicKey, r.Digest)
	}
	return append(b, c.TreeHash[:]...)
}

// SignedSize is the length of MarshalSigned's encoding.
func (c *Commit) SignedSize() int { return c.signedSize() }

func (c *Commit) signedSize() int {
	opt := func(key []byte, digest *[32]byte) int {
		if key == nil && digest == nil {
			return 1
		}
		return 33
	}
	n := 4 + 4 + 4*len(c.Removes) + opt(c.SelfUpdate, c.SelfUpdateDigest) + 4 + 36*len(c.Adds) + 1 + 4 + 36*len(c.Rekey) + 32
	if p := c.Path; p != nil {
		n += 1 + 4 + opt(p.LeafKey, p.LeafKeyDigest) + 4 + 32*p.numKeys()
	}
	return n
}

// appendDigest appends the digest of a key slot: the key's when the
// commit carries it, else the digest it names.
func appendDigest(b, key []byte, digest [32]byte) []byte {
	if key != nil {
		digest = KeyDigest(key)
	}
	return append(b, digest[:]...)
}

func appendDigestOpt(b, key []byte, digest *[32]byte) []byte {
	if key == nil && digest == nil {
		return append(b, 0)
	}
	var d [32]byte
	if digest != nil {
		d = *digest
	}
	return appendDigest(append(b, 1), key, d)
}

// ParseSigned decodes a commit's signed part from the front of b and
// returns it with the bytes after it: its keys are digests only (see
// WithKeys). It checks sizes only; VerifySigned checks the rules.
func ParseSigned(b []byte) (*Commit, []byte, error) {
	r := &reader{b: b}
	c := &Commit{Leaves: r.u32()}
	for range r.count(4) {
		c.Removes = append(c.Removes, r.u32())
	}
	c.SelfUpdateDigest = r.digestOpt()
	if n := r.count(4 + 32); n > 0 {
		c.Adds = make([]LeafKey, n)
		for i := range n {
			c.Adds[i] = LeafKey{Leaf: r.u32(), Digest: r.digest()}
		}
	}
	switch r.u8() {
	case 0:
	case 1:
		p := &PathUpdate{Op: Op(r.u8()), Leaf: r.u32()}
		p.LeafKeyDigest = r.digestOpt()
		for range r.count(32) {
			p.KeyDigests = append(p.KeyDigests, r.digest())
		}
		c.Path = p
	default:
		r.fail("bad path flag")
	}
	if n := r.count(4 + 32); n > 0 {
		c.Rekey = make([]RekeyNode, n)
		for i := range n {
			c.Rekey[i] = RekeyNode{Node: r.u32(), Digest: r.digest()}
		}
	}
	copy(c.TreeHash[:], r.bytes(32))
	if r.err != nil {
		return nil, nil, r.err
	}
	return c, r.b, nil
}

func (r *reader) digest() [32]byte {
	var d [32]byte
	copy(d[:], r.bytes(32))
	return d
}

func (r *reader) digestOpt() *[32]byte {
	switch r.u8() {
	case 0:
		return nil
	case 1:
		d := r.digest()
		return &d
	default:
		r.fail("bad key flag")
		return nil
	}
}

// Ciphertexts lists every ciphertext of c in canonical order: the path's,
// then each rekeyed node's.
func (c *Commit) Ciphertexts() []Ciphertext {
	var out []Ciphertext
	if c.Path != nil {
		out = append(out, c.Path.Ciphertexts...)
	}
	for _, r := range c.Rekey {
		out = append(out, r.Ciphertexts...)
	}
	return out
}

// Detached returns a copy of c without ciphertexts: its signed part.
func (c *Commit) Detached() *Commit {
	d := *c
	if c.Path != nil {
		p := *c.Path
		p.Ciphertexts = nil
		d.Path = &p
	}
	d.Rekey = make([]RekeyNode, len(c.Rekey))
	for i, r := range c.Rekey {
		r.Ciphertexts = nil
		d.Rekey[i] = r
	}
	if len(c.Rekey) == 0 {
		d.Rekey = nil
	}
	return &d
}

// Attach returns a copy of the signed part c with the ciphertexts cts
// placed under the node each names (the path's nodes, or a rekeyed node),
// in their order, for Member.Receive. A ciphertext for a node the commit
// does not refresh is dropped: Receive never needs it.
func (c *Commit) Attach(cts []Ciphertext) *Commit {
	d := c.Detached()
	path := map[uint32]bool{}
	if d.Path != nil && d.Path.Leaf < d.Leaves {
		for _, x := range DirectPath(LeafNode(d.Path.Leaf), d.Leaves) {
			path[x] = true
		}
	}
	rekey := make(map[uint32]int, len(d.Rekey))
	for i, r := range d.Rekey {
		rekey[r.Node] = i
	}
	for _, ct := range cts {
		if i, ok := rekey[ct.Node]; ok {
			d.Rekey[i].Ciphertexts = append(d.Rekey[i].Ciphertexts, ct)
		} else if path[ct.Node] {
			d.Path.Ciphertexts = append(d.Path.Ciphertexts, ct)
		}
	}
	return d
}

// CheckCiphertexts requires cts to be exactly one ciphertext per address
// VerifySigned returned, in that order, each CiphertextSize bytes: the
// shape rule Verify applies to an attached commit (tree-ciphertexts,
// tree-shape).
func CheckCiphertexts(addrs, cts []Ciphertext) error {
	for i, a := range addrs {
		if i >= len(cts) {
			return errorf(RuleCiphertexts, "no ciphertext of node %d for resolution node %d", a.Node, a.Recipient)
		}
		if cts[i].Node != a.Node || cts[i].Recipient != a.Recipient {
			return errorf(RuleCiphertexts, "ciphertext %d is for node %d at node %d, want node %d at node %d", i, cts[i].Node, cts[i].Recipient, a.Node, a.Recipient)
		}
		if len(cts[i].Sealed) != CiphertextSize {
			return errorf(RuleShape, "ciphertext %d is %d bytes, want %d", i, len(cts[i].Sealed), CiphertextSize)
		}
	}
	if len(cts) != len(addrs) {
		return errorf(RuleCiphertexts, "%d ciphertexts beyond one per resolution node", len(cts)-len(addrs))
	}
	return nil
}

// VerifyStart verifies the signed part of a tree's first commit (a
// group's genesis, or the upgrade of a pairwise group): the tree starts
// with the committer alone at leaf 0 holding startKey, and c adds the
// others. A commit that adds nobody leaves a one-leaf tree, which has no
// parent node to refresh, so it must change nothing at all.
func VerifyStart(startKey []byte, c *Commit) (*Tree, []Ciphertext, error) {
	return VerifyStartKeys(startKey, c, ParseKeys)
}

// VerifyStartKeys is VerifyStart with the given check of the commit's
// public keys (KeyCheck).
func VerifyStartKeys(startKey []byte, c *Commit, kc KeyCheck) (*Tree, []Ciphertext, error) {
	t, err := NewTree([][]byte{startKey})
	if err != nil {
		return nil, nil, err
	}
	if startKey == nil {
		return nil, nil, errorf(RulePublicKey, "the first commit has no start key")
	}
	if len(c.Removes) > 0 || c.SelfUpdate != nil || c.SelfUpdateDigest != nil || (c.Path != nil && c.Path.Op != OpAdd) {
		return nil, nil, errorf(RuleShape, "a tree's first commit only adds leaves")
	}
	if len(c.Adds) == 0 && c.Path == nil && len(c.Rekey) == 0 && c.Leaves == 1 {
		h := t.Hash()
		if h != c.TreeHash {
			return nil, nil, errorf(RuleTreeHash, "the commit's tree hash is not the hash of the tree it produces")
		}
		return t, []Ciphertext{}, nil
	}
	return VerifySignedKeys(t, 0, c, nil, kc)
}

// Resulting is the tree that commit c by committer produces from t,
// checked by every rule but the claimed tree hash, which it does not
// look at, and with its keys checked for size only (KeySizes): a
// committer that builds a commit by hand, as a test's malicious admin
// does, sets TreeHash from it. c may carry its ciphertexts or be a signed
// part.
func Resulting(t *Tree, committer uint32, c *Commit, untrusted []uint32) (*Tree, error) {
	var addrs []Ciphertext
	if len(c.Ciphertexts()) == 0 {
		addrs = []Ciphertext{}
	}
	return apply(t, committer, c, untrusted, &addrs, KeySizes)
}
