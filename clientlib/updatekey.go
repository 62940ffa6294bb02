package clientlib

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// Self-updates: following a key rotation into every group.
//
// When an account rotates its key (a device revoked, a key that leaked),
// its entry in each group still holds the retired keys: the current epoch
// key was wrapped to them, and they still sign for the member. The
// self-update replaces them: one commit by the member with an update-key of
// its own entry (the new signing and encryption keys) and a rotation, signed
// with the retired key, whose fresh epoch key is wrapped to every member and
// to the new encryption key. From that epoch on, whatever holds only the
// retired keys reads nothing new and signs nothing the group accepts.
//
// Until it lands, the group's entry and this device's identity differ: the
// device's own key-conflict check blocks writes to the group (they would be
// signed with a key the chain does not hold, and encrypted under an epoch
// key the retired keys open), so UpdateOwnKeys comes first after a rotation.

// UpdateOwnKeys brings this account's entry in g up to the client's current
// identity, after a rotation retired the identity the entry holds: it
// appends the entry's update-key with a rotation, signed with the retired
// key (which must be one the client holds). It does nothing when the entry
// already holds the current keys, so it is safe to call for every group
// after a rotation, and again after an interruption.
func (c *Client) UpdateOwnKeys(ctx context.Context, g coffer.GroupID) error {
	id, me, err := c.me()
	if err != nil {
		return err
	}
	res, err := c.sync(ctx, g, false)
	if err != nil {
		return inGroup(err, g, coffer.ResourceID{})
	}
	m := res.State.Members[me]
	if m == nil {
		return coffer.Errorf(coffer.ENOTFOUND, "this account is not a member of group %s", g)
	}
	if holdsKeys(m, id) {
		return nil
	}
	for _, old := range c.retiredIdentities() {
		if holdsKeys(m, old) {
			return c.updateOwnKeys(ctx, g, old, id)
		}
	}
	return inGroup(coffer.Security("contact-key", &coffer.Error{Code: coffer.EKEYCHANGED, Message: fmt.Sprintf(
		"this account's entry in group %s holds keys that are neither its current nor a retired identity", g)}), g, coffer.ResourceID{})
}

// updatePending makes the self-update of g when this account's entry in
// res still holds the keys of a retired identity, and returns the state
// after it. Like a pending rotation, it is best effort: a refusal (the
// server does not have the new identity yet, another device raced it) is
// left for the next Sync or UpdateOwnKeys, and only a security error
// stops the Sync.
func (c *Client) updatePending(ctx context.Context, g coffer.GroupID, res *SyncResult) (*SyncResult, error) {
	retired := c.retiredIdentities()
	if len(retired) == 0 {
		return res, nil
	}
	id, me, err := c.me()
	if err != nil {
		return res, nil
	}
	m := res.State.Members[me]
	if m == nil || holdsKeys(m, id) {
		return res, nil
	}
	for _, old := range retired {
		if !holdsKeys(m, old) {
			continue
		}
		if err := c.updateOwnKeys(ctx, g, old, id); err != nil {
			if coffer.IsSecurity(err) {
				return nil, err
			}
			return res, nil
		}
		return c.sync(ctx, g, true)
	}
	return res, nil
}

