package audit_test

import (
	"context"
	"crypto/rand"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/accounttest"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/cofferdtest"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/translog"
)

// Suite v2 groups under coffer-audit: the db audit verifies their chains
// with the member keys of every user key of every verified account chain
// and checks every add's keys and the member_keys table against those
// chains; the auditor's witness checks each commit against the account
// chains as the log holds them at that point.

// v2Account is a suite v2 account registered on srv, logged in.
type v2Account struct {
	*accounttest.Account
	token string
}

func registerV2(t *testing.T, srv *cofferdtest.Server, handle string) *v2Account {
	t.Helper()
	a := accounttest.MustAccount(t, srv.URL(), handle)
	genesis := api.FromLink(a.Links[0])
	post(t, srv.URL()+"/v1/accounts", api.RegisterRequest{Identity: a.State.Identity().Marshal(), SelfSignature: a.SelfSignature(), Genesis: &genesis})
	return &v2Account{a, loginAs(t, srv, a)}
}

// rotate rotates a's user key and logs in again; it returns the keys and
// the signing key of the user key it retired.
func (a *v2Account) rotate(t *testing.T, srv *cofferdtest.Server) (*coffer.MemberKeys, *coffer.HybridPrivateKey) {
	t.Helper()
	old, oldKey := a.MemberKeys(), a.HybridKey()
	rot := a.Rotate(a.Device(0))
	a.Push(rot)
	post(t, srv.URL()+"/v1/accounts/"+a.ID.String()+"/links", api.AppendLinkRequest{Link: api.FromLink(rot), SelfSignature: a.SelfSignature()})
	a.token = loginAs(t, srv, a.Account)
	return old, oldKey
}

func v2Add(a *v2Account, k *coffer.MemberKeys, r coffer.Role) coffer.Op {
	return coffer.Op{Kind: coffer.OpAdd, Member: a.ID, Handle: a.State.Handle, KeysHash: k.Hash(), Role: r}
}

func v2Update(a *v2Account, k *coffer.MemberKeys) coffer.Op {
	return coffer.Op{Kind: coffer.OpUpdateKey, Member: a.ID, KeysHash: k.Hash()}
}

var v2Rotate = coffer.Op{Kind: coffer.OpRotate}

type commitSigner func(c *coffer.Commit) coffer.SignedCommit

func hybridSigner(k *coffer.HybridPrivateKey) commitSigner {
	return func(c *coffer.Commit) coffer.SignedCommit { return coffer.SignCommitHybrid(c, k) }
}

// v2Group builds a suite v2 group's commits with real wraps and history
// links, as a client does; keys holds every member key set it may name.
type v2Group struct {
	id    coffer.GroupID
	seq   uint64
	head  [32]byte
	epoch uint64
	k     groupkey.EpochKey
	enc   map[coffer.AccountID][]byte
	keys  coffer.MemberKeyMap
}

func newV2Group(keys coffer.MemberKeyMap) *v2Group {
	return &v2Group{id: coffer.NewGroupID(), enc: map[coffer.AccountID][]byte{}, keys: keys}
}

// v2Built is a built commit, the request that carries it, and what the
// group becomes once it is taken.
type v2Built struct {
	g     *v2Group
	sc    coffer.SignedCommit
	req   api.CommitRequest
	epoch uint64
	k     groupkey.EpochKey
	enc   map[coffer.AccountID][]byte
}

