package witness_test

import (
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

const testOrigin = "https://coffer.example:443"

// linkLeaf pushes sl onto a and returns its log leaf.
func linkLeaf(a *accounttest.Account, sl coffer.SignedLink) []byte {
	a.Push(sl)
	return translog.AccountLinkLeaf(a.ID, a.State.Seq, sl)
}

// identityLeaf is the identity leaf of a's current identity.
func identityLeaf(a *accounttest.Account) []byte {
	return translog.IdentityLeaf(a.ID, a.State.Identity().Marshal(), a.SelfSignature())
}

func genesisLeaves(tb testing.TB, handle string) (*accounttest.Account, [][]byte) {
	a := accounttest.MustAccount(tb, testOrigin, handle)
	return a, [][]byte{translog.AccountLinkLeaf(a.ID, 1, a.Links[0]), identityLeaf(a)}
}

func addOp(a *accounttest.Account, r coffer.Role) coffer.Op {
	id := a.State.Identity()
	return coffer.Op{Kind: coffer.OpAdd, Member: a.ID, Handle: id.Handle, SigningKey: id.SigningKey, EncryptionKey: id.EncryptionKey, Role: r}
}

// TestAccountChainsWitnessed: a witness replays every account link with
// the account-chain verifier and checks each logged identity of a chain
// account against its chain, across a restart from its snapshot.
func TestAccountChainsWitnessed(t *testing.T) {
	// A snapshot after every cosignature, so that the restart below
	// restores the chains from one rather than replaying the journal.
	witness.SetSnapshotEvery(1)
	t.Cleanup(func() { witness.SetSnapshotEvery(64 << 20) })
	h := newHarness(t)
	alice, _, g := base(h)
	carol, leaves := genesisLeaves(t, "carol")
	h.log.append(leaves...)
	h.log.append(linkLeaf(carol, carol.AddDevice(carol.Device(0), accounttest.MustDevice(t))))
	h.log.append(g.next(alice, addOp(carol, coffer.RoleReader)))
	h.pushHonest(4)
	h.log.append(linkLeaf(carol, carol.Revoke(carol.Device(1), carol.Device(0))), identityLeaf(carol))
	h.pushHonest(8)
	h.open() // from the snapshot
	h.log.append(linkLeaf(carol, carol.SetRecovery(carol.Device(0))))
	h.pushHonest(10)
	// The restored witness still knows carol's chain and identity: a link
	// of the server's making is refused, and so is a second identity.
	stranger := accounttest.MustDevice(t)
	forged := translog.AccountLinkLeaf(carol.ID, 6, coffer.SignLink(carol.AddDeviceLink(stranger, stranger), stranger.Key, stranger.Key))
	h.log.append(forged)
	_, err := h.push(11, h.log.proof(11, 12), h.log.sign(h.log.honest(12)))
	wantRule(t, err, witness.RuleAccountChain)
	h.log.setLeaves(h.log.snapshot()[:11])
	h.log.append(identityLeaf(carol))
	_, err = h.push(11, h.log.proof(11, 12), h.log.sign(h.log.honest(12)))
	wantRule(t, err, witness.RuleIdentity)
}

func TestAccountChainRefusals(t *testing.T) {
	cases := []struct {
		name  string
		build func(t *testing.T, h *harness, alice *member) [][]byte
		rule  witness.Rule
	}{
		{"a device link of the server's making", func(t *testing.T, h *harness, _ *member) [][]byte {
			a, leaves := genesisLeaves(t, "carol")
			stranger := accounttest.MustDevice(t)
			l := a.AddDeviceLink(stranger, stranger)
			return append(leaves, translog.AccountLinkLeaf(a.ID, 2, coffer.SignLink(l, stranger.Key, stranger.Key)))
		}, witness.RuleAccountChain},
		{"a link the leaf misplaces", func(t *testing.T, h *harness, _ *member) [][]byte {
			a, leaves := genesisLeaves(t, "carol")
			sl := a.AddDevice(a.Device(0), accounttest.MustDevice(t))
			return append(leaves, translog.AccountLinkLeaf(a.ID, 3, sl))
		}, witness.RuleAccountChain},
		{"two links at one seq", func(t *testing.T, h *harness, _ *member) [][]byte {
			a, leaves := genesisLeaves(t, "carol")
			other := a.AddDevice(a.Device(0), accounttest.MustDevice(t))
			return append(leaves, linkLeaf(a, a.AddDevice(a.Device(0), accounttest.MustDevice(t))), translog.AccountLinkLeaf(a.ID, 2, other))
		}, witness.RuleAccountChain},
		{"links without a genesis", func(t *testing.T, h *harness, _ *member) [][]byte {
			a := accounttest.MustAccount(t, testOrigin, "carol")
			return [][]byte{linkLeaf(a, a.AddDevice(a.Device(0), accounttest.MustDevice(t)))}
		}, witness.RuleAccountChain},
		{"an identity that is not the chain's", func(t *testing.T, h *harness, _ *member) [][]byte {
			a, leaves := genesisLeaves(t, "carol")
			m := mustMember(t, 7)
			pid := m.identity()
			pid.Handle = "carol"
			id := pid.Marshal()
			return [][]byte{leaves[0], translog.IdentityLeaf(a.ID, id, coffer.Sign(m.key, coffer.LabelIdentity, id))}
		}, witness.RuleIdentity},
		{"an identity logged twice", func(t *testing.T, h *harness, _ *member) [][]byte {
			a, leaves := genesisLeaves(t, "carol")
			return append(leaves, identityLeaf(a))
		}, witness.RuleIdentity},
		{"a link after a rotation whose identity is not logged", func(t *testing.T, h *harness, _ *member) [][]byte {
			a, leaves := genesisLeaves(t, "carol")
			leaves = append(leaves, linkLeaf(a, a.Rotate(a.Device(0))))
			return append(leaves, linkLeaf(a, a.SetRecovery(a.Device(0))))
		}, witness.RuleIdentity},
		{"a genesis with a taken handle", func(t *testing.T, h *harness, alice *member) [][]byte {
			_, leaves := genesisLeaves(t, string(alice.handle))
			return leaves[:1]
		}, witness.RuleIdentity},
		{"a group adds a chain account with keys of another user key", func(t *testing.T, h *harness, alice *member) [][]byte {
			a, leaves := genesisLeaves(t, "carol")
			old := addOp(a, coffer.RoleReader)
			leaves = append(leaves, linkLeaf(a, a.Rotate(a.Device(0))), identityLeaf(a))
			g := newChain(9)
			return append(leaves, g.next(alice, alice.add(coffer.RoleOwner)), g.next(alice, old))
		}, witness.RuleAddedKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			alice, _, _ := base(h)
			h.log.append(tc.build(t, h, alice)...)
			n := h.log.size()
			_, err := h.push(4, h.log.proof(4, n), h.log.sign(h.log.honest(n)))
			wantRule(t, err, tc.rule)
		})
	}
}
