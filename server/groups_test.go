package server_test

import (
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// TestAddMustCarryRegisteredKeys: the server refuses a genesis that lists
// a registered account under keys its author controls, so it never stores
// a group that shows bob as a member holding someone else's keys.
func TestAddMustCarryRegisteredKeys(t *testing.T) {
	ts := MustServer(t)
	alice, aliceAcct, tok := MustAccount(t, ts, "alice")
	_, bobAcct, _ := MustAccount(t, ts, "bob")
	fake := MustIdentity(t, "bob") // alice's keys, bob's name

	genesis := func(ops ...coffer.Op) api.CommitRequest {
		g := coffer.NewGroupID()
		c := &coffer.Commit{Group: g, Seq: 1, Epoch: 1, Author: aliceAcct.ID, Time: time.Now().UnixMilli(), ShareHistory: true,
			Ops: append([]coffer.Op{{Kind: coffer.OpAdd, Member: aliceAcct.ID, Handle: "alice", Role: coffer.RoleOwner,
				SigningKey: alice.Public.SigningKey, EncryptionKey: alice.Public.EncryptionKey}}, ops...)}
		rand.Read(c.KeyCommitment[:])
		sc := coffer.SignCommit(c, alice.Key)
		req := api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature}}
		for _, op := range c.Ops {
			req.Wraps = append(req.Wraps, api.Wrap{Member: op.Member, Epoch: 1, Wrap: make([]byte, coffer.WrapSize)})
		}
		return req
	}
	for _, tt := range []struct {
		name string
		op   coffer.Op
	}{
		{"substituted keys", coffer.Op{Kind: coffer.OpAdd, Member: bobAcct.ID, Handle: "bob", Role: coffer.RoleReader,
			SigningKey: fake.Public.SigningKey, EncryptionKey: fake.Public.EncryptionKey}},
		{"unregistered account", coffer.Op{Kind: coffer.OpAdd, Member: coffer.NewAccountID(), Handle: "ghost", Role: coffer.RoleReader,
			SigningKey: fake.Public.SigningKey, EncryptionKey: fake.Public.EncryptionKey}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.Do(t, http.MethodPost, "/v1/groups", tok.AccessToken, genesis(tt.op))
			r.Check(t, http.StatusBadRequest, coffer.EINVALID)
		})
	}
	// The control: bob's real keys are accepted.
	bob := bobAcct
	id, err := coffer.ParsePublicIdentity(bob.Identity)
	if err != nil {
		t.Fatal(err)
	}
	r := ts.Do(t, http.MethodPost, "/v1/groups", tok.AccessToken, genesis(coffer.Op{Kind: coffer.OpAdd, Member: bob.ID, Handle: "bob",
		Role: coffer.RoleReader, SigningKey: id.SigningKey, EncryptionKey: id.EncryptionKey}))
	r.Check(t, http.StatusCreated, "")
}
