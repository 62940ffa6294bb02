package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/store"
)

// TestVersionLeafLookup: LogProofs finds a resource version's leaf by
// (group, resource, version) and returns it with its index; it reads only
// the resource's newest leaves, so a version far back in a long history is
// not found (readers ask only for the one before the current version), and
// a version the tree of the requested size does not hold yet is not found
// either.
func TestVersionLeafLookup(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	db := store.New(pool)
	signer := mustSigner(t)
	g, r, author := coffer.NewGroupID(), coffer.NewResourceID(), coffer.NewAccountID()
	rows := [][]any{commitLeafRow(g, 1)}
	const versions = 100
	leaves := make([][]byte, versions+1)
	var prev [32]byte
	for v := uint64(1); v <= versions; v++ {
		lv := coffer.LoggedVersion{Group: g, Resource: r, Version: v, Epoch: 1, Author: author, Prev: prev}
		rand.Read(lv.HeaderHash[:])
		prev = lv.HeaderHash
		leaves[v] = translog.ResourceVersionLeaf(lv)
		h := translog.RecordHash(leaves[v])
		rows = append(rows, []any{leaves[v], h[:], g, nil, time.Now(), r})
	}
	rows[0] = append(rows[0], nil)
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"log_entries"}, []string{"leaf", "leaf_hash", "group_id", "seq", "created_at", "resource_id"},
		pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := db.IntegrateLog(ctx, signer, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	size := int64(versions + 1)
	ref := func(v uint64) coffer.LogRef { return coffer.LogRef{Group: g, Resource: r, Version: v} }
	ps, err := db.LogProofs(ctx, size, []coffer.LogRef{ref(versions - 1), ref(versions), ref(1), ref(versions + 1)})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		version uint64
		found   bool
	}{{versions - 1, true}, {versions, true}, {1, false}, {versions + 1, false}} {
		p := ps[i]
		if (p.Index >= 0) != want.found {
			t.Fatalf("version %d: index %d, want found %v", want.version, p.Index, want.found)
		}
		if want.found && (!bytes.Equal(p.Leaf, leaves[want.version]) || p.Index != int64(want.version) || len(p.Proof) == 0) {
			t.Fatalf("version %d: leaf at %d (%d proof hashes), not the one logged at %d", want.version, p.Index, len(p.Proof), want.version)
		}
	}
	// In the tree of an older size, the newest version is not there yet.
	ps, err = db.LogProofs(ctx, versions, []coffer.LogRef{ref(versions), ref(versions - 1)})
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Index >= 0 || ps[1].Index != versions-1 {
		t.Fatalf("in the tree of size %d: version %d at %d, version %d at %d", versions, versions, ps[0].Index, versions-1, ps[1].Index)
	}
	// A request names at most MaxVersionProofs versions.
	many := make([]coffer.LogRef, store.MaxVersionProofs+1)
	for i := range many {
		many[i] = ref(versions)
	}
	if _, err := db.LogProofs(ctx, size, many); coffer.ErrorCode(err) != coffer.ETOOLARGE {
		t.Fatalf("%d version references: %v, want too large", len(many), err)
	}
}
