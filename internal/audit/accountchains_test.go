package audit_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

func post(t *testing.T, url string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d", url, resp.StatusCode)
	}
}

// chainStory registers two suite v2 accounts on srv over HTTP and runs
// each through every kind of link.
func chainStory(t *testing.T, srv *cofferdtest.Server) []*accounttest.Account {
	t.Helper()
	var out []*accounttest.Account
	for _, h := range []string{"alice", "bob"} {
		a := accounttest.MustAccount(t, srv.URL(), h)
		g := api.FromLink(a.Links[0])
		post(t, srv.URL()+"/v1/accounts", api.RegisterRequest{Identity: a.State.Identity().Marshal(), SelfSignature: a.SelfSignature(), Genesis: &g})
		push := func(sl coffer.SignedLink, rotates bool) {
			a.Push(sl)
			req := api.AppendLinkRequest{Link: api.FromLink(sl)}
			if rotates {
				req.SelfSignature = a.SelfSignature()
			}
			post(t, srv.URL()+"/v1/accounts/"+a.ID.String()+"/links", req)
		}
		push(a.AddDevice(a.Device(0), accounttest.MustDevice(t)), false)
		push(a.AddDevice(a.Device(1), accounttest.MustDevice(t)), false)
		push(a.Revoke(a.Device(0), a.Device(1)), true)
		push(a.Rotate(a.Device(1)), true)
		push(a.SetRecovery(a.Device(0)), false)
		out = append(out, a)
	}
	waitLogged(t, srv)
	return out
}

func TestDBAccountChains(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	accounts := chainStory(t, srv)
	r := mustAudit(t, srv)
	if !r.Clean {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("audit of an honest database with account chains is not clean:\n%s", b.String())
	}
	// Two accounts of six links, three identities each.
	if r.Stats["account_chains"] != 2 || r.Stats["account_links"] != 12 || r.Stats["log_leaves"] != 18 {
		t.Fatalf("stats %v: want 2 chains, 12 links, 18 leaves", r.Stats)
	}

	a := accounts[0]
	db := mustConn(t, srv.DatabaseURL)
	ctx := t.Context()
	tamper := func(t *testing.T, undo func(), sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(undo)
	}
	restore := func(sql string, args ...any) func() {
		return func() {
			if _, err := db.Exec(ctx, sql, args...); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantFinding := func(t *testing.T, check, object, message string) {
		t.Helper()
		r := mustAudit(t, srv)
		for _, f := range r.Findings {
			if f.Check == check && strings.Contains(f.Object, object) && strings.Contains(f.Message, message) {
				return
			}
		}
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("no %s finding on %q saying %q:\n%s", check, object, message, b.String())
	}
	link := a.Links[2]

	t.Run("a link signed by someone else", func(t *testing.T) {
		forged := accounttest.MustDevice(t).Key.Sign(coffer.LabelAccountLink, link.Body)
		tamper(t, restore(`UPDATE account_links SET signature = $3 WHERE account_id = $1 AND seq = $2`, a.ID, 3, link.Signature),
			`UPDATE account_links SET signature = $3 WHERE account_id = $1 AND seq = $2`, a.ID, 3, forged)
		wantFinding(t, "account-chain", "link 3", "chain does not verify")
		wantFinding(t, "log", "log leaf", "differs from the account_links row")
	})
	t.Run("a link the server made up", func(t *testing.T) {
		d := accounttest.MustDevice(t)
		l := a.AddDeviceLink(d, d)
		l.Seq, l.Prev = 3, accounts[0].State.Head // any position: it has no valid author
		sl := coffer.SignLink(l, d.Key, d.Key)
		tamper(t, restore(`UPDATE account_links SET body = $3, signature = $4, device_signature = $5 WHERE account_id = $1 AND seq = $2`, a.ID, 3, link.Body, link.Signature, link.DeviceSignature),
			`UPDATE account_links SET body = $3, signature = $4, device_signature = $5 WHERE account_id = $1 AND seq = $2`, a.ID, 3, sl.Body, sl.Signature, sl.DeviceSignature)
		wantFinding(t, "account-chain", "link 3", "")
	})
	t.Run("an identity that is not the chain's", func(t *testing.T) {
		other := accounts[1].State.Identity().Marshal()
		var ident, sig []byte
		if err := db.QueryRow(ctx, `SELECT identity, self_signature FROM accounts WHERE id = $1`, a.ID).Scan(&ident, &sig); err != nil {
			t.Fatal(err)
		}
		tamper(t, restore(`UPDATE accounts SET identity = $2 WHERE id = $1`, a.ID, ident), `UPDATE accounts SET identity = $2 WHERE id = $1`, a.ID, other)
		wantFinding(t, "account-chain", a.ID.String(), "identity is not the one its chain sets")
	})
	t.Run("a head the chain does not reach", func(t *testing.T) {
		tamper(t, restore(`UPDATE accounts SET chain_seq = 6 WHERE id = $1`, a.ID), `UPDATE accounts SET chain_seq = 5 WHERE id = $1`, a.ID)
		wantFinding(t, "account-chain", a.ID.String(), "chain_seq is 5")
	})
	t.Run("a dropped link", func(t *testing.T) {
		var body, sig, dev, hash []byte
		var created any
		if err := db.QueryRow(ctx, `SELECT body, signature, device_signature, hash, created_at FROM account_links WHERE account_id = $1 AND seq = 2`, a.ID).
			Scan(&body, &sig, &dev, &hash, &created); err != nil {
			t.Fatal(err)
		}
		tamper(t, restore(`INSERT INTO account_links (account_id, seq, body, signature, device_signature, hash, created_at) VALUES ($1, 2, $2, $3, $4, $5, $6)`, a.ID, body, sig, dev, hash, created),
			`DELETE FROM account_links WHERE account_id = $1 AND seq = 2`, a.ID)
		wantFinding(t, "account-chain", "link 3", "not numbered")
	})
	// Every tamper was undone: clean again.
	if r := mustAudit(t, srv); !r.Clean {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("not clean after undoing the tampering:\n%s", b.String())
	}
}

// TestWitnessAccountChains: the auditor's witness mode replays account
// links and the identities of chain accounts from the log alone, and keeps
// the chains in its state between runs.
func TestWitnessAccountChains(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	state := t.TempDir()
	accounts := chainStory(t, srv)
	r := mustWitness(t, srv.URL(), state, srv.LogKey())
	wantClean(t, r)
	if r.Stats["account_link_entries"] != 12 || r.Stats["identity_entries"] != 6 {
		t.Fatalf("stats %v: want 12 account links and 6 identities", r.Stats)
	}
	a := accounts[0]
	sl := a.Rotate(a.Device(0))
	a.Push(sl)
	post(t, srv.URL()+"/v1/accounts/"+a.ID.String()+"/links", api.AppendLinkRequest{Link: api.FromLink(sl), SelfSignature: a.SelfSignature()})
	waitLogged(t, srv)
	r = mustWitness(t, srv.URL(), state, "")
	wantClean(t, r)
	if r.Stats["account_link_entries"] != 1 || r.Stats["identity_entries"] != 1 {
		t.Fatalf("second run %v: want 1 account link and 1 identity", r.Stats)
	}
}
