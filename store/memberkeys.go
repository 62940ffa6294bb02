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
// replaced (whose private half a revoked device may hold). It also refuses
// a commit signed with keys its author has replaced (a.AuthorKeys, the
// keys the author's entry named before it), unless the commit is the
// author's self-update, which those keys sign by design: a revoked device
// holds them. It runs first in the commit's transaction and holds each
// account concerned FOR SHARE, which a link that rotates the key UPDATEs:
// a rotation either waits for this commit (and the member then updates its
// keys in the group, as for any commit before a rotation) or has
// committed, and then this sees its keys. A suite v1 commit passes: it
// carries its keys, which the server checks against the accounts table.
func checkCurrentMemberKeys(ctx context.Context, tx pgx.Tx, a *coffer.GroupAppend) error {
	c := a.Parsed
	if c.Suite != coffer.SuiteV2 {
		return nil
	}
	type use struct {
		op     int // -1 for the author's signature
		member coffer.AccountID
		hash   [32]byte
	}
	var (
		uses       []use
		selfUpdate bool
	)
	for i, op := range c.Ops {
		if op.Kind == coffer.OpAdd || op.Kind == coffer.OpUpdateKey {
			uses = append(uses, use{i, op.Member, op.KeysHash})
		}
		selfUpdate = selfUpdate || op.Kind == coffer.OpUpdateKey && op.Member == c.Author
	}
	if a.AuthorKeys != ([32]byte{}) && !selfUpdate {
		uses = append(uses, use{-1, c.Author, a.AuthorKeys})
	}
	if len(uses) == 0 {
		return nil
	}
	ids, hashes := make([]coffer.AccountID, len(uses)), make([][32]byte, len(uses))
	for i, u := range uses {
		ids[i], hashes[i] = u.member, u.hash
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
	for _, u := range uses {
		what := fmt.Sprintf("the signature of %s", u.member)
		if u.op >= 0 {
			what = fmt.Sprintf("op %d (%s of %s)", u.op, c.Ops[u.op].Kind, u.member)
		}
		refuse := func(format string, args ...any) error {
			return &coffer.Error{Code: coffer.ECONFLICT, Rule: coffer.RuleMemberKeys, Message: what + ": " + fmt.Sprintf(format, args...)}
		}
		k, ok := byHash[u.hash]
		switch {
		case !ok:
			return refuse("the keys %x are not an account's keys on this server", u.hash[:8])
		case k.Account != u.member:
			return refuse("the keys %x are account %s's", u.hash[:8], k.Account)
		case k.Generation != current[u.member] && u.op < 0:
			return refuse("the author's keys in the group are generation %d of its account, whose current keys are generation %d: update them in the group (update-key) first, then retry", k.Generation, current[u.member])
		case k.Generation != current[u.member]:
			return refuse("the keys are generation %d of the account, whose current keys are generation %d: re-read the account's chain and use its current keys", k.Generation, current[u.member])
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

// memberKeysVersion is the migration that adds member_keys.
const memberKeysVersion = 15

// backfillMemberKeys stores the member keys of every suite v2 account that
// has none: accounts created before migration 00015, which no link wrote
// them for. It replays each such chain from its stored links, as an append
// verified them, and stores the keys of every link that set a user key,
// holding the account's row so that no append races it. A chain that no
// longer verifies is left for coffer-audit to report. It returns the number
// of accounts filled in; after the first run it finds none, in one query.
func backfillMemberKeys(ctx context.Context, conn *pgx.Conn) (int, error) {
	rows, err := conn.Query(ctx, `SELECT id FROM accounts a WHERE chain_seq > 0
		AND NOT EXISTS (SELECT 1 FROM member_keys m WHERE m.account_id = a.id)`)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[coffer.AccountID])
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var (
				seq   int64
				state *coffer.AccountState
			)
			if err := tx.QueryRow(ctx, `SELECT chain_seq FROM accounts WHERE id = $1 FOR UPDATE`, id).Scan(&seq); err != nil {
				return err
			}
			var have bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM member_keys WHERE account_id = $1)`, id).Scan(&have); err != nil || have {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT body, signature, device_signature FROM account_links
				WHERE account_id = $1 ORDER BY seq`, id)
			if err != nil {
				return err
			}
			links, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (coffer.SignedLink, error) {
				var l coffer.SignedLink
				err := r.Scan(&l.Body, &l.Signature, &l.DeviceSignature)
				return l, err
			})
			if err != nil {
				return err
			}
			for _, l := range links {
				next, err := coffer.VerifyAccountChain(state, []coffer.SignedLink{l})
				if err != nil {
					return errSkipChain
				}
				if state == nil || next.UserKeyGeneration != state.UserKeyGeneration {
					if err := insertMemberKeys(ctx, tx, next); err != nil {
						return err
					}
				}
				state = next
			}
			n++
			return nil
		})
		if err != nil && !errors.Is(err, errSkipChain) {
			return n, err
		}
	}
	return n, nil
}

// errSkipChain rolls back the backfill of a chain that does not verify.
var errSkipChain = errors.New("store: the stored account chain does not verify")
