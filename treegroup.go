package coffer

import (
	"bytes"
	"errors"
	"slices"

	"golang.org/x/crypto/cryptobyte"

	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree groups: a suite v2 group whose epoch keys come from a ratchet tree
// (internal/ratchettree), so a removal costs O(log n) ciphertexts instead
// of a wrap per member. Every commit of a tree group is version
// CommitVersionTree and carries a tree part under its signature; the
// ciphertexts travel beside it (GroupState.ApplyTree checks them). The
// chain verifier holds the tree rules together with the membership rules:
//
//   - a version 3 genesis starts a tree group: the author is leaf 0 (the
//     start key) and the other add ops take leaves 1, 2, ... in op order,
//     all placed by bulk adds and one rekey (RuleTreeOps);
//   - in a tree group every commit is version 3 (RuleVersion). One that
//     rotates refreshes the root (a tree change); one that does not has no
//     tree change, and cannot add (there are no unmerged leaves), RuleTreeOps;
//   - the tree change removes exactly the leaves of the removed members and
//     of those who left since the last rotation, adds one leaf per add op
//     (in op order), and updates the author's leaf exactly with its
//     update-key op (RuleTreeOps). An update-key by a member tainting a node
//     uses the rekeyed form (ratchettree.RuleTaint);
//   - no node stays tainted by a removed or departed member, or by an admin
//     or owner the commit demotes below admin (ratchettree.RuleTaint);
//   - the tree change passes ratchettree.VerifySigned: shape, public keys
//     (parsed; only sized under VerifyChainKeysOnUse, ratchettree.KeySizes),
//     tree hash (its rules are reported as chain rules under their names);
//   - a version 3 commit in a pairwise suite v2 group is its upgrade: by an
//     owner, ops exactly one rotate, a tree start with the author at leaf 0
//     and every other member in account id order (RuleTreeUpgrade).
//
// Leaf keys are bound to the members' keys where the keys are resolved
// (GroupState.MemberKeys, WithMemberKeys: RuleMemberKeys), as suite v2
// binds every added member's keys.

// CommitVersionTree is the version byte of a tree group's commits.
const CommitVersionTree = 3

// Rules of tree groups; ratchettree's own rules keep their names
// (tree-shape, tree-leaf, tree-public-key, tree-ciphertexts, tree-hash,
// tree-taint).
const (
	RuleTreeOps     = "tree-ops"     // the tree part does not do what the ops do
	RuleTreeUpgrade = "tree-upgrade" // a tree commit in a pairwise group that is not a valid upgrade
)

// TreeKind says what a commit's tree part does.
type TreeKind uint8

const (
	TreeNone   TreeKind = 0 // no change to the tree (a commit that does not rotate)
	TreeStart  TreeKind = 1 // the tree's first commit: a genesis or an upgrade
	TreeChange TreeKind = 2 // a change to the tree that refreshes its root
)

// TreePart is the signed tree part of a tree group's commit.
type TreePart struct {
	Kind TreeKind
	// StartKey is the author's leaf key at leaf 0 (TreeStart).
	StartKey []byte
	// Commit is the signed part of the tree commit, without ciphertexts
	// (TreeStart, TreeChange).
	Commit *ratchettree.Commit
}

func treeSignedSize(c *ratchettree.Commit) int {
	if c == nil {
		return 0
	}
	return c.SignedSize()
}

func (tp *TreePart) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(tp.Kind))
	if tp.Kind == TreeStart {
		b.AddBytes(tp.StartKey)
	}
	if tp.Kind != TreeNone && tp.Commit != nil {
		b.AddBytes(tp.Commit.Detached().MarshalSigned())
	}
}

func parseTreePart(s cryptobyte.String) (*TreePart, cryptobyte.String, error) {
	var kind uint8
	if !s.ReadUint8(&kind) {
		return nil, nil, ruleErr(RuleMalformed, "truncated tree part")
	}
	tp := &TreePart{Kind: TreeKind(kind)}
	switch tp.Kind {
	case TreeNone:
		return tp, s, nil
	case TreeStart:
		var k []byte
		if !s.ReadBytes(&k, EncryptionKeySize) {
			return nil, nil, ruleErr(RuleMalformed, "truncated tree start key")
		}
		tp.StartKey = bytes.Clone(k)
	case TreeChange:
	default:
		return nil, nil, ruleErr(RuleMalformed, "unknown tree part kind %d", kind)
	}
	c, rest, err := ratchettree.ParseSigned(s)
	if err != nil {
		return nil, nil, ruleErr(RuleMalformed, "tree part: %s", treeDetail(err))
	}
	tp.Commit = c
	return tp, rest, nil
}

