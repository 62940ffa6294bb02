package server_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// TestOnlyRotationsSetGroupMeta: the group's name and description change
// only with a rotation (a rename is one, and needs an admin). A leave, which
// any member may sign, and an admin's commit that does not rotate cannot
// carry new metadata: a reader on the way out would otherwise rename the
// group for everyone, under the epoch key the reader holds.
func TestOnlyRotationsSetGroupMeta(t *testing.T) {
	w := newResourceWorld(t, nil)
	groupPath := "/v1/groups/" + w.g.String()
	var list api.CommitList
	w.ts.Do(t, "GET", groupPath+"/commits", w.owner.token, nil).Decode(t, &list)
	if len(list.Commits) != 1 {
		t.Fatalf("%d commits, want the genesis", len(list.Commits))
	}
	genesis, err := coffer.ParseCommit(list.Commits[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	head := coffer.SignedCommit{Body: list.Commits[0].Body, Signature: list.Commits[0].Signature}.Hash()
	var before api.Group
	w.ts.Do(t, "GET", groupPath, w.owner.token, nil).Decode(t, &before)

	forged := bytes.Repeat([]byte{0x42}, 64)
	send := func(author member, meta []byte, ops []coffer.Op) *response {
		c := &coffer.Commit{Group: w.g, Seq: 2, Prev: head, Epoch: 1, Author: author.acct.ID, Time: time.Now().UnixMilli(),
			ShareHistory: genesis.ShareHistory, KeyCommitment: genesis.KeyCommitment, Ops: ops}
		sc := coffer.SignCommit(c, author.id.Key)
		return w.ts.Do(t, "POST", groupPath+"/commits", author.token, api.CommitRequest{
			Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature}, Meta: meta})
	}
	// The reader leaves and renames the group on the way out.
	send(w.reader, forged, []coffer.Op{{Kind: coffer.OpLeave, Member: w.reader.acct.ID}}).Check(t, 400, coffer.EINVALID)
	// The owner promotes the writer without a rotation, with new metadata.
	send(w.owner, forged, []coffer.Op{{Kind: coffer.OpSetRole, Member: w.writer.acct.ID, Role: coffer.RoleAdmin}}).Check(t, 400, coffer.EINVALID)

	var after api.Group
	w.ts.Do(t, "GET", groupPath, w.owner.token, nil).Decode(t, &after)
	if after.HeadSeq != 1 || !bytes.Equal(after.Meta, before.Meta) || after.MetaEpoch != before.MetaEpoch {
		t.Fatalf("after the refused commits: head %d, meta %x at epoch %d; want head 1 and the metadata unchanged", after.HeadSeq, after.Meta, after.MetaEpoch)
	}
	// Without metadata, the same leave goes through.
	send(w.reader, nil, []coffer.Op{{Kind: coffer.OpLeave, Member: w.reader.acct.ID}}).Check(t, 204, "")
}
