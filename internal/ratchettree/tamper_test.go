package ratchettree

import (
	"slices"
	"testing"
)

// cloneCommit deep-copies the parts a tamper test changes.
func cloneCommit(c *Commit) *Commit {
	d := *c
	if c.Path != nil {
		p := *c.Path
		p.PublicKeys = slices.Clone(p.PublicKeys)
		p.Ciphertexts = slices.Clone(p.Ciphertexts)
		d.Path = &p
	}
	d.Rekey = slices.Clone(c.Rekey)
	for i := range d.Rekey {
		d.Rekey[i].Ciphertexts = slices.Clone(d.Rekey[i].Ciphertexts)
	}
	d.Adds = slices.Clone(c.Adds)
	return &d
}

// rehashed gives c the tree hash of the tree it produces, as a malicious
// committer would, so that only the rule under test can catch it.
func rehashed(tb testing.TB, t *Tree, committer uint32, c *Commit, untrusted []uint32) *Commit {
	tb.Helper()
	var match []Ciphertext
	nt, err := apply(t, committer, c, untrusted, &match, ParseKeys)
	if err != nil {
		tb.Fatalf("apply: %v", err)
	}
	c.TreeHash = nt.Hash()
	return c
}

// removal builds (without applying) admin 0's removal of leaf 5 in a
// 16-member group and returns the group and the commit.
func removal(tb testing.TB, name string) (*group, *Commit) {
	g := mustGenesis(tb, name, 16)
	c, _, _, err := Create(g.tree, g.ctx, 0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}})
	if err != nil {
		tb.Fatal(err)
	}
	return g, c
}

// receive has member leaf receive c after a successful public Verify.
func receive(tb testing.TB, g *group, leaf uint32, c *Commit) error {
	tb.Helper()
	if _, err := Verify(g.tree, 0, c, nil); err != nil {
		tb.Fatalf("the tampered commit should pass the public checks: %v", err)
	}
	_, err := g.members[leaf].Receive(g.ctx, c, g.commitHash())
	return err
}

// indexOf finds the path ciphertext a member at leaf opens.
func indexOf(c *Commit, leaf uint32, n uint32) int {
	for i, ct := range c.Path.Ciphertexts {
		if IsAncestor(ct.Recipient, LeafNode(leaf)) {
			return i
		}
	}
	return -1
}

func TestTamperSealedToWrongNode(t *testing.T) {
	g, c := removal(t, "wrong-node")
	// Leaf 12's ciphertext carries the bytes sealed to another node.
	d := cloneCommit(c)
	i, j := indexOf(d, 12, 16), indexOf(d, 1, 16)
	d.Path.Ciphertexts[i].Sealed = c.Path.Ciphertexts[j].Sealed
	wantRule(t, receive(t, g, 12, d), RuleDecrypt)
	// The right secret sealed to the wrong key (another member's leaf)
	// under the right labels: still does not open.
	d = cloneCommit(c)
	ct := d.Path.Ciphertexts[i]
	ps := []byte("0123456789abcdef0123456789abcdef")
	sealed, err := seal(LabelTreePath, g.ctx, ct.Node, ct.Recipient, g.tree.PublicKey(LeafNode(13)), ps)
	if err != nil {
		t.Fatal(err)
	}
	d.Path.Ciphertexts[i].Sealed = sealed
	wantRule(t, receive(t, g, 12, d), RuleDecrypt)
	// A ciphertext relabelled to a recipient outside the resolution is a
	// public shape error.
	d = cloneCommit(c)
	d.Path.Ciphertexts[i].Recipient = LeafNode(12)
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleCiphertexts)
}

