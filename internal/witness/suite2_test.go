package witness_test

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

// Suite v2 groups in the log: the witness verifies their commits with the
// member keys of the account chains it replayed before them, every
// generation of them, and holds each add and update-key to the account's
// current keys at that point of the log.

// signer signs a built commit.
type signer func(c *coffer.Commit) coffer.SignedCommit

func hybridBy(k *coffer.HybridPrivateKey) signer {
	return func(c *coffer.Commit) coffer.SignedCommit { return coffer.SignCommitHybrid(c, k) }
}

// nextV2 is chain.next for a commit signed by sign.
func (c *chain) nextV2(author coffer.AccountID, sign signer, ops ...coffer.Op) []byte {
	if c.seq == 0 {
		c.epoch = 1
		c.kc = sha256.Sum256(append([]byte("kc"), c.group[:]...))
	}
	epoch, kc := c.epoch, c.kc
	for _, op := range ops {
		if op.Kind == coffer.OpRotate {
			epoch, kc = epoch+1, sha256.Sum256(kc[:])
		}
	}
	cm := &coffer.Commit{Group: c.group, Seq: c.seq + 1, Prev: c.head, Epoch: epoch, Author: author,
		Time: 1, ShareHistory: true, KeyCommitment: kc, Ops: ops}
	sc := sign(cm)
	c.seq, c.head, c.epoch, c.kc = cm.Seq, sc.Hash(), epoch, kc
	return translog.CommitLeaf(c.group, cm.Seq, sc)
}

func addV2(a *accounttest.Account, k *coffer.MemberKeys, r coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpAdd, Member: a.ID, Handle: a.State.Handle, KeysHash: k.Hash(), Role: r}
}

func updateV2(a *accounttest.Account, k *coffer.MemberKeys) coffer.Op {
	return coffer.Op{Kind: coffer.OpUpdateKey, Member: a.ID, KeysHash: k.Hash()}
}

var rotateOp = coffer.Op{Kind: coffer.OpRotate}

// rotateLeaves rotates a's user key: the link and the identity it sets.
func rotateLeaves(a *accounttest.Account) [][]byte {
	return [][]byte{linkLeaf(a, a.Rotate(a.Device(0))), identityLeaf(a)}
}

// TestSuiteV2GroupWitnessed: an honest suite v2 group, whose members rotate
// their user keys and sign with the keys their entries hold (a retired
// generation until the self-update), is cosigned, across a restart from a
// snapshot: the snapshot keeps the retired generations too.
func TestSuiteV2GroupWitnessed(t *testing.T) {
	witness.SetSnapshotEvery(1)
	t.Cleanup(func() { witness.SetSnapshotEvery(64 << 20) })
	h := newHarness(t)
	base(h)
	carol, leaves := genesisLeaves(t, "carol")
	h.log.append(leaves...)
	dave, leaves := genesisLeaves(t, "dave")
	h.log.append(leaves...)
	carol1, carolKey1 := carol.MemberKeys(), carol.HybridKey()
	dave1, daveKey1 := dave.MemberKeys(), dave.HybridKey()
	g := newChain(20)
	h.log.append(g.nextV2(carol.ID, hybridBy(carolKey1), addV2(carol, carol1, coffer.RoleOwner)),
		g.nextV2(carol.ID, hybridBy(carolKey1), addV2(dave, dave1, coffer.RoleAdmin)))
	h.pushHonest(4)

	// dave rotates and self-updates, signing with the retired key his
	// entry holds; carol rotates and does not self-update yet.
	h.log.append(rotateLeaves(dave)...)
	h.log.append(g.nextV2(dave.ID, hybridBy(daveKey1), updateV2(dave, dave.MemberKeys()), rotateOp))
	h.log.append(rotateLeaves(carol)...)
	h.log.append(g.nextV2(dave.ID, hybridBy(dave.HybridKey()), rotateOp))
	h.pushHonest(10)

	// After a restart from the snapshot, carol's entry still holds her
	// first generation, which only the snapshot's member keys know.
	h.open()
	erin, leaves := genesisLeaves(t, "erin")
	h.log.append(leaves...)
	h.log.append(g.nextV2(carol.ID, hybridBy(carolKey1), updateV2(carol, carol.MemberKeys()), rotateOp))
	h.log.append(g.nextV2(carol.ID, hybridBy(carol.HybridKey()), addV2(erin, erin.MemberKeys(), coffer.RoleReader)))
	h.log.append(g.nextV2(carol.ID, hybridBy(carol.HybridKey()), coffer.Op{Kind: coffer.OpRemove, Member: erin.ID}, rotateOp))
	h.pushHonest(16)
}

