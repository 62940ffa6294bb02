package coffer_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// TestChainKeysOnUse: a signed tree commit names its public keys by
// digest, and the keys travel beside it. The server (ApplyTree, with the
// keys) holds each to its digest and parses it; the chain verifier holds
// digests only. A removal whose path carries a key of the right size that
// is not an X-Wing key, signed and with its tree hash recomputed as a
// malicious admin would, is refused by ApplyTree with tree-public-key and
// accepted by both chain verifiers, whose tree holds its digest; a
// committer that then seals to that node, served the key by a server that
// kept it anyway, fails with tree-public-key. A key of the wrong size
// beside a commit is refused by ApplyTree.
func TestChainKeysOnUse(t *testing.T) {
	p := mustTreeCast(t)
	bad := bytes.Repeat([]byte{0xff}, ratchettree.PublicKeySize)

	b, tc := removeWriter(t, p)
	writerLeaf := b.leaf(p.writer)
	tc.c.Tree.Commit.Path.PublicKeys[0] = bad
	b.rehash(p.owner, tc)
	prev := b.state.Clone()
	v := b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	last := v.commits[len(v.commits)-1]
	if err := prev.ApplyTree(last, commitTreeKeys(tc.c), tc.ciphertexts(), v.keys); ruleOf(err) != string(ratchettree.RulePublicKey) {
		t.Fatalf("ApplyTree: %v, want rule %s", err, ratchettree.RulePublicKey)
	}
	if _, err := coffer.VerifyChainWith(nil, v.commits, v.keys); err != nil {
		t.Fatalf("VerifyChainWith: %v", err)
	}
	s, err := coffer.VerifyChainKeysOnUse(nil, v.commits, v.keys)
	if err != nil {
		t.Fatalf("VerifyChainKeysOnUse: %v", err)
	}
	// The bad key is the parent of the writer's old leaf; a rekey of the
	// nodes above it seals to it.
	dp := ratchettree.DirectPath(ratchettree.LeafNode(writerLeaf), s.Tree.Leaves())
	if len(dp) < 2 || s.Tree.PublicKey(dp[0]) != nil || s.Tree.Digest(dp[0]) != ratchettree.KeyDigest(bad) {
		t.Fatalf("the verified tree does not hold the bad key's digest (and only that) at node %d", dp[0])
	}
	// The server serves the keys it holds: the tree before the commit
	// (ApplyTree kept every key) and the keys beside the commit.
	byDigest := map[[32]byte][]byte{}
	for x := range ratchettree.Width(prev.Tree.Leaves()) {
		if k := prev.Tree.PublicKey(x); k != nil {
			byDigest[ratchettree.KeyDigest(k)] = k
		}
	}
	for _, k := range commitTreeKeys(tc.c) {
		byDigest[ratchettree.KeyDigest(k)] = k
	}
	serve := func(nodes []uint32) ([][]byte, error) {
		out := make([][]byte, len(nodes))
		for i, x := range nodes {
			out[i] = byDigest[s.Tree.Digest(x)]
		}
		return out, nil
	}
	ctx := ratchettree.Context{Group: s.Group, Epoch: s.Epoch + 1}
	_, _, _, err = ratchettree.Create(s.Tree, ctx, s.Members[p.owner.ID].Leaf, ratchettree.Spec{Rekey: dp[1:], FetchKeys: serve})
	if treeRuleOf(err) != string(ratchettree.RulePublicKey) {
		t.Fatalf("sealing to the bad key: %v, want rule %s", err, ratchettree.RulePublicKey)
	}

	b, tc = removeWriter(t, p)
	keys := commitTreeKeys(tc.c)
	keys[0] = keys[0][1:]
	if err := b.state.Clone().ApplyTree(sign2(tc.c, p.owner.Sign), keys, tc.ciphertexts(), b.keys); ruleOf(err) != string(ratchettree.RulePublicKey) {
		t.Errorf("a key of %d bytes beside the commit: %v, want rule %s", len(keys[0]), err, ratchettree.RulePublicKey)
	}
}
