package server_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/userkey"
	"github.com/cofferhq/coffer/server"
)

// Suite v2 groups on the server: commits name member keys by hash and are
// signed with hybrid keys; the server resolves the keys from the member
// keys it stores and accepts an add or update-key only with the named
// account's current keys.

// v2Account is a suite v2 account registered on the test server, logged in.
type v2Account struct {
	*accounttest.Account
	token string
}

func mustV2Account(t *testing.T, ts *testServer, handle string) *v2Account {
	t.Helper()
	a, tok := MustRegisterChain(t, ts, handle)
	return &v2Account{a, tok.AccessToken}
}

// rotate appends a rotate-user-key link and logs in again (a rotation ends
// every session).
func (a *v2Account) rotate(t *testing.T, ts *testServer) {
	t.Helper()
	mustAppend(t, ts, a.Account, a.Rotate(a.Device(0)))
	r, tok := login(t, ts, a.Account)
	r.Check(t, http.StatusOK, "")
	a.token = tok.AccessToken
}

func addOpV2(a *accounttest.Account, k *coffer.MemberKeys, role coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpAdd, Member: a.ID, Handle: a.State.Handle, KeysHash: k.Hash(), Role: role}
}

// v2Group is a client's view of a suite v2 group: its verified state, the
// epoch key and the key each member's wraps go to.
type v2Group struct {
	ts    *testServer
	id    coffer.GroupID
	state *coffer.GroupState // nil before the genesis
	keys  coffer.MemberKeyMap
	k     groupkey.EpochKey
	enc   map[coffer.AccountID][]byte
}

func newV2Group(ts *testServer, known ...*coffer.MemberKeys) *v2Group {
	g := &v2Group{ts: ts, id: coffer.NewGroupID(), keys: coffer.MemberKeyMap{}, enc: map[coffer.AccountID][]byte{}}
	for _, k := range known {
		g.keys.Add(k)
	}
	return g
}

// v2Commit is a built commit with the request that carries it.
type v2Commit struct {
	sc  coffer.SignedCommit
	req api.CommitRequest
	k   groupkey.EpochKey
	enc map[coffer.AccountID][]byte
}

// signer signs a built commit; hybrid is what an honest client does.
type signer func(c *coffer.Commit) coffer.SignedCommit

func hybrid(k *coffer.HybridPrivateKey) signer {
	return func(c *coffer.Commit) coffer.SignedCommit { return coffer.SignCommitHybrid(c, k) }
}

// build makes the next commit by author with ops, with a real wrap for
// every member that needs one (each to the keys its op names, when the
// group knows them) and a real history link on a rotation.
func (g *v2Group) build(t *testing.T, author coffer.AccountID, sign signer, ops ...coffer.Op) *v2Commit {
	t.Helper()
	c := &coffer.Commit{Group: g.id, Seq: 1, Epoch: 1, Author: author, Time: time.Now().UnixMilli(), ShareHistory: true, Ops: ops}
	genesis := g.state == nil
	if !genesis {
		c.Seq, c.Prev, c.Epoch = g.state.Seq+1, g.state.Head, g.state.Epoch
	}
	enc := maps.Clone(g.enc)
	rotates := genesis
	var added []coffer.AccountID
	for _, op := range ops {
		switch op.Kind {
		case coffer.OpAdd, coffer.OpUpdateKey:
			enc[op.Member] = spareEncryptionKey
			if k := g.keys[op.KeysHash]; k != nil {
				enc[op.Member] = k.EncryptionKey
			}
			if op.Kind == coffer.OpAdd {
				added = append(added, op.Member)
			}
		case coffer.OpRemove, coffer.OpLeave:
			delete(enc, op.Member)
		case coffer.OpRotate:
			rotates = true
		}
	}
	k := g.k
	if rotates {
		k = groupkey.NewEpochKey()
		if !genesis {
			c.Epoch++
		}
	}
	c.KeyCommitment = groupkey.Commitment(k, g.id, c.Epoch)
	sc := sign(c)
	vc := &v2Commit{sc: sc, k: k, enc: enc, req: api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature}}}
	wrapTo := added
	if rotates {
		wrapTo = wrapTo[:0]
		for id := range enc {
			wrapTo = append(wrapTo, id)
		}
	}
	for _, id := range wrapTo {
		w, err := groupkey.Wrap(enc[id], g.id, c.Epoch, id, k)
		if err != nil {
			t.Fatal(err)
		}
		vc.req.Wraps = append(vc.req.Wraps, api.Wrap{Member: id, Epoch: c.Epoch, Wrap: w})
	}
	if rotates && !genesis {
		vc.req.Links = []api.HistoryLink{{Epoch: c.Epoch - 1, Link: groupkey.SealHistoryLink(k, g.id, c.Epoch-1, g.k)}}
	}
	return vc
}