// TestSuiteV2Refusals: each case is an honest log but for one suite v2
// commit; the witness refuses the checkpoint with the rule and cosigns
// nothing. carol and dave are suite v2 accounts logged before the case.
func TestSuiteV2Refusals(t *testing.T) {
	type cast struct {
		carol, dave *accounttest.Account
		g           *chain
		alice       *member
	}
	// soloGenesis is carol's group with carol alone.
	soloGenesis := func(c *cast) [][]byte {
		return [][]byte{c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), addV2(c.carol, c.carol.MemberKeys(), coffer.RoleOwner))}
	}
	// genesis is carol's group with carol and dave in it, at their current
	// keys.
	genesis := func(c *cast) [][]byte {
		return append(soloGenesis(c), c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), addV2(c.dave, c.dave.MemberKeys(), coffer.RoleWriter)))
	}
	cases := []struct {
		name  string
		build func(t *testing.T, c *cast) [][]byte
		rule  witness.Rule
	}{
		{"a genesis by an account whose chain is logged after it", func(t *testing.T, c *cast) [][]byte {
			frank := accounttest.MustAccount(t, testOrigin, "frank")
			g := newChain(21)
			return [][]byte{g.nextV2(frank.ID, hybridBy(frank.HybridKey()), addV2(frank, frank.MemberKeys(), coffer.RoleOwner)),
				translog.AccountLinkLeaf(frank.ID, 1, frank.Links[0]), identityLeaf(frank)}
		}, witness.RuleMemberKeys},
		{"an add of an account whose chain is logged after it", func(t *testing.T, c *cast) [][]byte {
			frank := accounttest.MustAccount(t, testOrigin, "frank")
			return append(genesis(c), c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), addV2(frank, frank.MemberKeys(), coffer.RoleReader)),
				translog.AccountLinkLeaf(frank.ID, 1, frank.Links[0]), identityLeaf(frank))
		}, witness.RuleMemberKeys},
		{"a commit by an author whose keys no chain set", func(t *testing.T, c *cast) [][]byte {
			// The author's entry names keys of a user key carol's chain
			// never had: made-up keys under carol's id and handle.
			fake := accounttest.MustAccount(t, testOrigin, "carol")
			k := fake.MemberKeys()
			k.Account = c.carol.ID
			op := coffer.Op{Kind: coffer.OpAdd, Member: c.carol.ID, Handle: c.carol.State.Handle, KeysHash: k.Hash(), Role: coffer.RoleOwner}
			return [][]byte{c.g.nextV2(c.carol.ID, hybridBy(fake.HybridKey()), op)}
		}, witness.RuleMemberKeys},
		{"a commit signed with the Ed25519 half alone", func(t *testing.T, c *cast) [][]byte {
			return append(soloGenesis(c), c.g.nextV2(c.carol.ID, func(cm *coffer.Commit) coffer.SignedCommit {
				sc := coffer.SignCommitHybrid(cm, c.carol.HybridKey())
				sc.Signature = sc.Signature[:64]
				return sc
			}, rotateOp))
		}, witness.RuleLeaf},
		{"a commit with a valid Ed25519 half and another key's ML-DSA half", func(t *testing.T, c *cast) [][]byte {
			return append(soloGenesis(c), c.g.nextV2(c.carol.ID, func(cm *coffer.Commit) coffer.SignedCommit {
				sc := coffer.SignCommitHybrid(cm, c.carol.HybridKey())
				other := c.dave.HybridKey().Sign(coffer.LabelCommit, sc.Body)
				sc.Signature = append(sc.Signature[:64:64], other[64:]...)
				return sc
			}, rotateOp))
		}, witness.RuleChain},
		{"a commit with a zero ML-DSA half", func(t *testing.T, c *cast) [][]byte {
			return append(soloGenesis(c), c.g.nextV2(c.carol.ID, func(cm *coffer.Commit) coffer.SignedCommit {
				sc := coffer.SignCommitHybrid(cm, c.carol.HybridKey())
				copy(sc.Signature[64:], make([]byte, len(sc.Signature)-64))
				return sc
			}, rotateOp))
		}, witness.RuleChain},
		{"a commit signed by another member", func(t *testing.T, c *cast) [][]byte {
			return append(genesis(c), c.g.nextV2(c.carol.ID, hybridBy(c.dave.HybridKey()), rotateOp))
		}, witness.RuleChain},
		{"an add of another account's keys", func(t *testing.T, c *cast) [][]byte {
			frank, leaves := genesisLeaves(t, "frank")
			op := addV2(frank, c.dave.MemberKeys(), coffer.RoleReader)
			return append(append(leaves, soloGenesis(c)...), c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), op))
		}, witness.RuleMemberKeys},
		{"an add under another handle", func(t *testing.T, c *cast) [][]byte {
			op := addV2(c.dave, c.dave.MemberKeys(), coffer.RoleReader)
			op.Handle = "mallory"
			return append(soloGenesis(c), c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), op))
		}, witness.RuleMemberKeys},
		{"an add of keys no chain set", func(t *testing.T, c *cast) [][]byte {
			k := accounttest.MustAccount(t, testOrigin, "dave").MemberKeys()
			k.Account = c.dave.ID
			op := coffer.Op{Kind: coffer.OpAdd, Member: c.dave.ID, Handle: c.dave.State.Handle, KeysHash: k.Hash(), Role: coffer.RoleReader}
			return append(soloGenesis(c), c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), op))
		}, witness.RuleMemberKeys},
		{"an add of a suite v1 account", func(t *testing.T, c *cast) [][]byte {
			k := accounttest.MustAccount(t, testOrigin, string(c.alice.handle)).MemberKeys()
			k.Account = c.alice.id
			op := coffer.Op{Kind: coffer.OpAdd, Member: c.alice.id, Handle: c.alice.handle, KeysHash: k.Hash(), Role: coffer.RoleReader}
			return append(soloGenesis(c), c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), op))
		}, witness.RuleMemberKeys},
		{"an add of an old generation after a rotation", func(t *testing.T, c *cast) [][]byte {
			old := c.dave.MemberKeys()
			leaves := append(soloGenesis(c), rotateLeaves(c.dave)...)
			return append(leaves, c.g.nextV2(c.carol.ID, hybridBy(c.carol.HybridKey()), addV2(c.dave, old, coffer.RoleReader)))
		}, witness.RuleMemberKeys},
		{"a genesis with the author's retired keys", func(t *testing.T, c *cast) [][]byte {
			old, oldKey := c.carol.MemberKeys(), c.carol.HybridKey()
			return append(rotateLeaves(c.carol), c.g.nextV2(c.carol.ID, hybridBy(oldKey), addV2(c.carol, old, coffer.RoleOwner)))
		}, witness.RuleMemberKeys},
		{"an update-key to a generation that is no longer current", func(t *testing.T, c *cast) [][]byte {
			leaves := genesis(c)
			daveKey1 := c.dave.HybridKey()
			leaves = append(leaves, rotateLeaves(c.dave)...)
			second := c.dave.MemberKeys()
			leaves = append(leaves, rotateLeaves(c.dave)...)
			return append(leaves, c.g.nextV2(c.dave.ID, hybridBy(daveKey1), updateV2(c.dave, second), rotateOp))
		}, witness.RuleMemberKeys},
		{"a commit signed with the author's retired keys that is not its self-update", func(t *testing.T, c *cast) [][]byte {
			leaves := genesis(c)
			old := c.carol.HybridKey()
			leaves = append(leaves, rotateLeaves(c.carol)...)
			return append(leaves, c.g.nextV2(c.carol.ID, hybridBy(old), rotateOp))
		}, witness.RuleMemberKeys},
		{"a leave signed with the member's retired keys", func(t *testing.T, c *cast) [][]byte {
			leaves := genesis(c)
			old := c.dave.HybridKey()
			leaves = append(leaves, rotateLeaves(c.dave)...)
			return append(leaves, c.g.nextV2(c.dave.ID, hybridBy(old), coffer.Op{Kind: coffer.OpLeave, Member: c.dave.ID}))
		}, witness.RuleMemberKeys},
		{"a self-update signed with the new keys", func(t *testing.T, c *cast) [][]byte {
			leaves := genesis(c)
			leaves = append(leaves, rotateLeaves(c.dave)...)
			return append(leaves, c.g.nextV2(c.dave.ID, hybridBy(c.dave.HybridKey()), updateV2(c.dave, c.dave.MemberKeys()), rotateOp))
		}, witness.RuleChain},
		{"an update-key to another account's keys", func(t *testing.T, c *cast) [][]byte {
			leaves := genesis(c)
			return append(leaves, c.g.nextV2(c.dave.ID, hybridBy(c.dave.HybridKey()), updateV2(c.dave, c.carol.MemberKeys()), rotateOp))
		}, witness.RuleMemberKeys},
		{"a suite v1 commit after a suite v2 genesis", func(t *testing.T, c *cast) [][]byte {
			leaves := genesis(c)
			key := c.carol.HybridKey().Ed25519PrivateKey()
			return append(leaves, c.g.nextV2(c.carol.ID, func(cm *coffer.Commit) coffer.SignedCommit { return coffer.SignCommit(cm, key) }, rotateOp))
		}, witness.RuleChain},
		{"a suite v1 add of a suite v2 account into a suite v2 group", func(t *testing.T, c *cast) [][]byte {
			leaves := soloGenesis(c)
			id := c.dave.State.Identity()
			op := coffer.Op{Kind: coffer.OpAdd, Member: c.dave.ID, Handle: id.Handle, SigningKey: id.SigningKey, EncryptionKey: id.EncryptionKey, Role: coffer.RoleReader}
			key := c.carol.HybridKey().Ed25519PrivateKey()
			return append(leaves, c.g.nextV2(c.carol.ID, func(cm *coffer.Commit) coffer.SignedCommit { return coffer.SignCommit(cm, key) }, op))
		}, witness.RuleChain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			alice, _, _ := base(h)
			c := &cast{g: newChain(22), alice: alice}
			var leaves [][]byte
			c.carol, leaves = genesisLeaves(t, "carol")
			h.log.append(leaves...)
			c.dave, leaves = genesisLeaves(t, "dave")
			h.log.append(leaves...)
			h.pushHonest(4)
			h.log.append(tc.build(t, c)...)
			n := h.log.size()
			_, err := h.push(8, h.log.proof(8, n), h.log.sign(h.log.honest(n)))
			wantRule(t, err, tc.rule)
			if h.w.Size() != 8 {
				t.Fatalf("after the refusal the witness is at %d, want 8", h.w.Size())
			}
		})
	}
}