func TestTamperPublicKeyMismatch(t *testing.T) {
	g, c := removal(t, "key-mismatch")
	for level := range c.Path.PublicKeys {
		d := cloneCommit(c)
		other := leafKey(t, "other")
		d.Path.PublicKeys[level] = other.PublicKey().Bytes()
		rehashed(t, g.tree, 0, d, nil)
		// Every receiver at or below this level must see it.
		for leaf, m := range g.members {
			if leaf == 5 || leaf == 0 {
				continue
			}
			dp := DirectPath(LeafNode(5), 16)
			lvl := 0
			for !IsAncestor(dp[lvl], LeafNode(leaf)) {
				lvl++
			}
			if _, err := Verify(g.tree, 0, d, nil); err != nil {
				t.Fatal(err)
			}
			_, err := m.Receive(g.ctx, d, g.commitHash())
			if lvl <= level {
				wantRule(t, err, RuleKeyMismatch)
			} else if err != nil {
				t.Fatalf("leaf %d above the change: %v", leaf, err)
			}
		}
	}
	// A rekeyed node's key too.
	_, err := mustRekeyTamper(t, g)
	wantRule(t, err, RuleKeyMismatch)
	// A public key that is not an X-Wing key is a public error.
	d := cloneCommit(c)
	d.Path.PublicKeys[1] = make([]byte, PublicKeySize-1)
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RulePublicKey)
	d = cloneCommit(c)
	d.Path.PublicKeys = d.Path.PublicKeys[:len(d.Path.PublicKeys)-1]
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RulePublicKey)
}

func mustRekeyTamper(t *testing.T, g *group) (*Commit, error) {
	c, _, _, err := Create(g.tree, g.ctx, 0, Spec{Rekey: []uint32{Parent(LeafNode(9), 16)}})
	if err != nil {
		t.Fatal(err)
	}
	d := cloneCommit(c)
	d.Rekey[0].PublicKey = leafKey(t, "other").PublicKey().Bytes()
	rehashed(t, g.tree, 0, d, nil)
	if _, err := Verify(g.tree, 0, d, nil); err != nil {
		t.Fatal(err)
	}
	_, err = g.members[9].Receive(g.ctx, d, g.commitHash())
	return d, err
}

func TestTamperTreeHash(t *testing.T) {
	g, c := removal(t, "tree-hash")
	d := cloneCommit(c)
	d.TreeHash[7] ^= 1
	_, err := Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleTreeHash)
	// A swapped public key without the matching tree hash.
	d = cloneCommit(c)
	d.Path.PublicKeys[0], d.Path.PublicKeys[1] = d.Path.PublicKeys[1], d.Path.PublicKeys[0]
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleTreeHash)
	// Verified against another tree (a server serving a stale state).
	other := mustGenesis(t, "tree-hash-other", 16)
	_, err = Verify(other.tree, 0, c, nil)
	wantRule(t, err, RuleTreeHash)
	// A leaf count that is not the tree's.
	d = cloneCommit(c)
	d.Leaves = 17
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleShape)
}

func TestTamperWithheldCiphertext(t *testing.T) {
	g, c := removal(t, "withheld")
	for i := range c.Path.Ciphertexts {
		d := cloneCommit(c)
		d.Path.Ciphertexts = slices.Delete(d.Path.Ciphertexts, i, i+1)
		_, err := Verify(g.tree, 0, d, nil)
		wantRule(t, err, RuleCiphertexts)
		// The receiver whose ciphertext it was notices on its own too.
		for leaf, m := range g.members {
			if leaf != 5 && leaf != 0 && IsAncestor(c.Path.Ciphertexts[i].Recipient, LeafNode(leaf)) {
				_, err := m.Receive(g.ctx, d, g.commitHash())
				wantRule(t, err, RuleWithheld)
			}
		}
	}
	// Extra, duplicated, reordered and short ciphertexts.
	d := cloneCommit(c)
	d.Path.Ciphertexts = append(d.Path.Ciphertexts, d.Path.Ciphertexts[0])
	_, err := Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleCiphertexts)
	d = cloneCommit(c)
	d.Path.Ciphertexts[0], d.Path.Ciphertexts[1] = d.Path.Ciphertexts[1], d.Path.Ciphertexts[0]
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleCiphertexts)
	d = cloneCommit(c)
	d.Path.Ciphertexts[2].Sealed = d.Path.Ciphertexts[2].Sealed[:CiphertextSize-1]
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleShape)
	// A rekey missing one child's ciphertext.
	c2, _, _, err := Create(g.tree, g.ctx, 0, Spec{Rekey: []uint32{3}})
	if err != nil {
		t.Fatal(err)
	}
	d = cloneCommit(c2)
	d.Rekey[0].Ciphertexts = d.Rekey[0].Ciphertexts[1:]
	_, err = Verify(g.tree, 0, d, nil)
	wantRule(t, err, RuleCiphertexts)
}

