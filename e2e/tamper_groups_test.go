package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// These tests play the malicious server: they change the database under a
// running cofferd, or put a lying proxy in front of it, and require
// clientlib to refuse with a *coffer.SecurityError.

type tamperFixture struct {
	srv               *Server
	db                *pgx.Conn
	alice, bob, carol *clientlib.Client
	aliceKS, carolKS  *clientlib.MemoryKeyStore
	g                 coffer.GroupID
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	f := &tamperFixture{srv: MustServer(t)}
	f.alice, f.aliceKS = newClient(t, f.srv, "alice", nil)
	f.bob = MustClient(t, f.srv, "bob")
	f.carol, f.carolKS = newClient(t, f.srv, "carol", nil)
	f.g = mustGroup(t, f.alice, "tamper", nil)
	mustAdd(t, f.alice, f.bob, f.g, coffer.RoleWriter)
	mustAdd(t, f.alice, f.carol, f.g, coffer.RoleReader)
	for _, c := range []*clientlib.Client{f.alice, f.bob, f.carol} {
		mustEpoch(t, c, f.g) // everyone has verified the honest chain
	}
	f.db = mustDB(t, f.srv)
	return f
}

// chain returns the verified state of the stored chain, as the attacker
// sees it.
func (f *tamperFixture) chain(t *testing.T) *coffer.GroupState {
	t.Helper()
	rows, err := f.db.Query(context.Background(), `SELECT body, signature FROM commits WHERE group_id = $1 ORDER BY seq`, f.g)
	if err != nil {
		t.Fatal(err)
	}
	commits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.SignedCommit, error) {
		var sc coffer.SignedCommit
		return sc, r.Scan(&sc.Body, &sc.Signature)
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := coffer.VerifyChain(nil, commits)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// inject stores sc as the new head, bypassing the server's verifier.
func (f *tamperFixture) inject(t *testing.T, sc coffer.SignedCommit) {
	t.Helper()
	c, err := coffer.ParseCommit(sc.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := sc.Hash()
	mustExec(t, f.db, `INSERT INTO commits (group_id, seq, body, signature, hash, author_id, epoch, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now())`, f.g, c.Seq, sc.Body, sc.Signature, h[:], c.Author, c.Epoch)
	mustExec(t, f.db, `UPDATE groups SET head_seq = $2, head_hash = $3 WHERE id = $1`, f.g, c.Seq, h[:])
}

func ghostAdd(s *coffer.GroupState, author coffer.AccountID) *coffer.Commit {
	ghost, _ := clientlib.GenerateIdentity("ghost")
	kc, _ := s.KeyCommitment(s.Epoch)
	return &coffer.Commit{
		Group: s.Group, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch, Author: author,
		Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, KeyCommitment: kc,
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: coffer.NewAccountID(), Handle: "ghost", Role: coffer.RoleAdmin,
			SigningKey: ghost.Public().SigningKey, EncryptionKey: ghost.Public().EncryptionKey}},
	}
}

func TestTamperSwappedWraps(t *testing.T) {
	f := newTamperFixture(t)
	mustExec(t, f.db, `UPDATE wrapped_keys w SET wrap = o.wrap FROM wrapped_keys o
		WHERE w.group_id = $1 AND o.group_id = $1 AND w.epoch = 1 AND o.epoch = 1
		AND ((w.member_id = $2 AND o.member_id = $3) OR (w.member_id = $3 AND o.member_id = $2))`,
		f.g, f.alice.AccountID(), f.carol.AccountID())
	_, err := f.carol.CurrentEpoch(context.Background(), f.g)
	wantSecurity(t, err)
	_, err = f.alice.CurrentEpoch(context.Background(), f.g)
	wantSecurity(t, err)
}

