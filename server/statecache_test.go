package server_test

import (
	"net/http"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/store"
)

// replicaOwnStore is replica with a store of its own on ts's database, as
// a second cofferd process has: its own cache of verified group states.
func replicaOwnStore(t *testing.T, ts *testServer) *testServer {
	t.Helper()
	db := store.New(ts.Pool)
	db.Now = ts.Clock.Now
	return replicaOn(t, ts, db)
}

// TestGroupStateAcrossReplicas: each process verifies a commit against the
// group state it cached after the last commit it saw, but only while the
// database's head still names that state. Commits alternate between two
// processes on one database; each must verify against the head the other
// moved (a stale state would refuse every next commit as out of order, or
// verify it against a membership that no longer holds), and a refused
// commit leaves nothing of itself in the cache.
func TestGroupStateAcrossReplicas(t *testing.T) {
	ts := MustServer(t)
	other := replicaOwnStore(t, ts)
	alice, bob, carol, dave := mustV2Account(t, ts, "alice"), mustV2Account(t, ts, "bob"),
		mustV2Account(t, ts, "carol"), mustV2Account(t, ts, "dave")
	g := newV2Group(ts, alice.MemberKeys(), bob.MemberKeys(), carol.MemberKeys(), dave.MemberKeys())
	sign := hybrid(alice.HybridKey())
	on := func(s *testServer) *v2Group { g.ts = s; return g }

	on(ts).mustCommit(t, alice.token, g.build(t, alice.ID, sign,
		addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner), addOpV2(bob.Account, bob.MemberKeys(), coffer.RoleAdmin)))
	on(other).mustCommit(t, alice.token, g.build(t, alice.ID, sign, addOpV2(carol.Account, carol.MemberKeys(), coffer.RoleReader)))
	// ts cached seq 1; the head is 2.
	on(ts).mustCommit(t, alice.token, g.build(t, alice.ID, sign,
		coffer.Op{Kind: coffer.OpRemove, Member: carol.ID}, coffer.Op{Kind: coffer.OpRotate}))
	// Refused on ts, whose cached state a careless cache would hand to the
	// verifier to change in place: carol is no longer a member, and dave
	// under bob's keys is not dave.
	on(ts).refused(t, alice.token, g.build(t, alice.ID, sign, coffer.Op{Kind: coffer.OpRemove, Member: carol.ID}, coffer.Op{Kind: coffer.OpRotate}), 400, coffer.EINVALID, coffer.RuleNotMember)
	on(ts).refused(t, alice.token, g.build(t, alice.ID, sign, addOpV2(dave.Account, bob.MemberKeys(), coffer.RoleReader)), 409, coffer.ECONFLICT, coffer.RuleMemberKeys)
	// Refused after the verifier applied it (a wrap is missing), then the
	// same add, whole, on the same process.
	noWraps := g.build(t, alice.ID, sign, addOpV2(dave.Account, dave.MemberKeys(), coffer.RoleWriter))
	noWraps.req.Wraps = nil
	on(ts).refused(t, alice.token, noWraps, 400, coffer.EINVALID, "")
	on(ts).mustCommit(t, alice.token, g.build(t, alice.ID, sign, addOpV2(dave.Account, dave.MemberKeys(), coffer.RoleWriter)))
	// other cached seq 2, with carol still in; the head is 4, without her.
	on(other).refused(t, alice.token, g.build(t, alice.ID, sign, coffer.Op{Kind: coffer.OpSetRole, Member: carol.ID, Role: coffer.RoleWriter}), 400, coffer.EINVALID, coffer.RuleNotMember)
	on(other).mustCommit(t, alice.token, g.build(t, alice.ID, sign,
		coffer.Op{Kind: coffer.OpRemove, Member: bob.ID}, coffer.Op{Kind: coffer.OpRotate}))
	// bob, removed through other, is not a member on ts either.
	on(ts).refused(t, bob.token, g.build(t, bob.ID, hybrid(bob.HybridKey()), coffer.Op{Kind: coffer.OpRotate}), 404, coffer.ENOTFOUND, "")

	for _, s := range []*testServer{ts, other} {
		var list api.CommitList
		s.Do(t, http.MethodGet, "/v1/groups/"+g.id.String()+"/commits", alice.token, nil).Decode(t, &list)
		if len(list.Commits) != 5 {
			t.Fatalf("%s lists %d commits, want 5", s.URL, len(list.Commits))
		}
		var gi api.Group
		s.Do(t, http.MethodGet, "/v1/groups/"+g.id.String(), dave.token, nil).Decode(t, &gi)
		if gi.HeadSeq != g.state.Seq || gi.Epoch != g.state.Epoch {
			t.Fatalf("%s: head %d epoch %d, want %d and %d", s.URL, gi.HeadSeq, gi.Epoch, g.state.Seq, g.state.Epoch)
		}
	}
}
