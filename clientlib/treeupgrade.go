package clientlib

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// UpgradeToTree converts a pairwise suite v2 group to a tree group with
// one commit (`coffer group upgrade`): an owner's rotation whose tree part
// starts the tree with the owner at leaf 0 and every other member, in
// account id order, at leaves 1..n-1, all keyed by one rekey sealed on
// every core. Epochs before it keep their wraps; from it on the members
// derive each epoch key from the tree. It does nothing for a tree group.
func (c *Client) UpgradeToTree(ctx context.Context, g coffer.GroupID) (err error) {
	defer func() { err = inGroup(err, g, coffer.ResourceID{}) }()
	id, me, err := c.me()
	if err != nil {
		return err
	}
	for attempt := 0; attempt < maxCommitRetries; attempt++ {
		res, err := c.sync(ctx, g, false)
		if err != nil {
			return err
		}
		s := res.State
		switch {
		case s.Tree != nil:
			return nil
		case s.Suite != coffer.SuiteV2:
			return coffer.Errorf(coffer.EINVALID, "only a suite v2 group can become a tree group")
		case s.Members[me] == nil || s.Members[me].Role != coffer.RoleOwner:
			return coffer.Errorf(coffer.EFORBIDDEN, "only an owner upgrades a group")
		}
		keys, err := c.epochKeys(ctx, s)
		if err != nil {
			return err
		}
		book, err := c.loadContactBook()
		if err != nil {
			return err
		}
		if err := c.checkKeyConflictsIn(s, book); err != nil {
			return err
		}
		recipients, err := c.rotationRecipients(s, book)
		if err != nil {
			return err
		}
		byID := map[coffer.AccountID][]byte{}
		for _, r := range recipients {
			byID[r.Member] = r.EncryptionKey
		}
		var spec ratchettree.Spec
		for _, m := range s.SortedMembers() {
			if m.ID == me {
				continue
			}
			k := byID[m.ID]
			if k == nil {
				return coffer.Errorf(coffer.EINVALID, "no verified key for member %s", m.Handle)
			}
			spec.Adds = append(spec.Adds, ratchettree.LeafKey{Leaf: uint32(len(spec.Adds) + 1), Key: k})
		}
		n := uint32(len(spec.Adds) + 1)
		if n < 2 {
			return coffer.Errorf(coffer.EINVALID, "a group of one has nothing to upgrade")
		}
		spec.Rekey = []uint32{ratchettree.Root(n)}
		commit := &coffer.Commit{
			Group: g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch + 1, Author: me,
			Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory,
			Ops: []coffer.Op{{Kind: coffer.OpRotate}},
		}
		start, err := ratchettree.NewTree([][]byte{id.public.EncryptionKey})
		if err != nil {
			return err
		}
		full, _, secrets, err := ratchettree.Create(start, coffer.TreeContext(commit), 0, spec)
		if err != nil {
			return coffer.Errorf(coffer.EINVALID, "tree start: %v", err)
		}
		root := groupkey.TreeEpochSecret(secrets[ratchettree.Root(n)], g, commit.Epoch)
		commit.Tree = &coffer.TreePart{Kind: coffer.TreeStart, StartKey: id.public.EncryptionKey, Commit: full.Detached()}
		commit.KeyCommitment = groupkey.TreeCommitment(root, g, commit.Epoch)
		sc, err := c.signCommit(id, s.Suite, commit)
		if err != nil {
			return err
		}
		next, err := c.applyOwn(ctx, s, sc)
		if err != nil {
			return err
		}
		k := treeEpochKey(root, sc)
		c.observeSecret("epoch-key", k[:])
		c.observeSecret("tree-root", root)
		req := api.CommitRequest{TreeKeys: full.Keys(), TreeCiphertexts: apiCiphertexts(full.Ciphertexts())}
		if s.ShareHistory {
			// The pairwise epoch's commitment commits to its key.
			req.Links = []api.HistoryLink{{Epoch: s.Epoch, Link: groupkey.SealHistoryLink(k, g, s.Epoch, keys[s.Epoch])}}
		}
		if meta, err := c.groupMeta(ctx, g, keys); err == nil {
			b, _ := json.Marshal(meta)
			req.Meta = groupkey.SealMetadata(k, g, commit.Epoch, coffer.LabelGroupMeta, nil, b)
		} else if coffer.IsSecurity(err) {
			return err
		}
		req.Commit = api.SignedCommit{Body: sc.Body, Signature: sc.Signature}
		own := []groupkey.Recipient{{Member: me, EncryptionKey: id.public.EncryptionKey}}
		sent, err := c.postCommit(ctx, "/v1/groups/"+g.String()+"/commits", &req, own, g, commit.Epoch, groupkey.EpochKey(root))
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
		c.treeStart(next, commit, secrets, id, keys, k, root)
		if err := c.proveOwnCommit(ctx, g, next.Seq, sc); err != nil {
			return err
		}
		if err := c.saveState(next, s, []coffer.SignedCommit{sc}); err != nil {
			return err
		}
		return c.witnessOwnCommit(ctx, next)
	}
	return coffer.Errorf(coffer.ECONFLICT, "gave up after %d attempts: the group is changing too fast", maxCommitRetries)
}

// treeStart records the view of the author of a tree's first commit: its
// leaf 0 with the secrets of its ancestors, the keys of the epochs
// before (pairwise: they commit to the keys themselves) and the new one.
func (c *Client) treeStart(next *coffer.GroupState, cm *coffer.Commit, secrets ratchettree.Secrets, id *Identity, before map[uint64]groupkey.EpochKey, k groupkey.EpochKey, root []byte) {
	c.tree.mu.Lock()
	defer c.tree.mu.Unlock()
	startDigest := ratchettree.KeyDigest(id.public.EncryptionKey)
	tk := &treeKeys{seq: next.Seq, head: next.Head, leaf: 0, pub: startDigest[:],
		view: ratchettree.NewMember(0, id.decrypt), keys: map[uint64]groupkey.EpochKey{}, committed: map[uint64][32]byte{}}
	tk.view.Adopt(secrets, cm.Tree.Commit.Leaves)
	for e, ek := range before {
		tk.keys[e], tk.committed[e] = ek, ek
	}
	tk.keys[cm.Epoch], tk.committed[cm.Epoch] = k, [32]byte(root)
	c.treeLoad(next.Group) // makes the map
	c.treeStore(next.Group, tk)
}
