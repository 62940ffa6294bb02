package ratchettree

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync/atomic"
)

// Sizes of the X-Wing (MLKEM768-X25519) objects a tree holds.
const (
	PublicKeySize  = 1216           // an X-Wing encapsulation key
	SecretSize     = 32             // path and node secrets
	CiphertextSize = 1120 + 32 + 16 // HPKE enc ‖ AES-256-GCM(32-byte secret)
	// MaxLeaves bounds the leaf count a decoder or verifier accepts, so
	// a commit from the network cannot make us allocate a huge tree.
	MaxLeaves = 1 << 21
)

// LabelTreeHash domain-separates the tree hash.
const LabelTreeHash = "coffer/v2/tree-hash"

// Tree is the public ratchet tree: a public key (or blank) per node, the
// taint of each parent node, and cached subtree hashes. Its zero value is
// not usable; use NewTree.
//
// A tree is never changed once another holds it: a commit applies to a
// Clone. Nodes live in chunks of chunkSize that clones share until one of
// them writes (copy on write, by chunk), so that a clone of a tree of
// 100,000 leaves (200,000 nodes, every commit's verification clones one)
// costs a copy of its chunk pointers rather than of every node. Public
// keys and taint lists are never mutated in place, so chunk copies share
// them too.
type Tree struct {
	n      uint32
	id     uint64   // which chunks this tree may write: those whose owner it is
	chunks []*chunk // node x is chunks[x>>chunkShift].nodes[x&(chunkSize-1)]
}

const (
	chunkShift = 8
	chunkSize  = 1 << chunkShift
)

type chunk struct {
	owner uint64
	nodes [chunkSize]node
}

type node struct {
	present bool     // false is blank
	digest  [32]byte // KeyDigest of the node's public key
	pub     []byte   // the public key itself, when this tree knows it (see KeyDigest)
	taint   []uint32 // parent nodes: sorted leaf indices of admins that know the node's secret without being below it
	hash    [32]byte // hash of the subtree rooted here
}

// set places a public key, known or named by its digest alone.
func (nd *node) set(k keyed) { nd.present, nd.digest, nd.pub = true, k.digest, k.key }

// blank removes the node's key.
func (nd *node) blank() { nd.present, nd.digest, nd.pub = false, [32]byte{}, nil }

// treeIDs names trees for chunk ownership; 0 is no tree's.
var treeIDs atomic.Uint64

// at is node x, for reading.
func (t *Tree) at(x uint32) *node { return &t.chunks[x>>chunkShift].nodes[x&(chunkSize-1)] }

// mut is node x, for writing: its chunk is first copied unless t owns it.
func (t *Tree) mut(x uint32) *node {
	i := x >> chunkShift
	c := t.chunks[i]
	if c.owner != t.id {
		nc := new(chunk)
		*nc = *c
		nc.owner = t.id
		t.chunks[i], c = nc, nc
	}
	return &c.nodes[x&(chunkSize-1)]
}

// NewTree returns a tree whose leaves hold the given X-Wing public keys
// (nil for a blank leaf) and whose parent nodes are all blank.
func NewTree(leafKeys [][]byte) (*Tree, error) {
	n := uint32(len(leafKeys))
	if n == 0 || n > MaxLeaves {
		return nil, errorf(RuleShape, "a tree has 1 to %d leaves, not %d", MaxLeaves, len(leafKeys))
	}
	t := newTree()
	t.resize(n)
	for i, k := range leafKeys {
		if k != nil {
			if err := checkPublicKey(k); err != nil {
				return nil, err
			}
			t.mut(LeafNode(uint32(i))).set(keyed{key: k, digest: KeyDigest(k)})
		}
	}
	t.rehashAll()
	return t, nil
}

func newTree() *Tree { return &Tree{id: treeIDs.Add(1)} }

// resize sets the leaf count to n, adding blank chunks as its width needs.
func (t *Tree) resize(n uint32) {
	t.n = n
	for uint64(len(t.chunks))<<chunkShift < uint64(Width(n)) {
		t.chunks = append(t.chunks, &chunk{owner: t.id})
	}
}

// Clone returns a copy that can be changed without changing t.
func (t *Tree) Clone() *Tree {
	return &Tree{n: t.n, id: treeIDs.Add(1), chunks: slices.Clone(t.chunks)}
}

// Leaves is the tree's leaf count.
func (t *Tree) Leaves() uint32 { return t.n }

