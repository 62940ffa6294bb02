package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/api"
)

// A server tampering with a tree group's ratchet tree, through its
// database or a proxy rewriting what it serves: each variant is a
// security error for the member who reads the tampered commit, and once
// the server serves honestly again the member reads on.

// treeDBTamper changes what the server stores for a tree story's group.
type treeDBTamper struct {
	name   string
	tamper func(t *testing.T, db *pgx.Conn, s *treeStory)
}

// TestTreeGroupTamper: what the server stores beside a tree commit (or in
// it), changed in its database before bob reads carol's removal: a
// ciphertext whose bytes changed, one withheld, one moved to another
// recipient or another node, one sealed to another node's key (another
// commit's, same recipient), one from the same removal in another group
// (same shape), another group's rows in place of the group's own, the
// signed tree hash changed, and a refreshed public key's digest in the
// signed commit changed.
func TestTreeGroupTamper(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	for i, tc := range []treeDBTamper{
		{"flipped", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExecN(t, db, `UPDATE tree_ciphertexts SET sealed = overlay(sealed placing '\x0001'::bytea from 1100) WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"flipped enc", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExecN(t, db, `UPDATE tree_ciphertexts SET sealed = overlay(sealed placing '\xff'::bytea from 7) WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"withheld", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExecN(t, db, `DELETE FROM tree_ciphertexts WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"moved to another recipient", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExecN(t, db, `UPDATE tree_ciphertexts SET recipient = recipient + 1000 WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"moved to another node", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExecN(t, db, `UPDATE tree_ciphertexts SET node = node + 4 WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"sealed to another node", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			// The ciphertext to the same recipient from carol's add: sealed
			// to that recipient's earlier key, for another node and epoch.
			mustExecN(t, db, `UPDATE tree_ciphertexts t SET sealed = o.sealed FROM tree_ciphertexts o
				WHERE t.group_id = $1 AND t.seq = $2 AND o.group_id = $1 AND o.seq = $2 - 1 AND o.recipient = t.recipient`, s.g, int64(s.removal))
		}},
		{"from another group", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			other := mustTreeStory(t, s.srv, s.suffix+"o", "")
			other.remove(t)
			mustExecN(t, db, `UPDATE tree_ciphertexts t SET sealed = o.sealed FROM tree_ciphertexts o
				WHERE t.group_id = $1 AND t.seq = $2 AND o.group_id = $3 AND o.seq = $4 AND o.node = t.node AND o.recipient = t.recipient`,
				s.g, int64(s.removal), other.g, int64(other.removal))
		}},
		{"another group's rows", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			other := mustTreeStory(t, s.srv, s.suffix+"o", "")
			other.remove(t)
			mustExec(t, db, `DELETE FROM tree_ciphertexts WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
			mustExecN(t, db, `INSERT INTO tree_ciphertexts (group_id, seq, node, recipient, sealed)
				SELECT $1, $2, node, recipient, sealed FROM tree_ciphertexts WHERE group_id = $3 AND seq = $4`,
				s.g, int64(s.removal), other.g, int64(other.removal))
		}},
		{"tree hash changed", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			// The last bytes of a tree commit's body are its tree hash.
			mustExecN(t, db, `UPDATE commits SET body = overlay(body placing '\xff'::bytea from length(body)) WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal))
		}},
		{"public key changed", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			var body []byte
			if err := db.QueryRow(ctx, `SELECT body FROM commits WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal)).Scan(&body); err != nil {
				t.Fatal(err)
			}
			c, err := coffer.ParseCommit(body)
			if err != nil || c.Tree == nil || c.Tree.Commit.Path == nil {
				t.Fatalf("the removal is not a path update: %v", err)
			}
			// The signed commit names the path's keys by digest.
			at := bytes.Index(body, c.Tree.Commit.Path.KeyDigests[0][:])
			if at < 0 {
				t.Fatal("no public key digest in the body")
			}
			body[at+7] ^= 1
			mustExecN(t, db, `UPDATE commits SET body = $3 WHERE group_id = $1 AND seq = $2`, s.g, int64(s.removal), body)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustTreeStory(t, srv, fmt.Sprintf("d%d", i), "")
			// Bob has read the group before; the tampering hits the removal.
			if _, err := s.bob.ReadableEpochs(ctx, s.g); err != nil {
				t.Fatal(err)
			}
			s.remove(t)
			tc.tamper(t, mustDB(t, srv), s)
			_, err := s.bob.ReadableEpochs(ctx, s.g)
			wantSecurity(t, err)
		})
	}
}

