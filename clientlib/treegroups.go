package clientlib

import (
	"context"
	"crypto/hpke"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree groups (docs/PROTOCOL.md, "Suite v2: tree groups"): the epoch key
// of every rotation comes from the ratchet tree, HKDF(root secret, salt =
// commit hash), and a member obtains it by opening the one ciphertext at
// its position of each tree commit since it joined, which the server
// serves it beside the commit. The device keeps its private view (node
// secrets of its ancestors) and the keys it derived in its key store
// (treestore.go), and replays only the commits after it; a fresh device
// replays the tree commits since its leaf was placed.

// treeKeys is one group's replay: the verified head it reached, this
// member's private view, and the epoch keys it derived.
type treeKeys struct {
	seq  uint64
	head [32]byte
	leaf uint32
	view *ratchettree.Member // nil until its leaf's placement is replayed
	pub  []byte              // the digest of the public key at this member's leaf (ratchettree.KeyDigest)
	keys map[uint64]groupkey.EpochKey
	// committed is what each epoch's key commitment commits to: the root
	// secret, or the epoch key of an epoch no tree root gave.
	committed map[uint64][32]byte
}

type treeCache struct {
	mu     sync.Mutex
	groups map[coffer.GroupID]*treeKeys
}

// treeSpec turns a change's ops into the tree change that performs them
// on s's tree: a path when one non-tainting member goes or one member
// comes and nothing else changes the tree, else bulk removes and adds with
// a rekey of every node a departing, removed or demoted admin knew.
// update, when set, is the author's new leaf key (its self-update): a
// path update when it taints no node, else the rekeyed form.
func treeSpec(s *coffer.GroupState, me coffer.AccountID, ops []coffer.Op, added []groupkey.Recipient, update []byte) (*ratchettree.Spec, error) {
	t := s.Tree
	spec := &ratchettree.Spec{Removes: s.TreeDepartures()}
	untrusted := append([]uint32(nil), spec.Removes...)
	for _, op := range ops {
		m := s.Members[op.Member]
		switch op.Kind {
		case coffer.OpRemove:
			spec.Removes = append(spec.Removes, m.Leaf)
			untrusted = append(untrusted, m.Leaf)
		case coffer.OpSetRole:
			if m.Role >= coffer.RoleAdmin && op.Role < coffer.RoleAdmin && op.Member != me {
				untrusted = append(untrusted, m.Leaf)
			}
		}
	}
	next := t.Leaves()
	blank := uint32(0)
	for _, a := range added {
		for blank < t.Leaves() && t.Present(ratchettree.LeafNode(blank)) {
			blank++
		}
		leaf := blank
		if blank < t.Leaves() {
			blank++
		} else {
			leaf = next
			next++
		}
		spec.Adds = append(spec.Adds, ratchettree.LeafKey{Leaf: leaf, Key: a.EncryptionKey})
	}
	spec.Untrusted = untrusted
	taints := func(leaf uint32) bool {
		for x := uint32(1); x < ratchettree.Width(t.Leaves()); x += 2 {
			for _, a := range t.Taint(x) {
				if a == leaf {
					return true
				}
			}
		}
		return false
	}
	mine := s.Members[me].Leaf
	switch {
	case update != nil && len(spec.Adds) == 0 && len(spec.Removes) == 0 && len(untrusted) == 0 && !taints(mine):
		return &ratchettree.Spec{Path: &ratchettree.PathSpec{Op: ratchettree.OpUpdate, Leaf: mine, LeafKey: update}}, nil
	case update != nil:
		spec.SelfUpdate = update
	case len(spec.Adds) == 1 && len(spec.Removes) == 0 && len(untrusted) == 0:
		return &ratchettree.Spec{Path: &ratchettree.PathSpec{Op: ratchettree.OpAdd, Leaf: spec.Adds[0].Leaf, LeafKey: spec.Adds[0].Key}}, nil
	case len(spec.Removes) == 1 && len(spec.Adds) == 0 && len(untrusted) == 1 && !taints(spec.Removes[0]):
		return &ratchettree.Spec{Path: &ratchettree.PathSpec{Op: ratchettree.OpRemove, Leaf: spec.Removes[0]}}, nil
	}
	spec.Rekey = []uint32{ratchettree.Root(next)}
	return spec, nil
}

// treeCommit builds the tree part of commit (epoch already set) on s, and
// returns the committer's secrets and the public keys and ciphertexts to
// send beside it. fetch gets the keys of nodes s's tree holds by digest
// only (fetchTreeNodeKeys); Create holds each to its digest.
func treeCommit(s *coffer.GroupState, me coffer.AccountID, commit *coffer.Commit, spec *ratchettree.Spec, fetch ratchettree.FetchKeys) (ratchettree.Secrets, [][]byte, []ratchettree.Ciphertext, error) {
	spec.FetchKeys = fetch
	full, _, secrets, err := ratchettree.Create(s.Tree, coffer.TreeContext(commit), s.Members[me].Leaf, *spec)
	if te := (*ratchettree.Error)(nil); errors.As(err, &te) && (te.Rule == ratchettree.RulePublicKey || te.Rule == ratchettree.RuleNodeProof) {
		// A key of the verified tree that does not parse, or a fetched key
		// that is not the one the verified tree names: the seal is the
		// check of the keys a client holds by digest, so it fails as the
		// chain would have.
		return nil, nil, nil, coffer.Security("tree", fmt.Errorf("tree change: %w", err))
	}
	if err != nil {
		return nil, nil, nil, coffer.Errorf(coffer.EINVALID, "tree change: %v", err)
	}
	commit.Tree = &coffer.TreePart{Kind: coffer.TreeChange, Commit: full.Detached()}
	root := groupkey.TreeEpochSecret(secrets[ratchettree.Root(full.Leaves)], commit.Group, commit.Epoch)
	commit.KeyCommitment = groupkey.TreeCommitment(root, commit.Group, commit.Epoch)
	return secrets, full.Keys(), full.Ciphertexts(), nil
}

// treeNodeFetcher fetches, for Create, the public keys of nodes of g's
// tree at head seq, in batches the server takes. A fetch that fails
// (another writer moved the head: ECONFLICT) fails the attempt, which the
// caller retries after a sync.
func (c *Client) treeNodeFetcher(ctx context.Context, g coffer.GroupID, seq uint64) ratchettree.FetchKeys {
	return func(nodes []uint32) ([][]byte, error) {
		out := make([][]byte, 0, len(nodes))
		for len(nodes) > 0 {
			batch := nodes[:min(len(nodes), api.MaxTreeNodesPerRequest)]
			nodes = nodes[len(batch):]
			list := make([]string, len(batch))
			for i, x := range batch {
				list[i] = strconv.FormatUint(uint64(x), 10)
			}
			q := url.Values{"seq": {strconv.FormatUint(seq, 10)}, "nodes": {strings.Join(list, ",")}}
			var resp api.TreeNodeKeys
			if err := c.call(ctx, http.MethodGet, "/v1/groups/"+g.String()+"/tree-nodes?"+q.Encode(), true, nil, &resp); err != nil {
				return nil, err
			}
			if len(resp.Keys) != len(batch) {
				return nil, coffer.Security("tree", fmt.Errorf("asked the server for %d tree node keys, it sent %d", len(batch), len(resp.Keys)))
			}
			out = append(out, resp.Keys...)
		}
		return out, nil
	}
}

// treeEpochKey is the epoch key of a tree commit whose root secret is root.
func treeEpochKey(root []byte, sc coffer.SignedCommit) groupkey.EpochKey {
	h := sc.Hash()
	return groupkey.EpochKey(ratchettree.EpochKey(root, h[:]))
}

func apiCiphertexts(cts []ratchettree.Ciphertext) []api.TreeCiphertext {
	out := make([]api.TreeCiphertext, len(cts))
	for i, ct := range cts {
		out[i] = api.TreeCiphertext{Node: ct.Node, Recipient: ct.Recipient, Sealed: ct.Sealed}
	}
	return out
}

// treeEpochKeys is epochKeys for a tree group: the keys of every epoch
// this member may read, each checked against the signed key commitment of
// the commit that started it. An epoch started by another member's tree
// commit since this member's leaf was placed comes from the ciphertext at
// its position (fetched through the tree-ciphertexts endpoint); an epoch
// this account started, a one-member genesis and an epoch before an
// upgrade from this member's wrap; earlier epochs, in a history group,
// through history links. Whatever the server serves that does not fit the
// verified commits (a withheld, moved or altered ciphertext, a public key
// its secret does not derive, a wrap or link of another secret) is a
// security error.
func (c *Client) treeEpochKeys(ctx context.Context, s *coffer.GroupState, ids []*Identity) (map[uint64]groupkey.EpochKey, error) {
	_, me, err := c.me()
	if err != nil {
		return nil, err
	}
	m := s.Members[me]
	if m == nil {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "not a member of group %s", s.Group)
	}
	c.tree.mu.Lock()
	defer c.tree.mu.Unlock()
	tk := c.treeLoad(s.Group)
	if tk != nil && (tk.seq > s.Seq || tk.leaf != m.Leaf || tk.seq == s.Seq && tk.head != s.Head) {
		tk = nil
	}
	// A replay that fails leaves tk half advanced: the next one starts
	// again from what the key store holds.
	done := false
	defer func() {
		if !done {
			delete(c.tree.groups, s.Group)
		}
	}()
	after, prev := uint64(0), [32]byte{}
	if tk != nil {
		after, prev = tk.seq, tk.head
	}
	commits, err := c.verifiedCommits(ctx, s, after, prev)
	if err != nil {
		return nil, err
	}
	if tk == nil {
		tk = &treeKeys{leaf: m.Leaf, keys: map[uint64]groupkey.EpochKey{}, committed: map[uint64][32]byte{}}
	}
	starts := map[uint64]verifiedCommit{}
	for _, vc := range commits {
		if startsEpoch(vc.c) {
			starts[vc.c.Epoch] = vc
		}
	}
	// Replay from the last commit that placed this member's leaf.
	start := 0
	if tk.view == nil {
		start = -1
		for i, vc := range commits {
			if vc.c.Tree != nil && vc.c.Tree.Kind == coffer.TreeStart || placesMe(vc.c, me) {
				start = i
			}
		}
		if start < 0 {
			return nil, coffer.Security("tree", fmt.Errorf("no verified commit places this member's leaf"))
		}
	}
	var wrapped map[uint64]groupkey.EpochKey
	for _, vc := range commits[start:] {
		if err := c.treeReceive(ctx, ids, me, tk, vc); err != nil {
			return nil, err
		}
	}
	// What the tree did not give: this account's own epochs, a
	// one-member genesis, epochs before an upgrade.
	for e, vc := range starts {
		if _, ok := tk.keys[e]; ok || e > s.Epoch {
			continue
		}
		if wrapped == nil {
			if wrapped, err = c.treeWraps(ctx, s, me, ids); err != nil {
				return nil, err
			}
		}
		w, ok := wrapped[e]
		if !ok {
			continue
		}
		k, sec, err := checkCommitted(s, vc, w)
		if err != nil {
			return nil, coffer.Security("wrap", fmt.Errorf("epoch %d: the wrap %v", e, err))
		}
		tk.keys[e], tk.committed[e] = k, sec
	}
	if _, ok := tk.keys[s.Epoch]; !ok {
		return nil, coffer.Security("tree", fmt.Errorf("no key of the current epoch %d for this member", s.Epoch))
	}
	if s.ShareHistory {
		if err := c.treeHistory(ctx, s, tk, starts); err != nil {
			return nil, err
		}
	}
	tk.seq, tk.head = s.Seq, s.Head
	c.treeStore(s.Group, tk)
	done = true
	out := make(map[uint64]groupkey.EpochKey, len(tk.keys))
	for e, k := range tk.keys {
		out[e] = k
		c.observeSecret("epoch-key", k[:])
	}
	return out, nil
}

