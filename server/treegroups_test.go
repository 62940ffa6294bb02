package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// treeGroup is a client's view of a tree group on the test server: the
// verified state, and each member's private tree view.
type treeGroup struct {
	ts    *testServer
	id    coffer.GroupID
	state *coffer.GroupState
	keys  coffer.MemberKeyMap
	accts map[coffer.AccountID]*v2Account
	views map[coffer.AccountID]*ratchettree.Member
	key   []byte // the epoch key the last tree commit derived
}

func newTreeGroup(ts *testServer, accts ...*v2Account) *treeGroup {
	g := &treeGroup{ts: ts, id: coffer.NewGroupID(), keys: coffer.MemberKeyMap{}, accts: map[coffer.AccountID]*v2Account{}, views: map[coffer.AccountID]*ratchettree.Member{}}
	for _, a := range accts {
		g.keys.Add(a.MemberKeys())
		g.accts[a.ID] = a
	}
	return g
}

// treeCommit is a built tree commit and its request.
type treeCommit struct {
	c       *coffer.Commit
	sc      coffer.SignedCommit
	full    *ratchettree.Commit
	secrets ratchettree.Secrets
	req     api.CommitRequest
}

// build makes author's next commit with ops; tree builds its tree part
// from the tree before it (t0 and leaf 0 for a tree's first commit).
func (g *treeGroup) build(t *testing.T, author *v2Account, start bool, spec *ratchettree.Spec, ops ...coffer.Op) *treeCommit {
	t.Helper()
	c := &coffer.Commit{Group: g.id, Seq: 1, Epoch: 1, Author: author.ID, Time: time.Now().UnixMilli(), Ops: ops}
	if g.state != nil {
		c.Seq, c.Prev, c.Epoch, c.ShareHistory = g.state.Seq+1, g.state.Head, g.state.Epoch, g.state.ShareHistory
		if c.Rotates() {
			c.Epoch++
		}
	}
	k := groupkey.NewEpochKey()
	c.KeyCommitment = groupkey.Commitment(k, g.id, c.Epoch)
	tc := &treeCommit{c: c}
	var err error
	switch {
	case start:
		leafKey := author.MemberKeys().EncryptionKey
		t0, _ := ratchettree.NewTree([][]byte{leafKey})
		if spec == nil {
			tc.full = &ratchettree.Commit{Leaves: 1, TreeHash: t0.Hash()}
		} else if tc.full, _, tc.secrets, err = ratchettree.Create(t0, coffer.TreeContext(c), 0, *spec); err != nil {
			t.Fatal(err)
		}
		c.Tree = &coffer.TreePart{Kind: coffer.TreeStart, StartKey: leafKey, Commit: tc.full.Detached()}
	case spec == nil:
		c.Tree = &coffer.TreePart{Kind: coffer.TreeNone}
	default:
		// The verified tree holds key digests; the committer fetches the
		// keys it seals to from the server, as clientlib does.
		spec.FetchKeys = g.fetchKeys(t, author)
		if tc.full, _, tc.secrets, err = ratchettree.Create(g.state.Tree, coffer.TreeContext(c), g.state.Members[author.ID].Leaf, *spec); err != nil {
			t.Fatal(err)
		}
		c.Tree = &coffer.TreePart{Kind: coffer.TreeChange, Commit: tc.full.Detached()}
	}
	tc.sc = coffer.SignCommitHybrid(c, author.HybridKey())
	tc.req = api.CommitRequest{Commit: api.SignedCommit{Body: tc.sc.Body, Signature: tc.sc.Signature}}
	if g.state == nil || c.Epoch != g.state.Epoch {
		w, err := groupkey.Wrap(author.MemberKeys().EncryptionKey, g.id, c.Epoch, author.ID, k)
		if err != nil {
			t.Fatal(err)
		}
		tc.req.Wraps = []api.Wrap{{Member: author.ID, Epoch: c.Epoch, Wrap: w}}
	}
	if g.state != nil && c.Epoch != g.state.Epoch && c.ShareHistory {
		// The older key under the new one (its bytes are the client's
		// business; the server wants one link per rotation).
		tc.req.Links = []api.HistoryLink{{Epoch: g.state.Epoch, Link: groupkey.SealHistoryLink(k, g.id, g.state.Epoch, groupkey.NewEpochKey())}}
	}
	if tc.full != nil {
		tc.req.TreeKeys = tc.full.Keys()
		for _, ct := range tc.full.Ciphertexts() {
			tc.req.TreeCiphertexts = append(tc.req.TreeCiphertexts, api.TreeCiphertext{Node: ct.Node, Recipient: ct.Recipient, Sealed: ct.Sealed})
		}
	}
	return tc
}