func treeDetail(err error) string {
	var te *ratchettree.Error
	if errors.As(err, &te) {
		return te.Detail
	}
	return err.Error()
}

// treeErr reports a ratchettree failure as a chain rule of the same name.
func treeErr(err error) error {
	var te *ratchettree.Error
	if errors.As(err, &te) {
		return ruleErr(string(te.Rule), "%s", te.Detail)
	}
	return err
}

// TreeHash is the hash of a tree group's public tree (false for a
// pairwise group).
func (s *GroupState) TreeHash() ([32]byte, bool) {
	if s.Tree == nil {
		return [32]byte{}, false
	}
	return s.Tree.Hash(), true
}

// TreeDepartures lists the leaves of members who left since the last
// rotation: the next rotation must remove them from the tree.
func (s *GroupState) TreeDepartures() []uint32 { return slices.Clone(s.treeLeft) }

// TreeContext is the context a tree commit's ciphertexts are bound to:
// the group and the epoch the commit starts.
func TreeContext(c *Commit) ratchettree.Context {
	return ratchettree.Context{Group: c.Group, Epoch: c.Epoch}
}

// ApplyTree is ApplyWith for a tree group's commit with the public keys
// and ciphertexts that travel beside it: besides every chain rule, keys
// must be exactly the keys the signed tree part names by digest, in
// ratchettree's order (Commit.Keys; tree-public-key), and cts exactly one
// ciphertext per resolution node of the nodes the commit refreshes, in
// ratchettree's canonical order (tree-ciphertexts). The server applies it
// before it stores a commit, so its tree holds every key; a committer can
// check its own. A commit that refreshes nothing takes neither.
func (s *GroupState) ApplyTree(sc SignedCommit, keys [][]byte, cts []ratchettree.Ciphertext, src MemberKeySource) error {
	if err := s.checkShape(); err != nil {
		return err
	}
	c, err := ParseCommit(sc.Body)
	if err != nil {
		return err
	}
	if tp := c.Tree; tp != nil && tp.Commit != nil {
		if tp.Commit, err = tp.Commit.WithKeys(keys); err != nil {
			return treeErr(err)
		}
	} else if len(keys) > 0 {
		return ruleErr(string(ratchettree.RulePublicKey), "%d public keys beside a commit that changes no tree node", len(keys))
	}
	if cts == nil {
		cts = []ratchettree.Ciphertext{}
	}
	return s.applyChecked(c, sc.Hash(), func(sg commitSigner) error {
		return checkSignature(c, sg, sc, src)
	}, cts)
}

// treeCheck is what checkTree found, for apply.
type treeCheck struct {
	tree   *ratchettree.Tree
	addrs  []ratchettree.Ciphertext
	leafOf map[AccountID]uint32
	left   []uint32 // leaves pending removal after the commit
}

// checkTree holds the tree rules (see the top of this file). It runs after
// the membership rules passed, against the state before the commit.
func (cc *commitCheck) checkTree() error {
	s, c := cc.s, cc.c
	tp := c.Tree
	switch {
	case tp == nil:
		if !cc.genesis && s.Tree != nil {
			return ruleErr(RuleVersion, "a version %d commit in a tree group; its commits are version %d", SuiteV2, CommitVersionTree)
		}
		return nil
	case cc.genesis:
		order := []AccountID{c.Author}
		for _, op := range c.Ops[1:] {
			order = append(order, op.Member)
		}
		return cc.checkTreeStart(order, RuleTreeOps)
	case s.Tree == nil:
		if cc.authorRole != RoleOwner || len(c.Ops) != 1 || c.Ops[0].Kind != OpRotate {
			return ruleErr(RuleTreeUpgrade, "a tree commit in a pairwise group must be its upgrade: by an owner, with one rotate op and nothing else")
		}
		order := []AccountID{c.Author}
		for _, m := range s.SortedMembers() {
			if m.ID != c.Author {
				order = append(order, m.ID)
			}
		}
		return cc.checkTreeStart(order, RuleTreeUpgrade)
	}
	if tp.Kind == TreeStart {
		return ruleErr(RuleTreeOps, "a tree group's commit cannot start the tree again")
	}
	if !cc.rotating {
		if tp.Kind != TreeNone {
			return ruleErr(RuleTreeOps, "a commit that does not rotate changes no tree node")
		}
		if cc.added != nil {
			return ruleErr(RuleTreeOps, "in a tree group an add rotates: the new leaf's path must be refreshed")
		}
		cc.tree = &treeCheck{tree: s.Tree, left: slices.Clone(s.treeLeft)}
		if cc.leaving {
			cc.tree.left = append(cc.tree.left, s.Members[c.Author].Leaf)
		}
		return nil
	}
	if tp.Kind != TreeChange || tp.Commit == nil {
		return ruleErr(RuleTreeOps, "a rotation in a tree group refreshes the tree's root")
	}
	return cc.checkTreeChange(tp.Commit)
}