// startsEpoch reports whether c starts an epoch: the genesis or a rotation.
func startsEpoch(c *coffer.Commit) bool {
	if c.Seq == 1 {
		return true
	}
	for _, op := range c.Ops {
		if op.Kind == coffer.OpRotate {
			return true
		}
	}
	return false
}

// rooted reports whether c's epoch key comes from a tree root: the key
// commitment then commits to the root secret, and wraps and history links
// of that epoch carry the root secret, not the epoch key.
func rooted(c *coffer.Commit) bool {
	tp := c.Tree
	return tp != nil && tp.Kind != coffer.TreeNone && tp.Commit != nil && (tp.Commit.Path != nil || len(tp.Commit.Rekey) > 0)
}

// checkCommitted checks secret, from a wrap or a history link of the
// epoch vc starts, against the commit's key commitment and returns the
// epoch key it gives.
func checkCommitted(s *coffer.GroupState, vc verifiedCommit, secret groupkey.EpochKey) (groupkey.EpochKey, [32]byte, error) {
	cm := vc.c
	if !rooted(cm) {
		if !groupkey.CheckCommitment(secret, s.Group, cm.Epoch, cm.KeyCommitment) {
			return groupkey.EpochKey{}, [32]byte{}, fmt.Errorf("holds a key that does not match the signed key commitment")
		}
		return secret, secret, nil
	}
	got := groupkey.TreeCommitment(secret[:], s.Group, cm.Epoch)
	if subtle.ConstantTimeCompare(got[:], cm.KeyCommitment[:]) != 1 {
		return groupkey.EpochKey{}, [32]byte{}, fmt.Errorf("holds a root secret that does not match the signed key commitment")
	}
	return treeEpochKey(secret[:], vc.sc), secret, nil
}