func TestTamperWrapOfDifferentKey(t *testing.T) {
	f := newTamperFixture(t)
	// A perfectly valid wrap, for the right member, group and epoch, of a
	// key the server chose: only the signed key commitment catches it.
	forged, err := groupkey.Wrap(f.carol.Identity().Public().EncryptionKey, f.g, 1, f.carol.AccountID(), groupkey.NewEpochKey())
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `UPDATE wrapped_keys SET wrap = $3 WHERE group_id = $1 AND member_id = $2 AND epoch = 1`,
		f.g, f.carol.AccountID(), forged)
	_, err = f.carol.CurrentEpoch(context.Background(), f.g)
	wantSecurity(t, err)
}

func TestTamperGhostMemberUnknownKey(t *testing.T) {
	f := newTamperFixture(t)
	s := f.chain(t)
	_, stranger, _ := ed25519.GenerateKey(nil)
	f.inject(t, coffer.SignCommit(ghostAdd(s, coffer.NewAccountID()), stranger))
	_, err := f.alice.Sync(context.Background(), f.g)
	wantSecurity(t, err)
	// Even signed with an unknown key claiming to be the owner.
	_, err = f.bob.Sync(context.Background(), f.g)
	wantSecurity(t, err)
}

func TestTamperGhostMemberForgedOwner(t *testing.T) {
	f := newTamperFixture(t)
	s := f.chain(t)
	_, stranger, _ := ed25519.GenerateKey(nil)
	f.inject(t, coffer.SignCommit(ghostAdd(s, f.alice.AccountID()), stranger))
	_, err := f.bob.Sync(context.Background(), f.g)
	wantSecurity(t, err)
}

func TestTamperGhostMemberByReader(t *testing.T) {
	f := newTamperFixture(t)
	s := f.chain(t)
	// carol's own, real key: she is a member, but only a reader.
	f.inject(t, coffer.SignCommit(ghostAdd(s, f.carol.AccountID()), signingKeyOf(t, f.carolKS)))
	_, err := f.alice.Sync(context.Background(), f.g)
	wantSecurity(t, err)
}

func TestTamperDroppedNewestCommit(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	s := f.chain(t) // seq 3: genesis, add bob, add carol
	var prevHash []byte
	if err := f.db.QueryRow(ctx, `SELECT hash FROM commits WHERE group_id = $1 AND seq = $2`, f.g, s.Seq-1).Scan(&prevHash); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.db, `DELETE FROM commits WHERE group_id = $1 AND seq = $2`, f.g, s.Seq)
	mustExec(t, f.db, `UPDATE groups SET head_seq = $2, head_hash = $3 WHERE id = $1`, f.g, s.Seq-1, prevHash)
	_, err := f.alice.Sync(ctx, f.g)
	wantSecurity(t, err)
	// A client that never saw the dropped commit cannot tell, which is why
	// the transparency log exists; a fresh client verifies what it gets.
}

func TestTamperForkedChain(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	s := f.chain(t)
	var body []byte
	if err := f.db.QueryRow(ctx, `SELECT body FROM commits WHERE group_id = $1 AND seq = $2`, f.g, s.Seq).Scan(&body); err != nil {
		t.Fatal(err)
	}
	// The fork: a different, validly signed commit at the same seq (as if
	// alice's other device had made it, shown only to some clients).
	c, err := coffer.ParseCommit(body)
	if err != nil {
		t.Fatal(err)
	}
	c.Time++
	fork := coffer.SignCommit(c, signingKeyOf(t, f.aliceKS))
	h := fork.Hash()
	mustExec(t, f.db, `UPDATE commits SET body = $3, signature = $4, hash = $5 WHERE group_id = $1 AND seq = $2`,
		f.g, s.Seq, fork.Body, fork.Signature, h[:])
	mustExec(t, f.db, `UPDATE groups SET head_hash = $2 WHERE id = $1`, f.g, h[:])
	_, err = f.carol.Sync(ctx, f.g)
	wantSecurity(t, err)

	// A fork below the verified head shows up as a broken prev link.
	next := coffer.SignCommit(ghostAdd(&coffer.GroupState{Group: f.g, Seq: s.Seq, Head: h, Epoch: s.Epoch, ShareHistory: s.ShareHistory}, f.alice.AccountID()), signingKeyOf(t, f.aliceKS))
	f.inject(t, next)
	_, err = f.bob.Sync(ctx, f.g)
	wantSecurity(t, err)
}

