package ratchettree

import (
	"slices"
	"testing"
)

// TestNodeRows: a tree rebuilt from the rows of its non-blank nodes is the
// same tree, the rows a commit changes are exactly those that differ, and
// PathNodes names every recipient a member can open.
func TestNodeRows(t *testing.T) {
	g := mustGenesis(t, "rows", 7)
	rows := func(tr *Tree) []NodeRow {
		var out []NodeRow
		for x := uint32(0); x < Width(tr.n); x++ {
			if tr.PublicKey(x) != nil {
				out = append(out, tr.Node(x))
			}
		}
		return out
	}
	prev := g.tree
	c := g.commit(0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 3}}, nil)
	changed := ChangedNodes(prev, g.tree)
	want := append([]uint32{LeafNode(3)}, DirectPath(LeafNode(3), 7)...)
	slices.Sort(want)
	if !slices.Equal(changed, want) {
		t.Fatalf("changed %v, want %v", changed, want)
	}
	// Apply the change to the stored rows only.
	stored := map[uint32]NodeRow{}
	for _, r := range rows(prev) {
		stored[r.Node] = r
	}
	for _, x := range changed {
		if g.tree.PublicKey(x) == nil {
			delete(stored, x)
		} else {
			stored[x] = g.tree.Node(x)
		}
	}
	var rs []NodeRow
	for _, r := range stored {
		rs = append(rs, r)
	}
	rt, err := TreeFromRows(7, rs)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Hash() != g.tree.Hash() {
		t.Fatal("rows rebuild another tree")
	}
	// A node stored twice, beyond the width, or a leaf with taint.
	if _, err := TreeFromRows(7, append(rs, rs[0])); err == nil {
		t.Fatal("a duplicate row rebuilt")
	}
	if _, err := TreeFromRows(7, append(rs, NodeRow{Node: Width(7), PublicKey: rs[0].PublicKey})); err == nil {
		t.Fatal("a row beyond the width rebuilt")
	}
	bad := slices.Clone(rs)
	for i := range bad {
		if Level(bad[i].Node) == 0 {
			bad[i].Taint = EncodeTaint([]uint32{1})
			break
		}
	}
	if _, err := TreeFromRows(7, bad); err == nil {
		t.Fatal("a leaf with taint rebuilt")
	}
	// Every ciphertext member 5 opens is addressed to one of PathNodes(5);
	// no other member's is.
	path := PathNodes(5)
	for _, ct := range c.Ciphertexts() {
		if IsAncestor(ct.Recipient, LeafNode(5)) != slices.Contains(path, ct.Recipient) {
			t.Fatalf("recipient %d: PathNodes disagrees with IsAncestor", ct.Recipient)
		}
	}
	for _, x := range path {
		if !IsAncestor(x, LeafNode(5)) {
			t.Fatalf("PathNodes(5) holds %d, not above leaf 5", x)
		}
	}
}
