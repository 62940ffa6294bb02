package coffer_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// pushBad signs tc as it stands (after the test edited it) and appends it
// with cts beside it, unverified: the last commit of a failing vector.
func (b *treeChain) pushBad(signer *treeActor, tc *treeCommit, cts []ratchettree.Ciphertext) *treeChain {
	b.pushRaw(tc.c, sign2(tc.c, signer.Sign), cts)
	return b
}

// rehash gives the edited tree part of tc the tree hash of the tree it
// produces, as a malicious committer would, so that only the rule under
// test can catch it.
func (b *treeChain) rehash(author *treeActor, tc *treeCommit) {
	b.tb.Helper()
	t, err := ratchettree.Resulting(b.state.Tree, b.leaf(author), tc.c.Tree.Commit, nil)
	if err != nil {
		b.tb.Fatalf("resulting: %v", err)
	}
	tc.c.Tree.Commit.TreeHash = t.Hash()
}

// removeWriter: base, and the owner's removal of the writer by a path,
// built but not pushed.
func removeWriter(tb testing.TB, p treeCast) (*treeChain, *treeCommit) {
	b := p.base(tb)
	return b, b.change(p.owner, pathSpec(ratchettree.OpRemove, b.leaf(p.writer), nil), removeOp(cm(p.writer)), rotateOp)
}

func cloneCts(cts []ratchettree.Ciphertext) []ratchettree.Ciphertext {
	out := slices.Clone(cts)
	for i := range out {
		out[i].Sealed = bytes.Clone(out[i].Sealed)
	}
	return out
}

// withoutRecipient drops the ciphertexts sealed to a node on leaf's path.
func withoutRecipient(cts []ratchettree.Ciphertext, leaf uint32) []ratchettree.Ciphertext {
	var out []ratchettree.Ciphertext
	for _, ct := range cts {
		if !ratchettree.IsAncestor(ct.Recipient, ratchettree.LeafNode(leaf)) {
			out = append(out, ct)
		}
	}
	return out
}

