package coffer_test

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree groups: suite v2 groups whose commits carry a ratchet tree part
// (version 3), verified by the one chain verifier, with the ciphertexts
// beside each commit checked by ApplyTree and opened by each member.

// treePriv is the X-Wing private key of mustV2Member(n, gen).
func treePriv(tb testing.TB, n, gen int) hpke.PrivateKey {
	tb.Helper()
	ikm := sha256.Sum256(fmt.Appendf(nil, "coffer v2 chain test %d generation %d encryption", n, gen))
	k, err := coffer.KEM().DeriveKeyPair(ikm[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// treeActor is a cast member with its private leaf key.
type treeActor struct {
	*v2Member
	n, gen int
	priv   hpke.PrivateKey
}

func mustTreeActor(tb testing.TB, n, gen int) *treeActor {
	return &treeActor{v2Member: mustV2Member(tb, n, gen), n: n, gen: gen, priv: treePriv(tb, n, gen)}
}

// treeChain builds a tree group's chain as honest members would: each
// commit is verified with ApplyTree and every member receives it.
type treeChain struct {
	*v2Chain
	tb     testing.TB
	state  *coffer.GroupState                       // after the last pushed commit
	views  map[coffer.AccountID]*ratchettree.Member // members' private views
	cts    [][]ratchettree.Ciphertext               // beside each commit
	tkeys  map[int][][]byte                         // the public keys beside each commit that has some
	epochK []byte                                   // the epoch key the last rotation derived
}

func newTreeChain(tb testing.TB, actors ...*treeActor) *treeChain {
	var ms []*v2Member
	for _, a := range actors {
		ms = append(ms, a.v2Member)
	}
	return &treeChain{v2Chain: newV2Chain(tb, ms...), tb: tb, views: map[coffer.AccountID]*ratchettree.Member{}}
}

// treeCommit is a commit its author built, before signing.
type treeCommit struct {
	c       *coffer.Commit
	full    *ratchettree.Commit // the tree commit with its ciphertexts; nil for TreeNone
	secrets ratchettree.Secrets
	signer  *treeActor // the keys that sign, when not the pusher's (a self-update)
}

// signedBy sets the keys that sign tc: a self-update is signed with the
// keys it replaces.
func (tc *treeCommit) signedBy(a *treeActor) *treeCommit {
	tc.signer = a
	return tc
}

func (tc *treeCommit) ciphertexts() []ratchettree.Ciphertext {
	if tc.full == nil {
		return []ratchettree.Ciphertext{}
	}
	cts := tc.full.Ciphertexts()
	if cts == nil {
		cts = []ratchettree.Ciphertext{}
	}
	return cts
}

// leaf is a member's leaf in the current state.
func (b *treeChain) leaf(a *treeActor) uint32 { return b.state.Members[a.ID].Leaf }

// start builds a tree's first commit: a genesis (state nil) or an upgrade.
// others are placed at leaves 1.. in order.
func (b *treeChain) start(author *treeActor, others []*treeActor, ops ...coffer.Op) *treeCommit {
	c := b.next(author.v2Member, ops...)
	startKey := author.Keys.EncryptionKey
	t0, err := ratchettree.NewTree([][]byte{startKey})
	if err != nil {
		b.tb.Fatal(err)
	}
	tc := &treeCommit{c: c}
	if len(others) == 0 {
		tc.full = &ratchettree.Commit{Leaves: 1, TreeHash: t0.Hash()}
	} else {
		var adds []ratchettree.LeafKey
		for i, o := range others {
			adds = append(adds, ratchettree.LeafKey{Leaf: uint32(i + 1), Key: o.Keys.EncryptionKey})
		}
		tc.full, _, tc.secrets, err = ratchettree.Create(t0, coffer.TreeContext(c), 0, ratchettree.Spec{Adds: adds})
		if err != nil {
			b.tb.Fatal(err)
		}
	}
	c.Tree = &coffer.TreePart{Kind: coffer.TreeStart, StartKey: startKey, Commit: tc.full.Detached()}
	return tc
}

// change builds a commit of a tree group; spec nil makes no tree change.
func (b *treeChain) change(author *treeActor, spec *ratchettree.Spec, ops ...coffer.Op) *treeCommit {
	c := b.next(author.v2Member, ops...)
	tc := &treeCommit{c: c}
	if spec == nil {
		c.Tree = &coffer.TreePart{Kind: coffer.TreeNone}
		return tc
	}
	var err error
	tc.full, _, tc.secrets, err = ratchettree.Create(b.state.Tree, coffer.TreeContext(c), b.leaf(author), *spec)
	if err != nil {
		b.tb.Fatalf("create: %v", err)
	}
	c.Tree = &coffer.TreePart{Kind: coffer.TreeChange, Commit: tc.full.Detached()}
	return tc
}

// push signs tc, verifies it with ApplyTree and has every member receive
// it; any failure fails the test. actors are the members who may be new.
func (b *treeChain) push(author *treeActor, tc *treeCommit, actors ...*treeActor) *treeChain {
	b.tb.Helper()
	signer := author
	if tc.signer != nil {
		signer = tc.signer
	}
	sc := sign2(tc.c, signer.Sign)
	b.pushRaw(tc.c, sc, tc.ciphertexts())
	ns := b.state
	if ns == nil {
		ns = new(coffer.GroupState)
	} else {
		ns = ns.Clone()
	}
	if err := ns.ApplyTree(sc, commitTreeKeys(tc.c), tc.ciphertexts(), b.keys); err != nil {
		b.tb.Fatalf("commit %d: %v", tc.c.Seq, err)
	}
	resolved, err := ns.WithMemberKeys(b.keys)
	if err != nil {
		b.tb.Fatalf("commit %d: member keys: %v", tc.c.Seq, err)
	}
	if b.state != nil {
		checkChangedMembers(b.tb, b.state, ns)
		checkChangedMembers(b.tb, ns, resolved)
	}
	b.state = ns
	if tc.full == nil || len(tc.secrets) == 0 {
		return b
	}
	h := sc.Hash()
	want := ratchettree.EpochKey(tc.secrets[ratchettree.Root(tc.full.Leaves)], h[:])
	signed := tc.full.Detached()
	byHash := map[[32]byte]*treeActor{}
	for _, a := range actors {
		byHash[a.hash()] = a
	}
	for id, v := range b.views {
		if m := ns.Members[id]; m == nil || m.Leaf != v.Leaf {
			delete(b.views, id)
		}
	}
	for id, m := range ns.Members {
		if id == author.ID {
			if b.views[id] == nil {
				b.views[id] = ratchettree.NewMember(m.Leaf, author.priv)
			}
			b.views[id].SetLeafKey(author.priv)
			b.views[id].Adopt(tc.secrets, tc.full.Leaves)
			continue
		}
		v := b.views[id]
		if v == nil {
			a := byHash[m.KeysHash]
			if a == nil {
				b.tb.Fatalf("commit %d: no private key for new member %s", tc.c.Seq, id)
			}
			v = ratchettree.NewMember(m.Leaf, a.priv)
			b.views[id] = v
		}
		got, err := v.Receive(coffer.TreeContext(tc.c), signed.Attach(tc.ciphertexts()), h[:])
		if err != nil {
			b.tb.Fatalf("commit %d: %s receives: %v", tc.c.Seq, m.Handle, err)
		}
		if !bytes.Equal(got, want) {
			b.tb.Fatalf("commit %d: %s derived another epoch key", tc.c.Seq, m.Handle)
		}
	}
	b.epochK = want
	return b
}

func (b *treeChain) pushRaw(c *coffer.Commit, sc coffer.SignedCommit, cts []ratchettree.Ciphertext) {
	b.PushSigned(c, sc)
	b.cts = append(b.cts, cts)
	if k := commitTreeKeys(c); len(k) > 0 {
		if b.tkeys == nil {
			b.tkeys = map[int][][]byte{}
		}
		b.tkeys[len(b.commits)-1] = k
	}
}

// commitTreeKeys is the public keys that travel beside c: those its tree
// part carries (and its signed encoding names by digest).
func commitTreeKeys(c *coffer.Commit) [][]byte {
	if c.Tree == nil || c.Tree.Commit == nil {
		return nil
	}
	return c.Tree.Commit.Keys()
}

// treeCast: owner 1, admin 2, writer 3, reader 4, outsider 5 (generation
// 1), and the next generations of the owner, the admin and the reader.
type treeCast struct{ owner, admin, writer, reader, m5, m6, owner2, admin2, reader2 *treeActor }

func mustTreeCast(tb testing.TB) treeCast {
	return treeCast{
		owner: mustTreeActor(tb, 1, 1), admin: mustTreeActor(tb, 2, 1), writer: mustTreeActor(tb, 3, 1),
		reader: mustTreeActor(tb, 4, 1), m5: mustTreeActor(tb, 5, 1), m6: mustTreeActor(tb, 6, 1),
		owner2: mustTreeActor(tb, 1, 2), admin2: mustTreeActor(tb, 2, 2), reader2: mustTreeActor(tb, 4, 2),
	}
}

func (p treeCast) all() []*treeActor {
	return []*treeActor{p.owner, p.admin, p.writer, p.reader, p.m5, p.m6, p.owner2, p.admin2, p.reader2}
}

// base: the owner's tree genesis adds the admin, the writer and the
// reader at leaves 1, 2, 3.
func (p treeCast) base(tb testing.TB) *treeChain {
	b := newTreeChain(tb, p.all()...)
	tc := b.start(p.owner, []*treeActor{p.admin, p.writer, p.reader},
		addOp2(p.owner.v2Member, coffer.RoleOwner), addOp2(p.admin.v2Member, coffer.RoleAdmin),
		addOp2(p.writer.v2Member, coffer.RoleWriter), addOp2(p.reader.v2Member, coffer.RoleReader))
	return b.push(p.owner, tc, p.admin, p.writer, p.reader)
}

// adminTaints: base, then the admin removes the writer (leaf 2) through
// a path, so the admin knows (taints) node 5, the parent of leaves 2 and
// 3, which is not above the admin's leaf 1.
func (p treeCast) adminTaints(tb testing.TB) *treeChain {
	b := p.base(tb)
	b.push(p.admin, b.change(p.admin, pathSpec(ratchettree.OpRemove, 2, nil), removeOp(cm(p.writer)), rotateOp))
	if len(b.state.Tree.Taint(5)) != 1 || b.state.Tree.Taint(5)[0] != 1 {
		tb.Fatalf("node 5 taint %v", b.state.Tree.Taint(5))
	}
	return b
}

func cm(a *treeActor) *chainMember { return &chainMember{ID: a.ID} }

func pathSpec(op ratchettree.Op, leaf uint32, key []byte) *ratchettree.Spec {
	return &ratchettree.Spec{Path: &ratchettree.PathSpec{Op: op, Leaf: leaf, LeafKey: key}}
}

func rootSpec(b *treeChain, untrusted ...uint32) *ratchettree.Spec {
	return &ratchettree.Spec{Rekey: []uint32{ratchettree.Root(b.state.Tree.Leaves())}, Untrusted: untrusted}
}

// lifecycle: every kind of commit of a tree group, each verified, applied
// and received by every member; after each, check(b).
func (p treeCast) lifecycle(tb testing.TB, check func(b *treeChain)) *treeChain {
	b := p.adminTaints(tb)
	check(b)
	// The admin adds m5 through a path, at the writer's blank leaf.
	b.push(p.admin, b.change(p.admin, pathSpec(ratchettree.OpAdd, 2, p.m5.Keys.EncryptionKey), addOp2(p.m5.v2Member, coffer.RoleWriter), rotateOp), p.m5)
	check(b)
	// The reader refreshes its own path (a device revoked).
	b.push(p.reader2, b.change(p.reader, pathSpec(ratchettree.OpUpdate, b.leaf(p.reader), p.reader2.Keys.EncryptionKey), updateOp2(p.reader2.v2Member), rotateOp).signedBy(p.reader))
	check(b)
	// A plain rotation rekeys the root; a promotion changes no node.
	b.push(p.owner, b.change(p.owner, rootSpec(b), rotateOp))
	b.push(p.owner, b.change(p.owner, nil, setRoleOp(cm(p.m5), coffer.RoleAdmin)))
	check(b)
	// The owner demotes the admin, refreshing every node it tainted.
	b.push(p.owner, b.change(p.owner, rootSpec(b, b.leaf(p.admin)), setRoleOp(cm(p.admin), coffer.RoleWriter), rotateOp))
	check(b)
	// m5 (an admin now) adds m6 through a path, then leaves; the owner's
	// rotation removes m5's leaf and everything it tainted.
	b.push(p.m5, b.change(p.m5, pathSpec(ratchettree.OpAdd, b.state.Tree.Leaves(), p.m6.Keys.EncryptionKey), addOp2(p.m6.v2Member, coffer.RoleReader), rotateOp), p.m6)
	m5 := b.leaf(p.m5)
	b.push(p.m5, b.change(p.m5, nil, leaveOp(cm(p.m5))))
	check(b)
	b.push(p.owner, b.change(p.owner, &ratchettree.Spec{Removes: []uint32{m5}, Untrusted: []uint32{m5}}, rotateOp))
	check(b)
	// The owner's own device is revoked: a rekeyed self-update.
	b.push(p.owner2, b.change(p.owner, &ratchettree.Spec{SelfUpdate: p.owner2.Keys.EncryptionKey}, updateOp2(p.owner2.v2Member), rotateOp).signedBy(p.owner))
	check(b)
	// Two adds at once: bulk adds and a rekey, one at the blank leaf.
	m7 := mustTreeActor(tb, 7, 1)
	b.keys.Add(m7.Keys)
	b.push(p.owner2, b.change(p.owner2, &ratchettree.Spec{Adds: []ratchettree.LeafKey{{Leaf: m5, Key: p.writer.Keys.EncryptionKey}, {Leaf: b.state.Tree.Leaves(), Key: m7.Keys.EncryptionKey}}},
		addOp2(p.writer.v2Member, coffer.RoleWriter), addOp2(m7.v2Member, coffer.RoleReader), rotateOp), p.writer, m7)
	check(b)
	return b
}

// TestTreeGroupLifecycle: the lifecycle, with a checkpoint after each step
// that restores the same state and from which verification resumes.
func TestTreeGroupLifecycle(t *testing.T) {
	p := mustTreeCast(t)
	b := p.lifecycle(t, func(b *treeChain) {
		t.Helper()
		enc, err := b.state.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r coffer.GroupState
		if err := r.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		h1, _ := r.TreeHash()
		h2, _ := b.state.TreeHash()
		if h1 != h2 {
			t.Fatal("checkpoint changes the tree hash")
		}
		again, _ := r.MarshalBinary()
		if !bytes.Equal(again, enc) {
			t.Fatal("checkpoint does not round-trip")
		}
		for id, m := range b.state.Members {
			if r.Members[id].Leaf != m.Leaf {
				t.Fatal("checkpoint changes a leaf")
			}
		}
		if _, err := coffer.VerifyChainWith(&r, nil, b.keys); err != nil {
			t.Fatal(err)
		}
		// The server's form: the tree apart, one row per node.
		det, err := b.state.MarshalBinaryDetached()
		if err != nil {
			t.Fatal(err)
		}
		var rd coffer.GroupState
		if err := rd.UnmarshalBinaryDetached(det, func(n uint32) (*ratchettree.Tree, error) {
			var rows []ratchettree.NodeRow
			for x := range ratchettree.Width(b.state.Tree.Leaves()) {
				if r := b.state.Tree.Node(x); r.PublicKey != nil {
					rows = append(rows, r)
				}
			}
			return ratchettree.TreeFromRows(n, rows)
		}); err != nil {
			t.Fatal(err)
		}
		if again, _ := rd.MarshalBinary(); !bytes.Equal(again, enc) {
			t.Fatal("the detached checkpoint restores another state")
		}
		if (&coffer.GroupState{}).UnmarshalBinary(det) == nil {
			t.Fatal("a detached checkpoint restored without its tree")
		}
		// A cut anywhere in the tree section, or a byte more, is refused.
		for cut := len(enc) - 1; cut > len(enc)-40 && cut > 0; cut-- {
			if (&coffer.GroupState{}).UnmarshalBinary(enc[:cut]) == nil {
				t.Fatalf("a checkpoint cut to %d of %d bytes restored", cut, len(enc))
			}
		}
		if (&coffer.GroupState{}).UnmarshalBinary(append(enc, 0)) == nil {
			t.Fatal("a checkpoint with a trailing byte restored")
		}
	})
	if _, err := verifyBothWays(t, b.commits, b.keys); err != nil {
		t.Fatal(err)
	}
}

// TestTreeGroupUpgrade: a pairwise suite v2 group becomes a tree group
// with one owner commit, after which it takes tree commits only.
func TestTreeGroupUpgrade(t *testing.T) {
	p := mustTreeCast(t)
	b := upgraded(t, p)
	b.push(p.owner, b.change(p.owner, pathSpec(ratchettree.OpRemove, b.leaf(p.reader), nil), removeOp(cm(p.reader)), rotateOp))
	s, err := verifyBothWays(t, b.commits, b.keys)
	if err != nil {
		t.Fatal(err)
	}
	if s.Tree == nil || len(s.Members) != 3 {
		t.Fatal("not a tree group of three")
	}
}

// upgraded: a pairwise v2 group of the owner, admin, writer and reader,
// upgraded by the owner.
func upgraded(tb testing.TB, p treeCast) *treeChain {
	b := pairwise(tb, p)
	return b.push(p.owner, b.start(p.owner, upgradeOrder(b.state, p), rotateOp), p.all()...)
}

// upgradeOrder is every member but the owner, by account id.
func upgradeOrder(s *coffer.GroupState, p treeCast) []*treeActor {
	var out []*treeActor
	for _, m := range s.SortedMembers() {
		for _, a := range p.all() {
			if a.ID == m.ID && a.gen == 1 && m.ID != p.owner.ID {
				out = append(out, a)
			}
		}
	}
	return out
}

// TestTreeGroupAlone: a one-member tree group has no parent node; its
// first add refreshes the new leaf's path.
func TestTreeGroupAlone(t *testing.T) {
	p := mustTreeCast(t)
	b := newTreeChain(t, p.all()...)
	b.push(p.owner, b.start(p.owner, nil, addOp2(p.owner.v2Member, coffer.RoleOwner)))
	b.push(p.owner, b.change(p.owner, pathSpec(ratchettree.OpAdd, 1, p.reader.Keys.EncryptionKey), addOp2(p.reader.v2Member, coffer.RoleReader), rotateOp), p.reader)
	if b.state.Tree.Leaves() != 2 {
		t.Fatal("tree did not grow")
	}
}

// TestTreeGroupRemovedCannotRead: after their removal, a removed reader
// and a removed admin, with every secret they held, open nothing of the
// removal nor of any later commit.
func TestTreeGroupRemovedCannotRead(t *testing.T) {
	p := mustTreeCast(t)
	b := p.adminTaints(t)
	stale := func(a *treeActor) *ratchettree.Member {
		v := *b.views[a.ID]
		return &v
	}
	reader, admin := stale(p.reader), stale(p.admin)
	readerLeaf, adminLeaf := b.leaf(p.reader), b.leaf(p.admin)
	var later []*treeCommit
	rm := b.change(p.owner, pathSpec(ratchettree.OpRemove, readerLeaf, nil), removeOp(cm(p.reader)), rotateOp)
	b.push(p.owner, rm)
	later = append(later, rm)
	rm2 := b.change(p.owner, &ratchettree.Spec{Removes: []uint32{adminLeaf}, Untrusted: []uint32{adminLeaf}}, removeOp(cm(p.admin)), rotateOp)
	b.push(p.owner, rm2)
	later = append(later, rm2)
	rot := b.change(p.owner, rootSpec(b), rotateOp)
	b.push(p.owner, rot)
	later = append(later, rot)
	for i, tc := range later {
		h := sha256.Sum256(tc.c.Marshal())
		removed := []*ratchettree.Member{reader}
		if i > 0 {
			removed = append(removed, admin)
		}
		for _, v := range removed {
			cp := *v
			if k, err := cp.Receive(coffer.TreeContext(tc.c), tc.full.Detached().Attach(tc.ciphertexts()), h[:]); err == nil {
				t.Fatalf("a removed member derived the key of commit %d (%x)", tc.c.Seq, k[:4])
			}
		}
	}
}
