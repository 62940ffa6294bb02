package store_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/store"
)

func mustSigner(tb testing.TB) *translog.Signer {
	tb.Helper()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	s, err := translog.NewSigner("coffer.test", k)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// mustAccount registers a fresh account with real keys.
func mustAccount(tb testing.TB, db *store.DB, handle string) *coffer.Account {
	tb.Helper()
	a := newAccount(tb, handle)
	if err := db.CreateAccount(context.Background(), a); err != nil {
		tb.Fatal(err)
	}
	return a
}

var (
	keyOnce sync.Once
	encKey  []byte
)

func newAccount(tb testing.TB, handle string) *coffer.Account {
	tb.Helper()
	// One X-Wing key serves every test account: the store does not care.
	keyOnce.Do(func() {
		dk, err := coffer.KEM().GenerateKey()
		if err != nil {
			panic(err)
		}
		encKey = dk.PublicKey().Bytes()
	})
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	id := coffer.PublicIdentity{Handle: coffer.Handle(handle), SigningKey: pub, EncryptionKey: encKey}
	return &coffer.Account{ID: coffer.NewAccountID(), Identity: id, SelfSignature: coffer.Sign(priv, coffer.LabelIdentity, id.Marshal())}
}

func TestLogAppendIntegrateProve(t *testing.T) {
	ctx := context.Background()
	db := store.New(pgtest.NewPool(t))
	signer := mustSigner(t)
	verifier, err := translog.NewVerifier(signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}

	// Before the first integration there is no checkpoint.
	if _, err := db.LogCheckpoint(ctx); coffer.ErrorCode(err) != coffer.EUNAVAILABLE {
		t.Fatalf("checkpoint before signing: %v", err)
	}
	if n, err := db.IntegrateLog(ctx, signer, 100); err != nil || n != 0 {
		t.Fatalf("IntegrateLog on an empty log = %d, %v", n, err)
	}
	note, err := db.LogCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := verifier.Open(note)
	if err != nil || empty.Size != 0 {
		t.Fatalf("empty checkpoint %+v, %v", empty, err)
	}
	if want, _ := tlog.TreeHash(0, nil); empty.Root != want {
		t.Fatalf("empty root %x, want %x", empty.Root, want)
	}

	var accounts []*coffer.Account
	for i := range 13 {
		accounts = append(accounts, mustAccount(t, db, fmt.Sprintf("user-%d", i)))
	}
	// Integrate in uneven batches, checking consistency each time.
	prev := empty
	for _, batch := range []int{1, 4, 100} {
		if _, err := db.IntegrateLog(ctx, signer, batch); err != nil {
			t.Fatal(err)
		}
		note, err := db.LogCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cp, err := verifier.Open(note)
		if err != nil {
			t.Fatal(err)
		}
		p, err := db.LogConsistencyProof(ctx, prev.Size, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := translog.CheckConsistency(prev, cp, hashes(p)); err != nil {
			t.Fatalf("%d → %d: %v", prev.Size, cp.Size, err)
		}
		prev = cp
	}
	if prev.Size != 13 {
		t.Fatalf("tree size %d, want 13", prev.Size)
	}

	// The root is the tlog root of the leaves, in registration order.
	leaves, err := db.LogLeaves(ctx, 0, 100)
	if err != nil || len(leaves) != 13 {
		t.Fatalf("LogLeaves = %d, %v", len(leaves), err)
	}
	var all []tlog.Hash
	for i, leaf := range leaves {
		want := translog.IdentityLeaf(accounts[i].ID, accounts[i].Identity.Marshal(), accounts[i].SelfSignature)
		if string(leaf) != string(want) {
			t.Fatalf("leaf %d is not account %d's identity", i, i)
		}
		hs, err := tlog.StoredHashes(int64(i), leaf, tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(ix))
			for k, j := range ix {
				out[k] = all[j]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hs...)
	}
	root, _ := tlog.TreeHash(13, tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for k, j := range ix {
			out[k] = all[j]
		}
		return out, nil
	}))
	if root != prev.Root {
		t.Fatal("checkpoint root is not the tlog root of the leaves")
	}

	// Single and batched inclusion proofs verify; unknown objects are not included.
	for i := range leaves {
		p, err := db.LogInclusionProof(ctx, int64(i), prev.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := translog.CheckInclusion(prev, int64(i), leaves[i], hashes(p)); err != nil {
			t.Fatal(err)
		}
	}
	var refs []coffer.LogRef
	for _, a := range accounts {
		refs = append(refs, coffer.LogRef{Account: a.ID})
	}
	refs = append(refs, coffer.LogRef{Account: coffer.NewAccountID()}, coffer.LogRef{Group: coffer.NewGroupID(), Seq: 1})
	proofs, err := db.LogProofs(ctx, prev.Size, refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range proofs[:13] {
		if err := translog.CheckInclusion(prev, p.Index, leaves[i], hashes(p.Proof)); err != nil || p.Index != int64(i) {
			t.Fatalf("batched proof %d (index %d): %v", i, p.Index, err)
		}
	}
	if proofs[13].Index != -1 || proofs[14].Index != -1 {
		t.Fatal("unknown objects reported as included")
	}

	// Sizes beyond the tree are not found.
	if _, err := db.LogInclusionProof(ctx, 0, 14); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("proof beyond the tree: %v", err)
	}
	if _, err := db.LogConsistencyProof(ctx, 3, 14); coffer.ErrorCode(err) != coffer.ENOTFOUND {
		t.Fatalf("consistency beyond the tree: %v", err)
	}

	// A new key re-signs the same tree.
	other := mustSigner(t)
	if n, err := db.IntegrateLog(ctx, other, 100); err != nil || n != 0 {
		t.Fatal(n, err)
	}
	note, _ = db.LogCheckpoint(ctx)
	if _, err := verifier.Open(note); err == nil {
		t.Fatal("checkpoint still verifies under the old key")
	}
}

func hashes(p [][32]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i := range p {
		out[i] = p[i]
	}
	return out
}

// TestLogConcurrentWriters registers accounts from many goroutines while a
// sequencer integrates: every leaf gets exactly one dense index.
func TestLogConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	db := store.New(pgtest.NewPool(t))
	signer := mustSigner(t)
	stop := make(chan struct{})
	var seqErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.IntegrateLog(ctx, signer, 7); err != nil {
				seqErr = err
				return
			}
		}
	})
	var writers sync.WaitGroup
	for w := range 8 {
		writers.Go(func() {
			for i := range 10 {
				if err := db.CreateAccount(ctx, newAccount(t, fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if seqErr != nil {
		t.Fatal(seqErr)
	}
	for {
		n, err := db.IntegrateLog(ctx, signer, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	leaves, err := db.LogLeaves(ctx, 0, 1000)
	if err != nil || len(leaves) != 80 {
		t.Fatalf("%d leaves, %v", len(leaves), err)
	}
}
