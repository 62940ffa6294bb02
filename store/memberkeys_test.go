package store_test

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// TestMigrateBackfillsMemberKeys: suite v2 accounts created before
// migration 00015 have no member keys; Migrate stores every generation of
// each from its stored chain, once, and leaves accounts that have keys and
// chains that do not verify alone.
func TestMigrateBackfillsMemberKeys(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewURL(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db := store.New(pool)

	create := func(handle string) *accounttest.Account {
		a := accounttest.MustAccount(t, "https://coffer.example:443", handle)
		id := a.State.Identity()
		g, _ := coffer.ParseAccountLink(a.Links[0].Body)
		if err := db.CreateChainAccount(ctx, &coffer.Account{ID: a.ID, Identity: id, SelfSignature: a.SelfSignature()},
			&coffer.AccountLinkAppend{Link: a.Links[0], Parsed: g, State: a.State, Identity: &id, SelfSignature: a.SelfSignature()}); err != nil {
			t.Fatal(err)
		}
		return a
	}
	alice, bob, carol := create("alice"), create("bob"), create("carol")
	want := []*coffer.MemberKeys{alice.MemberKeys()}
	laptop := accounttest.MustDevice(t)
	appendLink(t, db, alice, alice.AddDevice(alice.Device(0), laptop))
	appendLink(t, db, alice, alice.Rotate(alice.Device(0)))
	want = append(want, alice.MemberKeys())
	appendLink(t, db, alice, alice.SetRecovery(alice.Device(0)))
	appendLink(t, db, alice, alice.Revoke(alice.Device(0), laptop))
	want = append(want, alice.MemberKeys())
	bobKeys := bob.MemberKeys()
	appendLink(t, db, carol, carol.Rotate(carol.Device(0)))

	// As before migration 00015 for alice and carol; carol's second link is
	// then damaged (none of her keys is stored, not even the genesis's), and
	// bob keeps his keys.
	if _, err := pool.Exec(ctx, `DELETE FROM member_keys WHERE account_id = ANY($1)`, []coffer.AccountID{alice.ID, carol.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE account_links SET signature = set_byte(signature, 0, get_byte(signature, 0) # 1) WHERE account_id = $1 AND seq = 2`, carol.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := store.Migrate(ctx, url, nil); err != nil {
			t.Fatal(err)
		}
	}
	hashes := func(ks []*coffer.MemberKeys) [][32]byte {
		var out [][32]byte
		for _, k := range ks {
			out = append(out, k.Hash())
		}
		return out
	}
	got, err := db.MemberKeysByHash(ctx, hashes(append(want, bobKeys)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d member keys after the backfill, want alice's 3 generations and bob's", len(got))
	}
	for _, k := range append(want, bobKeys) {
		found := false
		for _, g := range got {
			if g.Hash == k.Hash() {
				found = bytes.Equal(g.Encoding, k.Marshal()) && g.Account == k.Account && g.Generation == k.Generation
			}
		}
		if !found {
			t.Fatalf("generation %d of %s is missing or wrong after the backfill", k.Generation, k.Handle)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM member_keys WHERE account_id = $1`, carol.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d member keys for a chain that does not verify (%v), want none", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM member_keys`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d member keys in all (%v), want 4", n, err)
	}
}
