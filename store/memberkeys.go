package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

// Suite v2 member keys (migration 00015): every generation of every
// account's keys, by hash, written with the link that sets them, so that
// the server can resolve the hashes suite v2 commits carry and tell an
// account's current keys (its highest generation) from retired ones.

var _ coffer.MemberKeyService = (*DB)(nil)

// setsUserKey reports whether a link sets the account's user key, and so
// new member keys.
func setsUserKey(k coffer.LinkKind) bool {
	return k == coffer.LinkGenesis || k == coffer.LinkRevokeDevice || k == coffer.LinkRotateUserKey
}

// insertMemberKeys stores the member keys of the verified state st, in the
// transaction of the link that made them.
func insertMemberKeys(ctx context.Context, tx pgx.Tx, st *coffer.AccountState) error {
	k := st.MemberKeys()
	if k == nil {
		return errors.New("store: member keys of an empty account state")
	}
	enc := k.Marshal()
	h := coffer.MemberKeysHash(enc)
	_, err := tx.Exec(ctx, `INSERT INTO member_keys (hash, account_id, generation, keys) VALUES ($1, $2, $3, $4)`,
		h[:], k.Account, int64(k.Generation), enc)
	return err
}

// MemberKeysByHash implements coffer.MemberKeyService.
func (db *DB) MemberKeysByHash(ctx context.Context, hashes [][32]byte) ([]coffer.StoredMemberKeys, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	var out []coffer.StoredMemberKeys
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = memberKeysByHash(ctx, tx, hashes)
		return err
	})
	return out, err
}

func memberKeysByHash(ctx context.Context, tx pgx.Tx, hashes [][32]byte) ([]coffer.StoredMemberKeys, error) {
	keys := make([][]byte, len(hashes))
	for i := range hashes {
		keys[i] = hashes[i][:]
	}
	rows, err := tx.Query(ctx, `SELECT hash, account_id, generation, keys FROM member_keys WHERE hash = ANY($1)`, keys)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.StoredMemberKeys, error) {
		var (
			k   coffer.StoredMemberKeys
			h   []byte
			gen int64
		)
		if err := r.Scan(&h, &k.Account, &gen, &k.Encoding); err != nil {
			return k, err
		}
		if len(h) != 32 || gen < 1 {
			return k, fmt.Errorf("store: malformed member_keys row")
		}
		copy(k.Hash[:], h)
		k.Generation = uint64(gen)
		return k, nil
	})
}

// checkCurrentMemberKeys refuses a suite v2 commit one of whose add or
// update-key ops names keys that are not its member's current keys:
// unknown keys, another account's, or a generation the account has since
// replaced (whose private half a revoked device may hold). It runs first in
// the commit's transaction and holds each named account's row FOR SHARE,
// which a link that rotates the key UPDATEs: a rotation either waits for
// this commit (and the member then updates its keys in the group, as for
// any commit before a rotation) or has committed, and then this sees its
// keys. A suite v1 commit passes: it carries its keys, which the server
// checks against the accounts table.
func checkCurrentMemberKeys(ctx context.Context, tx pgx.Tx, c *coffer.Commit) error {
	if c.Suite != coffer.SuiteV2 {
		return nil
	}
	var (
		ids    []coffer.AccountID
		hashes [][32]byte
	)
	for _, op := range c.Ops {
		if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
			ids, hashes = append(ids, op.Member), append(hashes, op.KeysHash)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// Sorted by id, so that two commits lock shared accounts in one order.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = ANY($1) ORDER BY id FOR SHARE`, ids); err != nil {
		return err
	}
	stored, err := memberKeysByHash(ctx, tx, hashes)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT account_id, max(generation) FROM member_keys WHERE account_id = ANY($1) GROUP BY account_id`, ids)
	if err != nil {
		return err
	}
	current := map[coffer.AccountID]uint64{}
	for rows.Next() {
		var (
			id  coffer.AccountID
			gen int64
		)
		if err := rows.Scan(&id, &gen); err != nil {
			rows.Close()
			return err
		}
		current[id] = uint64(gen)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	byHash := make(map[[32]byte]coffer.StoredMemberKeys, len(stored))
	for _, k := range stored {
		byHash[k.Hash] = k
	}
	refuse := func(i int, op coffer.Op, format string, args ...any) error {
		return &coffer.Error{Code: coffer.ECONFLICT, Rule: coffer.RuleMemberKeys,
			Message: fmt.Sprintf("op %d (%s of %s): ", i, op.Kind, op.Member) + fmt.Sprintf(format, args...)}
	}
	for i, op := range c.Ops {
		if op.Kind != coffer.OpAdd && op.Kind != coffer.OpUpdateKey {
			continue
		}
		k, ok := byHash[op.KeysHash]
		switch {
		case !ok:
			return refuse(i, op, "the keys %x are not an account's keys on this server", op.KeysHash[:8])
		case k.Account != op.Member:
			return refuse(i, op, "the keys %x are account %s's", op.KeysHash[:8], k.Account)
		case k.Generation != current[op.Member]:
			return refuse(i, op, "the keys are generation %d of the account, whose current keys are generation %d: re-read the account's chain and use its current keys", k.Generation, current[op.Member])
		}
	}
	return nil
}

// memberKeysRefusal reports whether err is checkCurrentMemberKeys's, which
// callers pass on as it is rather than as a lost race.
func memberKeysRefusal(err error) bool {
	var ce *coffer.Error
	return errors.As(err, &ce) && ce.Rule == coffer.RuleMemberKeys
}
