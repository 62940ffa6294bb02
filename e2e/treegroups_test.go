package e2e_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree groups end to end (docs/PROTOCOL.md, "Suite v2: tree groups"):
// members get each epoch key through the ratchet tree, from the
// ciphertexts of their path the server stores beside each commit.

// treeStory: alice's tree group with bob (writer) and carol (reader), a
// resource from each writer, and carol's removal, not yet read by bob.
type treeStory struct {
	srv               *Server
	alice, bob, carol *clientlib.Client
	g                 coffer.GroupID
	removal           uint64 // seq of carol's removal
	carolLeaf         uint32
}

func mustTreeStory(t *testing.T, srv *Server) *treeStory {
	t.Helper()
	ctx := context.Background()
	s := &treeStory{srv: srv, alice: mustV2Client(t, srv.URL(), "alice"), bob: mustV2Client(t, srv.URL(), "bob"), carol: mustV2Client(t, srv.URL(), "carol")}
	var err error
	if s.g, err = s.alice.CreateGroup(ctx, "tree", &clientlib.GroupOptions{Tree: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.alice.AddMember(ctx, s.g, "bob", coffer.RoleWriter); err != nil {
		t.Fatal(err)
	}
	if err := s.alice.AddMember(ctx, s.g, "carol", coffer.RoleReader); err != nil {
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
	if err := s.alice.RemoveMember(context.Background(), s.g, "carol"); err != nil {
		t.Fatal(err)
	}
	res, err := s.alice.Sync(context.Background(), s.g)
	if err != nil {
		t.Fatal(err)
	}
	s.removal = res.State.Seq
}

// TestTreeGroupStory: the three-person story on a tree group: everyone
// reads what alice and bob write; after carol's removal, which carries
// O(log n) ciphertexts and one wrap (alice's own), carol reads nothing new
// and bob reads on.
func TestTreeGroupStory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := MustServer(t)
	s := mustTreeStory(t, srv)
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

	// What the server holds of the removal: a path of ciphertexts, none
	// to carol's leaf, and alice's wrap only.
	db := mustDB(t, srv)
	var cts, toCarol, wraps int
	if err := db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE recipient = $3) FROM tree_ciphertexts WHERE group_id = $1 AND seq >= $2`,
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
}

// TestTreeGroupTamper: what the server stores beside a tree commit,
// changed in its database before bob reads the removal, is a security
// error for bob: a ciphertext whose bytes changed, one withheld, one moved
// to another recipient node, one taken from the same removal in another
// group (same shape), and the signed tree part changed.
func TestTreeGroupTamper(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, db *pgx.Conn, s *treeStory)
	}{
		{"flipped", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExec(t, db, `UPDATE tree_ciphertexts SET sealed = overlay(sealed placing '\x00\x01'::bytea from 1100) WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"withheld", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExec(t, db, `DELETE FROM tree_ciphertexts WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"moved to another node", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExec(t, db, `UPDATE tree_ciphertexts SET recipient = recipient + 1000 WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"from another group", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			other := mustTreeStory(t, s.srv)
			other.remove(t)
			mustExec(t, db, `UPDATE tree_ciphertexts t SET sealed = o.sealed FROM tree_ciphertexts o
				WHERE t.group_id = $1 AND t.seq = $2 AND o.group_id = $3 AND o.seq = $4 AND o.node = t.node AND o.recipient = t.recipient`,
				s.g, int64(s.removal), other.g, int64(other.removal))
		}},
		{"signed part changed", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			// The last byte of a tree commit is its tree hash.
			mustExec(t, db, `UPDATE commits SET body = overlay(body placing '\xff'::bytea from length(body)) WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustTreeStory(t, srv)
			// Bob has read the group before; the tampering hits the removal.
			if _, err := s.bob.Sync(context.Background(), s.g); err != nil {
				t.Fatal(err)
			}
			if _, err := s.bob.ReadableEpochs(context.Background(), s.g); err != nil {
				t.Fatal(err)
			}
			s.remove(t)
			tc.tamper(t, mustDB(t, srv), s)
			_, err := s.bob.ReadableEpochs(context.Background(), s.g)
			wantSecurity(t, err)
		})
	}
}
