package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

var _ coffer.AccountService = (*DB)(nil)

// CreateAccount implements coffer.AccountService.
func (db *DB) CreateAccount(ctx context.Context, a *coffer.Account) error {
	if a.Created.IsZero() {
		a.Created = db.now()
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO accounts
			(id, handle, identity, self_signature, signing_key, encryption_key, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			a.ID, string(a.Identity.Handle), a.Identity.Marshal(), a.SelfSignature,
			[]byte(a.Identity.SigningKey), a.Identity.EncryptionKey, a.Created)
		if err != nil {
			return err
		}
		return afterAccountCreated(ctx, tx, a)
	})
	if coffer.ErrorCode(err) == coffer.ECONFLICT {
		return coffer.Errorf(coffer.ECONFLICT, "handle %q is already taken", a.Identity.Handle)
	}
	return err
}

// afterAccountCreated is a hook, run in the registration transaction, for
// work that must be atomic with it (the transparency log appends here).
var afterAccountCreated = func(ctx context.Context, tx pgx.Tx, a *coffer.Account) error { return nil }

// AccountByID implements coffer.AccountService.
func (db *DB) AccountByID(ctx context.Context, id coffer.AccountID) (*coffer.Account, error) {
	return db.accountWhere(ctx, `id = $1`, id)
}

// AccountByHandle implements coffer.AccountService.
func (db *DB) AccountByHandle(ctx context.Context, h coffer.Handle) (*coffer.Account, error) {
	return db.accountWhere(ctx, `handle = $1`, string(h))
}

func (db *DB) accountWhere(ctx context.Context, where string, arg any) (*coffer.Account, error) {
	var a *coffer.Account
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		a, err = scanAccount(tx.QueryRow(ctx, `SELECT id, identity, self_signature, created_at, chain_seq
			FROM accounts WHERE `+where, arg))
		return err
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "no such account")
	}
	return a, err
}

// AccountsByID implements coffer.AccountService. Unknown ids are absent
// from the result.
func (db *DB) AccountsByID(ctx context.Context, ids []coffer.AccountID) (map[coffer.AccountID]*coffer.Account, error) {
	out := make(map[coffer.AccountID]*coffer.Account, len(ids))
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, identity, self_signature, created_at, chain_seq
			FROM accounts WHERE id = ANY($1::uuid[])`, strs)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAccount(rows)
			if err != nil {
				return err
			}
			out[a.ID] = a
		}
		return rows.Err()
	})
	return out, err
}

func scanAccount(row pgx.Row) (*coffer.Account, error) {
	var (
		a        coffer.Account
		identity []byte
		created  time.Time
		seq      int64
	)
	if err := row.Scan(&a.ID, &identity, &a.SelfSignature, &created, &seq); err != nil {
		return nil, err
	}
	a.ChainSeq = uint64(seq)
	// Every stored identity passed ParsePublicIdentity (or the account
	// chain's checks) on its way in; expanding its X-Wing key again on each
	// read was most of a 100,000-account lookup. Clients check what they
	// are served themselves, and coffer-audit db checks the table.
	id, err := coffer.ParseStoredPublicIdentity(identity)
	if err != nil {
		return nil, err
	}
	a.Identity, a.Created = id, created
	return &a, nil
}
