package server_test

import (
	"net/http"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
	"github.com/cofferhq/coffer/server"
)

// treeStart signs c as a tree start of its author alone: a one-member
// tree genesis, or the upgrade of a one-member pairwise group.
func treeStart(k *coffer.HybridPrivateKey, leafKey []byte) signer {
	return func(c *coffer.Commit) coffer.SignedCommit {
		t, err := ratchettree.NewTree([][]byte{leafKey})
		if err != nil {
			panic(err)
		}
		c.Tree = &coffer.TreePart{Kind: coffer.TreeStart, StartKey: leafKey, Commit: &ratchettree.Commit{Leaves: 1, TreeHash: t.Hash()}}
		return coffer.SignCommitHybrid(c, k)
	}
}

// TestTreeCommitsRefused: until the server stores the ciphertexts beside
// tree commits, it refuses every tree commit (a genesis and an upgrade the
// verifier accepts) with a stable rule, and stores nothing.
func TestTreeCommitsRefused(t *testing.T) {
	ts := MustServer(t)
	alice := mustV2Account(t, ts, "alice")
	keys := alice.MemberKeys()

	g := newV2Group(ts, keys)
	vc := g.build(t, alice.ID, treeStart(alice.HybridKey(), keys.EncryptionKey), addOpV2(alice.Account, keys, coffer.RoleOwner))
	if _, err := coffer.VerifyChainWith(nil, []coffer.SignedCommit{vc.sc}, g.keys); err != nil {
		t.Fatalf("the verifier refuses the tree genesis: %v", err)
	}
	g.refused(t, alice.token, vc, http.StatusBadRequest, coffer.EINVALID, server.RuleTreeUnsupported)

	g = newV2Group(ts, keys)
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()), addOpV2(alice.Account, keys, coffer.RoleOwner)))
	up := g.build(t, alice.ID, treeStart(alice.HybridKey(), keys.EncryptionKey), coffer.Op{Kind: coffer.OpRotate})
	if err := g.state.Clone().ApplyWith(up.sc, g.keys); err != nil {
		t.Fatalf("the verifier refuses the upgrade: %v", err)
	}
	g.refused(t, alice.token, up, http.StatusBadRequest, coffer.EINVALID, server.RuleTreeUnsupported)
}
