package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

// A group's verified state is stored in rows (migration 00020): its
// header (coffer.GroupState.MarshalBinaryRows) in groups.state, with
// groups.state_rows set, and one group_state_accounts row per account that
// was ever a member. A commit rewrites the header and the rows of the
// accounts it changed (GroupState.ChangedMembers): at 100,000 members that
// is a few rows instead of a 9 MB checkpoint. A group not yet stored in
// rows (state_rows false) holds a checkpoint of version 3 to 6 in
// groups.state, written before migration 00020; its next commit writes the
// header and every row.

// storedState is a state as the database stores it, encoded before the
// commit's transaction.
type storedState struct {
	header []byte
	// all is set when rows are every account's row, to replace all that
	// are stored; otherwise rows are the changed accounts' rows only.
	all  bool
	rows []coffer.StateAccount
}

// encodeState encodes s for storage. A state that was not cloned from the
// stored one (a genesis, a state decoded from an older checkpoint), or in
// which too many members changed to list, is written whole.
func encodeState(s *coffer.GroupState) (*storedState, error) {
	header, err := s.MarshalBinaryRows()
	if err != nil {
		return nil, err
	}
	st := &storedState{header: header}
	ids, all := s.ChangedMembers()
	if all {
		st.all = true
		st.rows, err = s.StateAccounts()
	} else {
		st.rows, err = s.StateAccountsOf(ids)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// writeStateRows writes st's rows of group g in tx; the caller writes the
// header.
func writeStateRows(ctx context.Context, tx pgx.Tx, g coffer.GroupID, st *storedState) error {
	if st.all {
		if _, err := tx.Exec(ctx, `DELETE FROM group_state_accounts WHERE group_id = $1`, g); err != nil {
			return err
		}
		// COPY keeps a 100,000-member genesis or conversion to one round
		// trip.
		rows := make([][]any, len(st.rows))
		for i, r := range st.rows {
			rows[i] = []any{g, r.ID, r.Member, r.Roles}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"group_state_accounts"},
			[]string{"group_id", "account_id", "member", "roles"}, pgx.CopyFromRows(rows))
		return err
	}
	if len(st.rows) == 0 {
		return nil
	}
	ids := make([]coffer.AccountID, len(st.rows))
	members := make([][]byte, len(st.rows))
	roles := make([][]byte, len(st.rows))
	for i, r := range st.rows {
		ids[i], members[i], roles[i] = r.ID, r.Member, r.Roles
	}
	// One statement for a bulk add of thousands as for one change; every
	// account's row is kept once it was a member, so there is nothing to
	// delete.
	_, err := tx.Exec(ctx, `INSERT INTO group_state_accounts (group_id, account_id, member, roles)
		SELECT $1, * FROM unnest($2::uuid[], $3::bytea[], $4::bytea[])
		ON CONFLICT (group_id, account_id) DO UPDATE SET member = EXCLUDED.member, roles = EXCLUDED.roles`,
		g, ids, members, roles)
	return err
}

// loadState reads group g's stored state in tx. inRows is false when the
// group is not stored in rows yet: the state is then decoded from an
// older checkpoint, and is not a Clone, so that its next commit writes
// every row (ChangedMembers).
func loadState(ctx context.Context, tx pgx.Tx, g coffer.GroupID) (s *coffer.GroupState, inRows bool, err error) {
	var raw []byte
	if err := tx.QueryRow(ctx, `SELECT state, state_rows FROM groups WHERE id = $1`, g).Scan(&raw, &inRows); err != nil {
		return nil, false, err
	}
	s = new(coffer.GroupState)
	if !inRows {
		if err := s.UnmarshalBinaryDetached(raw, loadTree(ctx, tx, g)); err != nil {
			return nil, false, err
		}
		return s, false, nil
	}
	rows, err := tx.Query(ctx, `SELECT account_id, member, roles FROM group_state_accounts WHERE group_id = $1`, g)
	if err != nil {
		return nil, false, err
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.StateAccount, error) {
		var a coffer.StateAccount
		err := r.Scan(&a.ID, &a.Member, &a.Roles)
		return a, err
	})
	if err != nil {
		return nil, false, err
	}
	if err := s.UnmarshalBinaryRows(raw, accounts, loadTree(ctx, tx, g)); err != nil {
		return nil, false, err
	}
	return s, true, nil
}