// checkTreeStart checks a tree's first commit: order[0] (the author) at
// leaf 0 with the start key, order[i] added at leaf i by bulk adds.
func (cc *commitCheck) checkTreeStart(order []AccountID, rule string) error {
	tp := cc.c.Tree
	if tp.Kind != TreeStart || tp.Commit == nil {
		return ruleErr(rule, "a tree's first commit starts the tree")
	}
	tc := tp.Commit
	if tc.Path != nil || len(tc.Adds) != len(order)-1 {
		return ruleErr(rule, "the tree's first commit places %d members by bulk adds, not %d", len(order)-1, len(tc.Adds))
	}
	leafOf := make(map[AccountID]uint32, len(order))
	leafOf[order[0]] = 0
	for i, a := range tc.Adds {
		if a.Leaf != uint32(i+1) {
			return ruleErr(rule, "member %s takes leaf %d, not %d", order[i+1], i+1, a.Leaf)
		}
		leafOf[order[i+1]] = a.Leaf
	}
	t, addrs, err := ratchettree.VerifyStartKeys(tp.StartKey, tc, cc.s.treeKeys)
	if err != nil {
		return treeErr(err)
	}
	cc.tree = &treeCheck{tree: t, addrs: addrs, leafOf: leafOf}
	return nil
}

