package ratchettree

import (
	"encoding/binary"
	"slices"
)

// A server keeps the public tree as one row per non-blank node and, per
// commit, changes only the nodes the commit touched; these helpers give it
// the changed nodes and rebuild a tree from rows.

// ChangedNodes lists, in index order, the nodes of next that differ from
// prev (public key or taint) or lie beyond prev's width: what a commit
// from prev to next touched. prev may be nil (every node).
func ChangedNodes(prev, next *Tree) []uint32 {
	var out []uint32
	w := Width(next.n)
	for x := uint32(0); x < w; x++ {
		if prev != nil && x < Width(prev.n) && x&(chunkSize-1) == 0 && int(x>>chunkShift) < len(prev.chunks) && prev.chunks[x>>chunkShift] == next.chunks[x>>chunkShift] {
			// A shared chunk is unchanged up to prev's width.
			x = min(x+chunkSize, Width(prev.n)) - 1
			continue
		}
		if prev == nil || x >= Width(prev.n) {
			out = append(out, x)
			continue
		}
		a, b := prev.at(x), next.at(x)
		if a.present != b.present || a.digest != b.digest || !slices.Equal(a.taint, b.taint) {
			out = append(out, x)
		}
	}
	return out
}

// EncodeTaint is the stored form of a node's taint: big-endian uint32
// leaf indices, in order.
func EncodeTaint(taint []uint32) []byte {
	b := make([]byte, 0, 4*len(taint))
	for _, a := range taint {
		b = binary.BigEndian.AppendUint32(b, a)
	}
	return b
}

// NodeRow is one stored non-blank node. A server's tree holds every key;
// a tree verified from signed commits may hold only Digest.
type NodeRow struct {
	Node      uint32
	PublicKey []byte
	Digest    [32]byte // KeyDigest(PublicKey); zero for a blank node
	Taint     []byte   // EncodeTaint
}

// TreeFromRows rebuilds the public tree of n leaves from its non-blank
// nodes, checked as ParseTree checks an encoded tree.
func TreeFromRows(n uint32, rows []NodeRow) (*Tree, error) {
	if n == 0 || n > MaxLeaves {
		return nil, errorf(RuleShape, "a tree has 1 to %d leaves, not %d", MaxLeaves, n)
	}
	byNode := make(map[uint32]NodeRow, len(rows))
	for _, r := range rows {
		if r.Node >= Width(n) || len(r.Taint)%4 != 0 || (Level(r.Node) == 0 && len(r.Taint) != 0) {
			return nil, errorf(RuleShape, "stored node %d does not fit a tree of %d leaves", r.Node, n)
		}
		if _, dup := byNode[r.Node]; dup {
			return nil, errorf(RuleShape, "node %d stored twice", r.Node)
		}
		byNode[r.Node] = r
	}
	b := binary.BigEndian.AppendUint32(nil, n)
	for x := uint32(0); x < Width(n); x++ {
		r, ok := byNode[x]
		if !ok {
			b = append(b, 0)
		} else {
			b = append(append(b, 1), r.PublicKey...)
		}
		if Level(x) > 0 {
			b = binary.BigEndian.AppendUint32(b, uint32(len(r.Taint)/4))
			b = append(b, r.Taint...)
		}
	}
	return ParseTree(b)
}

// PathNodes lists every node index whose subtree holds leaf, from the leaf
// up to the highest level a tree of MaxLeaves leaves has: whatever the
// tree's size was when a commit was sealed, a ciphertext this member can
// open names one of them as recipient.
func PathNodes(leaf uint32) []uint32 {
	x := LeafNode(leaf)
	out := []uint32{x}
	for k := 1; (uint64(1)<<k)-1 < uint64(Width(MaxLeaves)); k++ {
		out = append(out, uint32((uint64(x)>>(k+1))<<(k+1)|(uint64(1)<<k-1)))
	}
	return out
}

// Node is node x's public key (nil if blank) and taint.
func (t *Tree) Node(x uint32) NodeRow {
	nd := t.at(x)
	return NodeRow{Node: x, PublicKey: nd.pub, Digest: nd.digest, Taint: EncodeTaint(nd.taint)}
}
