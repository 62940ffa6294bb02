package coffer_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// TestChainKeysOnUse: VerifyChainKeysOnUse, a client's verifier, checks a
// tree commit's public keys for size only, and each key is parsed by the
// seal that uses it. A removal whose path carries a key of the right size
// that is not an X-Wing key, signed and with its tree hash recomputed as a
// malicious admin would, is refused by VerifyChainWith (cofferd's) with
// tree-public-key and accepted by VerifyChainKeysOnUse; the first commit
// that seals to that node then fails with tree-public-key. A key of the
// wrong size is refused both ways. Every other rule is held to the same
// answer in every chain test (verifyBothWays).
func TestChainKeysOnUse(t *testing.T) {
	p := mustTreeCast(t)
	bad := bytes.Repeat([]byte{0xff}, ratchettree.PublicKeySize)

	b, tc := removeWriter(t, p)
	writerLeaf := b.leaf(p.writer)
	tc.c.Tree.Commit.Path.PublicKeys[0] = bad
	b.rehash(p.owner, tc)
	v := b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	if _, err := coffer.VerifyChainWith(nil, v.commits, v.keys); ruleOf(err) != string(ratchettree.RulePublicKey) {
		t.Fatalf("VerifyChainWith: %v, want rule %s", err, ratchettree.RulePublicKey)
	}
	s, err := coffer.VerifyChainKeysOnUse(nil, v.commits, v.keys)
	if err != nil {
		t.Fatalf("VerifyChainKeysOnUse: %v", err)
	}
	// The bad key is the parent of the writer's old leaf; a rekey of the
	// nodes above it seals to it.
	dp := ratchettree.DirectPath(ratchettree.LeafNode(writerLeaf), s.Tree.Leaves())
	if len(dp) < 2 || !bytes.Equal(s.Tree.PublicKey(dp[0]), bad) {
		t.Fatalf("the verified tree does not hold the bad key at node %d", dp[0])
	}
	ctx := ratchettree.Context{Group: s.Group, Epoch: s.Epoch + 1}
	_, _, _, err = ratchettree.Create(s.Tree, ctx, s.Members[p.owner.ID].Leaf, ratchettree.Spec{Rekey: dp[1:]})
	if treeRuleOf(err) != string(ratchettree.RulePublicKey) {
		t.Fatalf("sealing to the bad key: %v, want rule %s", err, ratchettree.RulePublicKey)
	}

	b, tc = removeWriter(t, p)
	tc.c.Tree.Commit.Path.PublicKeys[0] = bad[1:]
	v = b.pushBad(p.owner, tc, tc.ciphertexts()).vector(nil)
	_, full := coffer.VerifyChainWith(nil, v.commits, v.keys)
	_, onUse := coffer.VerifyChainKeysOnUse(nil, v.commits, v.keys)
	if full == nil || onUse == nil || ruleOf(full) != ruleOf(onUse) {
		t.Errorf("a key of %d bytes: VerifyChainWith %v, VerifyChainKeysOnUse %v; want both refused by one rule", len(bad)-1, full, onUse)
	}
}
