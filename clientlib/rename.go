package clientlib

import (
	"context"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// RenameGroup gives g a new name and, when description is not nil, a new
// description. The server keeps group metadata only as ciphertext sealed
// under an epoch key, and accepts new metadata only with a signed commit:
// the rename is a rotation that seals the new name under the fresh key, so
// members removed earlier, who may still hold old epoch keys, never read
// it. Like any rotation it needs the owner or admin role.
func (c *Client) RenameGroup(ctx context.Context, g coffer.GroupID, name string, description *string) error {
	if name == "" || len(name) > 256 {
		return coffer.Errorf(coffer.EINVALID, "a group name must be 1 to 256 bytes")
	}
	rotate := func(*coffer.GroupState, map[uint64]groupkey.EpochKey) ([]coffer.Op, bool, []groupkey.Recipient, error) {
		return nil, true, nil, nil
	}
	_, err := c.commitChangeMeta(ctx, g, rotate, func(cur *groupMeta) *groupMeta {
		m := &groupMeta{Name: name}
		if description != nil {
			m.Description = *description
		} else if cur != nil {
			m.Description = cur.Description
		}
		return m
	})
	return err
}