func (g *v2Group) path() string { return "/v1/groups/" + g.id.String() + "/commits" }

// send posts vc as token: to /v1/groups before the genesis is stored.
func (g *v2Group) send(t *testing.T, token string, vc *v2Commit) *response {
	t.Helper()
	if g.state == nil {
		return g.ts.Do(t, http.MethodPost, "/v1/groups", token, vc.req)
	}
	return g.ts.Do(t, http.MethodPost, g.path(), token, vc.req)
}

// accept verifies vc locally, as a client does, after the server took it.
func (g *v2Group) accept(t *testing.T, vc *v2Commit) {
	t.Helper()
	if g.state == nil {
		s, err := coffer.VerifyChainWith(nil, []coffer.SignedCommit{vc.sc}, g.keys)
		if err != nil {
			t.Fatalf("the server took a genesis the verifier refuses: %v", err)
		}
		g.state = s
	} else if err := g.state.ApplyWith(vc.sc, g.keys); err != nil {
		t.Fatalf("the server took a commit the verifier refuses: %v", err)
	}
	g.k, g.enc = vc.k, vc.enc
}

// mustCommit sends vc and expects 201 (204 when the author left).
func (g *v2Group) mustCommit(t *testing.T, token string, vc *v2Commit) {
	t.Helper()
	r := g.send(t, token, vc)
	if r.Status != http.StatusNoContent {
		r.Check(t, http.StatusCreated, "")
	}
	g.accept(t, vc)
}

// refused sends vc, expects the problem, and checks that the group's head
// did not move.
func (g *v2Group) refused(t *testing.T, token string, vc *v2Commit, status int, code coffer.Code, rule string) {
	t.Helper()
	p := g.send(t, token, vc).Check(t, status, code)
	if p.Rule != rule {
		t.Fatalf("rule %q (%s), want %q", p.Rule, p.Detail, rule)
	}
	if g.state == nil {
		var n int
		if err := g.ts.Pool.QueryRow(t.Context(), `SELECT count(*) FROM groups WHERE id = $1`, g.id).Scan(&n); err != nil || n != 0 {
			t.Fatalf("a refused genesis left %d groups (%v)", n, err)
		}
		return
	}
	var head int64
	if err := g.ts.Pool.QueryRow(t.Context(), `SELECT head_seq FROM groups WHERE id = $1`, g.id).Scan(&head); err != nil {
		t.Fatal(err)
	}
	if uint64(head) != g.state.Seq {
		t.Fatalf("head %d after a refused commit, want %d", head, g.state.Seq)
	}
}

// spareEncryptionKey is a valid X-Wing key no account has, for wraps to
// keys the test does not know.
var spareEncryptionKey = func() []byte {
	k, err := userkey.Generate()
	if err != nil {
		panic(err)
	}
	return k.PublicKey().Bytes()
}()

// randomKeys are keys for account a that no link published: a fresh
// hybrid key and X-Wing key at the account's current generation.
func randomKeys(t *testing.T, a *accounttest.Account) (*coffer.MemberKeys, *coffer.HybridPrivateKey) {
	t.Helper()
	seed := make([]byte, 32)
	rand.Read(seed)
	sk, err := coffer.NewHybridKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	k := *a.MemberKeys()
	k.SigningKey, k.EncryptionKey = sk.Public(), spareEncryptionKey
	return &k, sk
}

// ed25519Only signs a suite v2 commit with the Ed25519 half of k alone.
func ed25519Only(k *coffer.HybridPrivateKey) signer {
	return func(c *coffer.Commit) coffer.SignedCommit {
		c.Suite = coffer.SuiteV2
		body := c.Marshal()
		return coffer.SignedCommit{Body: body, Signature: coffer.Sign(k.Ed25519PrivateKey(), coffer.LabelCommit, body)}
	}
}