// PublicKey is node x's public key, or nil when x is blank or when the
// tree holds only the key's digest (a tree verified from signed commits;
// see KeyDigest).
func (t *Tree) PublicKey(x uint32) []byte { return t.at(x).pub }

// Present reports whether node x holds a key (it is not blank).
func (t *Tree) Present(x uint32) bool { return t.at(x).present }

// Digest is the KeyDigest of node x's public key; zero when x is blank.
func (t *Tree) Digest(x uint32) [32]byte { return t.at(x).digest }

// Taint lists the admins (leaf indices) that know node x's secret without
// being below x.
func (t *Tree) Taint(x uint32) []uint32 { return t.at(x).taint }

// Resolution is RFC 9420's resolution of x: x itself when it is not
// blank, nothing for a blank leaf, and otherwise the resolutions of its
// children, left first. Encrypting to every node of it reaches exactly
// the members below x.
func (t *Tree) Resolution(x uint32) []uint32 {
	return t.appendResolution(nil, x)
}

func (t *Tree) appendResolution(r []uint32, x uint32) []uint32 {
	if t.at(x).present {
		return append(r, x)
	}
	if Level(x) == 0 {
		return r
	}
	r = t.appendResolution(r, Left(x))
	return t.appendResolution(r, Right(x, t.n))
}

// Hash is the tree hash: SHA-256 over LabelTreeHash, 0, the leaf count
// (uint32) and the root's subtree hash. A leaf's subtree hash is
// SHA-256(0 ‖ node index ‖ key), a parent's SHA-256(1 ‖ node index ‖ key
// ‖ taint ‖ left hash ‖ right hash), where key is a byte 0 (blank) or 1
// followed by the key's KeyDigest (SHA-256 of the 1216-byte public key),
// taint is a uint32 count and the
// sorted admin leaf indices, and every integer is a big-endian uint32. It
// is RFC 9420's tree hash idea with SHA-256 over this fixed encoding; it
// commits to the keys, the blanks, the shape and the taint.
func (t *Tree) Hash() [32]byte {
	b := make([]byte, 0, len(LabelTreeHash)+1+4+32)
	b = append(b, LabelTreeHash...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, t.n)
	h := t.at(Root(t.n)).hash
	b = append(b, h[:]...)
	return sha256.Sum256(b)
}

func (t *Tree) nodeHash(x uint32) [32]byte {
	h := sha256.New()
	var hdr [5]byte
	if Level(x) > 0 {
		hdr[0] = 1
	}
	binary.BigEndian.PutUint32(hdr[1:], x)
	h.Write(hdr[:])
	nd := t.at(x)
	if !nd.present {
		h.Write([]byte{0})
	} else {
		h.Write([]byte{1})
		h.Write(nd.digest[:])
	}
	if Level(x) > 0 {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, uint32(len(nd.taint)))
		for _, a := range nd.taint {
			b = binary.BigEndian.AppendUint32(b, a)
		}
		h.Write(b)
		l, r := t.at(Left(x)).hash, t.at(Right(x, t.n)).hash
		h.Write(l[:])
		h.Write(r[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// rehashAll recomputes every subtree hash, level by level, so that each
// node's children are done before it.
func (t *Tree) rehashAll() {
	w := Width(t.n)
	for k := 0; (uint32(1)<<k)-1 < w; k++ {
		for x := uint32(1)<<k - 1; x < w; x += 1 << (k + 1) {
			t.mut(x).hash = t.nodeHash(x)
		}
	}
}

// rehash recomputes the hashes of the changed nodes and their ancestors,
// lowest level first.
func (t *Tree) rehash(changed []uint32) {
	set := map[uint32]bool{}
	for _, x := range changed {
		set[x] = true
		for _, a := range DirectPath(x, t.n) {
			set[a] = true
		}
	}
	order := make([]uint32, 0, len(set))
	for x := range set {
		order = append(order, x)
	}
	slices.SortFunc(order, func(a, b uint32) int {
		if d := Level(a) - Level(b); d != 0 {
			return d
		}
		return int(a) - int(b)
	})
	for _, x := range order {
		t.mut(x).hash = t.nodeHash(x)
	}
}

// addTaint returns set ∪ {a} (sorted, a new slice), leaving set intact.
func addTaint(set []uint32, a uint32) []uint32 {
	i, found := slices.BinarySearch(set, a)
	if found {
		return set
	}
	return slices.Insert(slices.Clip(set), i, a)
}
