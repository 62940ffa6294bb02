package ratchettree

import (
	"slices"
	"testing"
)

// refTree is an explicit recursive left-balanced tree, built from RFC
// 9420's definition (a tree on n leaves is the full tree on the largest
// power of two below n on the left and a left-balanced tree on the rest
// on the right) without any of the index arithmetic under test.
type refNode struct {
	index       uint32
	left, right *refNode
	parent      *refNode
}

func buildRef(first, n uint32) *refNode {
	if n == 1 {
		return &refNode{index: 2 * first}
	}
	k := uint32(1)
	for k*2 < n {
		k *= 2
	}
	l := buildRef(first, k)
	r := buildRef(first+k, n-k)
	// A parent's index is the node between its subtrees: one past the
	// last node of the left subtree.
	p := &refNode{index: 2*(first+k) - 1, left: l, right: r}
	l.parent, r.parent = p, p
	return p
}

func collect(x *refNode, m map[uint32]*refNode) {
	if x == nil {
		return
	}
	m[x.index] = x
	collect(x.left, m)
	collect(x.right, m)
}

func TestTreeMathAgainstReference(t *testing.T) {
	for n := uint32(1); n <= 70; n++ {
		root := buildRef(0, n)
		nodes := map[uint32]*refNode{}
		collect(root, nodes)
		if uint32(len(nodes)) != Width(n) {
			t.Fatalf("n=%d: %d nodes, Width %d", n, len(nodes), Width(n))
		}
		if Root(n) != root.index {
			t.Fatalf("n=%d: Root %d, want %d", n, Root(n), root.index)
		}
		for x, node := range nodes {
			if node.left != nil {
				if Left(x) != node.left.index || Right(x, n) != node.right.index {
					t.Fatalf("n=%d x=%d: children %d,%d want %d,%d", n, x, Left(x), Right(x, n), node.left.index, node.right.index)
				}
			}
			if node.parent == nil {
				if len(DirectPath(x, n)) != 0 || len(Copath(x, n)) != 0 {
					t.Fatalf("n=%d: root has a path", n)
				}
				continue
			}
			if Parent(x, n) != node.parent.index {
				t.Fatalf("n=%d x=%d: Parent %d want %d", n, x, Parent(x, n), node.parent.index)
			}
			sib := node.parent.left
			if sib == node {
				sib = node.parent.right
			}
			if Sibling(x, n) != sib.index {
				t.Fatalf("n=%d x=%d: Sibling %d want %d", n, x, Sibling(x, n), sib.index)
			}
			var dp, cp []uint32
			for c := node; c.parent != nil; c = c.parent {
				dp = append(dp, c.parent.index)
				s := c.parent.left
				if s == c {
					s = c.parent.right
				}
				cp = append(cp, s.index)
			}
			if !slices.Equal(DirectPath(x, n), dp) || !slices.Equal(Copath(x, n), cp) {
				t.Fatalf("n=%d x=%d: path %v/%v want %v/%v", n, x, DirectPath(x, n), Copath(x, n), dp, cp)
			}
			for a := range nodes {
				want := false
				for c := node; c != nil; c = c.parent {
					if c.index == a {
						want = true
					}
				}
				if IsAncestor(a, x) != want {
					t.Fatalf("n=%d: IsAncestor(%d,%d)=%v", n, a, x, !want)
				}
			}
		}
	}
}

// TestTreeMathRFC9420 checks the values RFC 9420 states for its 8-leaf
// example (Section 4.1 and Appendix C): levels, the root, and leaf A's
// direct path and copath.
func TestTreeMathRFC9420(t *testing.T) {
	if Width(8) != 15 || Root(8) != 7 || Level(7) != 3 || Level(3) != 2 || Level(5) != 1 || Level(4) != 0 {
		t.Fatal("8-leaf tree shape")
	}
	if !slices.Equal(DirectPath(0, 8), []uint32{1, 3, 7}) || !slices.Equal(Copath(0, 8), []uint32{2, 5, 11}) {
		t.Fatalf("leaf A: %v %v", DirectPath(0, 8), Copath(0, 8))
	}
	// Leaf F (node 10): direct path 9, 11, 7; copath 8, 13, 3.
	if !slices.Equal(DirectPath(10, 8), []uint32{9, 11, 7}) || !slices.Equal(Copath(10, 8), []uint32{8, 13, 3}) {
		t.Fatalf("leaf F: %v %v", DirectPath(10, 8), Copath(10, 8))
	}
	// A 5-leaf left-balanced tree: root 7, leaf 4 (node 8) hangs off it.
	if Root(5) != 7 || Parent(8, 5) != 7 || Right(7, 5) != 8 {
		t.Fatalf("5 leaves: root %d parent(8) %d right(7) %d", Root(5), Parent(8, 5), Right(7, 5))
	}
	if Root(100000) != 131071 || len(DirectPath(0, 100000)) != 17 {
		t.Fatalf("100k: root %d depth %d", Root(100000), len(DirectPath(0, 100000)))
	}
}