// treeWraps opens this member's wraps of epochs up to s's with ids.
func (c *Client) treeWraps(ctx context.Context, s *coffer.GroupState, me coffer.AccountID, ids []*Identity) (map[uint64]groupkey.EpochKey, error) {
	var keys api.Keys
	if err := c.call(ctx, http.MethodGet, "/v1/groups/"+s.Group.String()+"/keys", true, nil, &keys); err != nil {
		return nil, err
	}
	if err := checkKeyCounts(&keys); err != nil {
		return nil, err
	}
	out := map[uint64]groupkey.EpochKey{}
	for _, w := range keys.Wraps {
		if w.Member != me {
			return nil, coffer.Security("wrap", fmt.Errorf("server returned a wrap for %s", w.Member))
		}
		if w.Epoch > s.Epoch {
			continue // a rotation after s: judged once verified
		}
		k, err := unwrapAny(ids, s.Group, w.Epoch, me, w.Wrap)
		if err != nil {
			if rerr := c.revokedDevice(ctx); rerr != nil {
				return nil, rerr
			}
			return nil, coffer.Security("wrap", fmt.Errorf("epoch %d wrap does not open for this member: %w", w.Epoch, err))
		}
		out[w.Epoch] = k
	}
	return out, nil
}

// treeHistory adds, walking back from the newest epoch known, the keys
// the history links give, each checked against its epoch's commitment.
func (c *Client) treeHistory(ctx context.Context, s *coffer.GroupState, tk *treeKeys, starts map[uint64]verifiedCommit) error {
	newest := uint64(0)
	for e := range tk.keys {
		newest = max(newest, e)
	}
	var links map[uint64][]byte
	for e := newest; e > 1; e-- {
		if _, ok := tk.keys[e-1]; ok {
			continue
		}
		k, ok := tk.keys[e]
		vc, known := starts[e-1]
		if !ok || !known {
			continue
		}
		if links == nil {
			var keys api.Keys
			if err := c.call(ctx, http.MethodGet, "/v1/groups/"+s.Group.String()+"/keys", true, nil, &keys); err != nil {
				return err
			}
			if err := checkKeyCounts(&keys); err != nil {
				return err
			}
			links = map[uint64][]byte{}
			for _, l := range keys.Links {
				links[l.Epoch] = l.Link
			}
		}
		link, ok := links[e-1]
		if !ok {
			continue
		}
		secret, err := groupkey.OpenHistoryLink(k, s.Group, e-1, link)
		if err != nil {
			return coffer.Security("history-link", fmt.Errorf("link to epoch %d does not open: %w", e-1, err))
		}
		older, committed, err := checkCommitted(s, vc, secret)
		if err != nil {
			return coffer.Security("history-link", fmt.Errorf("epoch %d: the link %v", e-1, err))
		}
		tk.keys[e-1], tk.committed[e-1] = older, committed
	}
	return nil
}