// TestTamperSwapAcrossGroups: two groups with the same members and the
// same epoch; the server serves group B's ciphertexts in group A's commit
// (and the other way round, and from another epoch).
func TestTamperSwapAcrossGroups(t *testing.T) {
	a := mustGenesis(t, "swap", 16)
	b := mustGenesis(t, "swap", 16) // same member keys
	b.ctx.Group[15] = 'B'
	ca, _, _, err := Create(a.tree, a.ctx, 0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}})
	if err != nil {
		t.Fatal(err)
	}
	cb, _, _, err := Create(b.tree, b.ctx, 0, Spec{Path: &PathSpec{Op: OpRemove, Leaf: 5}})
	if err != nil {
		t.Fatal(err)
	}
	// Leaf 4 is the removed leaf's sibling, so its ciphertext is sealed
	// to its user key, which is the same in both groups. Group B's member
	// receives A's whole path (keys and ciphertexts) as if it were B's:
	// only the group in the HPKE info stops it.
	_, err = b.members[4].Receive(b.ctx, ca, b.commitHash())
	wantRule(t, err, RuleDecrypt)
	_, err = b.members[12].Receive(b.ctx, ca, b.commitHash())
	wantRule(t, err, RuleDecrypt)
	// Only the ciphertexts swapped, keys left: same.
	d := cloneCommit(ca)
	d.Path.Ciphertexts = cb.Path.Ciphertexts
	_, err = a.members[12].Receive(a.ctx, d, a.commitHash())
	wantRule(t, err, RuleDecrypt)
	// Another epoch of the same group.
	old := a.ctx
	old.Epoch--
	_, err = a.members[4].Receive(old, ca, a.commitHash())
	wantRule(t, err, RuleDecrypt)
	// Two nodes' ciphertexts swapped inside one commit, labels kept.
	d = cloneCommit(ca)
	i := indexOf(d, 12, 16)
	j := indexOf(d, 3, 16)
	d.Path.Ciphertexts[i].Sealed, d.Path.Ciphertexts[j].Sealed = ca.Path.Ciphertexts[j].Sealed, ca.Path.Ciphertexts[i].Sealed
	_, err = a.members[12].Receive(a.ctx, d, a.commitHash())
	wantRule(t, err, RuleDecrypt)
	// Rekey ciphertexts moved under the path label do not open either.
	c2, _, _, err := Create(a.tree, a.ctx, 0, Spec{Rekey: []uint32{Parent(LeafNode(12), 16)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range c2.Rekey[0].Ciphertexts {
		if ct.Recipient == LeafNode(12) {
			k, _, _ := a.members[12].key(LeafNode(12))
			if _, err := open(LabelTreePath, a.ctx, ct.Node, ct.Recipient, k, ct.Sealed); err == nil {
				t.Fatal("a rekey ciphertext opened as a path ciphertext")
			}
		}
	}
}

// TestVerifyRules covers the public rules one by one.
func TestVerifyRules(t *testing.T) {
	g := mustGenesis(t, "rules", 6)
	nk := leafKey(t, "rules/new").PublicKey().Bytes()
	cases := []struct {
		name      string
		committer uint32
		spec      *Spec
		mangle    func(*Commit)
		untrusted []uint32
		want      Rule
	}{
		{"committer-blank", 9, &Spec{Path: &PathSpec{Op: OpRemove, Leaf: 1}}, nil, nil, RuleLeaf},
		{"remove-self", 2, &Spec{Path: &PathSpec{Op: OpRemove, Leaf: 2}}, nil, nil, RuleLeaf},
		{"remove-blank-or-absent", 0, &Spec{Path: &PathSpec{Op: OpRemove, Leaf: 7}}, nil, nil, RuleLeaf},
		{"update-other", 1, &Spec{Path: &PathSpec{Op: OpUpdate, Leaf: 2, LeafKey: nk}}, nil, nil, RuleLeaf},
		{"add-occupied", 0, &Spec{Path: &PathSpec{Op: OpAdd, Leaf: 3, LeafKey: nk}}, nil, nil, RuleLeaf},
		{"add-gap", 0, &Spec{Adds: []LeafKey{{Leaf: 8, Key: nk}}}, nil, nil, RuleLeaf},
		{"add-bad-key", 0, &Spec{Path: &PathSpec{Op: OpAdd, Leaf: 6, LeafKey: nk[:100]}}, nil, nil, RulePublicKey},
		{"unknown-op", 0, &Spec{Path: &PathSpec{Op: 9, Leaf: 1}}, nil, nil, RuleShape},
		{"nothing-refreshed", 0, &Spec{}, nil, nil, RuleShape},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := Create(g.tree, g.ctx, tc.committer, *tc.spec)
			wantRule(t, err, tc.want)
		})
	}
	// Rules a committer's own code never breaks but a forged commit can.
	base, _, _, err := Create(g.tree, g.ctx, 0, Spec{Rekey: []uint32{1, 9}})
	if err != nil {
		t.Fatal(err)
	}
	forged := []struct {
		name   string
		mangle func(*Commit)
		want   Rule
	}{
		{"rekey-leaf", func(c *Commit) { c.Rekey[0].Node = 2 }, RuleShape},
		{"rekey-out-of-order", func(c *Commit) { c.Rekey[0], c.Rekey[1] = c.Rekey[1], c.Rekey[0] }, RuleShape},
		{"rekey-without-parent", func(c *Commit) { c.Rekey = c.Rekey[:len(c.Rekey)-1] }, RuleShape},
		{"rekey-beyond-tree", func(c *Commit) { c.Rekey[len(c.Rekey)-1].Node = 31 }, RuleShape},
		{"rekey-bad-key", func(c *Commit) { c.Rekey[0].PublicKey = nk[:5] }, RulePublicKey},
		{"remove-with-key", func(c *Commit) { c.Path = &PathUpdate{Op: OpRemove, Leaf: 1, LeafKey: nk} }, RuleShape},
		{"add-not-rekeyed", func(c *Commit) { c.Adds = []LeafKey{{Leaf: 6, Key: nk}}; c.Leaves = 7 }, RuleShape},
		{"leaf-count-zero", func(c *Commit) { c.Leaves = 0 }, RuleShape},
	}
	for _, tc := range forged {
		t.Run(tc.name, func(t *testing.T) {
			d := cloneCommit(base)
			tc.mangle(d)
			_, err := Verify(g.tree, 0, d, nil)
			wantRule(t, err, tc.want)
		})
	}
}

// TestReceiveBoundsIndices: a receiver that has not run the full verifier
// refuses out-of-range indices instead of walking off the tree.
func TestReceiveBoundsIndices(t *testing.T) {
	g, c := removal(t, "bounds")
	for _, mangle := range []func(*Commit){
		func(d *Commit) { d.Path.Leaf = 0xffffffff },
		func(d *Commit) { d.Path.Leaf = d.Leaves },
		func(d *Commit) { d.Path = nil; d.Rekey = []RekeyNode{{Node: 0xffffffff}} },
		func(d *Commit) { d.Path = nil; d.Rekey = []RekeyNode{{Node: 4}} },
		func(d *Commit) { d.Leaves = 0 },
		func(d *Commit) { d.Leaves = MaxLeaves + 1 },
	} {
		d := cloneCommit(c)
		mangle(d)
		_, err := g.members[12].Receive(g.ctx, d, g.commitHash())
		wantRule(t, err, RuleShape)
	}
}
