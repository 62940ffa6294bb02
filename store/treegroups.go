package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/ratchettree"
)

// Tree groups keep their public tree one row per non-blank node
// (tree_nodes), so a commit rewrites only the nodes it changed; the rest
// of the state is kept in rows as well (staterows.go).

// loadTree reads a tree group's nodes in tx.
func loadTree(ctx context.Context, tx pgx.Tx, g coffer.GroupID) func(uint32) (*ratchettree.Tree, error) {
	return func(n uint32) (*ratchettree.Tree, error) {
		rows, err := tx.Query(ctx, `SELECT node, public_key, taint FROM tree_nodes WHERE group_id = $1`, g)
		if err != nil {
			return nil, err
		}
		nodes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ratchettree.NodeRow, error) {
			var (
				nr   ratchettree.NodeRow
				node int32
			)
			err := r.Scan(&node, &nr.PublicKey, &nr.Taint)
			nr.Node = uint32(node)
			return nr, err
		})
		if err != nil {
			return nil, err
		}
		return ratchettree.TreeFromRows(n, nodes)
	}
}

// storeTree writes, in the commit's transaction, the tree nodes the
// commit changed, its ciphertexts, and the leaves of the members it
// placed.
func storeTree(ctx context.Context, tx pgx.Tx, a *coffer.GroupAppend) error {
	t := a.State.Tree
	tp := a.Parsed.Tree
	if t == nil || tp == nil {
		return nil
	}
	g, seq := a.State.Group, int64(a.Parsed.Seq)
	var (
		set, gone []int32
		keys      [][]byte
		taints    [][]byte
	)
	for _, x := range a.TreeChanged {
		if x >= ratchettree.Width(t.Leaves()) {
			return errors.New("store: a changed tree node beyond the tree")
		}
		n := t.Node(x)
		if !t.Present(x) {
			gone = append(gone, int32(x))
			continue
		}
		if n.PublicKey == nil {
			// ApplyTree brought every key in beside the commit.
			return fmt.Errorf("store: the tree holds only the digest of node %d", x)
		}
		set = append(set, int32(x))
		keys = append(keys, n.PublicKey)
		taints = append(taints, n.Taint)
	}
	if len(gone) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM tree_nodes WHERE group_id = $1 AND node = ANY($2)`, g, gone); err != nil {
			return err
		}
	}
	if len(set) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO tree_nodes (group_id, node, public_key, taint)
			SELECT $1, * FROM unnest($2::integer[], $3::bytea[], $4::bytea[])
			ON CONFLICT (group_id, node) DO UPDATE SET public_key = EXCLUDED.public_key, taint = EXCLUDED.taint`,
			g, set, keys, taints); err != nil {
			return err
		}
	}
	if len(a.TreeCiphertexts) > 0 {
		rows := make([][]any, len(a.TreeCiphertexts))
		for i, ct := range a.TreeCiphertexts {
			rows[i] = []any{g, seq, int32(ct.Node), int32(ct.Recipient), ct.Sealed}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tree_ciphertexts"},
			[]string{"group_id", "seq", "node", "recipient", "sealed"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	var ids []coffer.AccountID
	var leaves []int32
	place := func(id coffer.AccountID, m *coffer.Member) {
		ids = append(ids, id)
		leaves = append(leaves, int32(m.Leaf))
	}
	if tp.Kind == coffer.TreeStart {
		for id, m := range a.State.Members {
			place(id, m)
		}
	} else {
		// By the commit's adds, not by member: a bulk add of 2,500 to a
		// group of 100,000 checked every member against every op.
		for _, op := range a.Parsed.Ops {
			if m := a.State.Members[op.Member]; op.Kind == coffer.OpAdd && m != nil {
				place(op.Member, m)
			}
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE group_members m SET leaf = u.leaf
			FROM unnest($2::uuid[], $3::integer[]) AS u(account_id, leaf)
			WHERE m.group_id = $1 AND m.account_id = u.account_id`, g, ids, leaves); err != nil {
			return err
		}
	}
	return nil
}

// TreeCiphertexts implements coffer.GroupService.
func (db *DB) TreeCiphertexts(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, seq uint64) ([]ratchettree.Ciphertext, error) {
	out := []ratchettree.Ciphertext{}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var leaf *int32
		err := tx.QueryRow(ctx, `SELECT leaf FROM group_members WHERE group_id = $1 AND account_id = $2`, g, caller).Scan(&leaf)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFoundGroup()
		}
		if err != nil || leaf == nil {
			return err
		}
		var path []int32
		for _, x := range ratchettree.PathNodes(uint32(*leaf)) {
			path = append(path, int32(x))
		}
		rows, err := tx.Query(ctx, `SELECT node, recipient, sealed FROM tree_ciphertexts
			WHERE group_id = $1 AND seq = $2 AND recipient = ANY($3) ORDER BY node, recipient`, g, int64(seq), path)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ratchettree.Ciphertext, error) {
			var (
				ct      ratchettree.Ciphertext
				node, x int32
			)
			err := r.Scan(&node, &x, &ct.Sealed)
			ct.Node, ct.Recipient = uint32(node), uint32(x)
			return ct, err
		})
		return err
	})
	return out, err
}

// TreeNodeKeys implements coffer.GroupService.
func (db *DB) TreeNodeKeys(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, seq uint64, nodes []uint32) ([][]byte, error) {
	var out [][]byte
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var member bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM group_members WHERE group_id = $1 AND account_id = $2)`, g, caller).Scan(&member)
		if err != nil {
			return err
		}
		if !member {
			return notFoundGroup()
		}
		// FOR SHARE holds back an append until the keys are read, so they
		// are the keys of the tree at head.
		var head int64
		err = tx.QueryRow(ctx, `SELECT head_seq FROM groups WHERE id = $1 FOR SHARE`, g).Scan(&head)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFoundGroup()
		}
		if err != nil {
			return err
		}
		if uint64(head) != seq {
			return coffer.Errorf(coffer.ECONFLICT, "the group's head is seq %d, not %d: re-sync and retry", head, seq)
		}
		want := make([]int32, len(nodes))
		for i, x := range nodes {
			want[i] = int32(x)
		}
		rows, err := tx.Query(ctx, `SELECT node, public_key FROM tree_nodes WHERE group_id = $1 AND node = ANY($2)`, g, want)
		if err != nil {
			return err
		}
		got := make(map[uint32][]byte, len(nodes))
		var (
			node int32
			key  []byte
		)
		if _, err := pgx.ForEachRow(rows, []any{&node, &key}, func() error {
			got[uint32(node)] = key
			return nil
		}); err != nil {
			return err
		}
		out = make([][]byte, len(nodes))
		for i, x := range nodes {
			if out[i] = got[x]; out[i] == nil {
				return coffer.Errorf(coffer.ENOTFOUND, "tree node %d is blank", x)
			}
		}
		return nil
	})
	return out, err
}
