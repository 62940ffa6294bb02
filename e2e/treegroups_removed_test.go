package e2e_test

import (
	"context"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// A former member of a tree group, or a revoked device, with its key store
// and a copy of the database: treeInsider derives everything that can be
// derived from them, as an attacker that ignores every rule would, and
// the tests require that it reaches no epoch after the removal.

// treeInsider is the attacker's knowledge: every candidate secret (32
// bytes) and every X-Wing private key whose public key some tree node or
// leaf ever held.
type treeInsider struct {
	t       *testing.T
	g       coffer.GroupID
	pubs    map[string]bool
	privs   []hpke.PrivateKey
	privOf  map[string]bool
	secrets map[[32]byte]bool
	from    map[[32]byte]string // how each secret was found (for a failure's report)
}

// treeChain is the group's commits from the database, verified.
type treeChain struct {
	commits []coffer.SignedCommit
	parsed  []*coffer.Commit
}

func treeChainOf(t *testing.T, db *pgx.Conn, g coffer.GroupID) *treeChain {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT body, signature FROM commits WHERE group_id = $1 ORDER BY seq`, g)
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
	ch := &treeChain{commits: commits}
	for _, sc := range commits {
		c, err := coffer.ParseCommit(sc.Body)
		if err != nil {
			t.Fatal(err)
		}
		ch.parsed = append(ch.parsed, c)
	}
	return ch
}

// treeRooted reports whether c's epoch key comes from the tree root (its
// key commitment then commits to the root secret).
func treeRooted(c *coffer.Commit) bool {
	tp := c.Tree
	return tp != nil && tp.Commit != nil && (tp.Commit.Path != nil || len(tp.Commit.Rekey) > 0)
}

func startsEpochCommit(c *coffer.Commit) bool {
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

// newTreeInsider seeds the attacker with every 32-byte window of the
// named key store entries (no layout assumed) taken as a secret, an
// X-Wing seed and a node secret.
func newTreeInsider(t *testing.T, ch *treeChain, g coffer.GroupID, ks clientlib.KeyStore) *treeInsider {
	in := &treeInsider{t: t, g: g, pubs: map[string]bool{}, privOf: map[string]bool{}, secrets: map[[32]byte]bool{}, from: map[[32]byte]string{}}
	for _, c := range ch.parsed {
		tp := c.Tree
		if tp == nil || tp.Commit == nil {
			continue
		}
		// The signed commits name keys by digest; the insider knows a
		// private key is a tree key when its public key's digest is one.
		add := func(d [32]byte) { in.pubs[string(d[:])] = true }
		if tp.StartKey != nil {
			add(ratchettree.KeyDigest(tp.StartKey))
		}
		tc := tp.Commit
		for _, a := range tc.Adds {
			add(ratchettree.SlotDigest(a.Key, a.Digest))
		}
		if d, ok := ratchettree.OptionalDigest(tc.SelfUpdate, tc.SelfUpdateDigest); ok {
			add(d)
		}
		if p := tc.Path; p != nil {
			if d, ok := ratchettree.OptionalDigest(p.LeafKey, p.LeafKeyDigest); ok {
				add(d)
			}
			for _, d := range p.KeyDigests {
				add(d)
			}
		}
		for _, r := range tc.Rekey {
			add(ratchettree.SlotDigest(r.PublicKey, r.Digest))
		}
	}
	delete(in.pubs, "")
	names := append([]string{"identity", "device", "user-keys", "group/" + g.String() + "/tree"}, groupStateNames(g)...)
	for _, name := range names {
		b, err := ks.Get(name)
		if err != nil {
			continue
		}
		for i := 0; i+32 <= len(b); i++ {
			w := b[i : i+32]
			in.secrets[[32]byte(w)] = true
			in.from[[32]byte(w)] = name
			if k, err := coffer.KEM().NewPrivateKey(w); err == nil {
				in.addPriv(k)
			}
			if k, err := coffer.KEM().DeriveKeyPair(w); err == nil {
				in.addPriv(k)
			}
		}
	}
	if len(in.privs) == 0 {
		t.Fatal("the insider holds no key of the tree at all: the attack tests nothing")
	}
	return in
}

func (in *treeInsider) addPriv(k hpke.PrivateKey) bool {
	d := ratchettree.KeyDigest(k.PublicKey().Bytes())
	pub := string(d[:])
	if !in.pubs[pub] || in.privOf[pub] {
		return false
	}
	in.privOf[pub] = true
	in.privs = append(in.privs, k)
	return true
}

// addSecret takes s as a node secret (and a candidate root secret).
func (in *treeInsider) addSecret(s []byte) bool {
	grew := !in.secrets[[32]byte(s)]
	in.secrets[[32]byte(s)] = true
	if k, err := coffer.KEM().DeriveKeyPair(s); err == nil && in.addPriv(k) {
		grew = true
	}
	return grew
}

func treeExpand(s []byte, label string) []byte {
	out, err := hkdf.Expand(sha256.New, s, label, 32)
	if err != nil {
		panic(err)
	}
	return out
}

func treeInfo(label string, g coffer.GroupID, epoch uint64, node, recipient uint32) []byte {
	b := append([]byte(label), 0)
	b = append(b, g[:]...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.BigEndian.AppendUint32(b, node)
	return binary.BigEndian.AppendUint32(b, recipient)
}

// run opens, until nothing new comes, every tree ciphertext of the group
// with every key known (both kinds of info), every wrap as every member,
// and every history link with every secret.
func (in *treeInsider) run(db *pgx.Conn, ch *treeChain) {
	t, ctx := in.t, context.Background()
	epochOf := map[uint64]uint64{}
	for _, c := range ch.parsed {
		epochOf[c.Seq] = c.Epoch
	}
	type ctRow struct {
		seq             uint64
		node, recipient uint32
		sealed          []byte
	}
	rows, _ := db.Query(ctx, `SELECT seq, node, recipient, sealed FROM tree_ciphertexts WHERE group_id = $1`, in.g)
	cts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ctRow, error) {
		var c ctRow
		var seq int64
		var node, recipient int32
		err := r.Scan(&seq, &node, &recipient, &c.sealed)
		c.seq, c.node, c.recipient = uint64(seq), uint32(node), uint32(recipient)
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	type wrapRow struct {
		epoch  uint64
		member coffer.AccountID
		wrap   []byte
	}
	rows, _ = db.Query(ctx, `SELECT epoch, member_id, wrap FROM wrapped_keys WHERE group_id = $1`, in.g)
	wraps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (wrapRow, error) {
		var w wrapRow
		return w, r.Scan(&w.epoch, &w.member, &w.wrap)
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ = db.Query(ctx, `SELECT epoch, link FROM history_links WHERE group_id = $1`, in.g)
	type linkRow struct {
		epoch uint64
		link  []byte
	}
	links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (linkRow, error) {
		var l linkRow
		return l, r.Scan(&l.epoch, &l.link)
	})
	if err != nil {
		t.Fatal(err)
	}
	kdf, aead := hpke.HKDFSHA256(), hpke.AES256GCM()
	tried := map[[2]int]bool{}
	wrapTried := map[[2]int]bool{}
	linkTried := map[[32]byte]bool{}
	for grew := true; grew; {
		grew = false
		for pi := 0; pi < len(in.privs); pi++ {
			k := in.privs[pi]
			for ci, ct := range cts {
				if tried[[2]int{pi, ci}] {
					continue
				}
				tried[[2]int{pi, ci}] = true
				e := epochOf[ct.seq]
				if s, err := hpke.Open(k, kdf, aead, treeInfo(ratchettree.LabelTreeRekey, in.g, e, ct.node, ct.recipient), ct.sealed); err == nil {
					in.note(s, "rekey ciphertext seq %d node %d recipient %d", ct.seq, ct.node, ct.recipient)
					grew = in.addSecret(s) || grew
				}
				if ps, err := hpke.Open(k, kdf, aead, treeInfo(ratchettree.LabelTreePath, in.g, e, ct.node, ct.recipient), ct.sealed); err == nil {
					for range 32 {
						in.note(ps, "path ciphertext seq %d node %d recipient %d", ct.seq, ct.node, ct.recipient)
						in.note(treeExpand(ps, ratchettree.LabelTreeNodeSecret), "path ciphertext seq %d node %d recipient %d", ct.seq, ct.node, ct.recipient)
						in.secrets[[32]byte(ps)] = true
						grew = in.addSecret(treeExpand(ps, ratchettree.LabelTreeNodeSecret)) || grew
						ps = treeExpand(ps, ratchettree.LabelTreePathNext)
					}
				}
			}
			for wi, w := range wraps {
				if wrapTried[[2]int{pi, wi}] {
					continue
				}
				wrapTried[[2]int{pi, wi}] = true
				if s, err := groupkey.Unwrap(k, in.g, w.epoch, w.member, w.wrap); err == nil {
					in.note(s[:], "wrap epoch %d", w.epoch)
					grew = in.addSecret(s[:]) || grew
				}
			}
		}
		// Epoch secrets of every root node secret found, the epoch keys
		// they give, then history links.
		for s := range in.secrets {
			for _, c := range ch.parsed {
				if !treeRooted(c) {
					continue
				}
				if e := [32]byte(groupkey.TreeEpochSecret(s[:], in.g, c.Epoch)); !in.secrets[e] && in.rootOf(c, e) {
					in.note(e[:], "epoch secret of seq %d from %s", c.Seq, in.from[s])
					in.secrets[e], grew = true, true
				}
			}
		}
		for s := range in.secrets {
			for i, c := range ch.parsed {
				if treeRooted(c) && in.rootOf(c, s) {
					h := ch.commits[i].Hash()
					k := [32]byte(ratchettree.EpochKey(s[:], h[:]))
					if !in.secrets[k] {
						in.note(k[:], "epoch key of seq %d from %s", c.Seq, in.from[s])
						in.secrets[k], grew = true, true
					}
				}
			}
		}
		for s := range in.secrets {
			if linkTried[s] {
				continue
			}
			linkTried[s] = true
			for _, l := range links {
				if older, err := groupkey.OpenHistoryLink(groupkey.EpochKey(s), in.g, l.epoch, l.link); err == nil && !in.secrets[older] {
					in.note(older[:], "link %d from %s", l.epoch, in.from[s])
					in.secrets[older], grew = true, true
				}
			}
		}
	}
}

func (in *treeInsider) note(s []byte, format string, args ...any) {
	if _, ok := in.from[[32]byte(s)]; !ok {
		in.from[[32]byte(s)] = fmt.Sprintf(format, args...)
	}
}

func (in *treeInsider) rootOf(c *coffer.Commit, s [32]byte) bool {
	got := groupkey.TreeCommitment(s[:], in.g, c.Epoch)
	return got == c.KeyCommitment
}

// epochs lists the epochs whose key commitment one of the insider's
// secrets meets.
func (in *treeInsider) epochs(ch *treeChain) map[uint64][32]byte {
	out := map[uint64][32]byte{}
	for _, c := range ch.parsed {
		if !startsEpochCommit(c) {
			continue
		}
		for s := range in.secrets {
			if treeRooted(c) && in.rootOf(c, s) || !treeRooted(c) && groupkey.CheckCommitment(groupkey.EpochKey(s), in.g, c.Epoch, c.KeyCommitment) {
				out[c.Epoch] = s
				break
			}
		}
	}
	return out
}

// mustNotReachAfter runs the insider of ks on g's database and requires
// that it reaches the epoch before `from` (the attack is real: it was
// entitled to it) and none from `from` on; and that the resource r,
// written at epoch from or later, does not decrypt under anything it
// holds.
func mustNotReachAfter(t *testing.T, srv *Server, ks clientlib.KeyStore, g coffer.GroupID, from uint64, r *clientlib.Resource) {
	t.Helper()
	db := mustDB(t, srv)
	ch := treeChainOf(t, db, g)
	in := newTreeInsider(t, ch, g, ks)
	in.run(db, ch)
	got := in.epochs(ch)
	if _, ok := got[from-1]; !ok {
		t.Fatalf("the insider does not even reach epoch %d, which it was entitled to (reached %v): the attack is not real", from-1, got)
	}
	for e, s := range got {
		if e >= from {
			t.Fatalf("the insider reaches epoch %d (removed at %d) through %s", e, from, in.from[s])
		}
	}
	// The resource, under every epoch key the insider derived.
	for i, c := range ch.parsed {
		if c.Epoch < from || !treeRooted(c) {
			continue
		}
		h := ch.commits[i].Hash()
		for s := range in.secrets {
			if pt := decryptFromDB(t, srv, db, groupkey.EpochKey(s), g, r.Epoch, r.ID); pt != nil {
				t.Fatalf("the insider decrypts the resource written after the removal: %q", pt)
			}
			k := groupkey.EpochKey(ratchettree.EpochKey(s[:], h[:]))
			if pt := decryptFromDB(t, srv, db, k, g, r.Epoch, r.ID); pt != nil {
				t.Fatalf("the insider decrypts the resource written after the removal: %q", pt)
			}
		}
	}
	t.Logf("insider: %d secrets, %d node keys, reached epochs %v, none from %d", len(in.secrets), len(in.privs), got, from)
}

// TestTreeGroupRemovedCannotRead: a removed reader, a removed admin (who
// had committed, and so tainted nodes), and the revoked devices of a
// writer and of the owner (through their self-updates) each keep their
// key store; with a copy of the database, none reaches any epoch after
// the removal, nor decrypts what was written after it, while the others
// read on.
func TestTreeGroupRemovedCannotRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	put := func(c *clientlib.Client, g coffer.GroupID, what string) *clientlib.Resource {
		t.Helper()
		r, err := c.Put(ctx, g, strings.NewReader(what), clientlib.Meta{Name: what})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	readBy := func(r *clientlib.Resource, g coffer.GroupID, want string, cs ...*clientlib.Client) {
		t.Helper()
		for _, c := range cs {
			if got := string(mustReadResource(t, c, g, r.ID)); got != want {
				t.Fatalf("%s reads %q", c.Identity().Handle(), got)
			}
		}
	}

	t.Run("leaf", func(t *testing.T) {
		s := mustTreeStory(t, srv, "1", "")
		readBy(put(s.alice, s.g, "before"), s.g, "before", s.carol)
		s.remove(t)
		from := mustEpoch(t, s.alice, s.g)
		r := put(s.alice, s.g, "after")
		readBy(r, s.g, "after", s.bob)
		mustNotReachAfter(t, srv, s.carolKS, s.g, from, r)
	})

	t.Run("admin", func(t *testing.T) {
		// Carol, an admin, commits twice (an add and a removal), learning
		// secrets of nodes above others' leaves; her removal must refresh
		// every one of them.
		s := mustTreeStory(t, srv, "2", "")
		if err := s.alice.ChangeRole(ctx, s.g, "carol2", coffer.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"dave2", "erin2", "fred2"} {
			mustV2Client(t, srv.URL(), h)
			if err := s.carol.AddMember(ctx, s.g, h, coffer.RoleReader); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.carol.RemoveMember(ctx, s.g, "erin2"); err != nil {
			t.Fatal(err)
		}
		readBy(put(s.bob, s.g, "before"), s.g, "before", s.carol)
		s.remove(t)
		from := mustEpoch(t, s.alice, s.g)
		r := put(s.bob, s.g, "after")
		readBy(r, s.g, "after", s.alice)
		mustNotReachAfter(t, srv, s.carolKS, s.g, from, r)
	})

	t.Run("left", func(t *testing.T) {
		// Carol, an admin who committed, leaves; the next rotation (a
		// plain one, and then a removal) takes her leaf and every node she
		// tainted.
		s := mustTreeStory(t, srv, "4", "")
		if err := s.alice.ChangeRole(ctx, s.g, "carol4", coffer.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		mustV2Client(t, srv.URL(), "dave4")
		if err := s.carol.AddMember(ctx, s.g, "dave4", coffer.RoleReader); err != nil {
			t.Fatal(err)
		}
		readBy(put(s.bob, s.g, "before"), s.g, "before", s.carol)
		if err := s.carol.Leave(ctx, s.g); err != nil {
			t.Fatal(err)
		}
		if err := s.alice.Rotate(ctx, s.g); err != nil {
			t.Fatal(err)
		}
		from := mustEpoch(t, s.alice, s.g)
		r := put(s.bob, s.g, "after")
		readBy(r, s.g, "after", s.alice)
		if err := s.alice.RemoveMember(ctx, s.g, "dave4"); err != nil {
			t.Fatal(err)
		}
		r2 := put(s.alice, s.g, "after dave")
		readBy(r2, s.g, "after dave", s.bob)
		mustNotReachAfter(t, srv, s.carolKS, s.g, from, r)
	})

	t.Run("revoked device", func(t *testing.T) {
		// Bob (a writer, tainting nothing: a path self-update) and alice
		// (the owner, whose devices knew every node she tainted: a rekeyed
		// self-update) each revoke a device.
		s := mustTreeStory(t, srv, "3", "")
		bobTablet, bobTabletKS := mustLinkV2KS(t, srv.URL(), s.bob, "bob3", "tablet")
		aliceTablet, aliceTabletKS := mustLinkV2KS(t, srv.URL(), s.alice, "alice3", "tablet")
		readBy(put(s.bob, s.g, "before"), s.g, "before", bobTablet, aliceTablet)

		if err := s.bob.RevokeDevice(ctx, "tablet"); err != nil {
			t.Fatal(err)
		}
		fromBob := mustEpoch(t, s.alice, s.g)
		r := put(s.alice, s.g, "after bob's revocation")
		readBy(r, s.g, "after bob's revocation", s.bob, s.carol)
		if _, err := readResource(bobTablet, s.g, r.ID); err == nil {
			t.Fatal("bob's revoked tablet reads what was written after its revocation")
		}
		mustNotReachAfter(t, srv, bobTabletKS, s.g, fromBob, r)

		readBy(r, s.g, "after bob's revocation", aliceTablet)
		if err := s.alice.RevokeDevice(ctx, "tablet"); err != nil {
			t.Fatal(err)
		}
		from := mustEpoch(t, s.bob, s.g)
		r = put(s.bob, s.g, "after alice's revocation")
		readBy(r, s.g, "after alice's revocation", s.alice, s.carol)
		mustNotReachAfter(t, srv, aliceTabletKS, s.g, from, r)
		mustNotReachAfter(t, srv, bobTabletKS, s.g, fromBob, r)
	})
}
