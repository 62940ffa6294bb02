package store_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/store"
)

// TestHeadsMapIntegration checks after every integration that the signed
// map is exactly the map the log's leaves produce, that every entry proves
// against it, and that proofs against earlier checkpoints still give the
// entries those checkpoints committed to.
func TestHeadsMapIntegration(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	db := store.New(pool)
	signer := mustSigner(t)
	verifier, _ := translog.NewVerifier(signer.VerifierKey())

	var accounts []*coffer.Account
	for i := range 5 {
		accounts = append(accounts, mustAccount(t, db, fmt.Sprintf("map-%d", i)))
	}
	g1, g2 := coffer.NewGroupID(), coffer.NewGroupID()
	// Commit leaves are written as an import would (BackfillLog's path):
	// the map needs only their group, seq and hash.
	commit := func(g coffer.GroupID, seq uint64) {
		t.Helper()
		sc := coffer.SignedCommit{Body: make([]byte, 40), Signature: make([]byte, coffer.SignatureSize)}
		rand.Read(sc.Body)
		sc.Body[0] = coffer.SuiteV1 // the signature size follows the version byte
		leaf := translog.CommitLeaf(g, seq, sc)
		h := translog.RecordHash(leaf)
		if _, err := pool.Exec(ctx, `INSERT INTO log_entries (leaf, leaf_hash, group_id, seq, created_at) VALUES ($1, $2, $3, $4, now())`,
			leaf, h[:], g, int64(seq)); err != nil {
			t.Fatal(err)
		}
	}
	keys := []translog.MapKey{translog.GroupKey(g1), translog.GroupKey(g2)}
	for _, a := range accounts {
		keys = append(keys, translog.AccountKey(a.ID))
	}

	type seen struct {
		cp      translog.Checkpoint
		entries map[translog.MapKey]translog.MapEntry
	}
	var history []seen
	check := func() {
		t.Helper()
		if _, err := db.IntegrateLog(ctx, signer, 1000); err != nil {
			t.Fatal(err)
		}
		note, _ := db.LogCheckpoint(ctx)
		cp, err := verifier.Open(note)
		if err != nil {
			t.Fatal(err)
		}
		leaves, err := db.LogLeaves(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		m := translog.NewMemoryMap()
		for i, raw := range leaves {
			l, _ := translog.ParseLeaf(raw)
			if err := m.ApplyLeaf(int64(i), raw, l); err != nil {
				t.Fatal(err)
			}
		}
		root, _ := m.Root()
		if cp.MapSize != m.Size() || cp.MapRoot != root {
			t.Fatalf("log size %d: signed map %d/%x, the leaves make %d/%x", cp.Size, cp.MapSize, cp.MapRoot, m.Size(), root)
		}
		proofs, err := db.MapProofs(ctx, cp.Size, keys)
		if err != nil {
			t.Fatal(err)
		}
		s := seen{cp: cp, entries: map[translog.MapKey]translog.MapEntry{}}
		for i, k := range keys {
			want, present := m.Entry(k)
			if !present {
				if proofs[i].Index != -1 {
					t.Fatalf("%s is not in the map, the store proves index %d", k, proofs[i].Index)
				}
				continue
			}
			got, err := translog.CheckMapEntry(cp, k, proofs[i])
			if err != nil || got != want {
				t.Fatalf("%s: %+v, %v; want %+v", k, got, err, want)
			}
			s.entries[k] = got
		}
		history = append(history, s)
	}
	check()
	commit(g1, 1)
	check()
	commit(g2, 1)
	commit(g1, 2)
	check()
	commit(g1, 3)
	accounts = append(accounts, mustAccount(t, db, "map-late"))
	keys = append(keys, translog.AccountKey(accounts[len(accounts)-1].ID))
	check()

	// Earlier checkpoints still prove what they committed to.
	for _, h := range history {
		proofs, err := db.MapProofs(ctx, h.cp.Size, keys)
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			want, present := h.entries[k]
			if !present {
				if proofs[i].Index != -1 {
					t.Fatalf("size %d: %s proved before it existed", h.cp.Size, k)
				}
				continue
			}
			if got, err := translog.CheckMapEntry(h.cp, k, proofs[i]); err != nil || got != want {
				t.Fatalf("size %d: %s: %+v, %v; want %+v", h.cp.Size, k, got, err, want)
			}
		}
	}
	if _, err := db.MapProofs(ctx, 3, keys); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("proofs at a size never signed: %v", err)
	}

	// A database logged before the map existed catches up.
	last := history[len(history)-1].cp
	if _, err := pool.Exec(ctx, `TRUNCATE map_keys, map_entries, map_hashes; UPDATE log_head SET map_log_size = 0, map_size = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.IntegrateLog(ctx, signer, 1000); err != nil {
		t.Fatal(err)
	}
	note, _ := db.LogCheckpoint(ctx)
	cp, err := verifier.Open(note)
	if err != nil || !cp.SameTree(last) {
		t.Fatalf("after catching up: %+v, %v; want the tree of %+v", cp, err, last)
	}
}

// TestCheckpointRefresh: a quiet log is re-signed with a new time once the
// refresh interval passes, and not before.
func TestCheckpointRefresh(t *testing.T) {
	ctx := context.Background()
	db := store.New(pgtest.NewPool(t))
	now := time.Now()
	db.Now = func() time.Time { return now }
	db.CheckpointRefresh = time.Minute
	signer := mustSigner(t)
	verifier, _ := translog.NewVerifier(signer.VerifierKey())
	mustAccount(t, db, "quiet")
	open := func() translog.Checkpoint {
		t.Helper()
		if _, err := db.IntegrateLog(ctx, signer, 100); err != nil {
			t.Fatal(err)
		}
		note, _ := db.LogCheckpoint(ctx)
		cp, err := verifier.Open(note)
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	first := open()
	if first.Time != now.Unix() {
		t.Fatalf("checkpoint time %d, want %d", first.Time, now.Unix())
	}
	now = now.Add(30 * time.Second)
	if again := open(); again != first {
		t.Fatalf("re-signed before the refresh interval: %+v", again)
	}
	now = now.Add(31 * time.Second)
	later := open()
	if !later.SameTree(first) || later.Time != now.Unix() {
		t.Fatalf("after the interval: %+v, want the same tree at %d", later, now.Unix())
	}
}