// mustExecN is mustExec that requires the statement to change a row.
func mustExecN(tb testing.TB, db *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	tag, err := db.Exec(context.Background(), sql, args...)
	if err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	if tag.RowsAffected() == 0 {
		tb.Fatalf("%s changed nothing: the tampering tests nothing", sql)
	}
}

// TestTreeGroupTamperServed: the tree-ciphertexts answer rewritten by a
// proxy: emptied, each ciphertext's node or recipient changed, its bytes
// flipped or cut, duplicated, padded with others, over the count bound,
// another commit's, another group's (same removal, same positions). Each
// is a security error for bob; served honestly again, he reads on.
func TestTreeGroupTamperServed(t *testing.T) {
	t.Parallel()
	srv, p := newProxiedServer(t)
	ctx := context.Background()
	other := mustTreeStory(t, srv, "x", p.URL)
	other.remove(t)
	db := mustDB(t, srv)
	var otherList api.TreeCiphertextList
	rows, err := db.Query(ctx, `SELECT node, recipient, sealed FROM tree_ciphertexts WHERE group_id = $1 AND seq = $2 ORDER BY node, recipient`, other.g, int64(other.removal))
	if err != nil {
		t.Fatal(err)
	}
	otherList.Ciphertexts, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.TreeCiphertext, error) {
		var c api.TreeCiphertext
		var node, recipient int32
		err := r.Scan(&node, &recipient, &c.Sealed)
		c.Node, c.Recipient = uint32(node), uint32(recipient)
		return c, err
	})
	if err != nil || len(otherList.Ciphertexts) == 0 {
		t.Fatalf("the other group's removal: %d ciphertexts, %v", len(otherList.Ciphertexts), err)
	}
	var earlier []byte // an earlier commit's answer for bob, recorded
	for i, tc := range []struct {
		name string
		edit func(l *api.TreeCiphertextList)
	}{
		{"emptied", func(l *api.TreeCiphertextList) { l.Ciphertexts = nil }},
		{"node changed", func(l *api.TreeCiphertextList) {
			for i := range l.Ciphertexts {
				l.Ciphertexts[i].Node += 2
			}
		}},
		{"recipient changed", func(l *api.TreeCiphertextList) {
			for i := range l.Ciphertexts {
				l.Ciphertexts[i].Recipient ^= 2
			}
		}},
		{"flipped", func(l *api.TreeCiphertextList) {
			for i := range l.Ciphertexts {
				l.Ciphertexts[i].Sealed[len(l.Ciphertexts[i].Sealed)-1] ^= 1
			}
		}},
		{"cut", func(l *api.TreeCiphertextList) {
			for i := range l.Ciphertexts {
				l.Ciphertexts[i].Sealed = l.Ciphertexts[i].Sealed[:100]
			}
		}},
		{"duplicated first", func(l *api.TreeCiphertextList) {
			// A flipped copy placed before the honest one.
			c := l.Ciphertexts[0]
			c.Sealed = append([]byte(nil), c.Sealed...)
			c.Sealed[50] ^= 1
			l.Ciphertexts = append([]api.TreeCiphertext{c}, l.Ciphertexts...)
		}},
		{"over the bound", func(l *api.TreeCiphertextList) {
			for len(l.Ciphertexts) <= 64 {
				l.Ciphertexts = append(l.Ciphertexts, l.Ciphertexts[0])
			}
		}},
		{"another group's", func(l *api.TreeCiphertextList) { *l = otherList }},
		{"another commit's", func(l *api.TreeCiphertextList) {
			if err := json.Unmarshal(earlier, l); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustTreeStory(t, srv, fmt.Sprintf("p%d", i), p.URL)
			// Bob read the group before (recording his answer for carol's
			// add); the tampering hits the removal.
			p.set(func(path string, body []byte) []byte {
				if strings.HasSuffix(path, "/commits/3/tree-ciphertexts") {
					earlier = append([]byte(nil), body...)
				}
				return nil
			})
			if _, err := s.bob.ReadableEpochs(ctx, s.g); err != nil {
				t.Fatal(err)
			}
			if earlier == nil {
				t.Fatal("bob fetched no ciphertexts for carol's add")
			}
			s.remove(t)
			tampered := false
			p.set(func(path string, body []byte) []byte {
				if !strings.HasSuffix(path, fmt.Sprintf("/commits/%d/tree-ciphertexts", s.removal)) {
					return nil
				}
				var l api.TreeCiphertextList
				if err := json.Unmarshal(body, &l); err != nil || len(l.Ciphertexts) == 0 {
					t.Errorf("the honest answer: %d ciphertexts, %v", len(l.Ciphertexts), err)
					return nil
				}
				tc.edit(&l)
				out, _ := json.Marshal(l)
				tampered = true
				return out
			})
			_, err := s.bob.ReadableEpochs(ctx, s.g)
			if !tampered {
				t.Fatal("bob did not fetch the removal's ciphertexts")
			}
			wantSecurity(t, err)
			p.set(nil)
			if _, err := s.bob.ReadableEpochs(ctx, s.g); err != nil {
				t.Fatalf("served honestly again, bob does not read: %v", err)
			}
		})
	}
}