// checkTreeChange checks a rotating commit's tree change against its ops.
func (cc *commitCheck) checkTreeChange(tc *ratchettree.Commit) error {
	s, c := cc.s, cc.c
	author := s.Members[c.Author]
	want := slices.Clone(s.treeLeft)
	var untrusted []uint32
	var adds []AccountID
	update := false
	for _, op := range c.Ops {
		switch op.Kind {
		case OpRemove:
			want = append(want, s.Members[op.Member].Leaf)
		case OpAdd:
			adds = append(adds, op.Member)
		case OpSetRole:
			if m := s.Members[op.Member]; m.Role >= RoleAdmin && op.Role < RoleAdmin && op.Member != c.Author {
				untrusted = append(untrusted, m.Leaf)
			}
		case OpUpdateKey:
			update = true
		}
	}
	untrusted = append(untrusted, want...)
	got := slices.Clone(tc.Removes)
	var treeAdds []uint32
	for _, a := range tc.Adds {
		treeAdds = append(treeAdds, a.Leaf)
	}
	_, treeUpdate := ratchettree.OptionalDigest(tc.SelfUpdate, tc.SelfUpdateDigest)
	if p := tc.Path; p != nil {
		switch p.Op {
		case ratchettree.OpRemove:
			got = append(got, p.Leaf)
		case ratchettree.OpAdd:
			treeAdds = append(treeAdds, p.Leaf)
		case ratchettree.OpUpdate:
			treeUpdate = true
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		return ruleErr(RuleTreeOps, "the tree removes leaves %v, the commit's removals and departures are at leaves %v", got, want)
	}
	if len(treeAdds) != len(adds) {
		return ruleErr(RuleTreeOps, "the tree places %d leaves for %d added members", len(treeAdds), len(adds))
	}
	if treeUpdate != update {
		return ruleErr(RuleTreeOps, "the tree updates the author's leaf exactly with its update-key op")
	}
	if p := tc.Path; p != nil && p.Op == ratchettree.OpUpdate {
		for x := uint32(1); x < ratchettree.Width(s.Tree.Leaves()); x += 2 {
			if _, ok := slices.BinarySearch(s.Tree.Taint(x), author.Leaf); ok {
				return ruleErr(string(ratchettree.RuleTaint), "%s knows node %d's secret from outside it: its self-update must rekey that node", s.name(c.Author), x)
			}
		}
	}
	t, addrs, err := ratchettree.VerifySignedKeys(s.Tree, author.Leaf, tc, untrusted, s.treeKeys)
	if err != nil {
		return treeErr(err)
	}
	leafOf := make(map[AccountID]uint32, len(adds))
	for i, id := range adds {
		leafOf[id] = treeAdds[i]
	}
	cc.tree = &treeCheck{tree: t, addrs: addrs, leafOf: leafOf}
	return nil
}

// applyTree installs what checkTree found; nothing here can fail.
func (s *GroupState) applyTree(cc *commitCheck) {
	if cc.tree == nil {
		return
	}
	s.Tree = cc.tree.tree
	s.treeLeft = cc.tree.left
	for id, leaf := range cc.tree.leafOf {
		s.ownMember(id).Leaf = leaf
	}
}

// checkLeafKey requires a tree group member's resolved keys to be the
// ones at its leaf: the tree's leaf keys are signed by whoever placed
// them, and this binds them to the keys the member's entry names.
func (s *GroupState) checkLeafKey(m *Member, k *MemberKeys) error {
	if s.Tree == nil {
		return nil
	}
	if m.Leaf >= s.Tree.Leaves() || !s.Tree.Present(ratchettree.LeafNode(m.Leaf)) || s.Tree.Digest(ratchettree.LeafNode(m.Leaf)) != ratchettree.KeyDigest(k.EncryptionKey) {
		return ruleErr(RuleMemberKeys, "the tree's leaf %d does not hold the encryption key of member %s", m.Leaf, s.name(m.ID))
	}
	return nil
}

// unmarshalTree reads a version 5 checkpoint's tree section into ns,
// whose members are read, and checks that every member and every pending
// departure holds its own non-blank leaf.
func (ns *GroupState) unmarshalTree(in *cryptobyte.String, detached bool, loadTree func(uint32) (*ratchettree.Tree, error)) error {
	members := ns.sortedMembers()
	if uint64(len(members)) > uint64(len(*in)/4) {
		return errors.New("truncated leaves")
	}
	leaves := make([]uint32, len(members))
	for i := range leaves {
		in.ReadUint32(&leaves[i])
	}
	var n uint32
	if !in.ReadUint32(&n) || uint64(n) > uint64(len(*in)/4) {
		return errors.New("truncated departures")
	}
	left := make([]uint32, n)
	for i := range left {
		in.ReadUint32(&left[i])
	}
	var (
		size uint32
		enc  []byte
		t    *ratchettree.Tree
		err  error
	)
	switch {
	case detached:
		if !in.ReadUint32(&size) {
			return errors.New("truncated leaf count")
		}
		if t, err = loadTree(size); err != nil {
			return err
		}
		if t.Leaves() != size {
			return errors.New("the stored tree has another leaf count")
		}
	case !in.ReadUint32(&size) || !in.ReadBytes(&enc, int(size)):
		return errors.New("truncated tree")
	default:
		if t, err = ratchettree.ParseTree(enc); err != nil {
			return errors.New("invalid tree")
		}
	}
	for i, m := range members {
		m.Leaf = leaves[i]
	}
	return ns.installTree(t, left)
}

// installTree checks that every member of ns (whose entries name their
// leaves) and every pending departure holds its own non-blank leaf of t,
// and that no other leaf is non-blank, and makes t ns's tree.
func (ns *GroupState) installTree(t *ratchettree.Tree, left []uint32) error {
	if len(left) > 0 && !ns.PendingRotation {
		return errors.New("departures without a pending rotation")
	}
	used := make(map[uint32]bool, len(ns.Members)+len(left))
	check := func(l uint32) error {
		if l >= t.Leaves() || !t.Present(ratchettree.LeafNode(l)) || used[l] {
			return errors.New("invalid leaf")
		}
		used[l] = true
		return nil
	}
	for _, m := range ns.Members {
		if err := check(m.Leaf); err != nil {
			return err
		}
	}
	for _, l := range left {
		if err := check(l); err != nil {
			return err
		}
	}
	for l := range t.Leaves() {
		if t.Present(ratchettree.LeafNode(l)) && !used[l] {
			return errors.New("a leaf of nobody")
		}
	}
	ns.Tree, ns.treeLeft = t, left
	if len(left) == 0 {
		ns.treeLeft = nil
	}
	return nil
}

// MarshalBinaryDetached is MarshalBinary for a store that keeps a tree
// group's public tree apart, one row per node (ratchettree.ChangedNodes
// gives the rows a commit changes): checkpoint version 6 is version 5 with
// the tree's leaf count (uint32) in place of the tree. For any other group
// it is MarshalBinary.
func (s *GroupState) MarshalBinaryDetached() ([]byte, error) { return s.marshalState(true) }

// UnmarshalBinaryDetached restores a checkpoint written by
// MarshalBinaryDetached (or MarshalBinary); loadTree returns the stored
// tree of the given leaf count, which is checked like an encoded one.
func (s *GroupState) UnmarshalBinaryDetached(data []byte, loadTree func(leaves uint32) (*ratchettree.Tree, error)) error {
	return s.unmarshalState(data, loadTree)
}