func placesMe(c *coffer.Commit, me coffer.AccountID) bool {
	for _, op := range c.Ops {
		if op.Kind == coffer.OpAdd && op.Member == me {
			return true
		}
	}
	return false
}

type verifiedCommit struct {
	sc coffer.SignedCommit
	c  *coffer.Commit
}

// verifiedCommits returns the commits of s's group after seq after (whose
// hash is prev) up to s's head, kept from the sync or fetched, and requires them to be exactly the
// verified chain: each names the one before as prev, and the last is s's
// head. The chain verifier has checked these very commits.
func (c *Client) verifiedCommits(ctx context.Context, s *coffer.GroupState, after uint64, prev [32]byte) ([]verifiedCommit, error) {
	if after == s.Seq {
		return nil, nil
	}
	p, err := c.commitPager(s.Group, s.Seq-after)
	if err != nil {
		return nil, err
	}
	// The commits the sync just verified when it kept them, else a fetch.
	page, kept := c.recent.since(s.Group, after, s.Seq, s.Head)
	var out []verifiedCommit
	for seq := after; seq < s.Seq; kept = false {
		if !kept {
			if page, err = c.commitPage(ctx, p, s.Group, seq); err != nil {
				return nil, err
			}
		}
		if len(page) == 0 {
			return nil, coffer.Security("tree", fmt.Errorf("the server ends the commits at seq %d below the verified head %d", seq, s.Seq))
		}
		for _, sc := range page {
			if seq >= s.Seq {
				break
			}
			cm, err := coffer.ParseCommit(sc.Body)
			if err != nil || cm.Seq != seq+1 || cm.Prev != prev {
				return nil, coffer.Security("tree", fmt.Errorf("the server serves another commit %d than the verified one", seq+1))
			}
			out = append(out, verifiedCommit{sc, cm})
			seq, prev = cm.Seq, sc.Hash()
		}
	}
	if prev != s.Head {
		return nil, coffer.Security("tree", fmt.Errorf("the commits served do not end at the verified head"))
	}
	return out, nil
}

