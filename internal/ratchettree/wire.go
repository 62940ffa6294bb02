package ratchettree

import (
	"encoding/binary"
	"slices"
)

// The binary encodings of a public tree and of a commit's tree part: big-
// endian integers, fixed-size keys and ciphertexts, counts checked against
// the bytes left before anything is allocated.
//
//	tree   = n:u32, then per node x < Width(n): present:u8 (0 blank,
//	         1 key:1216, 2 digest:32: the tree holds the key's digest only),
//	         and for parent nodes taint-count:u32 admin:u32...
//	commit = leaves:u32, removes:u32 leaf:u32..., self-update: u8 [key], adds:u32 (leaf:u32 key:1216)...,
//	         has-path:u8 [op:u8 leaf:u32 has-key:u8 [key] keys:u32 key... cts:u32 ct...],
//	         rekeys:u32 (node:u32 key cts:u32 ct...)..., tree-hash:32
//	ct     = node:u32 recipient:u32 sealed:1168

// MarshalBinary encodes the public tree (keys and taint).
func (t *Tree) MarshalBinary() ([]byte, error) {
	// Sized first: a client's snapshot of a 100,000-leaf tree is about
	// 240 MB, and growing it by appends copied it over and over.
	return t.AppendBinary(make([]byte, 0, t.EncodedSize()))
}

// EncodedSize is the length of the tree's MarshalBinary encoding.
func (t *Tree) EncodedSize() int {
	size := 4
	for x := uint32(0); x < Width(t.n); x++ {
		nd := t.at(x)
		size++
		switch {
		case nd.pub != nil:
			size += PublicKeySize
		case nd.present:
			size += 32
		}
		if Level(x) > 0 {
			size += 4 + 4*len(nd.taint)
		}
	}
	return size
}

// AppendBinary appends the MarshalBinary encoding to b. A caller that
// sized b with EncodedSize writes the tree in place: a group state's
// snapshot no longer encodes it in a buffer of its own and copies it.
func (t *Tree) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, t.n)
	for x := uint32(0); x < Width(t.n); x++ {
		nd := t.at(x)
		switch {
		case nd.pub != nil:
			b = append(append(b, 1), nd.pub...)
		case nd.present:
			b = append(append(b, 2), nd.digest[:]...)
		default:
			b = append(b, 0)
		}
		if Level(x) > 0 {
			b = binary.BigEndian.AppendUint32(b, uint32(len(nd.taint)))
			for _, a := range nd.taint {
				b = binary.BigEndian.AppendUint32(b, a)
			}
		}
	}
	return b, nil
}

func appendKey(b, k []byte) []byte {
	if k == nil {
		return append(b, 0)
	}
	return append(append(b, 1), k...)
}

