package clientlib

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/translog"
)

// rotateForTest stands in for the account side of a key rotation, which
// the account chain drives: the server's accounts row and the transparency
// log get next as the account's identity (what the accounts endpoint does
// on a rotating link), and the client makes next its identity and keeps
// the old one retired.
func rotateForTest(t *testing.T, srv *cofferdtest.Server, c *Client) (old, next *Identity) {
	t.Helper()
	ctx := context.Background()
	old, me, err := c.me()
	if err != nil {
		t.Fatal(err)
	}
	if next, err = GenerateIdentity(old.Handle()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pub, sig := next.Public(), next.SelfSignature()
	leaf := translog.IdentityLeaf(me, pub.Marshal(), sig)
	hash := translog.RecordHash(leaf)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE accounts SET identity = $1, self_signature = $2, signing_key = $3, encryption_key = $4 WHERE id = $5`,
		pub.Marshal(), sig, []byte(pub.SigningKey), pub.EncryptionKey, me); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO log_entries (leaf, leaf_hash, account_id, created_at) VALUES ($1, $2, $3, $4)`,
		leaf, hash[:], me, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.retired = append([]*Identity{old}, c.retired...)
	c.id = next
	c.mu.Unlock()
	return old, next
}

func mustUpdateKeyClient(t *testing.T, srv *cofferdtest.Server, handle string) *Client {
	t.Helper()
	c, err := New(srv.URL(), NewMemoryKeyStore(), &Options{LogKey: srv.LogKey(), TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(context.Background(), handle); err != nil {
		t.Fatal(err)
	}
	return c
}

func mustPutText(t *testing.T, c *Client, g coffer.GroupID, text string) *Resource {
	t.Helper()
	r, err := c.Put(context.Background(), g, bytes.NewReader([]byte(text)), Meta{Name: text})
	if err != nil {
		t.Fatalf("%s: put %q: %v", c.Identity().Handle(), text, err)
	}
	return r
}

func mustReadText(t *testing.T, c *Client, g coffer.GroupID, id coffer.ResourceID, want string) {
	t.Helper()
	rr, err := c.Get(context.Background(), g, id)
	if err != nil {
		t.Fatalf("%s: get %q: %v", c.Identity().Handle(), want, err)
	}
	defer rr.Close()
	got, err := io.ReadAll(rr)
	if err != nil || string(got) != want {
		t.Fatalf("%s: read %q, %v; want %q", c.Identity().Handle(), got, err, want)
	}
}

// TestUpdateOwnKeys: after bob's account rotates its key, bob's self-update
// in a group (update-key plus a rotation) lands; the new epoch's key is
// wrapped to bob's new encryption key and not to the old one, so the old
// decryption key cannot open it while the new one can. Another member
// (carol, who never pinned bob's keys) accepts the update and puts content
// that bob reads with his new key; what bob wrote under his old key stays
// verifiable by every member, and what he writes afterwards is signed with
// his new key. Alice, who pinned bob's old keys, is blocked until she
// verifies bob's new safety number, as for any change of a verified key.
func TestUpdateOwnKeys(t *testing.T) {
	ctx := context.Background()
	srv := cofferdtest.Start(t, nil)
	alice := mustUpdateKeyClient(t, srv, "alice")
	bob := mustUpdateKeyClient(t, srv, "bob")
	carol := mustUpdateKeyClient(t, srv, "carol")
	g, err := alice.CreateGroup(ctx, "update key", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, g, "bob", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMember(ctx, g, "carol", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	before := mustPutText(t, bob, g, "bob, before the rotation")

	// Nothing to update before a rotation.
	if err := bob.UpdateOwnKeys(ctx, g); err != nil {
		t.Fatal(err)
	}
	if res, err := bob.Sync(ctx, g); err != nil || res.State.Seq != 3 {
		t.Fatalf("UpdateOwnKeys without a rotation: %v, seq %d; want no commit", err, res.State.Seq)
	}

	old, next := rotateForTest(t, srv, bob)
	if err := bob.UpdateOwnKeys(ctx, g); err != nil {
		t.Fatalf("self-update: %v", err)
	}
	res, err := carol.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	s := res.State
	m := s.Members[bob.AccountID()]
	if s.Seq != 4 || s.Epoch != 2 || !holdsKeys(m, next) || m.Role != coffer.RoleWriter || m.KeyEpoch != 2 {
		t.Fatalf("after the self-update: seq %d epoch %d, bob's entry holds the new keys %t, role %s, key epoch %d",
			s.Seq, s.Epoch, holdsKeys(m, next), m.Role, m.KeyEpoch)
	}
	// Again: already done, no second commit.
	if err := bob.UpdateOwnKeys(ctx, g); err != nil {
		t.Fatal(err)
	}

	// Carol, who never pinned bob's keys, writes under the new epoch.
	after := mustPutText(t, carol, g, "carol, after the self-update")
	if after.Epoch != 2 {
		t.Fatalf("carol's resource is at epoch %d, want 2", after.Epoch)
	}
	mustReadText(t, bob, g, after.ID, "carol, after the self-update")
	// What bob signed with his old key still verifies, for him and for
	// carol, and what he signs now is signed with the new key.
	mustReadText(t, bob, g, before.ID, "bob, before the rotation")
	mustReadText(t, carol, g, before.ID, "bob, before the rotation")
	fresh := mustPutText(t, bob, g, "bob, after the self-update")
	mustReadText(t, carol, g, fresh.ID, "bob, after the self-update")

	// Bob's wraps: epoch 1 is wrapped to the old key, epoch 2 to the new
	// one only.
	var keys api.Keys
	if err := bob.call(ctx, http.MethodGet, "/v1/groups/"+g.String()+"/keys", true, nil, &keys); err != nil {
		t.Fatal(err)
	}
	opened := 0
	for _, w := range keys.Wraps {
		want, _ := s.KeyCommitment(w.Epoch)
		kOld, errOld := groupkey.Unwrap(old.decrypt, g, w.Epoch, bob.AccountID(), w.Wrap)
		kNew, errNew := groupkey.Unwrap(next.decrypt, g, w.Epoch, bob.AccountID(), w.Wrap)
		switch w.Epoch {
		case 1:
			if errOld != nil || errNew == nil || !groupkey.CheckCommitment(kOld, g, 1, want) {
				t.Fatalf("epoch 1 wrap: old key %v, new key %v", errOld, errNew)
			}
		case 2:
			if errOld == nil {
				t.Fatalf("the old decryption key opens the epoch 2 wrap")
			}
			if errNew != nil || !groupkey.CheckCommitment(kNew, g, 2, want) {
				t.Fatalf("the new decryption key does not open the epoch 2 wrap to its committed key: %v", errNew)
			}
		}
		opened++
	}
	if opened != 2 {
		t.Fatalf("bob has %d wraps, want epochs 1 and 2", opened)
	}

	// Alice pinned bob's old keys: her writes stop until she verifies bob
	// again.
	var ce *coffer.Error
	if _, err := alice.Put(ctx, g, bytes.NewReader([]byte("x")), Meta{Name: "x"}); !coffer.IsSecurity(err) || !errors.As(err, &ce) || ce.Code != coffer.EKEYCHANGED {
		t.Fatalf("alice's put with bob's pinned keys changed: %v, want a key_changed security error", err)
	}
	if _, err := alice.Verify(ctx, "bob", next.SafetyNumber()); err != nil {
		t.Fatal(err)
	}
	mustReadText(t, bob, g, mustPutText(t, alice, g, "alice, after verifying bob").ID, "alice, after verifying bob")

	// Once bob has left, his keys come from the whole log: the old one for
	// what he wrote before the update, the new one for what he wrote after.
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	dave := mustUpdateKeyClient(t, srv, "dave")
	if err := alice.AddMember(ctx, g, "dave", coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	mustReadText(t, dave, g, fresh.ID, "bob, after the self-update")
	mustReadText(t, dave, g, before.ID, "bob, before the rotation")
}

// TestSyncMakesPendingSelfUpdate: after a rotation, a Sync of a group
// whose entry still holds the retired keys makes the self-update, for a
// reader too, and performs a rotation a leave left pending.
func TestSyncMakesPendingSelfUpdate(t *testing.T) {
	ctx := context.Background()
	srv := cofferdtest.Start(t, nil)
	alice := mustUpdateKeyClient(t, srv, "alice")
	bob := mustUpdateKeyClient(t, srv, "bob")
	carol := mustUpdateKeyClient(t, srv, "carol")
	g, err := alice.CreateGroup(ctx, "sync update", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddMembers(ctx, g, []string{"bob", "carol"}, coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	if err := carol.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	_, next := rotateForTest(t, srv, bob)
	res, err := bob.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	m := res.State.Members[bob.AccountID()]
	if !holdsKeys(m, next) || res.State.PendingRotation || res.State.Epoch != 2 {
		t.Fatalf("after bob's Sync: entry updated %t, rotation pending %t, epoch %d; want updated, none pending, epoch 2",
			holdsKeys(m, next), res.State.PendingRotation, res.State.Epoch)
	}
	if _, err := bob.CurrentEpoch(ctx, g); err != nil {
		t.Fatalf("bob cannot open the new epoch: %v", err)
	}
}

// TestUpdateOwnKeysRefusesForeignEntry: a client whose entry holds keys
// that are neither its identity nor a retired one does not update it.
func TestUpdateOwnKeysRefusesForeignEntry(t *testing.T) {
	ctx := context.Background()
	srv := cofferdtest.Start(t, nil)
	alice := mustUpdateKeyClient(t, srv, "alice")
	g, err := alice.CreateGroup(ctx, "foreign", nil)
	if err != nil {
		t.Fatal(err)
	}
	rotateForTest(t, srv, alice)
	alice.mu.Lock()
	alice.retired = nil // the old identity is lost
	alice.mu.Unlock()
	if err := alice.UpdateOwnKeys(ctx, g); !coffer.IsSecurity(err) {
		t.Fatalf("UpdateOwnKeys without the entry's key: %v, want a security error", err)
	}
}