// TestSuiteV2RotationOrder: an add of an account's current keys is
// accepted before its rotation is logged, and the same add after it is
// refused: what counts is the order in the log.
func TestSuiteV2RotationOrder(t *testing.T) {
	h := newHarness(t)
	base(h)
	carol, leaves := genesisLeaves(t, "carol")
	h.log.append(leaves...)
	dave, leaves := genesisLeaves(t, "dave")
	h.log.append(leaves...)
	g, g2 := newChain(24), newChain(25)
	k := carol.HybridKey()
	dave1 := dave.MemberKeys()
	h.log.append(g.nextV2(carol.ID, hybridBy(k), addV2(carol, carol.MemberKeys(), coffer.RoleOwner)),
		g2.nextV2(carol.ID, hybridBy(k), addV2(carol, carol.MemberKeys(), coffer.RoleOwner)),
		g.nextV2(carol.ID, hybridBy(k), addV2(dave, dave1, coffer.RoleReader)))
	h.log.append(rotateLeaves(dave)...)
	h.pushHonest(4)
	n := h.log.size()
	h.log.append(g2.nextV2(carol.ID, hybridBy(k), addV2(dave, dave1, coffer.RoleReader)))
	_, err := h.push(n, h.log.proof(n, n+1), h.log.sign(h.log.honest(n+1)))
	wantRule(t, err, witness.RuleMemberKeys)
	if !bytes.Contains([]byte(err.Error()), []byte("user key 1")) {
		t.Fatalf("the refusal does not name the retired generation: %v", err)
	}
}

