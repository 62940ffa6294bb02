package witness_test

import (
	"fmt"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
)

func testResource(n byte) coffer.ResourceID { return coffer.ResourceID{0x5e, 15: n} }

// versionLeaf is the log leaf of version of resource n of g by author under
// epoch, chained to prev.
func versionLeaf(g *chain, n byte, version, epoch uint64, author *member, prev [32]byte) ([]byte, [32]byte) {
	hh := [32]byte{n, byte(version), 0xaa}
	return translog.ResourceVersionLeaf(coffer.LoggedVersion{Group: g.group, Resource: testResource(n), Version: version,
		Epoch: epoch, Author: author.id, Prev: prev, HeaderHash: hh}), hh
}

func deleteLeaf(g *chain, n byte, version uint64, deleter *member, signer *member) []byte {
	d := &coffer.ResourceDelete{Group: g.group, Resource: testResource(n), Version: version, Deleter: deleter.id}
	return translog.ResourceDeleteLeaf(coffer.SignResourceDelete(d, signer.key))
}

// The witness cosigns an honest resource history (versions, a replace, an
// admin's delete) and keeps what it needs across a restart, with and
// without a snapshot: a version after the tombstone is refused afterwards.
func TestResourceHistoryCosignedAndKeptAcrossRestart(t *testing.T) {
	for _, every := range []int64{64 << 20, 1} {
		t.Run(fmt.Sprintf("snapshot every %d bytes", every), func(t *testing.T) {
			witness.SetSnapshotEvery(every)
			defer witness.SetSnapshotEvery(64 << 20)
			h := newHarness(t)
			alice, bob, g := base(h)
			v1, hh1 := versionLeaf(g, 1, 1, 1, bob, [32]byte{})
			v2, _ := versionLeaf(g, 1, 2, 1, bob, hh1)
			h.log.append(v1, v2, deleteLeaf(g, 1, 2, alice, alice))
			h.pushHonest(4)
			h.open()
			after, _ := versionLeaf(g, 1, 3, 1, bob, [32]byte{9})
			h.log.append(after)
			_, err := h.push(7, h.log.proof(7, 8), h.log.sign(h.log.honest(8)))
			wantRule(t, err, witness.RuleResource)
		})
	}
}

// Each resource rule, one by one: the witness refuses the checkpoint and
// stays where it was.
func TestResourceRefusals(t *testing.T) {
	cases := []struct {
		name  string
		build func(tb testing.TB, alice, bob *member, g *chain) [][]byte
	}{
		{"backdated by a removed writer", func(tb testing.TB, alice, bob *member, g *chain) [][]byte {
			rm := g.next(alice, coffer.Op{Kind: coffer.OpRemove, Member: bob.id}, coffer.Op{Kind: coffer.OpRotate})
			v, _ := versionLeaf(g, 1, 1, 1, bob, [32]byte{})
			return [][]byte{rm, v}
		}},
		{"removed writer under the current epoch", func(tb testing.TB, alice, bob *member, g *chain) [][]byte {
			rm := g.next(alice, coffer.Op{Kind: coffer.OpRemove, Member: bob.id}, coffer.Op{Kind: coffer.OpRotate})
			v, _ := versionLeaf(g, 1, 1, 2, bob, [32]byte{})
			return [][]byte{rm, v}
		}},
		{"version under another epoch", func(_ testing.TB, _, bob *member, g *chain) [][]byte {
			v, _ := versionLeaf(g, 1, 1, 2, bob, [32]byte{})
			return [][]byte{v}
		}},
		{"reader writes", func(tb testing.TB, alice, _ *member, g *chain) [][]byte {
			c := mustMember(tb, 3)
			add := g.next(alice, c.add(coffer.RoleReader))
			v, _ := versionLeaf(g, 1, 1, 1, c, [32]byte{})
			return [][]byte{c.identityLeaf(), add, v}
		}},
		{"replace by another writer", func(tb testing.TB, alice, bob *member, g *chain) [][]byte {
			c := mustMember(tb, 3)
			add := g.next(alice, c.add(coffer.RoleWriter))
			v1, hh := versionLeaf(g, 1, 1, 1, bob, [32]byte{})
			v2, _ := versionLeaf(g, 1, 2, 1, c, hh)
			return [][]byte{c.identityLeaf(), add, v1, v2}
		}},
		{"version not chained", func(_ testing.TB, _, bob *member, g *chain) [][]byte {
			v1, _ := versionLeaf(g, 1, 1, 1, bob, [32]byte{})
			v2, _ := versionLeaf(g, 1, 2, 1, bob, [32]byte{7})
			return [][]byte{v1, v2}
		}},
		{"tombstone signed by someone else", func(tb testing.TB, alice, bob *member, g *chain) [][]byte {
			v1, _ := versionLeaf(g, 1, 1, 1, bob, [32]byte{})
			return [][]byte{v1, deleteLeaf(g, 1, 1, alice, bob)}
		}},
		{"delete by another writer", func(tb testing.TB, alice, bob *member, g *chain) [][]byte {
			c := mustMember(tb, 3)
			add := g.next(alice, c.add(coffer.RoleWriter))
			v1, _ := versionLeaf(g, 1, 1, 1, bob, [32]byte{})
			return [][]byte{c.identityLeaf(), add, v1, deleteLeaf(g, 1, 1, c, c)}
		}},
		{"resource of a group with no commit", func(_ testing.TB, _, bob *member, _ *chain) [][]byte {
			v, _ := versionLeaf(newChain(7), 1, 1, 1, bob, [32]byte{})
			return [][]byte{v}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			alice, bob, g := base(h)
			honestLeaves := h.log.snapshot()
			h.log.append(tc.build(t, alice, bob, g)...)
			n := h.log.size()
			_, err := h.push(4, h.log.proof(4, n), h.log.sign(h.log.honest(n)))
			wantRule(t, err, witness.RuleResource)
			if h.w.Size() != 4 {
				t.Fatalf("after the refusal the witness is at %d, want 4", h.w.Size())
			}
			h.log.setLeaves(append(honestLeaves, mustMember(t, 9).identityLeaf()))
			h.pushHonest(4)
		})
	}
}
