package ratchettree

import (
	"bytes"
	"slices"
	"sync"
	"testing"
)

// Clones share chunks of nodes until they write. Commits applied at once
// from one tree (as cofferd's cached state is cloned by concurrent
// verifications; run with -race) must leave it as it was, give the trees
// that an unshared copy gives, and ChangedNodes' shortcut over shared
// chunks must agree with comparing every node.
func TestCloneCopyOnWrite(t *testing.T) {
	pool := newKeyPool(t, 16)
	const n = 700 // 1,399 nodes: six chunks
	base := benchTree(pool, n)
	before, _ := base.MarshalBinary()
	baseHash := base.Hash()
	unshared, err := ParseTree(before)
	if err != nil {
		t.Fatal(err)
	}

	specs := []Spec{
		{Path: &PathSpec{Op: OpRemove, Leaf: 3}},
		{Path: &PathSpec{Op: OpRemove, Leaf: 300}},
		{Path: &PathSpec{Op: OpRemove, Leaf: n - 1}},
		{Adds: []LeafKey{{Leaf: n, Key: pool.pub[1]}, {Leaf: n + 1, Key: pool.pub[2]}}, Rekey: []uint32{Root(n + 2)}},
		{Removes: []uint32{5, 600}, Rekey: []uint32{Root(n)}},
	}
	trees := make([]*Tree, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() {
			c, _, _, err := Create(base, Context{Epoch: 2}, 0, spec)
			if err != nil {
				errs[i] = err
				return
			}
			trees[i], errs[i] = Verify(base, 0, c, nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("spec %d: %v", i, err)
		}
	}
	if after, _ := base.MarshalBinary(); !bytes.Equal(before, after) || base.Hash() != baseHash {
		t.Fatal("commits applied to clones changed the tree they were cloned from")
	}
	for i, nt := range trees {
		enc, _ := nt.MarshalBinary()
		copied, err := ParseTree(enc)
		if err != nil {
			t.Fatal(err)
		}
		if copied.Hash() != nt.Hash() {
			t.Errorf("spec %d: the tree's hash differs from its unshared copy's", i)
		}
		got, want := ChangedNodes(base, nt), ChangedNodes(unshared, nt)
		if !slices.Equal(got, want) {
			t.Errorf("spec %d: ChangedNodes over shared chunks = %v, comparing every node = %v", i, got, want)
		}
		if len(got) == 0 {
			t.Errorf("spec %d: no node changed", i)
		}
		// Each result is independent of the others.
		for j, other := range trees {
			if j != i && other.Hash() == nt.Hash() {
				t.Errorf("specs %d and %d gave one tree", i, j)
			}
		}
	}
	if d := ChangedNodes(unshared, trees[0]); !slices.Equal(d, sortedPath(3, n)) {
		t.Errorf("a removal's changed nodes are %v, want leaf 3 and its direct path", d)
	}
}

func sortedPath(leaf, n uint32) []uint32 {
	out := append([]uint32{LeafNode(leaf)}, DirectPath(LeafNode(leaf), n)...)
	slices.Sort(out)
	return out
}