// TestSuiteV2ResourceDeletes: in a suite v2 group a delete is a suite v2
// tombstone signed with the deleter's hybrid key, the one its entry names:
// the witness cosigns it, and refuses one signed with another key (a
// retired one included), one with either half forged, a suite v1 tombstone
// under the right key's Ed25519 half, or one by a deleter whose keys no
// chain set.
func TestSuiteV2ResourceDeletes(t *testing.T) {
	type setup struct {
		carol, dave *accounttest.Account
		g           *chain
	}
	start := func(t *testing.T) (*harness, *setup, int64) {
		h := newHarness(t)
		base(h)
		s := &setup{g: newChain(26)}
		var leaves [][]byte
		s.carol, leaves = genesisLeaves(t, "carol")
		h.log.append(leaves...)
		s.dave, leaves = genesisLeaves(t, "dave")
		h.log.append(leaves...)
		k := s.carol.HybridKey()
		h.log.append(s.g.nextV2(s.carol.ID, hybridBy(k), addV2(s.carol, s.carol.MemberKeys(), coffer.RoleOwner)),
			s.g.nextV2(s.carol.ID, hybridBy(k), addV2(s.dave, s.dave.MemberKeys(), coffer.RoleWriter)))
		h.log.append(translog.ResourceVersionLeaf(coffer.LoggedVersion{Group: s.g.group, Resource: testResource(1), Version: 1,
			Epoch: 1, Author: s.dave.ID, HeaderHash: [32]byte{1}}))
		h.pushHonest(4)
		return h, s, h.log.size()
	}
	del := func(s *setup, deleter coffer.AccountID, key *coffer.HybridPrivateKey) []byte {
		d := &coffer.ResourceDelete{Group: s.g.group, Resource: testResource(1), Version: 1, Deleter: deleter}
		return translog.ResourceDeleteLeaf(coffer.SignResourceDeleteHybrid(d, key))
	}
	edited := func(s *setup, edit func(*coffer.SignedDelete)) []byte {
		d := &coffer.ResourceDelete{Group: s.g.group, Resource: testResource(1), Version: 1, Deleter: s.dave.ID}
		sd := coffer.SignResourceDeleteHybrid(d, s.dave.HybridKey())
		edit(&sd)
		return translog.ResourceDeleteLeaf(sd)
	}
	t.Run("by the author", func(t *testing.T) {
		h, s, n := start(t)
		h.log.append(del(s, s.dave.ID, s.dave.HybridKey()))
		h.pushHonest(n)
	})
	t.Run("by an owner", func(t *testing.T) {
		h, s, n := start(t)
		h.log.append(del(s, s.carol.ID, s.carol.HybridKey()))
		h.pushHonest(n)
	})
	refusals := []struct {
		name  string
		build func(s *setup) [][]byte
	}{
		{"signed with another member's key", func(s *setup) [][]byte {
			return [][]byte{del(s, s.dave.ID, s.carol.HybridKey())}
		}},
		{"signed with the key the deleter's account retired after its entry", func(s *setup) [][]byte {
			// dave rotates and self-updates; the delete is signed with the
			// key his entry held before.
			old := s.dave.HybridKey()
			leaves := rotateLeaves(s.dave)
			leaves = append(leaves, s.g.nextV2(s.dave.ID, hybridBy(old), updateV2(s.dave, s.dave.MemberKeys()), rotateOp))
			return append(leaves, del(s, s.dave.ID, old))
		}},
		{"a suite v1 tombstone under the deleter's Ed25519 half", func(s *setup) [][]byte {
			d := &coffer.ResourceDelete{Group: s.g.group, Resource: testResource(1), Version: 1, Deleter: s.dave.ID}
			return [][]byte{translog.ResourceDeleteLeaf(coffer.SignResourceDelete(d, s.dave.HybridKey().Ed25519PrivateKey()))}
		}},
		{"the ML-DSA half forged", func(s *setup) [][]byte {
			return [][]byte{edited(s, func(sd *coffer.SignedDelete) { sd.Signature[coffer.SignatureSize+7] ^= 1 })}
		}},
		{"the Ed25519 half forged", func(s *setup) [][]byte {
			return [][]byte{edited(s, func(sd *coffer.SignedDelete) { sd.Signature[7] ^= 1 })}
		}},
		{"by a non-member", func(s *setup) [][]byte {
			frank := accounttest.MustAccount(t, testOrigin, "frank")
			return [][]byte{del(s, frank.ID, frank.HybridKey())}
		}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			h, s, n := start(t)
			h.log.append(tc.build(s)...)
			m := h.log.size()
			_, err := h.push(n, h.log.proof(n, m), h.log.sign(h.log.honest(m)))
			wantRule(t, err, witness.RuleResource)
		})
	}
}