// ed25519PaddedOnly is a hybrid-sized signature whose Ed25519 half is
// valid and whose ML-DSA half is zero.
func ed25519PaddedOnly(k *coffer.HybridPrivateKey) signer {
	return func(c *coffer.Commit) coffer.SignedCommit {
		sc := ed25519Only(k)(c)
		sc.Signature = append(sc.Signature, make([]byte, coffer.HybridSignatureSize-len(sc.Signature))...)
		return sc
	}
}

// mldsaFromOther keeps the Ed25519 half of k's signature and takes the
// ML-DSA half from other's.
func mldsaFromOther(k, other *coffer.HybridPrivateKey) signer {
	return func(c *coffer.Commit) coffer.SignedCommit {
		sc := coffer.SignCommitHybrid(c, k)
		o := coffer.SignCommitHybrid(c, other)
		sc.Signature = append(sc.Signature[:64:64], o.Signature[64:]...)
		return sc
	}
}

func TestSuiteV2Groups(t *testing.T) {
	ts := MustServer(t)
	alice, bob, carol, dave := mustV2Account(t, ts, "alice"), mustV2Account(t, ts, "bob"),
		mustV2Account(t, ts, "carol"), mustV2Account(t, ts, "dave")
	v1, v1acct, v1tok := MustAccount(t, ts, "victor")

	// Retired generations: alice's, bob's and carol's first keys, after a
	// rotation each.
	aliceOld, aliceOldKey := alice.MemberKeys(), alice.HybridKey()
	alice.rotate(t, ts)
	bobOld := bob.MemberKeys()
	bob.rotate(t, ts)
	carolOld := carol.MemberKeys()
	carol.rotate(t, ts)
	known := []*coffer.MemberKeys{alice.MemberKeys(), aliceOld, bob.MemberKeys(), bobOld, carol.MemberKeys(), carolOld, dave.MemberKeys()}

	t.Run("genesis refused", func(t *testing.T) {
		fake, fakeKey := randomKeys(t, alice.Account)
		other := func(m *coffer.MemberKeys) *coffer.MemberKeys { k := *m; k.Handle = "alice"; return &k }
		for _, tc := range []struct {
			name   string
			token  string
			author coffer.AccountID
			sign   signer
			ops    []coffer.Op
			status int
			code   coffer.Code
			rule   string
		}{
			{"by another account than the caller", alice.token, bob.ID, hybrid(bob.HybridKey()),
				[]coffer.Op{addOpV2(bob.Account, bob.MemberKeys(), coffer.RoleOwner)}, 403, coffer.EFORBIDDEN, ""},
			{"the author's retired generation", alice.token, alice.ID, hybrid(aliceOldKey),
				[]coffer.Op{addOpV2(alice.Account, aliceOld, coffer.RoleOwner)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"keys no link published", alice.token, alice.ID, hybrid(fakeKey),
				[]coffer.Op{addOpV2(alice.Account, fake, coffer.RoleOwner)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"another account's keys for the author", alice.token, alice.ID, hybrid(bob.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, bob.MemberKeys(), coffer.RoleOwner)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"another account's keys relabelled with the author's handle", alice.token, alice.ID, hybrid(bob.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, other(bob.MemberKeys()), coffer.RoleOwner)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"Ed25519 half only", alice.token, alice.ID, ed25519Only(alice.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner)}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"Ed25519 half and a zero ML-DSA half", alice.token, alice.ID, ed25519PaddedOnly(alice.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner)}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"ML-DSA half of another key", alice.token, alice.ID, mldsaFromOther(alice.HybridKey(), bob.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner)}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"signed by another account", alice.token, alice.ID, hybrid(bob.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner)}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"the author's keys under another handle", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{{Kind: coffer.OpAdd, Member: alice.ID, Handle: "bob", KeysHash: alice.MemberKeys().Hash(), Role: coffer.RoleOwner}}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"first adds another account", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{addOpV2(bob.Account, bob.MemberKeys(), coffer.RoleOwner), addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner)}, 400, coffer.EINVALID, coffer.RuleGenesis},
			{"adds a member's retired generation", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner), addOpV2(bob.Account, bobOld, coffer.RoleWriter)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"adds a member under another account's keys", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner), addOpV2(bob.Account, dave.MemberKeys(), coffer.RoleWriter)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"adds a member under another handle", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner),
					{Kind: coffer.OpAdd, Member: bob.ID, Handle: "dave", KeysHash: bob.MemberKeys().Hash(), Role: coffer.RoleWriter}}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"adds a suite v1 account", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner),
					{Kind: coffer.OpAdd, Member: v1acct.ID, Handle: v1acct.Handle, KeysHash: fake.Hash(), Role: coffer.RoleWriter}}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g := newV2Group(ts, append(known, fake, other(bob.MemberKeys()))...)
				g.refused(t, tc.token, g.build(t, tc.author, tc.sign, tc.ops...), tc.status, tc.code, tc.rule)
			})
		}
		t.Run("by a suite v1 account", func(t *testing.T) {
			// It has no member keys at all.
			k, sk := randomKeys(t, alice.Account)
			k.Account, k.Handle = v1acct.ID, v1acct.Handle
			g := newV2Group(ts, k)
			vc := g.build(t, v1acct.ID, hybrid(sk), coffer.Op{Kind: coffer.OpAdd, Member: v1acct.ID, Handle: v1acct.Handle, KeysHash: k.Hash(), Role: coffer.RoleOwner})
			g.refused(t, v1tok.AccessToken, vc, 409, coffer.ECONFLICT, coffer.RuleMemberKeys)
		})
	})

	// The group: alice (owner) and bob (writer), at their current keys.
	g := newV2Group(ts, known...)
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()),
		addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner), addOpV2(bob.Account, bob.MemberKeys(), coffer.RoleWriter)))

	t.Run("append refused", func(t *testing.T) {
		fake, _ := randomKeys(t, carol.Account)
		g.keys.Add(fake)
		addCarol := func(k *coffer.MemberKeys) coffer.Op { return addOpV2(carol.Account, k, coffer.RoleReader) }
		for _, tc := range []struct {
			name   string
			token  string
			author coffer.AccountID
			sign   signer
			ops    []coffer.Op
			status int
			code   coffer.Code
			rule   string
		}{
			{"add with unknown keys", alice.token, alice.ID, hybrid(alice.HybridKey()), []coffer.Op{addCarol(fake)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"add with another account's keys", alice.token, alice.ID, hybrid(alice.HybridKey()), []coffer.Op{addCarol(dave.MemberKeys())}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"add with a retired generation", alice.token, alice.ID, hybrid(alice.HybridKey()), []coffer.Op{addCarol(carolOld)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"add with a retired generation and a rotation", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{addCarol(carolOld), {Kind: coffer.OpRotate}}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"add under another handle", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{{Kind: coffer.OpAdd, Member: carol.ID, Handle: "dave", KeysHash: carol.MemberKeys().Hash(), Role: coffer.RoleReader}}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"two adds, the second retired", alice.token, alice.ID, hybrid(alice.HybridKey()),
				[]coffer.Op{addOpV2(dave.Account, dave.MemberKeys(), coffer.RoleReader), addCarol(carolOld)}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"Ed25519 half only", alice.token, alice.ID, ed25519Only(alice.HybridKey()), []coffer.Op{addCarol(carol.MemberKeys())}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"Ed25519 half and a zero ML-DSA half", alice.token, alice.ID, ed25519PaddedOnly(alice.HybridKey()), []coffer.Op{addCarol(carol.MemberKeys())}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"ML-DSA half of another key", alice.token, alice.ID, mldsaFromOther(alice.HybridKey(), bob.HybridKey()), []coffer.Op{addCarol(carol.MemberKeys())}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"signed by a member for another", alice.token, alice.ID, hybrid(bob.HybridKey()), []coffer.Op{addCarol(carol.MemberKeys())}, 400, coffer.EINVALID, coffer.RuleSignature},
			{"authored for another account", bob.token, alice.ID, hybrid(alice.HybridKey()), []coffer.Op{addCarol(carol.MemberKeys())}, 403, coffer.EFORBIDDEN, ""},
			{"self-update to a retired generation", bob.token, bob.ID, hybrid(bob.HybridKey()),
				[]coffer.Op{{Kind: coffer.OpUpdateKey, Member: bob.ID, KeysHash: bobOld.Hash()}, {Kind: coffer.OpRotate}}, 400, coffer.EINVALID, coffer.RuleKeyReuse},
			{"self-update to another account's keys", bob.token, bob.ID, hybrid(bob.HybridKey()),
				[]coffer.Op{{Kind: coffer.OpUpdateKey, Member: bob.ID, KeysHash: dave.MemberKeys().Hash()}, {Kind: coffer.OpRotate}}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
			{"self-update to keys no link published", bob.token, bob.ID, hybrid(bob.HybridKey()),
				[]coffer.Op{{Kind: coffer.OpUpdateKey, Member: bob.ID, KeysHash: fake.Hash()}, {Kind: coffer.OpRotate}}, 409, coffer.ECONFLICT, coffer.RuleMemberKeys},
		} {
			t.Run(tc.name, func(t *testing.T) {
				g.refused(t, tc.token, g.build(t, tc.author, tc.sign, tc.ops...), tc.status, tc.code, tc.rule)
			})
		}
		t.Run("retired generation with streamed wraps", func(t *testing.T) {
			// The wraps of a large rotation go to the store as they arrive:
			// the keys are checked in that transaction too, before them.
			defer server.SetStreamWrapsFrom(1)()
			vc := g.build(t, alice.ID, hybrid(alice.HybridKey()), addCarol(carolOld), coffer.Op{Kind: coffer.OpRotate})
			g.refused(t, alice.token, vc, 409, coffer.ECONFLICT, coffer.RuleMemberKeys)
			vc = g.build(t, alice.ID, hybrid(alice.HybridKey()), addCarol(dave.MemberKeys()), coffer.Op{Kind: coffer.OpRotate})
			g.refused(t, alice.token, vc, 409, coffer.ECONFLICT, coffer.RuleMemberKeys)
		})
		t.Run("suite v1 commit", func(t *testing.T) {
			c := &coffer.Commit{Group: g.id, Seq: g.state.Seq + 1, Prev: g.state.Head, Epoch: g.state.Epoch, Author: alice.ID,
				Time: time.Now().UnixMilli(), ShareHistory: true, KeyCommitment: groupkey.Commitment(g.k, g.id, g.state.Epoch),
				Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: v1acct.ID, Handle: v1acct.Handle, Role: coffer.RoleReader,
					SigningKey: v1.Public.SigningKey, EncryptionKey: v1.Public.EncryptionKey}}}
			sc := coffer.SignCommit(c, alice.HybridKey().Ed25519PrivateKey())
			w, err := groupkey.Wrap(v1.Public.EncryptionKey, g.id, c.Epoch, v1acct.ID, g.k)
			if err != nil {
				t.Fatal(err)
			}
			vc := &v2Commit{sc: sc, req: api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature},
				Wraps: []api.Wrap{{Member: v1acct.ID, Epoch: c.Epoch, Wrap: w}}}}
			g.refused(t, alice.token, vc, 400, coffer.EINVALID, coffer.RuleVersion)
		})
	})

	// Accepted: adds and self-updates at current keys, over stored states
	// (each append verifies against the checkpoint the last one stored).
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()), addOpV2(carol.Account, carol.MemberKeys(), coffer.RoleReader)))
	bobKey := bob.HybridKey()
	bob.rotate(t, ts)
	g.keys.Add(bob.MemberKeys())
	t.Run("signed with the author's retired keys", func(t *testing.T) {
		// Bob's entry names his retired keys: they sign his self-update and
		// nothing else (a revoked device holds them).
		g.refused(t, bob.token, g.build(t, bob.ID, hybrid(bobKey), coffer.Op{Kind: coffer.OpLeave, Member: bob.ID}),
			409, coffer.ECONFLICT, coffer.RuleMemberKeys)
		// Signed with his new keys, it fails the verifier, which checks the
		// keys the entry names.
		g.refused(t, bob.token, g.build(t, bob.ID, hybrid(bob.HybridKey()), coffer.Op{Kind: coffer.OpLeave, Member: bob.ID}),
			400, coffer.EINVALID, coffer.RuleSignature)
	})
	// Bob's entry still names his retired keys until his self-update: only
	// what names or signs with keys must be current, so the group goes on.
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()), addOpV2(dave.Account, dave.MemberKeys(), coffer.RoleReader)))
	// Bob's self-update is signed with the keys his entry names (his
	// previous generation) and moves to his current ones.
	g.mustCommit(t, bob.token, g.build(t, bob.ID, hybrid(bobKey),
		coffer.Op{Kind: coffer.OpUpdateKey, Member: bob.ID, KeysHash: bob.MemberKeys().Hash()}, coffer.Op{Kind: coffer.OpRotate}))
	// Bob then writes with his new keys.
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()),
		coffer.Op{Kind: coffer.OpSetRole, Member: dave.ID, Role: coffer.RoleWriter}))
	g.mustCommit(t, dave.token, g.build(t, dave.ID, hybrid(dave.HybridKey()), coffer.Op{Kind: coffer.OpLeave, Member: dave.ID}))

	// The owner rotates: her retired keys sign only her self-update, and
	// her new ones everything after it.
	aliceKey := alice.HybridKey()
	alice.rotate(t, ts)
	g.keys.Add(alice.MemberKeys())
	rotate := coffer.Op{Kind: coffer.OpRotate}
	g.refused(t, alice.token, g.build(t, alice.ID, hybrid(aliceKey), rotate), 409, coffer.ECONFLICT, coffer.RuleMemberKeys)
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(aliceKey),
		coffer.Op{Kind: coffer.OpUpdateKey, Member: alice.ID, KeysHash: alice.MemberKeys().Hash()}, rotate))
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()), coffer.Op{Kind: coffer.OpSetRole, Member: carol.ID, Role: coffer.RoleWriter}))

	// Members read the chain back and verify it with the server's keys.
	var list api.CommitList
	ts.Do(t, http.MethodGet, g.path(), carol.token, nil).Decode(t, &list)
	commits := make([]coffer.SignedCommit, len(list.Commits))
	for i, c := range list.Commits {
		commits[i] = coffer.SignedCommit{Body: c.Body, Signature: c.Signature}
	}
	var hashes [][32]byte
	for _, sc := range commits {
		c, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range c.Ops {
			if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
				hashes = append(hashes, op.KeysHash)
			}
		}
	}
	served := coffer.MemberKeyMap{}
	for _, enc := range lookupMemberKeys(t, ts, carol.token, hashes...) {
		k, err := coffer.ParseMemberKeys(enc)
		if err != nil {
			t.Fatal(err)
		}
		served.Add(k)
	}
	s, err := coffer.VerifyChainWith(nil, commits, served)
	if err != nil {
		t.Fatalf("the stored chain does not verify with the served keys: %v", err)
	}
	if s.Head != g.state.Head || s.Suite != coffer.SuiteV2 || len(s.Members) != 3 {
		t.Fatalf("stored chain: head %x, suite %d, %d members; want the client's head, suite 2, 3 members", s.Head[:8], s.Suite, len(s.Members))
	}
	var keys api.Keys
	ts.Do(t, http.MethodGet, "/v1/groups/"+g.id.String()+"/keys", bob.token, nil).Decode(t, &keys)
	for _, w := range keys.Wraps {
		if w.Epoch == g.state.Epoch {
			k, err := groupkey.Unwrap(bob.UserKey, g.id, w.Epoch, bob.ID, w.Wrap)
			if err != nil || !bytes.Equal(k[:], g.k[:]) {
				t.Fatalf("bob cannot open the current epoch's wrap with his current user key: %v", err)
			}
		}
	}
}

