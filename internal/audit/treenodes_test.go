package audit_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferdtest"
)

// TestDBTreeNodes: the audit holds a tree group's tree_nodes rows to the
// public tree of the verified chain. An honest database is clean; a node's
// key or taint edited, a node's row deleted, a row for a blank node or
// beyond the tree, and a row of a group that is not a tree group are each
// a finding naming it.
func TestDBTreeNodes(t *testing.T) {
	srv := cofferdtest.Start(t, nil)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	alice := v2Client(t, srv, "alice")
	for _, h := range []string{"bob", "carol", "dave"} {
		v2Client(t, srv, h)
	}
	g, err := alice.CreateGroup(ctx, "tree", &clientlib.GroupOptions{Tree: true})
	must(err)
	for _, h := range []string{"bob", "carol", "dave"} {
		must(alice.AddMember(ctx, g, h, coffer.RoleWriter))
	}
	must(alice.RemoveMember(ctx, g, "carol"))
	pairwise, err := alice.CreateGroup(ctx, "pairwise", nil)
	must(err)
	waitLogged(t, srv)
	r := mustAudit(t, srv)
	wantClean(t, r)
	if r.Stats["tree_nodes"] == 0 {
		t.Fatal("the audit checked no tree_nodes row")
	}

	db := mustConn(t, srv.DatabaseURL)
	type row struct {
		node       int32
		key, taint []byte
	}
	rows, err := db.Query(ctx, `SELECT node, public_key, taint FROM tree_nodes WHERE group_id = $1 ORDER BY node`, g)
	must(err)
	honest, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.node, &x.key, &x.taint)
		return x, err
	})
	must(err)
	var leaf, parent *row
	for i := range honest {
		if honest[i].node%2 == 0 && leaf == nil {
			leaf = &honest[i]
		}
		if honest[i].node%2 == 1 && len(honest[i].taint) > 0 {
			parent = &honest[i]
		}
	}
	if leaf == nil || parent == nil {
		t.Fatalf("no leaf or no tainted parent among the stored nodes %v", honest)
	}
	restore := func() {
		t.Helper()
		_, err := db.Exec(ctx, `DELETE FROM tree_nodes WHERE group_id = $1 OR group_id = $2`, g, pairwise)
		must(err)
		for _, x := range honest {
			_, err := db.Exec(ctx, `INSERT INTO tree_nodes (group_id, node, public_key, taint) VALUES ($1, $2, $3, $4)`, g, x.node, x.key, x.taint)
			must(err)
		}
	}
	other := honest[len(honest)-1].key
	if string(other) == string(leaf.key) {
		other = honest[0].key
	}
	for _, tt := range []struct {
		name, plant string
		args        []any
		want        string
	}{
		{"a node's key edited", `UPDATE tree_nodes SET public_key = $3 WHERE group_id = $1 AND node = $2`,
			[]any{g, leaf.node, other}, "not the verified tree's public key and taint"},
		{"a node's taint edited", `UPDATE tree_nodes SET taint = '\x'::bytea WHERE group_id = $1 AND node = $2`,
			[]any{g, parent.node}, "not the verified tree's public key and taint"},
		{"a node's row deleted", `DELETE FROM tree_nodes WHERE group_id = $1 AND node = $2`,
			[]any{g, leaf.node}, "no row for a node of the verified tree"},
		{"a row beyond the tree", `INSERT INTO tree_nodes (group_id, node, public_key, taint) VALUES ($1, 4000, $2, '\x'::bytea)`,
			[]any{g, leaf.key}, "beyond the verified tree"},
		{"a row of a pairwise group", `INSERT INTO tree_nodes (group_id, node, public_key, taint) VALUES ($1, 0, $2, '\x'::bytea)`,
			[]any{pairwise, leaf.key}, "not a tree group"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer restore()
			if _, err := db.Exec(ctx, tt.plant, tt.args...); err != nil {
				t.Fatal(err)
			}
			wantFinding(t, mustAudit(t, srv), "group", tt.want)
		})
	}
	// A row for a node the verified tree leaves blank: carol's leaf,
	// blanked by her removal, given back a key.
	blank := int32(-1)
	for x := int32(0); x <= honest[len(honest)-1].node; x += 2 {
		found := false
		for _, h := range honest {
			found = found || h.node == x
		}
		if !found {
			blank = x
			break
		}
	}
	if blank < 0 {
		t.Fatal("no blank leaf in the tree after a removal")
	}
	t.Run("a row for a blank node", func(t *testing.T) {
		defer restore()
		if _, err := db.Exec(ctx, `INSERT INTO tree_nodes (group_id, node, public_key, taint) VALUES ($1, $2, $3, '\x'::bytea)`, g, blank, leaf.key); err != nil {
			t.Fatal(err)
		}
		wantFinding(t, mustAudit(t, srv), "group", "blank in the verified tree")
	})
	wantClean(t, mustAudit(t, srv))
}
