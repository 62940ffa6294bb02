package clientlib

import (
	"context"
	"crypto/hpke"
	"encoding/json"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// errTreeRetry: another writer appended first; the caller syncs and
// builds again.
type errTreeRetry struct{ err error }

func (e *errTreeRetry) Error() string { return e.err.Error() }

// commitTreeChange is one attempt of commitChangeMeta in a tree group
// (and of a self-update, update set to the identity its leaf moves to):
// a rotation refreshes the tree (treeSpec) and derives its epoch key from
// the root secret and the commit's hash. The only wrap is the author's own
// and carries the root secret, for its account's other devices (they
// check it against the key commitment); the ciphertexts go beside it.
func (c *Client) commitTreeChange(ctx context.Context, signer *Identity, me coffer.AccountID, s *coffer.GroupState, keys map[uint64]groupkey.EpochKey,
	ops []coffer.Op, rotate bool, added []groupkey.Recipient, newMeta func(current *groupMeta) *groupMeta, update *Identity) (*coffer.GroupState, error) {
	cur, _, err := c.me()
	if err != nil {
		return nil, err
	}
	g := s.Group
	if (s.PendingRotation && !isLeave(ops)) || len(added) > 0 || update != nil || demotesAdmin(s, me, ops) {
		// There are no unmerged leaves: an add refreshes the new leaf's
		// path; a demoted admin's nodes are refreshed at once.
		rotate = true
	}
	commit := &coffer.Commit{
		Group: g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch, Author: me,
		Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, Ops: ops,
	}
	var (
		secrets  ratchettree.Secrets
		treeKeys [][]byte
		cts      []ratchettree.Ciphertext
		newLeaf  []byte
	)
	if update != nil {
		newLeaf = update.public.EncryptionKey
	}
	if rotate {
		commit.Ops = append(commit.Ops, coffer.Op{Kind: coffer.OpRotate})
		commit.Epoch = s.Epoch + 1
		spec, err := treeSpec(s, me, ops, added, newLeaf)
		if err != nil {
			return nil, err
		}
		if secrets, treeKeys, cts, err = treeCommit(s, me, commit, spec, c.treeNodeFetcher(ctx, g, s.Seq)); err != nil {
			if coffer.ErrorCode(err) == coffer.ECONFLICT {
				return nil, &errTreeRetry{err}
			}
			return nil, err
		}
	} else {
		commit.Tree = &coffer.TreePart{Kind: coffer.TreeNone}
		commit.KeyCommitment, _ = s.KeyCommitment(s.Epoch)
	}
	sc, err := c.signCommit(signer, s.Suite, commit)
	if err != nil {
		return nil, err
	}
	next, err := c.applyOwn(ctx, s, sc)
	if err != nil {
		return nil, err
	}
	if rotate || len(added) > 0 {
		book, err := c.loadContactBook()
		if err != nil {
			return nil, err
		}
		if err := c.checkKeyConflictsIn(next, book); err != nil {
			return nil, err
		}
	}
	k := keys[s.Epoch]
	wrapped := k
	var root []byte
	req := api.CommitRequest{}
	var recipients []groupkey.Recipient
	if rotate {
		root = groupkey.TreeEpochSecret(secrets[ratchettree.Root(commit.Tree.Commit.Leaves)], g, commit.Epoch)
		k, wrapped = treeEpochKey(root, sc), groupkey.EpochKey(root)
		c.observeSecret("epoch-key", k[:])
		c.observeSecret("tree-root", root)
		if s.ShareHistory {
			// A link carries what the older epoch's commitment commits to.
			older, ok := c.treeCommitted(g, s.Epoch)
			if !ok {
				return nil, coffer.Errorf(coffer.EINVALID, "no key of epoch %d on this device to link the new epoch to", s.Epoch)
			}
			req.Links = []api.HistoryLink{{Epoch: s.Epoch, Link: groupkey.SealHistoryLink(k, g, s.Epoch, older)}}
		}
		meta, err := c.groupMeta(ctx, g, keys)
		if newMeta != nil && (err == nil || !coffer.IsSecurity(err)) {
			meta, err = newMeta(meta), nil
		}
		// A self-update carries no metadata (the server refuses it from a
		// member who may not rename).
		switch {
		case update != nil:
		case err == nil:
			b, _ := json.Marshal(meta)
			req.Meta = groupkey.SealMetadata(k, g, commit.Epoch, coffer.LabelGroupMeta, nil, b)
		case coffer.IsSecurity(err):
			return nil, err
		}
		recipients = []groupkey.Recipient{{Member: me, EncryptionKey: cur.public.EncryptionKey}}
		req.TreeKeys = treeKeys
		req.TreeCiphertexts = apiCiphertexts(cts)
	}
	req.Commit = api.SignedCommit{Body: sc.Body, Signature: sc.Signature}
	sent, err := c.postCommit(ctx, "/v1/groups/"+g.String()+"/commits", &req, recipients, g, commit.Epoch, wrapped)
	if coffer.ErrorCode(err) == coffer.ECONFLICT {
		return nil, &errTreeRetry{err}
	}
	if err != nil {
		return nil, err
	}
	c.journalBody(g, commit.Seq, sent)
	if rotate {
		var leafKey hpke.PrivateKey
		if update != nil {
			leafKey = update.decrypt
		}
		c.treeAdvance(s, next, commit, secrets, leafKey, newLeaf, k, root)
	}
	if err := c.proveOwnCommit(ctx, g, next.Seq, sc); err != nil {
		return nil, err
	}
	if _, stillMember := next.Members[me]; stillMember {
		if err := c.saveState(next, s, []coffer.SignedCommit{sc}); err != nil {
			return nil, err
		}
		if err := c.witnessOwnCommit(ctx, next); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// demotesAdmin reports whether ops lower an owner or admin other than the
// author below admin: in a tree group that refreshes every node it knew.
func demotesAdmin(s *coffer.GroupState, me coffer.AccountID, ops []coffer.Op) bool {
	for _, op := range ops {
		if m := s.Members[op.Member]; op.Kind == coffer.OpSetRole && m != nil && op.Member != me && m.Role >= coffer.RoleAdmin && op.Role < coffer.RoleAdmin {
			return true
		}
	}
	return false
}
