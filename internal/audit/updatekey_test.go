package audit_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/translog"
)

// send makes a JSON request with a bearer token, requires wantStatus and
// decodes the answer into out (when not nil).
func send(t *testing.T, method, url, token string, body any, wantStatus int, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		var p api.Problem
		json.NewDecoder(resp.Body).Decode(&p)
		t.Fatalf("%s %s: %d %+v, want %d", method, url, resp.StatusCode, p, wantStatus)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// loginAs logs the suite v2 account in with its first current device.
func loginAs(t *testing.T, srv *cofferdtest.Server, a *accounttest.Account) string {
	t.Helper()
	var ch api.ChallengeResponse
	send(t, http.MethodPost, srv.URL()+"/v1/auth/challenge", "", api.ChallengeRequest{Handle: a.State.Handle}, http.StatusOK, &ch)
	d := a.Device(0)
	var tok api.Tokens
	send(t, http.MethodPost, srv.URL()+"/v1/auth/login", "", api.LoginRequest{AccountID: ch.AccountID, Origin: srv.URL(),
		Challenge: ch.Challenge, DeviceID: &d.ID, Signature: d.SignLogin(srv.URL(), ch.AccountID, ch.Challenge)}, http.StatusOK, &tok)
	return tok.AccessToken
}

// TestAuditsFollowSelfUpdates: a suite v2 account creates a group, rotates
// its user key and self-updates its entry (update-key plus a rotation,
// signed with the key before the rotation). coffer-audit db accepts the
// genesis's add of the retired identity and the update to the new one, and
// the auditor's witness accepts the self-update's signature by the retired
// key; a self-update to keys the account never logged is a finding of
// both.
func TestAuditsFollowSelfUpdates(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	a := accounttest.MustAccount(t, srv.URL(), "alice")
	genesis := api.FromLink(a.Links[0])
	post(t, srv.URL()+"/v1/accounts", api.RegisterRequest{Identity: a.State.Identity().Marshal(), SelfSignature: a.SelfSignature(), Genesis: &genesis})
	tok := loginAs(t, srv, a)
	oldKey, old := a.SigningKey(), a.State.Identity()

	g := coffer.NewGroupID()
	k1 := groupkey.NewEpochKey()
	c1 := &coffer.Commit{Group: g, Seq: 1, Epoch: 1, Author: a.ID, Time: time.Now().UnixMilli(), ShareHistory: true,
		KeyCommitment: groupkey.Commitment(k1, g, 1), Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: a.ID, Handle: old.Handle,
			Role: coffer.RoleOwner, SigningKey: old.SigningKey, EncryptionKey: old.EncryptionKey}}}
	sc1 := coffer.SignCommit(c1, oldKey)
	w1, err := groupkey.Wrap(old.EncryptionKey, g, 1, a.ID, k1)
	if err != nil {
		t.Fatal(err)
	}
	send(t, http.MethodPost, srv.URL()+"/v1/groups", tok, api.CommitRequest{Commit: api.SignedCommit{Body: sc1.Body, Signature: sc1.Signature},
		Wraps: []api.Wrap{{Member: a.ID, Epoch: 1, Wrap: w1}}}, http.StatusCreated, nil)

	rot := a.Rotate(a.Device(0))
	a.Push(rot)
	post(t, srv.URL()+"/v1/accounts/"+a.ID.String()+"/links", api.AppendLinkRequest{Link: api.FromLink(rot), SelfSignature: a.SelfSignature()})
	tok = loginAs(t, srv, a)
	next := a.State.Identity()

	selfUpdate := func(to coffer.PublicIdentity) (coffer.SignedCommit, api.CommitRequest) {
		k2 := groupkey.NewEpochKey()
		c2 := &coffer.Commit{Group: g, Seq: 2, Prev: sc1.Hash(), Epoch: 2, Author: a.ID, Time: time.Now().UnixMilli(), ShareHistory: true,
			KeyCommitment: groupkey.Commitment(k2, g, 2), Ops: []coffer.Op{
				{Kind: coffer.OpUpdateKey, Member: a.ID, SigningKey: to.SigningKey, EncryptionKey: to.EncryptionKey},
				{Kind: coffer.OpRotate}}}
		sc2 := coffer.SignCommit(c2, oldKey)
		w2, err := groupkey.Wrap(to.EncryptionKey, g, 2, a.ID, k2)
		if err != nil {
			t.Fatal(err)
		}
		return sc2, api.CommitRequest{Commit: api.SignedCommit{Body: sc2.Body, Signature: sc2.Signature},
			Wraps: []api.Wrap{{Member: a.ID, Epoch: 2, Wrap: w2}}, Links: []api.HistoryLink{{Epoch: 1, Link: groupkey.SealHistoryLink(k2, g, 1, k1)}}}
	}
	sc2, req := selfUpdate(next)
	send(t, http.MethodPost, srv.URL()+"/v1/groups/"+g.String()+"/commits", tok, req, http.StatusCreated, nil)
	waitLogged(t, srv)

	if r := mustAudit(t, srv); !r.Clean {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("coffer-audit db after a self-update is not clean:\n%s", b.String())
	}
	state := t.TempDir()
	wantClean(t, mustWitness(t, srv.URL(), state, srv.LogKey()))

	// The log gets a further self-update, signed with the current key, to
	// keys the account never logged: the auditor's witness finds it.
	stranger := accounttest.MustAccount(t, srv.URL(), "mallory").State.Identity()
	c3 := &coffer.Commit{Group: g, Seq: 3, Prev: sc2.Hash(), Epoch: 3, Author: a.ID, Time: time.Now().UnixMilli(), ShareHistory: true,
		KeyCommitment: [32]byte{3}, Ops: []coffer.Op{
			{Kind: coffer.OpUpdateKey, Member: a.ID, SigningKey: stranger.SigningKey, EncryptionKey: stranger.EncryptionKey},
			{Kind: coffer.OpRotate}}}
	leaf := translog.CommitLeaf(g, 3, coffer.SignCommit(c3, a.SigningKey()))
	hash := translog.RecordHash(leaf)
	db := mustConn(t, srv.DatabaseURL)
	if _, err := db.Exec(t.Context(), `INSERT INTO log_entries (leaf, leaf_hash, group_id, seq, created_at) VALUES ($1, $2, $3, $4, $5)`,
		leaf, hash[:], g, 3, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	waitLogged(t, srv)
	wantFinding(t, mustWitness(t, srv.URL(), state, ""), "witness", "not its logged identity")

	// A self-update to keys the account never had, put in the database and
	// the log behind the server's back (the server itself refuses it).
	forged, _ := selfUpdate(stranger)
	if _, err := db.Exec(t.Context(), `UPDATE commits SET body = $3, signature = $4, hash = $5 WHERE group_id = $1 AND seq = $2`,
		g, 2, forged.Body, forged.Signature, func() []byte { h := forged.Hash(); return h[:] }()); err != nil {
		t.Fatal(err)
	}
	r := mustAudit(t, srv)
	found := false
	for _, f := range r.Findings {
		found = found || f.Check == "chain" && strings.Contains(f.Message, "updates "+a.ID.String())
	}
	if !found {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("coffer-audit db does not find a self-update to keys the account never had:\n%s", b.String())
	}
}
