package e2e_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree groups end to end (docs/PROTOCOL.md, "Suite v2: tree groups"):
// members get each epoch key through the ratchet tree, from the
// ciphertexts of their path the server stores beside each commit.

// treeStory: alice's tree group with bob (writer) and carol (reader).
// Handles end in suffix, so that several stories share one server; the
// clients talk to url (a tampering proxy) or, if it is empty, the server.
type treeStory struct {
	srv               *Server
	suffix            string
	alice, bob, carol *clientlib.Client
	bobKS, carolKS    *CanaryKeyStore
	g                 coffer.GroupID
	removal           uint64 // seq of carol's removal
	carolLeaf         uint32
}

func mustV2ClientKS(t testing.TB, url, handle string) (*clientlib.Client, *CanaryKeyStore) {
	t.Helper()
	ks := NewCanaryKeyStore()
	c := MustNewClientWith(t, url, ks, &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
	rk, err := c.CreateAccount(context.Background(), handle, "phone")
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("recovery key", rk[:])
	return c, ks
}

func mustTreeStory(t *testing.T, srv *Server, suffix, url string) *treeStory {
	t.Helper()
	ctx := context.Background()
	if url == "" {
		url = srv.URL()
	}
	s := &treeStory{srv: srv, suffix: suffix, alice: mustV2Client(t, url, "alice"+suffix)}
	s.bob, s.bobKS = mustV2ClientKS(t, url, "bob"+suffix)
	s.carol, s.carolKS = mustV2ClientKS(t, url, "carol"+suffix)
	var err error
	if s.g, err = s.alice.CreateGroup(ctx, "tree", &clientlib.GroupOptions{Tree: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.alice.AddMember(ctx, s.g, "bob"+suffix, coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	if err := s.alice.AddMember(ctx, s.g, "carol"+suffix, coffer.RoleReader); err != nil {
		t.Fatal(err)
	}
	res, err := s.carol.Sync(ctx, s.g)
	if err != nil {
		t.Fatal(err)
	}
	if res.State.Tree == nil {
		t.Fatal("not a tree group")
	}
	s.carolLeaf = res.State.Members[s.carol.AccountID()].Leaf
	return s
}

func (s *treeStory) remove(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := s.alice.RemoveMember(ctx, s.g, string(s.carol.Identity().Handle())); err != nil {
		t.Fatal(err)
	}
	res, err := s.alice.Sync(ctx, s.g)
	if err != nil {
		t.Fatal(err)
	}
	s.removal = res.State.Seq
}

// TestTreeGroupStory: the three-person story on a tree group: everyone
// reads what alice and bob write; after carol's removal, which carries
// O(log n) ciphertexts and one wrap (alice's own), carol reads nothing new
// and bob reads on, old and new; dave, added after, reads the new.
func TestTreeGroupStory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	s := mustTreeStory(t, srv, "", "")
	first, err := s.alice.Put(ctx, s.g, strings.NewReader("from alice"), clientlib.Meta{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	fromBob, err := s.bob.Put(ctx, s.g, strings.NewReader("from bob"), clientlib.Meta{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*clientlib.Client{s.alice, s.bob, s.carol} {
		if got := string(mustReadResource(t, c, s.g, first.ID)); got != "from alice" {
			t.Fatalf("%s reads %q", c.Identity().Handle(), got)
		}
		if got := string(mustReadResource(t, c, s.g, fromBob.ID)); got != "from bob" {
			t.Fatalf("%s reads %q", c.Identity().Handle(), got)
		}
	}
	s.remove(t)
	secret, err := s.alice.Put(ctx, s.g, strings.NewReader("after carol"), clientlib.Meta{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readResource(s.carol, s.g, secret.ID); err == nil {
		t.Fatal("a removed member read what was written after the removal")
	}
	if got := string(mustReadResource(t, s.bob, s.g, secret.ID)); got != "after carol" {
		t.Fatalf("bob reads %q", got)
	}
	if got := string(mustReadResource(t, s.bob, s.g, first.ID)); got != "from alice" {
		t.Fatalf("bob reads %q", got)
	}
	fromBob2, err := s.bob.Put(ctx, s.g, strings.NewReader("bob after carol"), clientlib.Meta{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(mustReadResource(t, s.alice, s.g, fromBob2.ID)); got != "bob after carol" {
		t.Fatalf("alice reads %q", got)
	}

	// What the server holds of the removal: a path of ciphertexts, none
	// to carol's leaf, and alice's wrap only.
	db := mustDB(t, srv)
	var cts, toCarol, wraps int
	if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE recipient = $3) FROM tree_ciphertexts WHERE group_id = $1 AND seq = $2`,
		s.g, int64(s.removal), int32(ratchettree.LeafNode(s.carolLeaf))).Scan(&cts, &toCarol); err != nil {
		t.Fatal(err)
	}
	if cts == 0 || cts > 2 || toCarol != 0 {
		t.Fatalf("%d ciphertexts for the removal from three, %d to carol's leaf", cts, toCarol)
	}
	var epoch int64
	if err := db.QueryRow(ctx, `SELECT epoch FROM commits WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal)).Scan(&epoch); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM wrapped_keys WHERE group_id = $1 AND epoch = $2`, s.g, epoch).Scan(&wraps); err != nil || wraps != 1 {
		t.Fatalf("%d wraps of the epoch after the removal (%v)", wraps, err)
	}

	// Dave joins after: he reads the new, and bob (who did not commit)
	// follows the add through the tree.
	dave := mustV2Client(t, srv.URL(), "dave")
	if err := s.alice.AddMember(ctx, s.g, "dave", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	if got := string(mustReadResource(t, dave, s.g, fromBob2.ID)); got != "bob after carol" {
		t.Fatalf("dave reads %q", got)
	}
	fromDave, err := dave.Put(ctx, s.g, strings.NewReader("from dave"), clientlib.Meta{Name: "e"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(mustReadResource(t, s.bob, s.g, fromDave.ID)); got != "from dave" {
		t.Fatalf("bob reads %q", got)
	}
	if _, err := readResource(s.carol, s.g, fromDave.ID); err == nil {
		t.Fatal("the removed member read dave's resource")
	}

	// A fresh device of bob's (empty key store) replays the tree.
	bob2 := mustLinkV2(t, srv.URL(), s.bob, "bob", "tablet")
	if got := string(mustReadResource(t, bob2, s.g, fromDave.ID)); got != "from dave" {
		t.Fatalf("bob's new device reads %q", got)
	}
}

// mustLinkV2 links a new suite v2 client (of url) to handle's account,
// approved by approver, and returns it with its key store.
func mustLinkV2(t testing.TB, url string, approver *clientlib.Client, handle, device string) *clientlib.Client {
	c, _ := mustLinkV2KS(t, url, approver, handle, device)
	return c
}

func mustLinkV2KS(t testing.TB, url string, approver *clientlib.Client, handle, device string) (*clientlib.Client, *CanaryKeyStore) {
	t.Helper()
	ctx := context.Background()
	ks := NewCanaryKeyStore()
	c := MustNewClientWith(t, url, ks, &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
	pl, err := c.StartDeviceLink(ctx, handle, device)
	if err != nil {
		t.Fatal(err)
	}
	RecordSecret("pairing code", []byte(pl.Code()))
	if _, err := approver.ApproveDeviceLink(ctx, pl.Code()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := pl.Wait(wctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return c, ks
}

// TestTreeGroupUpgrade: a pairwise suite v2 group becomes a tree group with
// one owner commit; every member reads what was written before and after,
// a removal after it costs a path, and the removed member reads nothing
// new. Only an owner upgrades; upgrading again does nothing.
func TestTreeGroupUpgrade(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	for _, history := range []bool{false, true} {
		suffix := "n"
		if history {
			suffix = "h"
		}
		alice := mustV2Client(t, srv.URL(), "alice"+suffix)
		bob := mustV2Client(t, srv.URL(), "bob"+suffix)
		carol := mustV2Client(t, srv.URL(), "carol"+suffix)
		g, err := alice.CreateGroup(ctx, "pairwise", &clientlib.GroupOptions{NoHistory: !history})
		if err != nil {
			t.Fatal(err)
		}
		if err := alice.AddMember(ctx, g, "bob"+suffix, coffer.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		if err := alice.AddMember(ctx, g, "carol"+suffix, coffer.RoleReader); err != nil {
			t.Fatal(err)
		}
		before := mustPut(t, bob, g, "before", []byte("pairwise"))
		if err := bob.UpgradeToTree(ctx, g); coffer.ErrorCode(err) != coffer.EFORBIDDEN {
			t.Fatalf("an admin upgrades: %v", err)
		}
		if err := alice.UpgradeToTree(ctx, g); err != nil {
			t.Fatal(err)
		}
		res, err := carol.Sync(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if res.State.Tree == nil {
			t.Fatal("the upgraded group is not a tree group")
		}
		if err := alice.UpgradeToTree(ctx, g); err != nil {
			t.Fatalf("upgrading a tree group: %v", err)
		}
		if again, _ := carol.Sync(ctx, g); again.State.Seq != res.State.Seq {
			t.Fatal("upgrading a tree group appended a commit")
		}
		after := mustPut(t, alice, g, "after", []byte("tree"))
		for _, c := range []*clientlib.Client{alice, bob, carol} {
			if got := string(mustReadResource(t, c, g, before.ID)); got != "pairwise" {
				t.Fatalf("%s reads %q", c.Identity().Handle(), got)
			}
			if got := string(mustReadResource(t, c, g, after.ID)); got != "tree" {
				t.Fatalf("%s reads %q", c.Identity().Handle(), got)
			}
		}
		// A new member of a history group reads what came before the
		// upgrade through the links.
		dave := mustV2Client(t, srv.URL(), "dave"+suffix)
		if err := bob.AddMember(ctx, g, "dave"+suffix, coffer.RoleReader); err != nil {
			t.Fatal(err)
		}
		_, err = readResource(dave, g, before.ID)
		if history && err != nil || !history && err == nil {
			t.Fatalf("history %v: dave reads the pairwise epoch's resource: %v", history, err)
		}
		if err := bob.RemoveMember(ctx, g, "carol"+suffix); err != nil {
			t.Fatal(err)
		}
		secret := mustPut(t, alice, g, "secret", []byte("after carol"))
		if _, err := readResource(carol, g, secret.ID); err == nil {
			t.Fatal("the removed member reads after the upgrade")
		}
		for _, c := range []*clientlib.Client{alice, bob, dave} {
			if got := string(mustReadResource(t, c, g, secret.ID)); got != "after carol" {
				t.Fatalf("%s reads %q", c.Identity().Handle(), got)
			}
		}
	}
}
