package clientlib

import (
	"context"
	"errors"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// Leaving a group. Any member may leave, with a commit whose only op is
// their own OpLeave; it never rotates, because a leaver must not choose
// (and so know) the key of an epoch they will not be in. The leaver still
// holds the current epoch key, so the verified state carries a pending
// rotation until an admin or owner rotates. Meanwhile no client encrypts
// new content or wraps a key under that epoch (EROTATIONPENDING), and the
// first admin or owner to sync rotates.

// Leave removes this account from g. It needs no role: a reader may leave
// as well as an admin. The last owner of a group cannot leave (the verifier
// keeps at least one owner); they must first make someone else owner.
//
// Leaving does not take back what this device already holds: the current
// epoch key, and anything it downloaded. It only stops the member from
// receiving keys of later epochs, which start with the rotation that the
// remaining admins' clients perform on their next sync.
func (c *Client) Leave(ctx context.Context, g coffer.GroupID) error {
	_, me, err := c.me()
	if err != nil {
		return err
	}
	_, err = c.commitChange(ctx, g, func(s *coffer.GroupState, _ map[uint64]groupkey.EpochKey) ([]coffer.Op, bool, []groupkey.Recipient, error) {
		m := s.Members[me]
		if m == nil {
			return nil, false, nil, coffer.Errorf(coffer.ENOTFOUND, "you are not a member of this group")
		}
		if m.Role == coffer.RoleOwner && ownerCount(s) == 1 {
			return nil, false, nil, coffer.Errorf(coffer.EFORBIDDEN, "you are the group's only owner: make another member owner before leaving")
		}
		return []coffer.Op{{Kind: coffer.OpLeave, Member: me}}, false, nil, nil
	})
	return err
}

func ownerCount(s *coffer.GroupState) int {
	n := 0
	for _, m := range s.Members {
		if m.Role == coffer.RoleOwner {
			n++
		}
	}
	return n
}

func isLeave(ops []coffer.Op) bool {
	return len(ops) == 1 && ops[0].Kind == coffer.OpLeave
}

// errRotationPending is the typed error of a write refused because a member
// left and the group's key has not been rotated yet.
func errRotationPending(g coffer.GroupID) error {
	return coffer.Errorf(coffer.EROTATIONPENDING,
		"a member left group %s and still holds its key: nothing new is encrypted or shared until an admin or owner rotates the key (their app does so on its next sync)", g)
}

// checkNotPending refuses to encrypt or wrap under the epoch of s while a
// rotation is pending.
func checkNotPending(s *coffer.GroupState) error {
	if s.PendingRotation {
		return errRotationPending(s.Group)
	}
	return nil
}

// rotatePending performs the rotation that a leave left pending, when this
// account is an admin or owner, and returns the state after it. Anyone else
// gets res unchanged: they read as before, and writes wait for the
// rotation.
//
// A rotation that cannot be made now (another admin won the race and the
// rotation is no longer due, the network failed, a member's keys changed)
// leaves res as it was: the state still says pending, so every write keeps
// refusing until a rotation lands. Security errors are returned.
func (c *Client) rotatePending(ctx context.Context, g coffer.GroupID, res *SyncResult) (*SyncResult, error) {
	_, me, err := c.me()
	if err != nil || !res.State.PendingRotation {
		return res, nil
	}
	if m := res.State.Members[me]; m == nil || m.Role < coffer.RoleAdmin {
		return res, nil
	}
	_, err = c.commitChange(ctx, g, func(s *coffer.GroupState, _ map[uint64]groupkey.EpochKey) ([]coffer.Op, bool, []groupkey.Recipient, error) {
		if !s.PendingRotation {
			return nil, false, nil, errNothingPending
		}
		return nil, true, nil, nil
	})
	var ce *coffer.Error
	switch {
	case err == nil, errors.Is(err, errNothingPending):
	case coffer.IsSecurity(err) && !(errors.As(err, &ce) && ce.Code == coffer.EKEYCHANGED):
		return nil, err
	default:
		return res, nil
	}
	next, err := c.sync(ctx, g, true)
	if err != nil {
		return nil, err
	}
	return next, nil
}

var errNothingPending = errors.New("clientlib: no rotation is pending")
