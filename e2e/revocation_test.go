package e2e_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"io"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/content"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// decryptionKeyOf extracts the X-Wing private key from a client's key store
// blob (version, handle length, handle, 32-byte signing seed, encryption
// seed): the attacker is an insider holding that member's device keys.
func decryptionKeyOf(tb testing.TB, ks *clientlib.MemoryKeyStore) hpke.PrivateKey {
	tb.Helper()
	b, err := ks.Get("identity")
	if err != nil {
		tb.Fatal(err)
	}
	off := 2 + int(b[1]) + 32
	k, err := coffer.KEM().NewPrivateKey(b[off : off+coffer.EncryptionSecretSize])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestRevocationRemovedMemberCannotDecrypt: after bob is removed, the
// server answers him 404; and with his private keys and a full copy of the
// database, no wrap and no chain of history links yields the new epoch's
// key, and the resource written after his removal does not decrypt.
func TestRevocationRemovedMemberCannotDecrypt(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice := MustClient(t, srv, "alice")
	bob, bobKS := newClient(t, srv, "bob", nil)
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	before := mustPut(t, bob, g, "before", []byte("written while bob was a member"))
	if err := alice.RemoveMember(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	secret := []byte("written after bob left")
	after := mustPut(t, alice, g, "after", secret)
	if after.Epoch != 2 {
		t.Fatalf("the new resource is at epoch %d, want 2", after.Epoch)
	}

	// The honest server refuses him everything.
	_, err := readResource(bob, g, after.ID)
	wantCode(t, err, coffer.ENOTFOUND)
	_, err = bob.Head(ctx, g, after.ID)
	wantCode(t, err, coffer.ENOTFOUND)
	_, err = bob.List(ctx, g)
	wantCode(t, err, coffer.ENOTFOUND)

	// Bob with a copy of the database.
	db := mustDB(t, srv)
	dk := decryptionKeyOf(t, bobKS)
	state := chainOf(t, db, g)
	epochs := []uint64{}
	for e := uint64(1); e <= state.Epoch; e++ {
		epochs = append(epochs, e)
	}
	var members []coffer.AccountID
	rows, _ := db.Query(ctx, `SELECT DISTINCT member_id FROM wrapped_keys WHERE group_id = $1`, g)
	members, err = pgx.CollectRows(rows, pgx.RowTo[coffer.AccountID])
	if err != nil {
		t.Fatal(err)
	}

	// Every wrap in the database, opened as every member at every epoch:
	// HPKE binds each wrap to one member and epoch, so bob only gets what
	// was wrapped for him.
	type wrapRow struct {
		epoch uint64
		wrap  []byte
	}
	rows, _ = db.Query(ctx, `SELECT epoch, wrap FROM wrapped_keys WHERE group_id = $1`, g)
	wraps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (wrapRow, error) {
		var w wrapRow
		return w, r.Scan(&w.epoch, &w.wrap)
	})
	if err != nil {
		t.Fatal(err)
	}
	held := map[groupkey.EpochKey]bool{}
	for _, w := range wraps {
		for _, e := range epochs {
			for _, m := range members {
				if k, err := groupkey.Unwrap(dk, g, e, m, w.wrap); err == nil {
					held[k] = true
				}
			}
		}
	}
	// Every history link, from every key he holds, at every epoch, until
	// nothing new opens.
	rows, _ = db.Query(ctx, `SELECT link FROM history_links WHERE group_id = $1`, g)
	links, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	for grew := true; grew; {
		grew = false
		for k := range held {
			for _, l := range links {
				for _, e := range epochs {
					if older, err := groupkey.OpenHistoryLink(k, g, e, l); err == nil && !held[older] {
						held[older], grew = true, true
					}
				}
			}
		}
	}

	kc1, _ := state.KeyCommitment(1)
	kc2, _ := state.KeyCommitment(2)
	var k1 groupkey.EpochKey
	for k := range held {
		if groupkey.CheckCommitment(k, g, 2, kc2) {
			t.Fatal("bob recovered the epoch 2 key")
		}
		if groupkey.CheckCommitment(k, g, 1, kc1) {
			k1 = k
		}
	}
	// The attack is real: it does recover what bob was entitled to.
	if k1 == (groupkey.EpochKey{}) {
		t.Fatal("the attack did not even recover bob's own epoch 1 key")
	}
	if got := decryptFromDB(t, srv, db, k1, g, 1, before.ID); got == nil {
		t.Fatal("bob's epoch 1 key does not decrypt the resource from before his removal")
	}

	// The new resource, under every key he holds, claimed at every epoch.
	for k := range held {
		for _, e := range epochs {
			if got := decryptFromDB(t, srv, db, k, g, e, after.ID); got != nil {
				t.Fatalf("bob decrypted the new resource: %q", got)
			}
			var meta []byte
			db.QueryRow(ctx, `SELECT meta FROM resources WHERE id = $1`, after.ID).Scan(&meta)
			for _, v := range []uint64{1, 2} {
				if _, err := groupkey.OpenMetadata(k, g, e, coffer.LabelResourceMeta, metaBindingOf(after.ID, v), meta); err == nil {
					t.Fatal("bob opened the new resource's metadata")
				}
			}
		}
	}
}

func metaBindingOf(id coffer.ResourceID, version uint64) []byte {
	b := append([]byte(nil), id[:]...)
	for i := 7; i >= 0; i-- {
		b = append(b, byte(version>>(8*i)))
	}
	return b
}

// chainOf verifies the group's stored chain, as anyone with the database can.
func chainOf(tb testing.TB, db *pgx.Conn, g coffer.GroupID) *coffer.GroupState {
	tb.Helper()
	rows, err := db.Query(context.Background(), `SELECT body, signature FROM commits WHERE group_id = $1 ORDER BY seq`, g)
	if err != nil {
		tb.Fatal(err)
	}
	commits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.SignedCommit, error) {
		var sc coffer.SignedCommit
		return sc, r.Scan(&sc.Body, &sc.Signature)
	})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := coffer.VerifyChain(nil, commits)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// decryptFromDB decrypts a resource's stored blob under k at epoch, checking
// it against the stored signed header's chunk tree, and returns the
// plaintext or nil.
func decryptFromDB(tb testing.TB, srv *Server, db *pgx.Conn, k groupkey.EpochKey, g coffer.GroupID, epoch uint64, id coffer.ResourceID) []byte {
	tb.Helper()
	var (
		key          string
		header, blob []byte
	)
	// Small resources keep their content in the row, others in a blob.
	if err := db.QueryRow(context.Background(), `SELECT COALESCE(blob_key, ''), header, content FROM resources WHERE id = $1`, id).
		Scan(&key, &header, &blob); err != nil {
		tb.Fatal(err)
	}
	h, err := coffer.ParseResourceHeader(header)
	if err != nil {
		tb.Fatal(err)
	}
	if blob == nil {
		if blob, err = os.ReadFile(srv.Blobs().Path(key)); err != nil {
			tb.Fatal(err)
		}
	}
	if int64(len(blob)) < h.ContentSize {
		return nil
	}
	hashes, err := content.VerifyChunkHashes(blob[h.ContentSize:], h.TreeRoot, h.Chunks)
	if err != nil {
		return nil
	}
	r, err := content.Decrypt(bytes.NewReader(blob[:h.ContentSize]), hashes, k, g, epoch, id, h.ContentSize)
	if err != nil {
		return nil
	}
	pt, err := io.ReadAll(r)
	if err != nil {
		return nil
	}
	return pt
}