// updateOwnKeys appends the self-update of this account's entry in g from
// old to next: an update-key and a rotation, signed with old's key, with
// the fresh epoch key wrapped to every member (this account under next's
// encryption key) and, in a history-sharing group, a link back to the
// current epoch. next must be the client's current identity: the checks
// that guard every rotation (key conflicts, trusted recipients) judge the
// state after the update against it. It carries no group metadata: the
// server refuses it with a self-update, which any member may sign.
//
// After a rotation, call it (or UpdateOwnKeys) for every group.
func (c *Client) updateOwnKeys(ctx context.Context, g coffer.GroupID, old, next *Identity) (err error) {
	defer func() { err = inGroup(err, g, coffer.ResourceID{}) }()
	cur, me, err := c.me()
	if err != nil {
		return err
	}
	if cur != next {
		return coffer.Errorf(coffer.EINVALID, "a self-update goes to the client's current identity")
	}
	ids := append([]*Identity{next, old}, c.retiredIdentities()...)
	for attempt := 0; attempt < maxCommitRetries; attempt++ {
		res, err := c.sync(ctx, g, false)
		if err != nil {
			return err
		}
		// A self-update shares a new key with every member.
		s, err := c.checkEveryMember(ctx, res.State, res.Proof.w)
		if err != nil {
			return err
		}
		m := s.Members[me]
		switch {
		case m == nil:
			return coffer.Errorf(coffer.ENOTFOUND, "this account is not a member of group %s", g)
		case holdsKeys(m, next):
			return nil // done, by this call's earlier attempt or another device
		case !holdsKeys(m, old):
			return coffer.Errorf(coffer.ECONFLICT, "this account's entry in group %s does not hold the keys to update from", g)
		}
		keys, err := c.epochKeysWith(ctx, s, ids)
		if err != nil {
			return err
		}
		if s.Tree != nil {
			// The leaf moves to next's key: its path (or, when it taints
			// nodes, every node it knew) is refreshed.
			ops := []coffer.Op{{Kind: coffer.OpUpdateKey, Member: me}}
			mk, _, err := c.ownMemberKeys(next)
			if err != nil {
				return err
			}
			ops[0].KeysHash = mk.Hash()
			_, err = c.commitTreeChange(ctx, old, me, s, keys, ops, true, nil, nil, next)
			var retry *errTreeRetry
			if errors.As(err, &retry) {
				if err := backoff(ctx, attempt); err != nil {
					return err
				}
				continue
			}
			return err
		}
		k := groupkey.NewEpochKey()
		c.observeSecret("epoch-key", k[:])
		commit := &coffer.Commit{
			Group: g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch + 1, Author: me,
			Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory,
			KeyCommitment: groupkey.Commitment(k, g, s.Epoch+1),
			Ops: []coffer.Op{
				{Kind: coffer.OpUpdateKey, Member: me, SigningKey: next.public.SigningKey, EncryptionKey: next.public.EncryptionKey},
				{Kind: coffer.OpRotate},
			},
		}
		var req api.CommitRequest
		if s.ShareHistory {
			req.Links = []api.HistoryLink{{Epoch: s.Epoch, Link: groupkey.SealHistoryLink(k, g, s.Epoch, keys[s.Epoch])}}
		}
		if s.Suite == coffer.SuiteV2 {
			// The entry names the account's keys by hash, and the old keys
			// sign (the hybrid key of the old user key).
			mk, _, err := c.ownMemberKeys(next)
			if err != nil {
				return err
			}
			op := &commit.Ops[0]
			op.SigningKey, op.EncryptionKey, op.KeysHash = nil, nil, mk.Hash()
		}
		sc, err := c.signCommit(old, s.Suite, commit)
		if err != nil {
			return err
		}
		after, err := c.applyOwn(ctx, s, sc)
		if err != nil {
			return err
		}
		book, err := c.loadContactBook()
		if err != nil {
			return err
		}
		if err := c.checkKeyConflictsIn(after, book); err != nil {
			return err
		}
		recipients, err := c.rotationRecipients(after, book)
		if err != nil {
			return err
		}
		if err := c.keys.fill(recipients); err != nil {
			return err
		}
		req.Commit = api.SignedCommit{Body: sc.Body, Signature: sc.Signature}
		sent, err := c.postCommit(ctx, "/v1/groups/"+g.String()+"/commits", &req, recipients, g, commit.Epoch, k)
		if coffer.ErrorCode(err) == coffer.ECONFLICT {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		c.journalBody(g, commit.Seq, sent)
		if err := c.proveOwnCommit(ctx, g, after.Seq, sc); err != nil {
			return err
		}
		if err := c.saveState(after, s, []coffer.SignedCommit{sc}); err != nil {
			return err
		}
		return c.witnessOwnCommit(ctx, after)
	}
	return coffer.Errorf(coffer.ECONFLICT, "gave up after %d attempts: the group is changing too fast", maxCommitRetries)
}

// holdsKeys reports whether member m holds id's keys.
func holdsKeys(m *coffer.Member, id *Identity) bool {
	return bytes.Equal(m.SigningKey, id.public.SigningKey) && bytes.Equal(m.EncryptionKey, id.public.EncryptionKey)
}

// retiredIdentities returns the identities the account used before its
// current one, newest first.
func (c *Client) retiredIdentities() []*Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Identity(nil), c.retired...)
}

// openers returns the identities whose decryption keys may open this
// member's wraps: current first, then the retired ones.
func (c *Client) openers(current *Identity) []*Identity {
	return append([]*Identity{current}, c.retiredIdentities()...)
}

// unwrapAny opens a wrap with the first of ids whose key opens it. A wrap
// names its member and epoch in its HPKE info, so a key that does not open
// it learns nothing; the caller checks what opens against the committed
// key, whichever identity opened it.
func unwrapAny(ids []*Identity, g coffer.GroupID, epoch uint64, me coffer.AccountID, wrap []byte) (groupkey.EpochKey, error) {
	var errs []error
	for _, id := range ids {
		k, err := groupkey.Unwrap(id.decrypt, g, epoch, me, wrap)
		if err == nil {
			return k, nil
		}
		errs = append(errs, err)
	}
	return groupkey.EpochKey{}, errors.Join(errs...)
}