// TestSuiteV2GroupResources: a suite v2 group takes version 3 (hybrid)
// resource headers, checked under the author's hybrid key that its entry's
// keys hash names, and refuses Ed25519 (version 2) headers, a hybrid
// header by another key, one cut to its Ed25519 half, and a version 3
// header in a suite v1 group; its signed deletes are Ed25519 under the
// half the entry names.
func TestSuiteV2GroupResources(t *testing.T) {
	ts := MustServer(t, withResources(t, nil))
	alice := mustV2Account(t, ts, "alice")
	bob := mustV2Account(t, ts, "bob")
	g := newV2Group(ts, alice.MemberKeys())
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()), addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner)))

	m := member{id: &testIdentity{Key: alice.HybridKey().Ed25519PrivateKey(), Public: alice.State.Identity()}, acct: api.Account{ID: alice.ID}, token: alice.token}
	w := &resourceWorld{ts: ts, c: &openAPIChecker{doc: MustOpenAPI(t)}, g: g.id, owner: m}
	data := []byte("ciphertext")
	id := coffer.NewResourceID()
	up := w.start(t, m, id)
	w.put(t, m, up, data, 200)
	hybridReq := func(key *coffer.HybridPrivateKey, edit func(*api.FinalizeRequest)) api.FinalizeRequest {
		req := finalizeRequest(m, up, data, nil)
		h, err := coffer.ParseResourceHeader(req.Header.Body)
		if err != nil {
			t.Fatal(err)
		}
		sh := coffer.SignResourceHeaderHybrid(h, key)
		req.Header = api.SignedHeader{Body: sh.Body, Signature: sh.Signature}
		if edit != nil {
			edit(&req)
		}
		return req
	}
	for name, req := range map[string]api.FinalizeRequest{
		"an Ed25519 (version 2) header":  finalizeRequest(m, up, data, nil),
		"a hybrid header by bob's key":   hybridReq(bob.HybridKey(), nil),
		"a hybrid header cut to Ed25519": hybridReq(alice.HybridKey(), func(r *api.FinalizeRequest) { r.Header.Signature = r.Header.Signature[:64] }),
		"a hybrid header, ML-DSA half flipped": hybridReq(alice.HybridKey(), func(r *api.FinalizeRequest) {
			r.Header.Signature = bytes.Clone(r.Header.Signature)
			r.Header.Signature[100] ^= 1
		}),
	} {
		if p := w.finalize(t, m, up, req, 400).Problem(t); p.Code != string(coffer.EINVALID) {
			t.Fatalf("%s: problem %s %q", name, p.Code, p.Detail)
		}
	}
	w.finalize(t, m, up, hybridReq(alice.HybridKey(), nil), 201)

	// Deletes: the group's suite fixes the tombstone's version, and a
	// suite v2 tombstone verifies under both halves of the deleter's key.
	hybridDelete := func(key *coffer.HybridPrivateKey, edit func(*coffer.SignedDelete)) io.Reader {
		sd := coffer.SignResourceDeleteHybrid(&coffer.ResourceDelete{Group: w.g, Resource: id, Version: 1, Deleter: alice.ID}, key)
		if edit != nil {
			edit(&sd)
		}
		b, err := json.Marshal(api.DeleteResourceRequest{Delete: api.SignedHeader{Body: sd.Body, Signature: sd.Signature}})
		if err != nil {
			t.Fatal(err)
		}
		return bytes.NewReader(b)
	}
	for name, body := range map[string]io.Reader{
		"an Ed25519 (suite v1) tombstone by the deleter's Ed25519 half": w.deleteBody(t, m, id, 1),
		"a hybrid tombstone by bob's key":                               hybridDelete(bob.HybridKey(), nil),
		"a hybrid tombstone cut to Ed25519":                             hybridDelete(alice.HybridKey(), func(sd *coffer.SignedDelete) { sd.Signature = sd.Signature[:64] }),
		"a hybrid tombstone, ML-DSA half flipped": hybridDelete(alice.HybridKey(), func(sd *coffer.SignedDelete) {
			sd.Signature = bytes.Clone(sd.Signature)
			sd.Signature[100] ^= 1
		}),
		"a hybrid tombstone, Ed25519 half flipped": hybridDelete(alice.HybridKey(), func(sd *coffer.SignedDelete) {
			sd.Signature = bytes.Clone(sd.Signature)
			sd.Signature[10] ^= 1
		}),
		"a suite v1 body under a hybrid signature": hybridDelete(alice.HybridKey(), func(sd *coffer.SignedDelete) {
			sd.Body = bytes.Clone(sd.Body)
			sd.Body[0] = coffer.ResourceDeleteSuite
		}),
	} {
		if p := w.exchange(t, w.req(t, m, "DELETE", w.resourcePath(id), body), resourceT, 400).Problem(t); p.Code != string(coffer.EINVALID) {
			t.Fatalf("%s: problem %s %q", name, p.Code, p.Detail)
		}
	}
	w.exchange(t, w.req(t, m, "DELETE", w.resourcePath(id), hybridDelete(alice.HybridKey(), nil)), resourceT, 204)
}