func (g *v2Group) build(t *testing.T, author coffer.AccountID, sign commitSigner, ops ...coffer.Op) *v2Built {
	t.Helper()
	genesis := g.seq == 0
	c := &coffer.Commit{Group: g.id, Seq: g.seq + 1, Prev: g.head, Epoch: max(g.epoch, 1), Author: author,
		Time: time.Now().UnixMilli(), ShareHistory: true, Ops: ops}
	enc := maps.Clone(g.enc)
	rotates := genesis
	var added []coffer.AccountID
	for _, op := range ops {
		switch op.Kind {
		case coffer.OpAdd, coffer.OpUpdateKey:
			if k := g.keys[op.KeysHash]; k != nil {
				enc[op.Member] = k.EncryptionKey
			} else {
				enc[op.Member] = accounttest.MustAccount(t, "https://spare.example:443", "spare").MemberKeys().EncryptionKey
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
	b := &v2Built{g: g, sc: sc, epoch: c.Epoch, k: k, enc: enc,
		req: api.CommitRequest{Commit: api.SignedCommit{Body: sc.Body, Signature: sc.Signature}}}
	wrapTo := added
	if rotates {
		wrapTo = nil
		for id := range enc {
			wrapTo = append(wrapTo, id)
		}
	}
	for _, id := range wrapTo {
		w, err := groupkey.Wrap(enc[id], g.id, c.Epoch, id, k)
		if err != nil {
			t.Fatal(err)
		}
		b.req.Wraps = append(b.req.Wraps, api.Wrap{Member: id, Epoch: c.Epoch, Wrap: w})
	}
	if rotates && !genesis {
		b.req.Links = []api.HistoryLink{{Epoch: c.Epoch - 1, Link: groupkey.SealHistoryLink(k, g.id, c.Epoch-1, g.k)}}
	}
	return b
}

// send has the server take b and advances the group.
func (b *v2Built) send(t *testing.T, srv *cofferdtest.Server, token string) {
	t.Helper()
	url := srv.URL() + "/v1/groups"
	if b.g.seq > 0 {
		url += "/" + b.g.id.String() + "/commits"
	}
	send(t, http.MethodPost, url, token, b.req, http.StatusCreated, nil)
	b.g.seq, b.g.head, b.g.epoch, b.g.k, b.g.enc = b.g.seq+1, b.sc.Hash(), b.epoch, b.k, b.enc
}

// leaf is b's log leaf, for a commit the server never took.
func (b *v2Built) leaf() []byte { return translog.CommitLeaf(b.g.id, b.g.seq+1, b.sc) }

// insertLeaf puts a log entry behind the server's back, as a server that
// logs what it did not store would.
func insertLeaf(t *testing.T, srv *cofferdtest.Server, b *v2Built) {
	t.Helper()
	leaf := b.leaf()
	hash := translog.RecordHash(leaf)
	if _, err := mustConn(t, srv.DatabaseURL).Exec(t.Context(), `INSERT INTO log_entries (leaf, leaf_hash, group_id, seq, created_at) VALUES ($1, $2, $3, $4, $5)`,
		leaf, hash[:], b.g.id, int64(b.g.seq+1), time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	waitLogged(t, srv)
}

// v2Story is an honest suite v2 group on srv: carol creates it and adds
// dave; dave rotates his user key and self-updates (signed with his
// retired key); carol adds erin, rotates, self-updates and removes erin.
type v2Story struct {
	srv               *cofferdtest.Server
	carol, dave, erin *v2Account
	keys              coffer.MemberKeyMap
	g                 *v2Group
	g2                *v2Group // carol's, which she does not self-update in
	// Retired keys, for the tampering that follows.
	carol1, dave1       *coffer.MemberKeys
	carolKey1, daveKey1 *coffer.HybridPrivateKey
}

func newV2Story(t *testing.T, opts *cofferdtest.Options) *v2Story {
	s := &v2Story{srv: cofferdtest.Start(t, opts), keys: coffer.MemberKeyMap{}}
	s.carol, s.dave, s.erin = registerV2(t, s.srv, "carol"), registerV2(t, s.srv, "dave"), registerV2(t, s.srv, "erin")
	for _, a := range []*v2Account{s.carol, s.dave, s.erin} {
		s.keys.Add(a.MemberKeys())
	}
	s.g = newV2Group(s.keys)
	carol, dave, erin := s.carol, s.dave, s.erin
	s.g2 = newV2Group(s.keys)
	s.g2.build(t, carol.ID, hybridSigner(carol.HybridKey()), v2Add(carol, carol.MemberKeys(), coffer.RoleOwner)).send(t, s.srv, carol.token)
	s.g.build(t, carol.ID, hybridSigner(carol.HybridKey()), v2Add(carol, carol.MemberKeys(), coffer.RoleOwner)).send(t, s.srv, carol.token)
	s.g.build(t, carol.ID, hybridSigner(carol.HybridKey()), v2Add(dave, dave.MemberKeys(), coffer.RoleAdmin)).send(t, s.srv, carol.token)

	s.dave1, s.daveKey1 = dave.rotate(t, s.srv)
	s.keys.Add(dave.MemberKeys())
	s.g.build(t, dave.ID, hybridSigner(s.daveKey1), v2Update(dave, dave.MemberKeys()), v2Rotate).send(t, s.srv, dave.token)
	s.g.build(t, carol.ID, hybridSigner(carol.HybridKey()), v2Add(erin, erin.MemberKeys(), coffer.RoleReader)).send(t, s.srv, carol.token)

	s.carol1, s.carolKey1 = carol.rotate(t, s.srv)
	s.keys.Add(carol.MemberKeys())
	s.g.build(t, carol.ID, hybridSigner(s.carolKey1), v2Update(carol, carol.MemberKeys()), v2Rotate).send(t, s.srv, carol.token)
	s.g.build(t, carol.ID, hybridSigner(carol.HybridKey()), coffer.Op{Kind: coffer.OpRemove, Member: erin.ID}, v2Rotate).send(t, s.srv, carol.token)
	waitLogged(t, s.srv)
	return s
}

// TestAuditSuiteV2Clean: coffer-audit db and the auditor's witness find
// nothing in honest suite v2 groups whose members rotated their user keys,
// across runs of the witness: a self-update signed with a user key retired
// before the last run still verifies.
func TestAuditSuiteV2Clean(t *testing.T) {
	s := newV2Story(t, nil)
	wantClean(t, mustAudit(t, s.srv))
	state := t.TempDir()
	wantClean(t, mustWitness(t, s.srv.URL(), state, s.srv.LogKey()))
	s.g2.build(t, s.carol.ID, hybridSigner(s.carolKey1), v2Update(s.carol, s.carol.MemberKeys()), v2Rotate).send(t, s.srv, s.carol.token)
	// A chain long enough for the verifier to check signatures on several
	// goroutines, each asking the audit's key source.
	for range 40 {
		s.g2.build(t, s.carol.ID, hybridSigner(s.carol.HybridKey()), v2Rotate).send(t, s.srv, s.carol.token)
	}
	waitLogged(t, s.srv)
	wantClean(t, mustWitness(t, s.srv.URL(), state, ""))
	r := mustAudit(t, s.srv)
	wantClean(t, r)
	if r.Stats["member_keys"] != 5 {
		t.Fatalf("the audit read %d member_keys rows, want 5 (three accounts, two rotations)", r.Stats["member_keys"])
	}
}

// randomMemberKeys are keys under a's id, handle and current generation
// that no link published.
func randomMemberKeys(t *testing.T, a *v2Account) (*coffer.MemberKeys, *coffer.HybridPrivateKey) {
	t.Helper()
	seed := make([]byte, 32)
	rand.Read(seed)
	sk, err := coffer.NewHybridKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	k := *a.MemberKeys()
	k.SigningKey = sk.Public()
	return &k, sk
}

// TestAuditSuiteV2DBTampering: each case rewrites the group's last commit
// (or adds a group, or a member_keys row) in the database; coffer-audit db
// reports it.
func TestAuditSuiteV2DBTampering(t *testing.T) {
	s := newV2Story(t, nil)
	db := mustConn(t, s.srv.DatabaseURL)
	// last rebuilds the group's last commit (seq 6, from the state after
	// commit 5) with other ops and signature.
	var lastRow struct{ body, sig, hash []byte }
	if err := db.QueryRow(t.Context(), `SELECT body, signature, hash FROM commits WHERE group_id = $1 AND seq = 6`, s.g.id).Scan(&lastRow.body, &lastRow.sig, &lastRow.hash); err != nil {
		t.Fatal(err)
	}
	prev, err := coffer.ParseCommit(lastRow.body)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(t *testing.T, sign commitSigner, ops ...coffer.Op) {
		t.Helper()
		c := *prev
		c.Ops = ops
		sc := sign(&c)
		h := sc.Hash()
		if _, err := db.Exec(t.Context(), `UPDATE commits SET body = $3, signature = $4, hash = $5 WHERE group_id = $1 AND seq = $2`,
			s.g.id, 6, sc.Body, sc.Signature, h[:]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := db.Exec(context.Background(), `UPDATE commits SET body = $3, signature = $4, hash = $5 WHERE group_id = $1 AND seq = $2`,
				s.g.id, 6, lastRow.body, lastRow.sig, lastRow.hash); err != nil {
				t.Error(err)
			}
		})
	}
	carolKey := func() commitSigner { return hybridSigner(s.carol.HybridKey()) }
	mallory := registerV2(t, s.srv, "mallory")
	cases := []struct {
		name        string
		tamper      func(t *testing.T)
		check, want string
	}{
		{"an add of another account's keys", func(t *testing.T) {
			rewrite(t, carolKey(), v2Add(mallory, s.erin.MemberKeys(), coffer.RoleReader), v2Rotate)
		}, "member-keys", "with the member keys of account " + s.erin.ID.String()},
		{"an add of keys that belong to no account", func(t *testing.T) {
			k, _ := randomMemberKeys(t, mallory)
			rewrite(t, carolKey(), v2Add(mallory, k, coffer.RoleReader), v2Rotate)
		}, "member-keys", "belong to no account"},
		{"an add of keys under another handle", func(t *testing.T) {
			op := v2Add(mallory, mallory.MemberKeys(), coffer.RoleReader)
			op.Handle = "someone"
			rewrite(t, carolKey(), op, v2Rotate)
		}, "member-keys", "name handle mallory"},
		{"a commit signed with the Ed25519 half alone", func(t *testing.T) {
			rewrite(t, func(c *coffer.Commit) coffer.SignedCommit {
				sc := coffer.SignCommitHybrid(c, s.carol.HybridKey())
				sc.Signature = sc.Signature[:64]
				return sc
			}, v2Rotate)
		}, "chain", "signature is 64 bytes"},
		{"a commit with a zero ML-DSA half", func(t *testing.T) {
			rewrite(t, func(c *coffer.Commit) coffer.SignedCommit {
				sc := coffer.SignCommitHybrid(c, s.carol.HybridKey())
				copy(sc.Signature[64:], make([]byte, len(sc.Signature)-64))
				return sc
			}, v2Rotate)
		}, "chain", "rule signature"},
		{"a commit signed with the author's retired key", func(t *testing.T) {
			rewrite(t, hybridSigner(s.carolKey1), v2Rotate)
		}, "chain", "rule signature"},
		{"an update-key to another account's keys", func(t *testing.T) {
			rewrite(t, carolKey(), v2Update(s.carol, s.dave.MemberKeys()), v2Rotate)
		}, "chain", "rule member-keys"},
		{"a suite v1 commit after a suite v2 genesis", func(t *testing.T) {
			key := s.carol.HybridKey().Ed25519PrivateKey()
			rewrite(t, func(c *coffer.Commit) coffer.SignedCommit { c.Suite = 0; return coffer.SignCommit(c, key) }, v2Rotate)
		}, "chain", "rule version"},
		{"a group whose author's keys no chain set", func(t *testing.T) {
			k, sk := randomMemberKeys(t, mallory)
			g := newV2Group(coffer.MemberKeyMap{})
			b := g.build(t, mallory.ID, hybridSigner(sk), v2Add(mallory, k, coffer.RoleOwner))
			h := b.sc.Hash()
			if _, err := db.Exec(t.Context(), `INSERT INTO groups (id, head_seq, head_hash, epoch, state, created_at, updated_at) VALUES ($1, 1, $2, 1, '\x00', now(), now())`,
				g.id, h[:]); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Exec(context.Background(), `DELETE FROM groups WHERE id = $1`, g.id) })
			if _, err := db.Exec(t.Context(), `INSERT INTO commits (group_id, seq, body, signature, hash, author_id, epoch, created_at) VALUES ($1, 1, $2, $3, $4, $5, 1, $6)`,
				g.id, b.sc.Body, b.sc.Signature, func() []byte { h := b.sc.Hash(); return h[:] }(), mallory.ID, time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Exec(context.Background(), `DELETE FROM commits WHERE group_id = $1`, g.id) })
		}, "chain", "rule member-keys"},
		{"a member_keys row no chain set", func(t *testing.T) {
			k, _ := randomMemberKeys(t, mallory)
			k.Generation = 7
			h := k.Hash()
			if _, err := db.Exec(t.Context(), `INSERT INTO member_keys (hash, account_id, generation, keys) VALUES ($1, $2, 7, $3)`, h[:], mallory.ID, k.Marshal()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Exec(context.Background(), `DELETE FROM member_keys WHERE hash = $1`, h[:]) })
		}, "member-keys", "keys that belong to no account"},
		{"a member_keys row under another hash", func(t *testing.T) {
			h := s.erin.MemberKeys().Hash()
			if _, err := db.Exec(t.Context(), `UPDATE member_keys SET keys = $2 WHERE hash = $1`, h[:], s.dave.MemberKeys().Marshal()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				db.Exec(context.Background(), `UPDATE member_keys SET keys = $2 WHERE hash = $1`, h[:], s.erin.MemberKeys().Marshal())
			})
		}, "member-keys", "hash is not the hash of the keys"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.tamper(t)
			wantFinding(t, mustAudit(t, s.srv), tc.check, tc.want)
		})
	}
	wantClean(t, mustAudit(t, s.srv))
}

