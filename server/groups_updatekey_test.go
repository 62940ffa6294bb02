package server_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// TestUpdateKeyMustCarryRegisteredKeys: a member's self-update (update-key
// plus a rotation) is stored only when its new keys are the keys its
// account has registered now, which is what changes when the account
// rotates its key. Keys the account never registered, another account's
// keys, or keys the account has since replaced are refused, as is a
// self-update that renames the group (any member may sign one).
func TestUpdateKeyMustCarryRegisteredKeys(t *testing.T) {
	w := newResourceWorld(t, nil)
	groupPath := "/v1/groups/" + w.g.String()
	var list api.CommitList
	w.ts.Do(t, "GET", groupPath+"/commits", w.owner.token, nil).Decode(t, &list)
	genesis, err := coffer.ParseCommit(list.Commits[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	head := coffer.SignedCommit{Body: list.Commits[0].Body, Signature: list.Commits[0].Signature}.Hash()

	// send posts the reader's self-update to keys, signed with signer,
	// with a real wrap of a fresh epoch key to every member.
	send := func(t *testing.T, keys coffer.PublicIdentity, signer *testIdentity, meta []byte) *response {
		t.Helper()
		k := groupkey.NewEpochKey()
		c := &coffer.Commit{Group: w.g, Seq: 2, Prev: head, Epoch: 2, Author: w.reader.acct.ID, Time: time.Now().UnixMilli(),
			ShareHistory: genesis.ShareHistory, KeyCommitment: groupkey.Commitment(k, w.g, 2), Ops: []coffer.Op{
				{Kind: coffer.OpUpdateKey, Member: w.reader.acct.ID, SigningKey: keys.SigningKey, EncryptionKey: keys.EncryptionKey},
				{Kind: coffer.OpRotate},
			}}
		sc := coffer.SignCommit(c, signer.Key)
		req := api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature}, Meta: meta,
			Links: []api.HistoryLink{{Epoch: 1, Link: make([]byte, coffer.HistoryLinkSize)}}}
		for _, m := range []member{w.owner, w.writer, w.reader} {
			ek := m.id.Public.EncryptionKey
			if m.acct.ID == w.reader.acct.ID {
				ek = keys.EncryptionKey
			}
			wrap, err := groupkey.Wrap(ek, w.g, 2, m.acct.ID, k)
			if err != nil {
				t.Fatal(err)
			}
			req.Wraps = append(req.Wraps, api.Wrap{Member: m.acct.ID, Epoch: 2, Wrap: wrap})
		}
		return w.ts.Do(t, "POST", groupPath+"/commits", w.reader.token, req)
	}
	// register makes keys the reader's registered identity, as the accounts
	// endpoint does when the account rotates.
	register := func(t *testing.T, keys coffer.PublicIdentity) {
		t.Helper()
		if _, err := w.ts.Pool.Exec(context.Background(), `UPDATE accounts SET identity = $1 WHERE id = $2`,
			keys.Marshal(), w.reader.acct.ID); err != nil {
			t.Fatal(err)
		}
	}

	next := MustIdentity(t, "reader")
	t.Run("unregistered keys", func(t *testing.T) {
		send(t, next.Public, w.reader.id, nil).Check(t, 400, coffer.EINVALID)
	})
	t.Run("another account's keys", func(t *testing.T) {
		// The outsider is no member, so only the server's check stands in the way.
		send(t, w.outsider.id.Public, w.reader.id, nil).Check(t, 400, coffer.EINVALID)
	})
	register(t, next.Public)
	t.Run("registered keys with new metadata", func(t *testing.T) {
		send(t, next.Public, w.reader.id, bytes.Repeat([]byte{0x42}, 64)).Check(t, 400, coffer.EINVALID)
	})
	t.Run("registered keys signed with them", func(t *testing.T) {
		// The update must be signed with the entry's key before it.
		p := send(t, next.Public, next, nil).Check(t, 400, coffer.EINVALID)
		if p.Rule != coffer.RuleSignature {
			t.Fatalf("rule %q, want %q", p.Rule, coffer.RuleSignature)
		}
	})
	t.Run("keys replaced since", func(t *testing.T) {
		later := MustIdentity(t, "reader")
		register(t, later.Public)
		defer register(t, next.Public)
		send(t, next.Public, w.reader.id, nil).Check(t, 400, coffer.EINVALID)
	})
	var before api.Group
	w.ts.Do(t, "GET", groupPath, w.owner.token, nil).Decode(t, &before)
	if before.HeadSeq != 1 {
		t.Fatalf("head %d after refused self-updates, want 1", before.HeadSeq)
	}

	send(t, next.Public, w.reader.id, nil).Check(t, 201, "")
	var after api.Group
	w.ts.Do(t, "GET", groupPath, w.owner.token, nil).Decode(t, &after)
	if after.HeadSeq != 2 || after.Epoch != 2 || !bytes.Equal(after.Meta, before.Meta) || after.MetaEpoch != before.MetaEpoch {
		t.Fatalf("after the self-update: head %d epoch %d meta epoch %d; want head 2, epoch 2, metadata unchanged", after.HeadSeq, after.Epoch, after.MetaEpoch)
	}
}
