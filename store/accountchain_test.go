package store_test

import (
	"bytes"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/store"
)

// appendLink pushes sl onto a and stores it as the server would.
func appendLink(t *testing.T, db *store.DB, a *accounttest.Account, sl coffer.SignedLink) {
	t.Helper()
	a.Push(sl)
	l, _ := coffer.ParseAccountLink(sl.Body)
	app := &coffer.AccountLinkAppend{Link: sl, Parsed: l, State: a.State}
	if l.Kind == coffer.LinkRevokeDevice || l.Kind == coffer.LinkRotateUserKey {
		id := a.State.Identity()
		app.Identity, app.SelfSignature = &id, a.SelfSignature()
	}
	if _, err := db.AppendAccountLink(t.Context(), app); err != nil {
		t.Fatal(err)
	}
}

// TestAccountChainLog: each link is a log leaf, each user key's identity
// follows the link that sets it, the heads map names the chain's head and
// the newest identity, and an identity proof proves the newest identity.
func TestAccountChainLog(t *testing.T) {
	ctx := t.Context()
	db := store.New(pgtest.NewPool(t))
	a := accounttest.MustAccount(t, "https://coffer.example:443", "alice")
	id := a.State.Identity()
	g, _ := coffer.ParseAccountLink(a.Links[0].Body)
	if err := db.CreateChainAccount(ctx, &coffer.Account{ID: a.ID, Identity: id, SelfSignature: a.SelfSignature()},
		&coffer.AccountLinkAppend{Link: a.Links[0], Parsed: g, State: a.State, Identity: &id, SelfSignature: a.SelfSignature()}); err != nil {
		t.Fatal(err)
	}
	appendLink(t, db, a, a.AddDevice(a.Device(0), accounttest.MustDevice(t)))
	appendLink(t, db, a, a.Rotate(a.Device(1)))
	signer := mustSigner(t)
	if n, err := db.IntegrateLog(ctx, signer, 100); err != nil || n != 5 {
		t.Fatalf("integrated %d leaves (%v), want 5", n, err)
	}
	leaves, err := db.LogLeaves(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	identity := translog.IdentityLeaf(a.ID, a.State.Identity().Marshal(), a.SelfSignature())
	want := [][]byte{
		translog.AccountLinkLeaf(a.ID, 1, a.Links[0]),
		translog.IdentityLeaf(a.ID, id.Marshal(), nil), // compared by kind only: its self-signature is random
		translog.AccountLinkLeaf(a.ID, 2, a.Links[1]),
		translog.AccountLinkLeaf(a.ID, 3, a.Links[2]),
		identity,
	}
	if len(leaves) != len(want) {
		t.Fatalf("%d leaves, want %d", len(leaves), len(want))
	}
	for i := range want {
		if i == 1 {
			l, err := translog.ParseLeaf(leaves[i])
			if err != nil || l.Kind != translog.KindIdentity || !bytes.Equal(l.Identity, id.Marshal()) {
				t.Fatalf("leaf 1 is not the genesis identity: %v", err)
			}
			continue
		}
		if !bytes.Equal(leaves[i], want[i]) {
			t.Fatalf("leaf %d is not what the chain's link or identity encodes", i)
		}
	}
	proofs, err := db.MapProofs(ctx, 5, []translog.MapKey{translog.AccountChainKey(a.ID), translog.AccountKey(a.ID)})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := translog.ParseMapEntry(proofs[0].Entry)
	if err != nil || chain.Counter != 3 || chain.Hash != a.State.Head || chain.LogIndex != 3 {
		t.Fatalf("account-chain entry %+v (%v): want head 3 with the chain's head hash", chain, err)
	}
	acct, err := translog.ParseMapEntry(proofs[1].Entry)
	if err != nil || acct.Counter != 2 || acct.Hash != translog.RecordHash(identity) {
		t.Fatalf("account entry %+v (%v): want the newest of two identities", acct, err)
	}
	lp, err := db.LogProofs(ctx, 5, []coffer.LogRef{{Account: a.ID}})
	if err != nil || lp[0].Index != 4 {
		t.Fatalf("identity proof at leaf %d (%v), want the newest identity, leaf 4", lp[0].Index, err)
	}
	// In a tree that does not hold the newest identity yet, the account's
	// identity is not included, rather than proven as the retired one: a
	// client proving the identity the server now serves waits for it
	// instead of failing an inclusion check against another leaf.
	lp, err = db.LogProofs(ctx, 3, []coffer.LogRef{{Account: a.ID}})
	if err != nil || lp[0].Index != -1 {
		t.Fatalf("identity proof in the tree of 3 at leaf %d (%v), want none: the newest identity is leaf 4", lp[0].Index, err)
	}
}