// lyingProxy forwards to the server but lets a test rewrite responses.
func lyingProxy(t *testing.T, srv *Server, rewrite func(r *http.Request, body []byte) []byte) string {
	t.Helper()
	return lyingProxyAccepting(t, srv, "", rewrite)
}

// lyingProxyAccepting is lyingProxy asking the server with Accept: accept
// in place of the client's, when accept is not empty: a proxy that asks
// for JSON only gets JSON answers to alter, as from a server that predates
// the compact encodings.
func lyingProxyAccepting(t *testing.T, srv *Server, accept string, rewrite func(r *http.Request, body []byte) []byte) string {
	t.Helper()
	target, _ := url.Parse(srv.URL())
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // as NewSingleHostReverseProxy leaves it
		if accept != "" {
			pr.Out.Header.Set("Accept", accept)
		}
	}}
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		body = rewrite(resp.Request, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	ps := httptest.NewServer(rp)
	t.Cleanup(ps.Close)
	return ps.URL
}

func TestTamperSubstitutedKeyInLookup(t *testing.T) {
	ctx := context.Background()
	srv := MustServer(t)
	alice, aliceKS := newClient(t, srv, "alice", nil)
	bob := MustClient(t, srv, "bob")
	mustVerify(t, alice, bob)
	g := mustGroup(t, alice, "g", nil)

	// The server substitutes its own keys for bob's, self-signed and with
	// bob's handle, so every check but the out-of-band one passes.
	evil, _ := clientlib.GenerateIdentity("bob")
	proxyURL := lyingProxy(t, srv, func(r *http.Request, body []byte) []byte {
		if !strings.HasPrefix(r.URL.Path, "/v1/handles/bob") {
			return body
		}
		var a api.Account
		if err := json.Unmarshal(body, &a); err != nil {
			return body
		}
		a.Identity, a.SelfSignature = evil.Public().Marshal(), evil.SelfSignature()
		out, _ := json.Marshal(a)
		return out
	})
	// alice's same device, talking through the lying server; its stored
	// refresh token logs it in without a new origin-bound signature.
	viaProxy, err := clientlib.New(proxyURL, aliceKS, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Caught twice over: the substituted identity is not in the
	// transparency log, and its keys differ from the ones alice verified.
	err = viaProxy.AddMember(ctx, g, "bob", coffer.RoleWriter)
	wantSecurity(t, err)
	members, err := alice.Members(ctx, g)
	if err != nil || len(members) != 1 {
		t.Fatalf("after the refused add the group has %d members (err %v), want 1", len(members), err)
	}
	// Through the honest server, the verified keys are served again and
	// the add goes through.
	if err := alice.AddMember(ctx, g, "bob", coffer.RoleWriter); err != nil {
		t.Fatalf("honest add after the substitution attempt: %v", err)
	}
}

// TestTamperSubstitutedMemberUnderNewID: the server, with a stolen admin
// key (or an admin trusting on first use), puts a second "bob" in the log
// under a new account id and the attacker's keys. The chain is valid and
// logged, so only this device's verified contact can tell: bob shows as
// changed, and a rotation refuses to wrap the new key for him.
func TestTamperSubstitutedMemberUnderNewID(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	mustExec(t, f.db, `UPDATE group_members SET role = 3 WHERE group_id = $1 AND account_id = $2`, f.g, f.carol.AccountID())
	// Promote carol to admin the honest way, then use her key as the thief.
	s := f.chain(t)
	kc, _ := s.KeyCommitment(s.Epoch)
	promote := &coffer.Commit{Group: f.g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch, Author: f.alice.AccountID(),
		Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, KeyCommitment: kc,
		Ops: []coffer.Op{{Kind: coffer.OpSetRole, Member: f.carol.AccountID(), Role: coffer.RoleAdmin}}}
	f.inject(t, coffer.SignCommit(promote, signingKeyOf(t, f.aliceKS)))
	if err := s.Apply(coffer.SignCommit(promote, signingKeyOf(t, f.aliceKS))); err != nil {
		t.Fatal(err)
	}
	// Remove the real bob with a complete, valid rotation (wraps for alice
	// and carol, a history link), as carol's stolen keys allow.
	var w1 []byte
	if err := f.db.QueryRow(ctx, `SELECT wrap FROM wrapped_keys WHERE group_id = $1 AND member_id = $2 AND epoch = 1`,
		f.g, f.carol.AccountID()).Scan(&w1); err != nil {
		t.Fatal(err)
	}
	k1, err := groupkey.Unwrap(decryptionKeyOf(t, f.carolKS), f.g, 1, f.carol.AccountID(), w1)
	if err != nil {
		t.Fatal(err)
	}
	k2 := groupkey.NewEpochKey()
	newKC := groupkey.Commitment(k2, f.g, 2)
	swap := &coffer.Commit{Group: f.g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch + 1, Author: f.carol.AccountID(),
		Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, KeyCommitment: newKC,
		Ops: []coffer.Op{
			{Kind: coffer.OpRemove, Member: f.bob.AccountID()},
			{Kind: coffer.OpRotate},
		}}
	f.inject(t, coffer.SignCommit(swap, signingKeyOf(t, f.carolKS)))
	for _, m := range []*clientlib.Client{f.alice, f.carol} {
		w, err := groupkey.Wrap(m.Identity().Public().EncryptionKey, f.g, 2, m.AccountID(), k2)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, f.db, `INSERT INTO wrapped_keys (group_id, epoch, member_id, wrap) VALUES ($1, 2, $2, $3)`, f.g, m.AccountID(), w)
	}
	mustExec(t, f.db, `INSERT INTO history_links (group_id, epoch, link) VALUES ($1, 1, $2)`, f.g, groupkey.SealHistoryLink(k2, f.g, 1, k1))
	// The impostor, under a fresh account id and the attacker's keys.
	evil, _ := clientlib.GenerateIdentity("bob")
	if err := s.Apply(coffer.SignCommit(swap, signingKeyOf(t, f.carolKS))); err != nil {
		t.Fatal(err)
	}
	add := &coffer.Commit{Group: f.g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch, Author: f.carol.AccountID(),
		Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, KeyCommitment: newKC,
		Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: coffer.NewAccountID(), Handle: "bob", Role: coffer.RoleWriter,
			SigningKey: evil.Public().SigningKey, EncryptionKey: evil.Public().EncryptionKey}}}
	f.inject(t, coffer.SignCommit(add, signingKeyOf(t, f.carolKS)))
	mustBackfillLog(t, f.srv)

	res, err := f.alice.Sync(ctx, f.g)
	if err != nil {
		t.Fatalf("the chain itself is valid and logged: %v", err)
	}
	var flagged bool
	for _, m := range res.Unverified {
		if m.Handle == "bob" && m.Trust == clientlib.Changed {
			flagged = true
		}
	}
	if !flagged {
		t.Fatalf("the impostor bob is not reported as changed: %+v", res.Unverified)
	}
	// alice verified the real bob: the rotation must not wrap for the impostor.
	err = f.alice.Rotate(ctx, f.g)
	wantSecurity(t, err)
	if !strings.Contains(err.Error(), "differ from the keys you verified") {
		t.Fatalf("refused for another reason than the impostor's keys: %v", err)
	}
}
