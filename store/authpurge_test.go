package store_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// TestPurgeAuth: expired challenges, expired refresh tokens and revoked
// families are purged; live tokens, and used tokens of a live family (which
// reuse detection needs), are kept.
func TestPurgeAuth(t *testing.T) {
	ctx := context.Background()
	db := store.New(pgtest.NewPool(t))
	now := time.Now().UTC()
	db.Now = func() time.Time { return now }
	a := mustAccount(t, db, "alice")
	h := func() (x [32]byte) { rand.Read(x[:]); return }
	fam := func() (x [16]byte) { rand.Read(x[:]); return }

	oldChallenge, liveChallenge := h(), h()
	// (CreateChallenge deletes expired challenges first: the old one last.)
	must(t, db.CreateChallenge(ctx, a.ID, liveChallenge, now.Add(time.Minute)))
	must(t, db.CreateChallenge(ctx, a.ID, oldChallenge, now.Add(-2*time.Hour)))

	expired := coffer.RefreshToken{Hash: h(), Family: fam(), Account: a.ID, Expires: now.Add(-2 * time.Hour)}
	must(t, db.CreateRefreshToken(ctx, expired))
	// A live family: its first token is used (rotated), the second is live.
	used := coffer.RefreshToken{Hash: h(), Family: fam(), Account: a.ID, Expires: now.Add(24 * time.Hour)}
	must(t, db.CreateRefreshToken(ctx, used))
	live := coffer.RefreshToken{Hash: h(), Expires: now.Add(24 * time.Hour)}
	if _, err := db.RotateRefreshToken(ctx, used.Hash, live); err != nil {
		t.Fatal(err)
	}
	// A family logged out two hours ago.
	gone := coffer.RefreshToken{Hash: h(), Family: fam(), Account: a.ID, Expires: now.Add(24 * time.Hour)}
	must(t, db.CreateRefreshToken(ctx, gone))
	db.Now = func() time.Time { return now.Add(-2 * time.Hour) }
	must(t, db.RevokeRefreshToken(ctx, gone.Hash))
	db.Now = func() time.Time { return now }

	challenges, tokens, err := db.PurgeAuth(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if challenges != 1 || tokens != 2 {
		t.Errorf("purged %d challenges and %d tokens, want 1 and 2", challenges, tokens)
	}
	// The live challenge still works.
	if err := db.ConsumeChallenge(ctx, a.ID, liveChallenge); err != nil {
		t.Errorf("the live challenge was purged: %v", err)
	}
	// The used token is still there: presenting it again is caught as
	// reuse, and revokes the live token of its family.
	if _, err := db.RotateRefreshToken(ctx, used.Hash, coffer.RefreshToken{Hash: h(), Expires: now.Add(time.Hour)}); coffer.ErrorCode(err) != coffer.EUNAUTHORIZED {
		t.Fatalf("reuse of a used token: %v", err)
	}
	if _, err := db.RotateRefreshToken(ctx, live.Hash, coffer.RefreshToken{Hash: h(), Expires: now.Add(time.Hour)}); coffer.ErrorCode(err) != coffer.EUNAUTHORIZED {
		t.Fatalf("after reuse detection the family's live token still works: %v", err)
	}
	// A second purge finds the family revoked only now: within grace, kept.
	if _, tokens, err := db.PurgeAuth(ctx, time.Hour); err != nil || tokens != 0 {
		t.Errorf("second purge: %d tokens, %v; want none within the grace period", tokens, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