// TestSuiteV2AddWaitsForRotation: the current-keys check holds the added
// account's row against a rotation in flight. An add that arrives while a
// rotation of the member's key is being stored waits for it and then sees
// the new generation, so it cannot store a wrap to the key being retired.
func TestSuiteV2AddWaitsForRotation(t *testing.T) {
	ts := MustServer(t)
	alice, carol := mustV2Account(t, ts, "alice"), mustV2Account(t, ts, "carol")
	g := newV2Group(ts, alice.MemberKeys(), carol.MemberKeys())
	g.mustCommit(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()), addOpV2(alice.Account, alice.MemberKeys(), coffer.RoleOwner)))

	// A rotation of carol's key, half stored: the accounts row updated and
	// the next generation's keys written, not yet committed.
	ctx := t.Context()
	tx, err := ts.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE accounts SET chain_seq = chain_seq + 1 WHERE id = $1`, carol.ID); err != nil {
		t.Fatal(err)
	}
	next, _ := randomKeys(t, carol.Account)
	next.Generation++
	h := next.Hash()
	if _, err := tx.Exec(ctx, `INSERT INTO member_keys (hash, account_id, generation, keys) VALUES ($1, $2, $3, $4)`,
		h[:], carol.ID, int64(next.Generation), next.Marshal()); err != nil {
		t.Fatal(err)
	}

	vc := g.build(t, alice.ID, hybrid(alice.HybridKey()), addOpV2(carol.Account, carol.MemberKeys(), coffer.RoleReader))
	done := make(chan *response, 1)
	go func() { done <- g.send(t, alice.token, vc) }()
	for waiting := false; !waiting; {
		select {
		case r := <-done:
			t.Fatalf("the add did not wait for the rotation in flight: %d %s", r.Status, r.Body)
		default:
		}
		if err := ts.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR SHARE%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p := (<-done).Check(t, 409, coffer.ECONFLICT)
	if p.Rule != coffer.RuleMemberKeys {
		t.Fatalf("rule %q (%s), want %q", p.Rule, p.Detail, coffer.RuleMemberKeys)
	}
}

// TestSuiteV2AccountInSuiteV1Group: a suite v2 account still creates and
// writes suite v1 groups with its suite v1 identity (the Ed25519 half of
// its user signing key), and a suite v2 commit in a suite v1 group is
// refused (rule version), as is the reverse (TestSuiteV2Groups).
func TestSuiteV2AccountInSuiteV1Group(t *testing.T) {
	ts := MustServer(t)
	alice, bob := mustV2Account(t, ts, "alice"), mustV2Account(t, ts, "bob")
	gid, k := coffer.NewGroupID(), groupkey.NewEpochKey()
	id := alice.State.Identity()
	c := &coffer.Commit{Group: gid, Seq: 1, Epoch: 1, Author: alice.ID, Time: time.Now().UnixMilli(), ShareHistory: true,
		KeyCommitment: groupkey.Commitment(k, gid, 1), Ops: []coffer.Op{{Kind: coffer.OpAdd, Member: alice.ID, Handle: id.Handle,
			Role: coffer.RoleOwner, SigningKey: id.SigningKey, EncryptionKey: id.EncryptionKey}}}
	sc := coffer.SignCommit(c, alice.HybridKey().Ed25519PrivateKey())
	w, err := groupkey.Wrap(id.EncryptionKey, gid, 1, alice.ID, k)
	if err != nil {
		t.Fatal(err)
	}
	ts.Do(t, http.MethodPost, "/v1/groups", alice.token, api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature},
		Wraps: []api.Wrap{{Member: alice.ID, Epoch: 1, Wrap: w}}}).Check(t, http.StatusCreated, "")

	// The same group seen as suite v2 by a client that builds on it.
	g := newV2Group(ts, alice.MemberKeys(), bob.MemberKeys())
	g.id, g.k, g.enc = gid, k, map[coffer.AccountID][]byte{alice.ID: id.EncryptionKey}
	g.state, err = coffer.VerifyChain(nil, []coffer.SignedCommit{sc})
	if err != nil {
		t.Fatal(err)
	}
	g.refused(t, alice.token, g.build(t, alice.ID, hybrid(alice.HybridKey()), addOpV2(bob.Account, bob.MemberKeys(), coffer.RoleReader)),
		400, coffer.EINVALID, coffer.RuleVersion)
}
