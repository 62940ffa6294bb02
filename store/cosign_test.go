package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/store"
)

// TestCosignedSurvivesResign: cosignatures are stored per tree size with a
// compare-and-swap, and a re-signature of the same tree keeps the cosigned
// note until the witnesses cosign the new one; a new tree size starts
// without.
func TestCosignedSurvivesResign(t *testing.T) {
	ctx := context.Background()
	db := store.New(pgtest.NewPool(t))
	now := time.Now()
	db.Now = func() time.Time { return now }
	db.CheckpointRefresh = time.Minute
	signer := mustSigner(t)
	mustAccount(t, db, "cosigned")
	integrate := func() store.CheckpointRow {
		t.Helper()
		if _, err := db.IntegrateLog(ctx, signer, 100); err != nil {
			t.Fatal(err)
		}
		rows, err := db.RecentCheckpoints(ctx, 1)
		if err != nil || len(rows) != 1 {
			t.Fatalf("recent checkpoints: %v %v", rows, err)
		}
		return rows[0]
	}
	first := integrate()
	if first.Cosigned != "" {
		t.Fatal("a fresh checkpoint has cosignatures")
	}
	cosigned := first.Checkpoint + "— witness AAAA\n"
	if ok, err := db.SwapCosigned(ctx, first.Size, "", cosigned); err != nil || !ok {
		t.Fatalf("swap: %v %v", ok, err)
	}
	if ok, _ := db.SwapCosigned(ctx, first.Size, "", "other"); ok {
		t.Fatal("a swap from a stale value succeeded")
	}
	now = now.Add(2 * time.Minute)
	resigned := integrate()
	if resigned.Checkpoint == first.Checkpoint || resigned.Size != first.Size {
		t.Fatal("the quiet log was not re-signed")
	}
	if resigned.Cosigned != cosigned {
		t.Fatalf("the re-signature dropped the cosigned note: %q", resigned.Cosigned)
	}
	mustAccount(t, db, "grown")
	if grown := integrate(); grown.Size != first.Size+1 || grown.Cosigned != "" {
		t.Fatalf("a new tree: size %d, cosigned %q", grown.Size, grown.Cosigned)
	}
}