// treeReceive processes one verified commit at or after this member's
// placement: it follows the key at its leaf and, for a tree commit of
// another account that refreshes the root, opens the ciphertext at its
// position and derives the epoch key.
func (c *Client) treeReceive(ctx context.Context, ids []*Identity, me coffer.AccountID, tk *treeKeys, vc verifiedCommit) error {
	cm := vc.c
	tp := cm.Tree
	if tp == nil || tp.Kind == coffer.TreeNone || tp.Commit == nil {
		return nil
	}
	tc := tp.Commit
	if pub := placedKey(cm, me, tk.leaf); pub != nil {
		tk.pub = pub
	}
	if tk.pub == nil {
		return coffer.Security("tree", fmt.Errorf("commit %d: this member's leaf has no key", cm.Seq))
	}
	priv, err := leafPrivate(ids, tk.pub)
	if err != nil {
		if rerr := c.revokedDevice(ctx); rerr != nil {
			return rerr
		}
		return err
	}
	if tk.view == nil {
		tk.view = ratchettree.NewMember(tk.leaf, priv)
	}
	tk.view.SetLeafKey(priv)
	if cm.Author == me || !rooted(cm) {
		// This account's own commit (the committing device adopted its
		// secrets; another device takes the wrap), or a one-member genesis.
		return nil
	}
	cts, err := c.treeCiphertexts(ctx, cm.Group, cm.Seq)
	if err != nil {
		return err
	}
	h := vc.sc.Hash()
	// Receive's own epoch key is HKDF of the root node secret; a tree
	// group's epoch key comes from the epoch secret (TreeEpochSecret).
	if _, err := tk.view.Receive(coffer.TreeContext(cm), tc.Attach(cts), h[:]); err != nil {
		return coffer.Security("tree", fmt.Errorf("commit %d: %w", cm.Seq, err))
	}
	rootNode, _ := tk.view.RootSecret(tc.Leaves)
	root := groupkey.TreeEpochSecret(rootNode, cm.Group, cm.Epoch)
	got := groupkey.TreeCommitment(root, cm.Group, cm.Epoch)
	if subtle.ConstantTimeCompare(got[:], cm.KeyCommitment[:]) != 1 {
		return coffer.Security("tree", fmt.Errorf("commit %d: the root secret does not match the signed key commitment", cm.Seq))
	}
	tk.keys[cm.Epoch] = treeEpochKey(root, vc.sc)
	tk.committed[cm.Epoch] = [32]byte(root)
	return nil
}

