package store_test

import (
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// TestDeviceRefreshTokenHoldsTheChain: a device's log-in stores its refresh
// token only while the chain is at the state the log-in was checked
// against, so a revocation between the check and the token cannot leave
// the revoked device a session.
func TestDeviceRefreshTokenHoldsTheChain(t *testing.T) {
	ctx := t.Context()
	pool := pgtest.NewPool(t)
	db := store.New(pool)
	a := accounttest.MustAccount(t, "https://coffer.example:443", "alice")
	id := a.State.Identity()
	g, _ := coffer.ParseAccountLink(a.Links[0].Body)
	if err := db.CreateChainAccount(ctx, &coffer.Account{ID: a.ID, Identity: id, SelfSignature: a.SelfSignature()},
		&coffer.AccountLinkAppend{Link: a.Links[0], Parsed: g, State: a.State, Identity: &id, SelfSignature: a.SelfSignature()}); err != nil {
		t.Fatal(err)
	}
	tok := func(b byte) coffer.RefreshToken {
		return coffer.RefreshToken{Hash: [32]byte{b}, Family: [16]byte{b}, Account: a.ID, Expires: time.Now().Add(time.Hour)}
	}
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM refresh_tokens WHERE account_id = $1`, a.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := db.CreateDeviceRefreshToken(ctx, tok(1), 1); err != nil {
		t.Fatal(err)
	}
	phone := accounttest.MustDevice(t)
	appendLink(t, db, a, a.AddDevice(a.Device(0), phone))
	appendLink(t, db, a, a.Revoke(a.Device(0), phone))
	for _, seq := range []uint64{0, 1, 2, 4} {
		if err := db.CreateDeviceRefreshToken(ctx, tok(2), seq); coffer.ErrorCode(err) != coffer.ECONFLICT {
			t.Fatalf("token for a log-in checked at seq %d with the head at 3: %v, want a conflict", seq, err)
		}
	}
	if n := count(); n != 1 {
		t.Fatalf("%d tokens, want the first alone", n)
	}
	if err := db.CreateDeviceRefreshToken(ctx, tok(3), 3); err != nil {
		t.Fatal(err)
	}
	other := tok(4)
	other.Account = coffer.NewAccountID()
	if err := db.CreateDeviceRefreshToken(ctx, other, 1); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("unknown account: %v, want not found", err)
	}
}