// fetchKeys gets node keys of the tree at the verified head from the
// server, as author.
func (g *treeGroup) fetchKeys(t *testing.T, author *v2Account) ratchettree.FetchKeys {
	return func(nodes []uint32) ([][]byte, error) {
		list := make([]string, len(nodes))
		for i, x := range nodes {
			list[i] = fmt.Sprint(x)
		}
		resp := g.ts.Do(t, http.MethodGet, fmt.Sprintf("/v1/groups/%s/tree-nodes?seq=%d&nodes=%s", g.id, g.state.Seq, strings.Join(list, ",")), author.token, nil)
		if resp.Status != http.StatusOK {
			return nil, fmt.Errorf("tree-nodes: status %d: %s", resp.Status, resp.Body)
		}
		var got api.TreeNodeKeys
		resp.Decode(t, &got)
		return got.Keys, nil
	}
}

func (g *treeGroup) send(t *testing.T, author *v2Account, req any) *response {
	t.Helper()
	if g.state == nil {
		return g.ts.Do(t, http.MethodPost, "/v1/groups", author.token, req)
	}
	return g.ts.Do(t, http.MethodPost, "/v1/groups/"+g.id.String()+"/commits", author.token, req)
}

// commit sends tc, expects 201, verifies it as a client does, and has
// every other member fetch its ciphertexts from the server and derive the
// committer's epoch key.
func (g *treeGroup) commit(t *testing.T, author *v2Account, tc *treeCommit) {
	t.Helper()
	g.send(t, author, tc.req).Check(t, http.StatusCreated, "")
	ns := new(coffer.GroupState)
	if g.state != nil {
		ns = g.state.Clone()
	}
	if err := ns.ApplyWith(tc.sc, g.keys); err != nil {
		t.Fatalf("the server took a commit the verifier refuses: %v", err)
	}
	g.state = ns
	if tc.full == nil || len(tc.secrets) == 0 {
		return
	}
	h := tc.sc.Hash()
	want := ratchettree.EpochKey(tc.secrets[ratchettree.Root(tc.full.Leaves)], h[:])
	for id, m := range ns.Members {
		v := g.views[id]
		if v == nil || v.Leaf != m.Leaf {
			v = ratchettree.NewMember(m.Leaf, g.accts[id].UserKey)
			g.views[id] = v
		}
		if id == author.ID {
			v.Adopt(tc.secrets, tc.full.Leaves)
			continue
		}
		cts := g.fetch(t, g.accts[id], tc.c.Seq)
		got, err := v.Receive(coffer.TreeContext(tc.c), tc.c.Tree.Commit.Attach(cts), h[:])
		if err != nil {
			t.Fatalf("%s receives commit %d: %v", m.Handle, tc.c.Seq, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s derived another key", m.Handle)
		}
		// O(log n): the server sends only the ciphertexts of its path.
		for _, ct := range cts {
			if !ratchettree.IsAncestor(ct.Recipient, ratchettree.LeafNode(m.Leaf)) {
				t.Fatalf("%s was served a ciphertext for node %d, not on its path", m.Handle, ct.Recipient)
			}
		}
	}
	g.key = want
}

func (g *treeGroup) fetch(t *testing.T, who *v2Account, seq uint64) []ratchettree.Ciphertext {
	t.Helper()
	r := g.ts.Do(t, http.MethodGet, fmt.Sprintf("/v1/groups/%s/commits/%d/tree-ciphertexts", g.id, seq), who.token, nil)
	r.Check(t, http.StatusOK, "")
	var list api.TreeCiphertextList
	if err := json.Unmarshal(r.Body, &list); err != nil {
		t.Fatal(err)
	}
	var out []ratchettree.Ciphertext
	for _, ct := range list.Ciphertexts {
		out = append(out, ratchettree.Ciphertext{Node: ct.Node, Recipient: ct.Recipient, Sealed: ct.Sealed})
	}
	return out
}

// refused sends req, expects the problem, and checks the head did not move.
func (g *treeGroup) refused(t *testing.T, author *v2Account, req any, status int, code coffer.Code, rule string) {
	t.Helper()
	p := g.send(t, author, req).Check(t, status, code)
	if p.Rule != rule {
		t.Fatalf("rule %q (%s), want %q", p.Rule, p.Detail, rule)
	}
	var head int64
	err := g.ts.Pool.QueryRow(t.Context(), `SELECT head_seq FROM groups WHERE id = $1`, g.id).Scan(&head)
	if g.state == nil {
		if err == nil {
			t.Fatal("a refused genesis left its group")
		}
		return
	}
	if err != nil || uint64(head) != g.state.Seq {
		t.Fatalf("head %d after a refused commit, want %d (%v)", head, g.state.Seq, err)
	}
}

// nodeRows is the stored tree: node → (key hash, row version).
func (g *treeGroup) nodeRows(t *testing.T) map[uint32][2]string {
	t.Helper()
	rows, err := g.ts.Pool.Query(t.Context(), `SELECT node, public_key, taint, xmin::text FROM tree_nodes WHERE group_id = $1`, g.id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[uint32][2]string{}
	for rows.Next() {
		var (
			node       int32
			key, taint []byte
			xmin       string
		)
		if err := rows.Scan(&node, &key, &taint, &xmin); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(append(key, taint...))
		out[uint32(node)] = [2]string{fmt.Sprintf("%x", h[:8]), xmin}
	}
	return out
}

func (g *treeGroup) req(tc *treeCommit, edit func(r *api.CommitRequest)) api.CommitRequest {
	r := tc.req
	r.TreeKeys = slices.Clone(r.TreeKeys)
	r.TreeCiphertexts = slices.Clone(r.TreeCiphertexts)
	r.Wraps = slices.Clone(r.Wraps)
	edit(&r)
	return r
}

// TestTreeGroupsServer: the server takes tree commits with the ciphertexts
// beside them, refuses a wrong set of them with the verifier's rules,
// stores the public tree one row per node and rewrites only the rows a
// commit changed, and serves each member the ciphertexts of its path.
func TestTreeGroupsServer(t *testing.T) {
	ts := MustServer(t)
	alice, bob, carol, dave := mustV2Account(t, ts, "alice"), mustV2Account(t, ts, "bob"),
		mustV2Account(t, ts, "carol"), mustV2Account(t, ts, "dave")
	add := func(a *v2Account, r coffer.Role) coffer.Op { return addOpV2(a.Account, a.MemberKeys(), r) }
	leaf := func(a *v2Account) ratchettree.LeafKey {
		return ratchettree.LeafKey{Key: a.MemberKeys().EncryptionKey}
	}
	at := func(k ratchettree.LeafKey, i uint32) ratchettree.LeafKey { k.Leaf = i; return k }

	g := newTreeGroup(ts, alice, bob, carol, dave)
	genesis := g.build(t, alice, true, &ratchettree.Spec{Adds: []ratchettree.LeafKey{at(leaf(bob), 1), at(leaf(carol), 2)}},
		add(alice, coffer.RoleOwner), add(bob, coffer.RoleAdmin), add(carol, coffer.RoleWriter))

	t.Run("genesis refused", func(t *testing.T) {
		g.refused(t, alice, g.req(genesis, func(r *api.CommitRequest) { r.TreeCiphertexts = r.TreeCiphertexts[1:] }), 400, coffer.EINVALID, string(ratchettree.RuleCiphertexts))
		g.refused(t, alice, g.req(genesis, func(r *api.CommitRequest) { r.Wraps = nil }), 400, coffer.EINVALID, "")
		// A leaf holding another member's key.
		bad := g.build(t, alice, true, &ratchettree.Spec{Adds: []ratchettree.LeafKey{at(leaf(carol), 1), at(leaf(bob), 2)}},
			add(alice, coffer.RoleOwner), add(bob, coffer.RoleAdmin), add(carol, coffer.RoleWriter))
		g.refused(t, alice, bad.req, 409, coffer.ECONFLICT, coffer.RuleMemberKeys)
	})
	g.commit(t, alice, genesis)
	if rows := g.nodeRows(t); len(rows) != 5 {
		t.Fatalf("%d stored nodes after a genesis of three (3 leaves, 2 parents)", len(rows))
	}
	var leaves int
	if err := ts.Pool.QueryRow(t.Context(), `SELECT count(*) FROM group_members WHERE group_id = $1 AND leaf IS NOT NULL`, g.id).Scan(&leaves); err != nil || leaves != 3 {
		t.Fatalf("%d members with a stored leaf (%v)", leaves, err)
	}

	// Dave joins through a path; then alice removes carol through a path.
	g.commit(t, bob, g.build(t, bob, false, &ratchettree.Spec{Path: &ratchettree.PathSpec{Op: ratchettree.OpAdd, Leaf: 3, LeafKey: dave.MemberKeys().EncryptionKey}}, add(dave, coffer.RoleReader), coffer.Op{Kind: coffer.OpRotate}))
	before := g.nodeRows(t)
	prevTree := g.state.Tree
	rm := g.build(t, alice, false, &ratchettree.Spec{Path: &ratchettree.PathSpec{Op: ratchettree.OpRemove, Leaf: g.state.Members[carol.ID].Leaf}},
		coffer.Op{Kind: coffer.OpRemove, Member: carol.ID}, coffer.Op{Kind: coffer.OpRotate})

	t.Run("removal refused", func(t *testing.T) {
		cts := rm.req.TreeCiphertexts
		for _, tc := range []struct {
			name string
			edit func(r *api.CommitRequest)
			rule string
		}{
			{"withheld", func(r *api.CommitRequest) { r.TreeCiphertexts = r.TreeCiphertexts[:len(cts)-1] }, string(ratchettree.RuleCiphertexts)},
			{"none", func(r *api.CommitRequest) { r.TreeCiphertexts = nil }, string(ratchettree.RuleCiphertexts)},
			{"duplicated", func(r *api.CommitRequest) { r.TreeCiphertexts = append(r.TreeCiphertexts, cts[0]) }, string(ratchettree.RuleCiphertexts)},
			{"to another recipient", func(r *api.CommitRequest) { r.TreeCiphertexts[0].Recipient ^= 2 }, string(ratchettree.RuleCiphertexts)},
			{"for another node", func(r *api.CommitRequest) { r.TreeCiphertexts[0].Node = r.TreeCiphertexts[len(cts)-1].Node }, string(ratchettree.RuleCiphertexts)},
			{"reordered", func(r *api.CommitRequest) { slices.Reverse(r.TreeCiphertexts) }, string(ratchettree.RuleCiphertexts)},
			{"short", func(r *api.CommitRequest) { r.TreeCiphertexts[0].Sealed = r.TreeCiphertexts[0].Sealed[1:] }, string(ratchettree.RuleShape)},
			// The public keys beside it: each must be the one its digest
			// in the signed commit names, and an X-Wing key.
			{"keys withheld", func(r *api.CommitRequest) { r.TreeKeys = r.TreeKeys[1:] }, string(ratchettree.RulePublicKey)},
			{"no keys", func(r *api.CommitRequest) { r.TreeKeys = nil }, string(ratchettree.RulePublicKey)},
			{"key extra", func(r *api.CommitRequest) { r.TreeKeys = append(r.TreeKeys, r.TreeKeys[0]) }, string(ratchettree.RulePublicKey)},
			{"keys swapped", func(r *api.CommitRequest) { r.TreeKeys[0], r.TreeKeys[1] = r.TreeKeys[1], r.TreeKeys[0] }, string(ratchettree.RulePublicKey)},
			{"key of another node", func(r *api.CommitRequest) { r.TreeKeys[0] = prevTree.PublicKey(0) }, string(ratchettree.RulePublicKey)},
			{"key short", func(r *api.CommitRequest) { r.TreeKeys[0] = r.TreeKeys[0][1:] }, string(ratchettree.RulePublicKey)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if len(cts) < 2 || len(rm.req.TreeKeys) < 2 {
					t.Fatalf("the removal has %d ciphertexts and %d keys", len(cts), len(rm.req.TreeKeys))
				}
				g.refused(t, alice, g.req(rm, tc.edit), 400, coffer.EINVALID, tc.rule)
			})
		}
		// A tree hash the tree does not have.
		c := *rm.c
		tp := *c.Tree
		tp.Commit = c.Tree.Commit.Detached()
		tp.Commit.TreeHash[0] ^= 1
		c.Tree = &tp
		sc := coffer.SignCommitHybrid(&c, alice.HybridKey())
		g.refused(t, alice, g.req(rm, func(r *api.CommitRequest) { r.Commit = api.SignedCommit{Body: sc.Body, Signature: sc.Signature} }), 400, coffer.EINVALID, string(ratchettree.RuleTreeHash))
	})
	g.commit(t, alice, rm)

	// Only the rows the removal changed were written; carol's is gone.
	after := g.nodeRows(t)
	changed := ratchettree.ChangedNodes(prevTree, g.state.Tree)
	for x, row := range before {
		if slices.Contains(changed, x) {
			if now, ok := after[x]; ok && now[1] == row[1] {
				t.Errorf("changed node %d was not rewritten", x)
			}
			continue
		}
		if after[x] != row {
			t.Errorf("node %d, untouched by the removal, was rewritten", x)
		}
	}
	if _, ok := after[ratchettree.LeafNode(2)]; ok {
		t.Error("the removed leaf is still stored")
	}

	t.Run("fetch", func(t *testing.T) {
		// Carol is no member: 404, like a missing group.
		g.ts.Do(t, http.MethodGet, fmt.Sprintf("/v1/groups/%s/commits/%d/tree-ciphertexts", g.id, rm.c.Seq), carol.token, nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
		g.ts.Do(t, http.MethodGet, fmt.Sprintf("/v1/groups/%s/commits/0/tree-ciphertexts", g.id), bob.token, nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
		g.ts.Do(t, http.MethodGet, fmt.Sprintf("/v1/groups/%s/commits/%d/tree-ciphertexts", g.id, rm.c.Seq), "", nil).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		// A commit without tree ciphertexts, and one beyond the head.
		if cts := g.fetch(t, bob, 99); len(cts) != 0 {
			t.Fatalf("%d ciphertexts for a commit that does not exist", len(cts))
		}
	})

	t.Run("node keys", func(t *testing.T) {
		// A member gets the keys of the tree at head, each the one the
		// verified tree names by digest; a committer needs them to seal.
		var nodes []string
		var want []uint32
		for x := range ratchettree.Width(g.state.Tree.Leaves()) {
			if g.state.Tree.Present(x) {
				nodes = append(nodes, fmt.Sprint(x))
				want = append(want, x)
			}
		}
		list := strings.Join(nodes, ",")
		url := func(seq uint64, list string) string {
			return fmt.Sprintf("/v1/groups/%s/tree-nodes?seq=%d&nodes=%s", g.id, seq, list)
		}
		var got api.TreeNodeKeys
		resp := g.ts.Do(t, http.MethodGet, url(g.state.Seq, list), bob.token, nil)
		if resp.Status != http.StatusOK {
			t.Fatalf("status %d: %s", resp.Status, resp.Body)
		}
		resp.Decode(t, &got)
		if len(got.Keys) != len(want) {
			t.Fatalf("%d keys for %d nodes", len(got.Keys), len(want))
		}
		for i, x := range want {
			if ratchettree.KeyDigest(got.Keys[i]) != g.state.Tree.Digest(x) {
				t.Fatalf("node %d: the served key is not the tree's", x)
			}
		}
		// Not at head: a committer re-syncs.
		g.ts.Do(t, http.MethodGet, url(g.state.Seq-1, list), bob.token, nil).Check(t, http.StatusConflict, coffer.ECONFLICT)
		// Not a member, a blank node, no token, bad lists, too many.
		g.ts.Do(t, http.MethodGet, url(g.state.Seq, list), carol.token, nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
		g.ts.Do(t, http.MethodGet, url(g.state.Seq, fmt.Sprint(ratchettree.LeafNode(2))), bob.token, nil).Check(t, http.StatusNotFound, coffer.ENOTFOUND)
		g.ts.Do(t, http.MethodGet, url(g.state.Seq, list), "", nil).Check(t, http.StatusUnauthorized, coffer.EUNAUTHORIZED)
		for _, bad := range []string{"", "1,,2", "x", "-1", "99999999999"} {
			g.ts.Do(t, http.MethodGet, url(g.state.Seq, bad), bob.token, nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
		}
		g.ts.Do(t, http.MethodGet, url(0, list), bob.token, nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
		many := strings.Repeat("0,", api.MaxTreeNodesPerRequest) + "0"
		g.ts.Do(t, http.MethodGet, url(g.state.Seq, many), bob.token, nil).Check(t, http.StatusBadRequest, coffer.EINVALID)
	})

	t.Run("pairwise", func(t *testing.T) {
		p := newV2Group(ts, alice.MemberKeys(), bob.MemberKeys())
		vc := p.build(t, alice.ID, hybrid(alice.HybridKey()), add(alice, coffer.RoleOwner), add(bob, coffer.RoleReader))
		vc.req.TreeCiphertexts = rm.req.TreeCiphertexts[:1]
		p.refused(t, alice.token, vc, 400, coffer.EINVALID, string(ratchettree.RuleCiphertexts))
		vc.req.TreeCiphertexts = nil
		vc.req.TreeKeys = rm.req.TreeKeys[:1]
		p.refused(t, alice.token, vc, 400, coffer.EINVALID, string(ratchettree.RulePublicKey))
		vc.req.TreeKeys = nil
		p.mustCommit(t, alice.token, vc)

		// The owner's upgrade makes it a tree group; bob receives.
		u := &treeGroup{ts: ts, id: p.id, state: p.state, keys: g.keys, accts: g.accts, views: map[coffer.AccountID]*ratchettree.Member{}}
		up := u.build(t, alice, true, &ratchettree.Spec{Adds: []ratchettree.LeafKey{at(leaf(bob), 1)}}, coffer.Op{Kind: coffer.OpRotate})
		// Bob's leaf with another account's key is refused.
		bad := u.build(t, alice, true, &ratchettree.Spec{Adds: []ratchettree.LeafKey{at(leaf(dave), 1)}}, coffer.Op{Kind: coffer.OpRotate})
		u.refused(t, alice, bad.req, 409, coffer.ECONFLICT, coffer.RuleMemberKeys)
		u.commit(t, alice, up)
		if rows := u.nodeRows(t); len(rows) != 3 {
			t.Fatalf("%d stored nodes after the upgrade of two", len(rows))
		}
		// Bob (an admin in no sense: a reader) cannot upgrade again.
		u.refused(t, bob, u.build(t, bob, false, &ratchettree.Spec{Rekey: []uint32{1}}, coffer.Op{Kind: coffer.OpRotate}).req, 400, coffer.EINVALID, coffer.RuleAuthor)
	})
}