// placedKey is the digest of the key commit c puts at this member's leaf,
// if it does: its add, a tree start, or its own self-update.
func placedKey(c *coffer.Commit, me coffer.AccountID, leaf uint32) []byte {
	tc := c.Tree.Commit
	if c.Tree.Kind == coffer.TreeStart && leaf == 0 {
		d := ratchettree.KeyDigest(c.Tree.StartKey)
		return d[:]
	}
	for _, a := range tc.Adds {
		if a.Leaf == leaf {
			d := ratchettree.SlotDigest(a.Key, a.Digest)
			return d[:]
		}
	}
	if p := tc.Path; p != nil && p.Leaf == leaf && (p.Op == ratchettree.OpAdd || p.Op == ratchettree.OpUpdate) {
		if d, ok := ratchettree.OptionalDigest(p.LeafKey, p.LeafKeyDigest); ok {
			return d[:]
		}
	}
	if c.Author == me {
		if d, ok := ratchettree.OptionalDigest(tc.SelfUpdate, tc.SelfUpdateDigest); ok {
			return d[:]
		}
	}
	return nil
}

// leafPrivate is the private key of this account (current or retired)
// whose public key has the digest leafDigest.
func leafPrivate(ids []*Identity, leafDigest []byte) (hpke.PrivateKey, error) {
	for _, id := range ids {
		if d := ratchettree.KeyDigest(id.public.EncryptionKey); string(d[:]) == string(leafDigest) {
			return id.decrypt, nil
		}
	}
	return nil, coffer.Security("tree", fmt.Errorf("this member's leaf holds a key this account does not have"))
}

// treeCommitted is what the key commitment of g's epoch commits to, as
// this device derived it: a history link to that epoch carries it.
func (c *Client) treeCommitted(g coffer.GroupID, epoch uint64) ([32]byte, bool) {
	c.tree.mu.Lock()
	defer c.tree.mu.Unlock()
	tk := c.treeLoad(g)
	if tk == nil {
		return [32]byte{}, false
	}
	sec, ok := tk.committed[epoch]
	return sec, ok
}

// treeAdvance records this device's own accepted tree commit: the
// secrets of its ancestors, its new leaf key, and the new epoch's key.
// A device that did not follow the group up to the commit's parent drops
// what it kept and replays next time.
func (c *Client) treeAdvance(prev, next *coffer.GroupState, cm *coffer.Commit, secrets ratchettree.Secrets, leafKey hpke.PrivateKey, leafPub []byte, k groupkey.EpochKey, root []byte) {
	c.tree.mu.Lock()
	defer c.tree.mu.Unlock()
	tk := c.treeLoad(prev.Group)
	if tk == nil || tk.seq != prev.Seq || tk.head != prev.Head || tk.view == nil {
		c.treeForget(prev.Group)
		return
	}
	if leafKey != nil {
		tk.view.SetLeafKey(leafKey)
		d := ratchettree.KeyDigest(leafPub)
		tk.pub = d[:]
	}
	tk.view.Adopt(secrets, cm.Tree.Commit.Leaves)
	tk.keys[cm.Epoch] = k
	tk.committed[cm.Epoch] = [32]byte(root)
	tk.seq, tk.head = next.Seq, next.Head
	c.treeStore(prev.Group, tk)
}

// treeCiphertexts returns the ciphertexts of commit seq for this member's
// path, prefetched by the sync (ctprefetch.go) or fetched; the caller
// checks them against the verified commit.
func (c *Client) treeCiphertexts(ctx context.Context, g coffer.GroupID, seq uint64) ([]ratchettree.Ciphertext, error) {
	if cts, ok := c.takePrefetched(ctx, g, seq); ok {
		return cts, nil
	}
	return c.fetchTreeCiphertexts(ctx, g, seq)
}

// fetchTreeCiphertexts fetches the ciphertexts of commit seq for this
// member's path.
func (c *Client) fetchTreeCiphertexts(ctx context.Context, g coffer.GroupID, seq uint64) ([]ratchettree.Ciphertext, error) {
	var list api.TreeCiphertextList
	path := "/v1/groups/" + g.String() + "/commits/" + strconv.FormatUint(seq, 10) + "/tree-ciphertexts"
	if err := c.call(ctx, http.MethodGet, path, true, nil, &list); err != nil {
		return nil, err
	}
	if len(list.Ciphertexts) > 64 {
		return nil, coffer.Security("tree", fmt.Errorf("the server serves %d ciphertexts for one path", len(list.Ciphertexts)))
	}
	out := make([]ratchettree.Ciphertext, len(list.Ciphertexts))
	for i, ct := range list.Ciphertexts {
		out[i] = ratchettree.Ciphertext{Node: ct.Node, Recipient: ct.Recipient, Sealed: ct.Sealed}
	}
	return out, nil
}
