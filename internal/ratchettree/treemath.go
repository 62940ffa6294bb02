package ratchettree

// Tree math over RFC 9420's array layout (Appendix C): leaf i is node 2i,
// parent nodes sit at odd indices, and a node's level is the number of
// trailing one bits of its index. The tree is left-balanced: for a leaf
// count n that is not a power of two, the right edge is cut and a parent
// whose right child would lie beyond the last node skips to the next
// level up (the draft-era RFC 9420 definitions that the final text keeps
// for power-of-two n). Every function is pure and runs in O(log n).

import "math/bits"

// Level is the height of node x: 0 for leaves.
func Level(x uint32) int { return bits.TrailingZeros32(^x) }

// Width is the number of nodes of a tree with n leaves.
func Width(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// Root is the index of the root of a tree with n ≥ 1 leaves.
func Root(n uint32) uint32 {
	w := Width(n)
	return 1<<(bits.Len32(w)-1) - 1
}

// Left is the left child of parent node x (Level(x) > 0).
func Left(x uint32) uint32 {
	k := Level(x)
	if k == 0 {
		return x
	}
	return x ^ (1 << (k - 1))
}

// right is the right child of x in the full tree, possibly beyond Width.
func right(x uint32) uint32 {
	k := Level(x)
	if k == 0 {
		return x
	}
	return x ^ (3 << (k - 1))
}

// Right is the right child of parent node x in a tree with n leaves: the
// full tree's right child, or its left descendant while that lies beyond
// the tree's width.
func Right(x, n uint32) uint32 {
	r := right(x)
	for r >= Width(n) {
		r = Left(r)
	}
	return r
}

// parentStep is x's parent in the infinite full tree.
func parentStep(x uint32) uint32 {
	k := Level(x)
	b := (x >> (k + 1)) & 1
	return (x | 1<<k) ^ (b << (k + 1))
}

// Parent is x's parent in a tree with n leaves; x must not be the root.
func Parent(x, n uint32) uint32 {
	if x == Root(n) {
		return x
	}
	p := parentStep(x)
	for p >= Width(n) {
		p = parentStep(p)
	}
	return p
}

// Sibling is the other child of x's parent; x must not be the root.
func Sibling(x, n uint32) uint32 {
	p := Parent(x, n)
	if x < p {
		return Right(p, n)
	}
	return Left(p)
}

// DirectPath lists x's ancestors from its parent up to the root.
func DirectPath(x, n uint32) []uint32 {
	r := Root(n)
	var d []uint32
	for x != r {
		x = Parent(x, n)
		d = append(d, x)
	}
	return d
}

// Copath lists, for each node of x's direct path, the child that is not
// on the path from x: the sibling of x, then of x's parent, and so on.
func Copath(x, n uint32) []uint32 {
	r := Root(n)
	var c []uint32
	for x != r {
		c = append(c, Sibling(x, n))
		x = Parent(x, n)
	}
	return c
}

// IsAncestor reports whether a is x or one of x's ancestors.
func IsAncestor(a, x uint32) bool {
	k := Level(a)
	lo := a - (1<<k - 1)
	hi := a + (1<<k - 1)
	return lo <= x && x <= hi
}

// LeafNode is the node index of leaf i.
func LeafNode(i uint32) uint32 { return 2 * i }
