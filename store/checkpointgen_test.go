package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// TestCheckpointGeneration: every change of the signed checkpoints (a new
// tree, a re-signature, a cosignature stored) moves the generation on, in
// the same transaction, and RecentCheckpointsGen and LogCheckpointGen see
// it; a replica's LogCheckpointGen serves from memory only while the
// generation it is given is no newer than the one it holds, so a
// checkpoint another replica stored shows at once.
func TestCheckpointGeneration(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	a, b := store.New(pool), store.New(pool) // two replicas' stores
	now := time.Now()
	clock := func() time.Time { return now }
	a.Now, b.Now = clock, clock
	b.CheckpointRefresh = time.Minute
	signer := mustSigner(t)
	gen := func() int64 {
		t.Helper()
		g, err := a.CheckpointGen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	served := func() string {
		t.Helper()
		cp, err := a.LogCheckpointGen(ctx, gen())
		if err != nil {
			t.Fatal(err)
		}
		want, err := b.LogCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp != want {
			t.Fatalf("replica a serves %q, the database holds %q", cp, want)
		}
		return cp
	}
	integrate := func() {
		t.Helper()
		if _, err := b.IntegrateLog(ctx, signer, 100); err != nil {
			t.Fatal(err)
		}
	}

	g0 := gen()
	integrate()
	g1 := gen()
	if g1 <= g0 {
		t.Fatalf("the first checkpoint left the generation at %d (was %d)", g1, g0)
	}
	first := served()
	if again := served(); again != first {
		t.Fatal("an unchanged log served another checkpoint")
	}

	mustAccount(t, b, "grown")
	integrate()
	if gen() <= g1 {
		t.Fatal("a new tree did not move the generation on")
	}
	grown := served()
	if grown == first {
		t.Fatal("replica a still serves the checkpoint of the smaller tree")
	}

	rows, g2, err := a.RecentCheckpointsGen(ctx, 8)
	if err != nil || len(rows) == 0 || g2 != gen() {
		t.Fatalf("recent checkpoints: %d rows at generation %d (now %d), %v", len(rows), g2, gen(), err)
	}
	if ok, err := b.SwapCosigned(ctx, rows[0].Size, "", rows[0].Checkpoint+"— witness AAAA\n"); err != nil || !ok {
		t.Fatalf("swap: %v %v", ok, err)
	}
	if gen() <= g2 {
		t.Fatal("a stored cosignature did not move the generation on")
	}

	now = now.Add(2 * time.Minute)
	g3 := gen()
	integrate() // a re-signature of the same tree
	if gen() <= g3 {
		t.Fatal("a re-signature did not move the generation on")
	}
	if resigned := served(); resigned == grown {
		t.Fatal("replica a still serves the checkpoint from before the re-signature")
	}
}