type reader struct {
	b   []byte
	err error
	// sizesOnly skips the X-Wing parse of each key (ParseTree).
	sizesOnly bool
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = errorf(RuleShape, format, args...)
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.fail("truncated")
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u32() uint32 {
	v := r.bytes(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// count reads a count of items of at least size bytes each and checks it
// against what is left.
func (r *reader) count(size int) int {
	n := r.u32()
	if r.err == nil && uint64(n)*uint64(size) > uint64(len(r.b)) {
		r.fail("count %d exceeds the input", n)
		return 0
	}
	return int(n)
}

func (r *reader) key(optional bool) []byte {
	switch r.u8() {
	case 0:
		if !optional {
			r.fail("missing key")
		}
		return nil
	case 1:
		k := slices.Clone(r.bytes(PublicKeySize))
		if r.err == nil && !r.sizesOnly {
			if err := checkPublicKey(k); err != nil {
				r.err = err
			}
		}
		return k
	default:
		r.fail("bad key flag")
		return nil
	}
}

// ParseTree decodes a public tree and recomputes its hashes. It checks
// each key's size, not that it parses as an X-Wing key: parsing one costs
// an ML-KEM matrix expansion, which made loading a stored tree of 100k
// members tens of seconds (the client's own state, the server's nodes at
// every commit). Every key of a tree came in through a commit, which the
// server verified with its keys parsed (VerifySigned: tree-public-key),
// and a stored key that does not parse fails the seal that uses it (seal:
// tree-public-key), never silently, as in a client's chain (KeySizes).
func ParseTree(b []byte) (*Tree, error) {
	r := &reader{b: b, sizesOnly: true}
	n := r.u32()
	if r.err != nil || n == 0 || n > MaxLeaves || uint64(Width(n)) > uint64(len(r.b)) {
		return nil, errorf(RuleShape, "tree of %d leaves in %d bytes", n, len(b))
	}
	t := newTree()
	t.resize(n)
	for x := uint32(0); x < Width(n) && r.err == nil; x++ {
		nd := t.mut(x)
		switch r.u8() {
		case 0:
		case 1:
			nd.set(known(slices.Clone(r.bytes(PublicKeySize))))
		case 2:
			nd.set(keyed{digest: r.digest()})
		default:
			r.fail("bad key flag at node %d", x)
		}
		if Level(x) > 0 {
			c := r.count(4)
			for range c {
				a := r.u32()
				if a >= n || (len(nd.taint) > 0 && a <= nd.taint[len(nd.taint)-1]) || IsAncestor(x, LeafNode(a)) {
					r.fail("bad taint at node %d", x)
				}
				nd.taint = append(nd.taint, a)
			}
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	t.rehashAll()
	return t, nil
}

func appendCiphertexts(b []byte, cts []Ciphertext) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(cts)))
	for _, ct := range cts {
		b = binary.BigEndian.AppendUint32(b, ct.Node)
		b = binary.BigEndian.AppendUint32(b, ct.Recipient)
		b = append(b, ct.Sealed...)
	}
	return b
}

func (r *reader) ciphertexts() []Ciphertext {
	n := r.count(8 + CiphertextSize)
	cts := make([]Ciphertext, 0, n)
	for range n {
		ct := Ciphertext{Node: r.u32(), Recipient: r.u32()}
		ct.Sealed = slices.Clone(r.bytes(CiphertextSize))
		cts = append(cts, ct)
	}
	return cts
}

// MarshalBinary encodes the commit's tree part. Ciphertexts must be
// CiphertextSize bytes (Create makes them so; Verify checks).
func (c *Commit) MarshalBinary() ([]byte, error) {
	b := binary.BigEndian.AppendUint32(nil, c.Leaves)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Removes)))
	for _, l := range c.Removes {
		b = binary.BigEndian.AppendUint32(b, l)
	}
	b = appendKey(b, c.SelfUpdate)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Adds)))
	for _, a := range c.Adds {
		b = binary.BigEndian.AppendUint32(b, a.Leaf)
		b = append(b, a.Key...)
	}
	if p := c.Path; p == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1, byte(p.Op))
		b = binary.BigEndian.AppendUint32(b, p.Leaf)
		b = appendKey(b, p.LeafKey)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p.PublicKeys)))
		for _, k := range p.PublicKeys {
			b = append(b, k...)
		}
		b = appendCiphertexts(b, p.Ciphertexts)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.Rekey)))
	for _, r := range c.Rekey {
		b = binary.BigEndian.AppendUint32(b, r.Node)
		b = append(b, r.PublicKey...)
		b = appendCiphertexts(b, r.Ciphertexts)
	}
	return append(b, c.TreeHash[:]...), nil
}

// ParseCommit decodes a commit's tree part. It checks sizes only; Verify
// checks the rules.
func ParseCommit(b []byte) (*Commit, error) {
	r := &reader{b: b}
	c := &Commit{Leaves: r.u32()}
	for range r.count(4) {
		c.Removes = append(c.Removes, r.u32())
	}
	c.SelfUpdate = r.key(true)
	for range r.count(4 + PublicKeySize) {
		c.Adds = append(c.Adds, LeafKey{Leaf: r.u32(), Key: slices.Clone(r.bytes(PublicKeySize))})
	}
	switch r.u8() {
	case 0:
	case 1:
		p := &PathUpdate{Op: Op(r.u8()), Leaf: r.u32()}
		p.LeafKey = r.key(true)
		for range r.count(PublicKeySize) {
			p.PublicKeys = append(p.PublicKeys, slices.Clone(r.bytes(PublicKeySize)))
		}
		p.Ciphertexts = r.ciphertexts()
		c.Path = p
	default:
		r.fail("bad path flag")
	}
	for range r.count(4 + PublicKeySize + 4) {
		n := RekeyNode{Node: r.u32(), PublicKey: slices.Clone(r.bytes(PublicKeySize))}
		n.Ciphertexts = r.ciphertexts()
		c.Rekey = append(c.Rekey, n)
	}
	copy(c.TreeHash[:], r.bytes(32))
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}