var treeCases = []treeCase{
	{"genesis", "the owner's tree genesis places the admin, the writer and the reader at leaves 1 to 3", "", func(tb testing.TB, p treeCast) treeVector {
		return p.base(tb).vector(p.reader)
	}},
	{"lifecycle", "path removal and add, a path self-update, a root rekey, a promotion, an admin's demotion and departure refreshing its taint, a rekeyed self-update, bulk adds", "", func(tb testing.TB, p treeCast) treeVector {
		return p.lifecycle(tb, func(*treeChain) {}).vector(p.m6)
	}},
	{"upgrade", "a pairwise suite v2 group of four becomes a tree group, then removes a member by a path", "", func(tb testing.TB, p treeCast) treeVector {
		b := upgraded(tb, p)
		b.push(p.owner, b.change(p.owner, pathSpec(ratchettree.OpRemove, b.leaf(p.reader), nil), removeOp(cm(p.reader)), rotateOp))
		return b.vector(p.writer)
	}},
	{"alone", "a one-member tree genesis changes no node; its first add refreshes the new leaf's path", "", func(tb testing.TB, p treeCast) treeVector {
		b := newTreeChain(tb, p.all()...)
		b.push(p.owner, b.start(p.owner, nil, addOp2(p.owner.v2Member, coffer.RoleOwner)))
		b.push(p.owner, b.change(p.owner, pathSpec(ratchettree.OpAdd, 1, p.reader.Keys.EncryptionKey), addOp2(p.reader.v2Member, coffer.RoleReader), rotateOp), p.reader)
		return b.vector(p.reader)
	}},

	// The ciphertexts beside a commit: exactly one per resolution node.
	{"ciphertext-withheld", "the removal arrives without the ciphertext for one resolution node", string(ratchettree.RuleCiphertexts), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		return b.pushBad(p.owner, tc, tc.ciphertexts()[1:]).vector(nil)
	}},
	{"ciphertext-extra", "the removal arrives with one ciphertext twice", string(ratchettree.RuleCiphertexts), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		cts := tc.ciphertexts()
		return b.pushBad(p.owner, tc, append(cts, cts[0])).vector(nil)
	}},
	{"ciphertext-misaddressed", "a ciphertext names another recipient node than the resolution's", string(ratchettree.RuleCiphertexts), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		cts := cloneCts(tc.ciphertexts())
		cts[0].Recipient ^= 2
		return b.pushBad(p.owner, tc, cts).vector(nil)
	}},
	{"ciphertext-wrong-node", "a ciphertext names another refreshed node than its level's", string(ratchettree.RuleCiphertexts), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		cts := cloneCts(tc.ciphertexts())
		cts[len(cts)-1].Node = cts[0].Node
		return b.pushBad(p.owner, tc, cts).vector(nil)
	}},
	{"ciphertext-short", "a ciphertext one byte short", string(ratchettree.RuleShape), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		cts := cloneCts(tc.ciphertexts())
		cts[0].Sealed = cts[0].Sealed[1:]
		return b.pushBad(p.owner, tc, cts).vector(nil)
	}},
	{"ciphertexts-for-no-change", "a promotion, which changes no node, arrives with a ciphertext", string(ratchettree.RuleCiphertexts), func(tb testing.TB, p treeCast) treeVector {
		b, rm := removeWriter(tb, p)
		tc := b.change(p.owner, nil, setRoleOp(cm(p.reader), coffer.RoleWriter))
		return b.pushBad(p.owner, tc, rm.ciphertexts()[:1]).vector(nil)
	}},

	// What only the receiver can see: sealing and derivation.
	{"sealed-to-wrong-node", "each ciphertext keeps its address but holds the sealing made for the next one", string(ratchettree.RuleDecrypt), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		cts := cloneCts(tc.ciphertexts())
		first := cts[0].Sealed
		for i := range cts {
			if i+1 < len(cts) {
				cts[i].Sealed = cts[i+1].Sealed
			} else {
				cts[i].Sealed = first
			}
		}
		return b.pushBad(p.owner, tc, cts).vector(p.reader)
	}},
	{"public-key-mismatch", "the committer signs a root public key that is not the one the root's path secret derives (tree hash recomputed)", string(ratchettree.RuleKeyMismatch), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		keys := tc.c.Tree.Commit.Path.PublicKeys
		keys[len(keys)-1] = p.m5.Keys.EncryptionKey
		b.rehash(p.owner, tc)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(p.reader)
	}},
	{"served-withheld", "the server accepted every ciphertext but serves the reader none of its own", string(ratchettree.RuleWithheld), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		b.pushBad(p.owner, tc, tc.ciphertexts())
		v := b.vector(p.reader)
		v.served[len(v.commits)-1] = withoutRecipient(tc.ciphertexts(), b.leaf(p.reader))
		return v
	}},
	{"served-other-group", "the server serves the reader the ciphertexts of the same removal in another group (same members, same shape)", string(ratchettree.RuleDecrypt), func(tb testing.TB, p treeCast) treeVector {
		other := newTreeChain(tb, p.all()...)
		other.group = testGroupID(3)
		other.push(p.owner, other.start(p.owner, []*treeActor{p.admin, p.writer, p.reader},
			addOp2(p.owner.v2Member, coffer.RoleOwner), addOp2(p.admin.v2Member, coffer.RoleAdmin),
			addOp2(p.writer.v2Member, coffer.RoleWriter), addOp2(p.reader.v2Member, coffer.RoleReader)), p.admin, p.writer, p.reader)
		otc := other.change(p.owner, pathSpec(ratchettree.OpRemove, 2, nil), removeOp(cm(p.writer)), rotateOp)
		b, tc := removeWriter(tb, p)
		b.pushBad(p.owner, tc, tc.ciphertexts())
		v := b.vector(p.reader)
		v.served[len(v.commits)-1] = otc.ciphertexts()
		return v
	}},
	{"served-other-epoch", "the server serves the reader the ciphertexts of an earlier removal of the same shape", string(ratchettree.RuleDecrypt), func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		first := b.change(p.owner, pathSpec(ratchettree.OpRemove, b.leaf(p.writer), nil), removeOp(cm(p.writer)), rotateOp)
		b.push(p.owner, first)
		b.push(p.owner, b.change(p.owner, pathSpec(ratchettree.OpAdd, 2, p.m5.Keys.EncryptionKey), addOp2(p.m5.v2Member, coffer.RoleWriter), rotateOp), p.m5)
		tc := b.change(p.owner, pathSpec(ratchettree.OpRemove, 2, nil), removeOp(cm(p.m5)), rotateOp)
		b.pushBad(p.owner, tc, tc.ciphertexts())
		v := b.vector(p.reader)
		v.served[len(v.commits)-1] = first.ciphertexts()
		return v
	}},

	// The signed tree part.
	{"tree-hash-mismatch", "the removal claims a tree hash that is not the resulting tree's", string(ratchettree.RuleTreeHash), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		tc.c.Tree.Commit.TreeHash[0] ^= 1
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"public-key-invalid", "a refreshed node's public key beside the commit is not an X-Wing key (its digest signed, the tree hash recomputed): the server, which parses the keys, refuses it", string(ratchettree.RulePublicKey), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		tc.c.Tree.Commit.Path.PublicKeys[0] = bytes.Repeat([]byte{0xff}, ratchettree.PublicKeySize)
		b.rehash(p.owner, tc)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"path-keys-missing", "the path carries one public key fewer than its nodes", string(ratchettree.RulePublicKey), func(tb testing.TB, p treeCast) treeVector {
		b, tc := removeWriter(tb, p)
		tc.c.Tree.Commit.Path.PublicKeys = tc.c.Tree.Commit.Path.PublicKeys[1:]
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},

	// Taint.
	{"admin-removed-by-path", "the admin, which knows node 5 from its own removal of the writer, is removed by a path that leaves node 5 as it is", string(ratchettree.RuleTaint), func(tb testing.TB, p treeCast) treeVector {
		b := p.adminTaints(tb)
		tc := b.change(p.owner, pathSpec(ratchettree.OpRemove, b.leaf(p.admin), nil), removeOp(cm(p.admin)), rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"admin-demoted-not-refreshed", "the owner demotes the admin and rekeys the root only: node 5 stays known to the admin", string(ratchettree.RuleTaint), func(tb testing.TB, p treeCast) treeVector {
		b := p.adminTaints(tb)
		tc := b.change(p.owner, rootSpec(b), setRoleOp(cm(p.admin), coffer.RoleWriter), rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"admin-left-not-refreshed", "the admin leaves; the owner's rotation removes its leaf but leaves node 5", string(ratchettree.RuleTaint), func(tb testing.TB, p treeCast) treeVector {
		b := p.adminTaints(tb)
		leaf := b.leaf(p.admin)
		b.push(p.admin, b.change(p.admin, nil, leaveOp(cm(p.admin))))
		tc := b.change(p.owner, &ratchettree.Spec{Removes: []uint32{leaf}}, rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"update-path-while-tainting", "the owner, which knows every node from the genesis, self-updates by a path instead of a rekey", string(ratchettree.RuleTaint), func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.owner, pathSpec(ratchettree.OpUpdate, 0, p.owner2.Keys.EncryptionKey), updateOp2(p.owner2.v2Member), rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},

	// Leaf keys are the members' keys.
	{"add-leaf-not-member-key", "the admin adds m5 at a leaf holding m6's X-Wing key", coffer.RuleMemberKeys, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.admin, pathSpec(ratchettree.OpAdd, 4, p.m6.Keys.EncryptionKey), addOp2(p.m5.v2Member, coffer.RoleReader), rotateOp)
		return b.pushBad(p.admin, tc, tc.ciphertexts()).vector(nil)
	}},
	{"update-leaf-not-member-key", "the reader's self-update puts another key than its new keys' at its leaf", coffer.RuleMemberKeys, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.reader, pathSpec(ratchettree.OpUpdate, b.leaf(p.reader), p.m5.Keys.EncryptionKey), updateOp2(p.reader2.v2Member), rotateOp)
		return b.pushBad(p.reader, tc, tc.ciphertexts()).vector(nil)
	}},
	{"genesis-leaf-not-member-key", "the genesis starts the tree with the admin's key at the owner's leaf", coffer.RuleMemberKeys, func(tb testing.TB, p treeCast) treeVector {
		b := newTreeChain(tb, p.all()...)
		tc := b.start(p.owner, []*treeActor{p.reader}, addOp2(p.owner.v2Member, coffer.RoleOwner), addOp2(p.reader.v2Member, coffer.RoleReader))
		tc.c.Tree.StartKey = p.admin.Keys.EncryptionKey
		t0, _ := ratchettree.NewTree([][]byte{p.admin.Keys.EncryptionKey})
		nt, err := ratchettree.Resulting(t0, 0, tc.c.Tree.Commit, nil)
		if err != nil {
			tb.Fatal(err)
		}
		tc.c.Tree.Commit.TreeHash = nt.Hash()
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},

	// Tree and pairwise groups.
	{"tree-commit-in-pairwise-group", "an admin's version 3 rotation in a pairwise suite v2 group", coffer.RuleTreeUpgrade, func(tb testing.TB, p treeCast) treeVector {
		b := pairwise(tb, p)
		tc := b.start(p.admin, upgradeOrder(b.state, p), rotateOp)
		return b.pushBad(p.admin, tc, tc.ciphertexts()).vector(nil)
	}},
	{"tree-commit-in-suite-v1-group", "the owner of a suite v1 group sends a tree start", coffer.RuleVersion, func(tb testing.TB, p treeCast) treeVector {
		b := newTreeChain(tb, p.all()...)
		b.Do(MustChainMember(tb, 1), addOp(MustChainMember(tb, 1), coffer.RoleOwner), addOp(MustChainMember(tb, 4), coffer.RoleReader))
		b.cts = append(b.cts, nil)
		s, err := coffer.VerifyChain(nil, b.commits)
		if err != nil {
			tb.Fatal(err)
		}
		b.state = s
		tc := b.start(p.owner, []*treeActor{p.reader}, rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"pairwise-commit-in-tree-group", "a version 2 commit (pairwise) after a tree genesis", coffer.RuleVersion, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		b.do(p.admin.v2Member, addOp2(p.m5.v2Member, coffer.RoleReader))
		b.cts = append(b.cts, nil)
		return b.vector(nil)
	}},
	{"pairwise-commit-after-upgrade", "a version 2 rotation after the upgrade", coffer.RuleVersion, func(tb testing.TB, p treeCast) treeVector {
		b := upgraded(tb, p)
		b.do(p.owner.v2Member, rotateOp)
		b.cts = append(b.cts, nil)
		return b.vector(nil)
	}},
	{"upgrade-with-add", "the owner's upgrade also adds m5", coffer.RuleTreeUpgrade, func(tb testing.TB, p treeCast) treeVector {
		b := pairwise(tb, p)
		tc := b.start(p.owner, append(upgradeOrder(b.state, p), p.m5), addOp2(p.m5.v2Member, coffer.RoleReader), rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"upgrade-wrong-order", "the upgrade puts the members' keys at leaves out of account id order", coffer.RuleMemberKeys, func(tb testing.TB, p treeCast) treeVector {
		b := pairwise(tb, p)
		order := upgradeOrder(b.state, p)
		slices.Reverse(order)
		tc := b.start(p.owner, order, rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"upgrade-missing-member", "the upgrade leaves one member out of the tree", coffer.RuleTreeUpgrade, func(tb testing.TB, p treeCast) treeVector {
		b := pairwise(tb, p)
		tc := b.start(p.owner, upgradeOrder(b.state, p)[1:], rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"upgrade-as-change", "the upgrade's tree part is a change, not a start", coffer.RuleTreeUpgrade, func(tb testing.TB, p treeCast) treeVector {
		b := pairwise(tb, p)
		tc := b.start(p.owner, upgradeOrder(b.state, p), rotateOp)
		tc.c.Tree.Kind, tc.c.Tree.StartKey = coffer.TreeChange, nil
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},

	// The tree part does what the ops do.
	{"remove-other-leaf", "the owner removes the writer, but the path removes the reader's leaf", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.owner, pathSpec(ratchettree.OpRemove, b.leaf(p.reader), nil), removeOp(cm(p.writer)), rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"add-without-rotation", "in a history group, the admin adds m5 without a rotation", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.admin, nil, addOp2(p.m5.v2Member, coffer.RoleReader))
		return b.pushBad(p.admin, tc, tc.ciphertexts()).vector(nil)
	}},
	{"rotation-without-change", "a rotation whose tree part changes nothing", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.owner, nil, rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"change-without-rotation", "a promotion whose tree part rekeys the root", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.owner, rootSpec(b), setRoleOp(cm(p.reader), coffer.RoleWriter))
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"departure-not-removed", "the reader leaves; the owner's rotation rekeys the root but keeps the reader's leaf", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		b.push(p.reader, b.change(p.reader, nil, leaveOp(cm(p.reader))))
		tc := b.change(p.owner, rootSpec(b), rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"restart", "a tree group's rotation starts the tree again", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.start(p.owner, []*treeActor{p.admin, p.writer, p.reader}, rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"update-without-op", "the owner's rotation replaces its leaf key with no update-key op", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := p.base(tb)
		tc := b.change(p.owner, &ratchettree.Spec{SelfUpdate: p.owner2.Keys.EncryptionKey}, rotateOp)
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"genesis-by-path", "a genesis places its second member by a path instead of bulk adds", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := newTreeChain(tb, p.all()...)
		tc := b.start(p.owner, nil, addOp2(p.owner.v2Member, coffer.RoleOwner), addOp2(p.reader.v2Member, coffer.RoleReader))
		t0, _ := ratchettree.NewTree([][]byte{p.owner.Keys.EncryptionKey})
		full, _, _, err := ratchettree.Create(t0, coffer.TreeContext(tc.c), 0, *pathSpec(ratchettree.OpAdd, 1, p.reader.Keys.EncryptionKey))
		if err != nil {
			tb.Fatal(err)
		}
		tc.full, tc.c.Tree.Commit = full, full.Detached()
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"genesis-keys-out-of-order", "a genesis puts the reader's key at the leaf of the admin, whose add op comes first, and the admin's at the reader's", coffer.RuleMemberKeys, func(tb testing.TB, p treeCast) treeVector {
		b := newTreeChain(tb, p.all()...)
		tc := b.start(p.owner, []*treeActor{p.reader, p.admin}, addOp2(p.owner.v2Member, coffer.RoleOwner), addOp2(p.admin.v2Member, coffer.RoleAdmin), addOp2(p.reader.v2Member, coffer.RoleReader))
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
	{"genesis-leaves-swapped", "a genesis lists its bulk adds at leaves 2 then 1", coffer.RuleTreeOps, func(tb testing.TB, p treeCast) treeVector {
		b := newTreeChain(tb, p.all()...)
		tc := b.start(p.owner, []*treeActor{p.admin, p.reader}, addOp2(p.owner.v2Member, coffer.RoleOwner), addOp2(p.admin.v2Member, coffer.RoleAdmin), addOp2(p.reader.v2Member, coffer.RoleReader))
		adds := tc.c.Tree.Commit.Adds
		adds[0].Leaf, adds[1].Leaf = adds[1].Leaf, adds[0].Leaf
		return b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	}},
}

// pairwise: a pairwise suite v2 group of the owner, admin, writer and
// reader, before its upgrade.
func pairwise(tb testing.TB, p treeCast) *treeChain {
	b := newTreeChain(tb, p.all()...)
	b.do(p.owner.v2Member, addOp2(p.owner.v2Member, coffer.RoleOwner), addOp2(p.admin.v2Member, coffer.RoleAdmin),
		addOp2(p.writer.v2Member, coffer.RoleWriter), addOp2(p.reader.v2Member, coffer.RoleReader))
	b.cts = append(b.cts, nil)
	s, err := coffer.VerifyChainWith(nil, b.commits, b.keys)
	if err != nil {
		tb.Fatal(err)
	}
	b.state = s
	return b
}
