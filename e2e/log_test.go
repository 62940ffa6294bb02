package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/audit"
)

// TestLogViewsAgree: every client of an honest server, and a witness,
// hold checkpoints that the others accept.
func TestLogViewsAgree(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, bob := MustClient(t, srv, "alice"), MustClient(t, srv, "bob")
	g := mustGroup(t, alice, "g", nil)
	mustAdd(t, alice, bob, g, coffer.RoleWriter)
	if _, err := bob.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if w, err := audit.Witness(ctx, audit.WitnessOptions{Server: srv.URL(), StateDir: state, LogKey: srv.LogKey()}); err != nil || !w.Clean {
		t.Fatalf("witness: %v", err)
	}
	witnessed, err := audit.WitnessCheckpoint(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Rotate(ctx, g); err != nil { // the log grows after the witness ran
		t.Fatal(err)
	}
	if _, err := bob.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	na, _ := alice.Checkpoint()
	nb, _ := bob.Checkpoint()
	for _, check := range []struct {
		c    *clientlib.Client
		note string
	}{{alice, nb}, {bob, na}, {alice, witnessed}, {bob, witnessed}} {
		if err := check.c.CheckCheckpoint(ctx, check.note); err != nil {
			t.Fatalf("%s: %v", check.c.Identity().Handle(), err)
		}
	}
}

// TestLogWithheldCommitRefused plays a server that shows a member a
// commit it never put in the transparency log (here a commit, validly
// signed with the owner's stolen keys, written straight into the
// database). The client does not accept it.
func TestLogWithheldCommitRefused(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	owner, ownerKS := newClient(t, srv, "owner", nil)
	reader, _ := newClient(t, srv, "reader", &clientlib.Options{LogWait: 300 * time.Millisecond})
	g := mustGroup(t, owner, "g", nil)
	mustAdd(t, owner, reader, g, coffer.RoleReader)
	res, err := reader.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	s := res.State
	kc, _ := s.KeyCommitment(s.Epoch)
	c := &coffer.Commit{Group: g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch, Author: owner.AccountID(),
		Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, KeyCommitment: kc,
		Ops: []coffer.Op{{Kind: coffer.OpSetRole, Member: reader.AccountID(), Role: coffer.RoleWriter}}}
	sc := coffer.SignCommit(c, signingKeyOf(t, ownerKS))
	db := mustDB(t, srv)
	h := sc.Hash()
	mustExec(t, db, `INSERT INTO commits (group_id, seq, body, signature, hash, author_id, epoch, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())`, g, int64(c.Seq), sc.Body, sc.Signature, h[:], c.Author, int64(c.Epoch))
	mustExec(t, db, `UPDATE groups SET head_seq = $2, head_hash = $3 WHERE id = $1`, g, int64(c.Seq), h[:])

	_, err = reader.Sync(ctx, g)
	if err == nil {
		t.Fatal("the reader accepted a commit that is not in the log")
	}
	after, err2 := reader.Sync(ctx, g)
	if err2 == nil && after.State.Seq == c.Seq {
		t.Fatal("the reader stored a state with the unlogged commit")
	}
	// The auditor sees it too.
	r, err := audit.DB(ctx, srv.DatabaseURL(), audit.DBOptions{LogKey: srv.LogKey()})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range r.Findings {
		found = found || f.Check == "log"
	}
	if !found {
		t.Fatalf("the db audit missed the unlogged commit:\n%s", reportText(r))
	}
}