// TestAuditSuiteV2LogTampering: each case is a suite v2 genesis the server
// logs without storing it; the auditor's witness (which replays the log in
// order) and the db audit (which checks a logged commit without a row
// against the author's account) report it.
func TestAuditSuiteV2LogTampering(t *testing.T) {
	s := newV2Story(t, nil)
	state := t.TempDir()
	wantClean(t, mustWitness(t, s.srv.URL(), state, s.srv.LogKey()))
	carol := s.carol
	carolKey := hybridSigner(carol.HybridKey())
	solo := v2Add(carol, carol.MemberKeys(), coffer.RoleOwner)
	mallory := registerV2(t, s.srv, "mallory")
	cases := []struct {
		name  string
		build func(t *testing.T) *v2Built
		want  string
		db    string // the db audit's finding, if any
	}{
		{"an add of an old generation after a rotation", func(t *testing.T) *v2Built {
			return newV2Group(s.keys).build(t, carol.ID, carolKey, solo, v2Add(s.dave, s.dave1, coffer.RoleReader))
		}, "which is not its current one", ""},
		{"an add of another account's keys", func(t *testing.T) *v2Built {
			return newV2Group(s.keys).build(t, carol.ID, carolKey, solo, v2Add(mallory, s.erin.MemberKeys(), coffer.RoleReader))
		}, "with the member keys of account " + s.erin.ID.String(), ""},
		{"an add of keys no chain set", func(t *testing.T) *v2Built {
			k, _ := randomMemberKeys(t, mallory)
			return newV2Group(s.keys).build(t, carol.ID, carolKey, solo, v2Add(mallory, k, coffer.RoleReader))
		}, "no logged account chain set", ""},
		{"a genesis signed with the author's retired key", func(t *testing.T) *v2Built {
			return newV2Group(s.keys).build(t, carol.ID, hybridSigner(s.carolKey1), v2Add(carol, s.carol1, coffer.RoleOwner))
		}, "retired user key", ""},
		{"a genesis by keys no chain set", func(t *testing.T) *v2Built {
			k, sk := randomMemberKeys(t, mallory)
			return newV2Group(s.keys).build(t, mallory.ID, hybridSigner(sk), v2Add(mallory, k, coffer.RoleOwner))
		}, "does not verify under the member keys of any logged user key", "commit signature does not verify under the member keys"},
		{"a genesis with a zero ML-DSA half", func(t *testing.T) *v2Built {
			return newV2Group(s.keys).build(t, carol.ID, func(c *coffer.Commit) coffer.SignedCommit {
				sc := coffer.SignCommitHybrid(c, carol.HybridKey())
				copy(sc.Signature[64:], make([]byte, len(sc.Signature)-64))
				return sc
			}, solo)
		}, "does not verify under the member keys of any logged user key", "commit signature does not verify under the member keys"},
		{"a genesis by another member's key", func(t *testing.T) *v2Built {
			return newV2Group(s.keys).build(t, carol.ID, hybridSigner(s.dave.HybridKey()), solo)
		}, "does not verify under the member keys of any logged user key", "commit signature does not verify under the member keys"},
	}
	dbBad := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.build(t)
			insertLeaf(t, s.srv, b)
			// The witness's state stays at the last clean run, so each
			// run sees every case so far: the finding must name this
			// case's group.
			r := mustWitness(t, s.srv.URL(), state, "")
			found := false
			for _, f := range r.Findings {
				found = found || f.Check == "witness" && strings.Contains(f.Message, "group "+b.g.id.String()) && strings.Contains(f.Message, tc.want)
			}
			if !found {
				var w strings.Builder
				r.WriteText(&w)
				t.Fatalf("no witness finding for group %s naming %q:\n%s", b.g.id, tc.want, w.String())
			}
			if tc.db == "" {
				return
			}
			dbBad++
			n := 0
			for _, f := range mustAudit(t, s.srv).Findings {
				if f.Check == "log" && strings.Contains(f.Message, tc.db) {
					n++
				}
			}
			if n != dbBad {
				t.Fatalf("coffer-audit db reports %d logged commits signed by no user key of their author, want %d", n, dbBad)
			}
		})
	}

	// A suite v1 commit after a suite v2 genesis, both logged without
	// being stored: the Ed25519 half of the author's key signs it, which
	// the suite v1 checks alone would take.
	g := newV2Group(s.keys)
	genesis := g.build(t, carol.ID, carolKey, solo)
	insertLeaf(t, s.srv, genesis)
	g.seq, g.head, g.epoch = 1, genesis.sc.Hash(), 1
	key := carol.HybridKey().Ed25519PrivateKey()
	v1 := g.build(t, carol.ID, func(c *coffer.Commit) coffer.SignedCommit { c.Suite = 0; return coffer.SignCommit(c, key) }, v2Rotate)
	insertLeaf(t, s.srv, v1)
	wantFinding(t, mustWitness(t, s.srv.URL(), state, ""), "witness", "commit 2 of group "+g.id.String()+" is of suite 1 in a group of suite 2")
}