// TestTreeGroupNodeKeysTamper: a committer's verified tree holds key
// digests, and it fetches the keys it seals to from the server
// (tree-nodes). A server that serves other keys, from its database or a
// proxy, is a security error before anything is sealed: another group's
// keys at the same nodes (a server swapping nodes between groups), the
// keys of other nodes of the same group, and a key of the right size
// that is no node's. Once the server serves honestly again, the owner
// commits (adds a member, whose path seals to a node an earlier removal
// refreshed).
func TestTreeGroupNodeKeysTamper(t *testing.T) {
	t.Parallel()
	srv := MustServer(t)
	ctx := context.Background()
	for i, tc := range []treeDBTamper{
		{"another group's nodes", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			other := mustTreeStory(t, s.srv, s.suffix+"o", "")
			other.remove(t)
			mustExecN(t, db, `UPDATE tree_nodes t SET public_key = o.public_key FROM tree_nodes o
				WHERE t.group_id = $1 AND o.group_id = $2 AND o.node = t.node`, s.g, other.g)
		}},
		{"another node's key", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExecN(t, db, `UPDATE tree_nodes t SET public_key = o.public_key FROM tree_nodes o
				WHERE t.group_id = $1 AND o.group_id = $1 AND o.node <> t.node`, s.g)
		}},
		{"no node's key", func(t *testing.T, db *pgx.Conn, s *treeStory) {
			mustExecN(t, db, `UPDATE tree_nodes SET public_key = overlay(public_key placing '\xff'::bytea from 1200) WHERE group_id = $1`, s.g)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustTreeStory(t, srv, fmt.Sprintf("k%d", i), "")
			s.remove(t)
			db := mustDB(t, srv)
			var before [][]byte
			rows, _ := db.Query(ctx, `SELECT public_key FROM tree_nodes WHERE group_id = $1 ORDER BY node`, s.g)
			before, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
			if err != nil || len(before) == 0 {
				t.Fatalf("%d stored nodes: %v", len(before), err)
			}
			// Dave's add refreshes the path of carol's old leaf, which seals
			// to a node carol's removal refreshed: a key alice's verified
			// tree holds by digest.
			dave := "dave" + s.suffix
			mustV2Client(t, srv.URL(), dave)
			tc.tamper(t, db, s)
			wantSecurity(t, s.alice.AddMember(ctx, s.g, dave, coffer.RoleReader))
			// Honest again: the removal goes through.
			rows, _ = db.Query(ctx, `SELECT node FROM tree_nodes WHERE group_id = $1 ORDER BY node`, s.g)
			nodes, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil || len(nodes) != len(before) {
				t.Fatalf("%d nodes after tampering, %d before: %v", len(nodes), len(before), err)
			}
			for j, x := range nodes {
				mustExec(t, db, `UPDATE tree_nodes SET public_key = $3 WHERE group_id = $1 AND node = $2`, s.g, x, before[j])
			}
			if err := s.alice.AddMember(ctx, s.g, dave, coffer.RoleReader); err != nil {
				t.Fatalf("after the server is honest again: %v", err)
			}
		})
	}
}