// TestSuiteV2CosignedByServerWitness: the witness cofferd pushes to
// cosigns the log of an honest suite v2 story as the server logged it
// (leaves, hybrid signatures, member keys from the account links).
func TestSuiteV2CosignedByServerWitness(t *testing.T) {
	s := newV2Story(t, &cofferdtest.Options{Witnesses: 1})
	s.g2.build(t, s.carol.ID, hybridSigner(s.carolKey1), v2Update(s.carol, s.carol.MemberKeys()), v2Rotate).send(t, s.srv, s.carol.token)
	waitLogged(t, s.srv)
	v, err := translog.NewVerifier(s.srv.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (translog.Checkpoint, bool) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return translog.Checkpoint{}, false
		}
		cp, err := v.Open(string(b))
		return cp, err == nil
	}
	var logSize int64
	for range 500 {
		cp, ok := get(s.srv.URL() + "/v1/log/checkpoint")
		if ok && cp.Size > 0 {
			var pending int
			if err := mustConn(t, s.srv.DatabaseURL).QueryRow(t.Context(), `SELECT count(*) FROM log_entries`).Scan(&pending); err != nil {
				t.Fatal(err)
			}
			if cp.Size == int64(pending) {
				logSize = cp.Size
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if logSize == 0 {
		t.Fatal("the server's checkpoint never covered every log entry")
	}
	w := s.srv.Witnesses[0]
	var last int64
	for range 1000 {
		if cp, ok := get(w.URL + "/checkpoint"); ok {
			last = cp.Size
			if last == logSize {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the witness cosigned up to %d of the %d leaves of an honest suite v2 story", last, logSize)
}

// TestAuditSuiteV2ClientStory: suite v2 groups as clientlib makes them
// (hybrid resource headers, Ed25519-half deletes, a rotation with its
// self-update) leave coffer-audit db and the auditor's witness clean, and
// the witness cofferd pushes to cosigns every leaf, deletes included.
// v2Client is a clientlib client of a new suite v2 account on srv, whose
// groups are suite v2.
func v2Client(t *testing.T, srv *cofferdtest.Server, handle string) *clientlib.Client {
	t.Helper()
	c, err := clientlib.New(srv.URL(), clientlib.NewMemoryKeyStore(), &clientlib.Options{LogKey: srv.LogKey(), SuiteV2Groups: true, TrustOnFirstUse: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAccount(context.Background(), handle, "phone"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuditSuiteV2ClientStory(t *testing.T) {
	srv := cofferdtest.Start(t, &cofferdtest.Options{Witnesses: 1})
	ctx := context.Background()
	client := func(handle string) *clientlib.Client { return v2Client(t, srv, handle) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := client("alice"), client("bob")
	g, err := alice.CreateGroup(ctx, "v2", nil)
	must(err)
	must(alice.AddMember(ctx, g, "bob", coffer.RoleWriter))
	first, err := alice.Put(ctx, g, strings.NewReader("from alice"), clientlib.Meta{Name: "a"})
	must(err)
	fromBob, err := bob.Put(ctx, g, strings.NewReader("from bob"), clientlib.Meta{Name: "b"})
	must(err)
	must(bob.RotateUserKey(ctx))
	rotated, err := bob.Put(ctx, g, strings.NewReader("bob, rotated"), clientlib.Meta{Name: "c"})
	must(err)
	must(bob.Delete(ctx, g, fromBob.ID))
	must(alice.Delete(ctx, g, first.ID))
	res, err := alice.Sync(ctx, g)
	must(err)
	if res.State.Suite != coffer.SuiteV2 {
		t.Fatalf("the group is of suite %d", res.State.Suite)
	}
	waitLogged(t, srv)

	wantClean(t, mustAudit(t, srv))
	wantClean(t, mustWitness(t, srv.URL(), t.TempDir(), srv.LogKey()))
	waitCosigned(t, srv)

	// The remaining header's signature, with its ML-DSA half changed, then
	// cut to its Ed25519 half: each is a finding.
	db := mustConn(t, srv.DatabaseURL)
	var sig []byte
	if err := db.QueryRow(ctx, `SELECT header_signature FROM resources WHERE id = $1`, rotated.ID).Scan(&sig); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{
		append(append([]byte(nil), sig[:len(sig)-1]...), sig[len(sig)-1]^1),
		sig[:64],
	} {
		if _, err := db.Exec(ctx, `UPDATE resources SET header_signature = $2 WHERE id = $1`, rotated.ID, bad); err != nil {
			t.Fatal(err)
		}
		wantFinding(t, mustAudit(t, srv), "resource", "header signature does not verify under the author's hybrid key")
	}
}

// waitCosigned waits until the first witness of srv has cosigned every log
// entry.
func waitCosigned(t *testing.T, srv *cofferdtest.Server) {
	t.Helper()
	v, err := translog.NewVerifier(srv.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	var entries int64
	if err := mustConn(t, srv.DatabaseURL).QueryRow(t.Context(), `SELECT count(*) FROM log_entries`).Scan(&entries); err != nil {
		t.Fatal(err)
	}
	var last int64
	for range 1500 {
		resp, err := http.Get(srv.Witnesses[0].URL + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if cp, err := v.Open(string(b)); resp.StatusCode == http.StatusOK && err == nil {
			if last = cp.Size; last == entries {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the witness cosigned %d of %d log entries", last, entries)
}
