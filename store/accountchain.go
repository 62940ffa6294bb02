package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
)

// Suite v2 account chains (migration 00013). The accounts row holds the
// verifier's state after the head link (chain_state at chain_seq) and the
// chain's current identity; account_links holds every link exactly as it
// was signed. The UPDATE … WHERE chain_seq is the compare-and-append and
// the account_links primary key the invariant behind it, as for commits.

var _ coffer.AccountChainService = (*DB)(nil)

// CreateChainAccount implements coffer.AccountChainService.
func (db *DB) CreateChainAccount(ctx context.Context, a *coffer.Account, g *coffer.AccountLinkAppend) error {
	if a.Created.IsZero() {
		a.Created = db.now()
	}
	if g.State == nil || g.State.Seq != 1 || g.State.Account != a.ID {
		return coffer.Errorf(coffer.EINVALID, "a chain account is created with its genesis")
	}
	state, err := g.State.MarshalBinary()
	if err != nil {
		return err
	}
	a.ChainSeq = 1
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO accounts
			(id, handle, identity, self_signature, signing_key, encryption_key, created_at, chain_seq, chain_state)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)`,
			a.ID, string(a.Identity.Handle), a.Identity.Marshal(), a.SelfSignature,
			[]byte(a.Identity.SigningKey), a.Identity.EncryptionKey, a.Created, state)
		if err != nil {
			return err
		}
		if err := insertAccountLink(ctx, tx, a.ID, 1, g.Link, a.Created); err != nil {
			return err
		}
		if err := insertMemberKeys(ctx, tx, g.State); err != nil {
			return err
		}
		// The link first, then the identity it sets: a log replay meets
		// the identity after the chain that authorizes it.
		if err := logAccountLink(ctx, tx, a.ID, 1, g.Link, a.Created); err != nil {
			return err
		}
		return logIdentity(ctx, tx, a)
	})
	var ce *conflictError
	if errors.As(err, &ce) {
		if ce.constraint == "accounts_pkey" {
			return coffer.Errorf(coffer.ECONFLICT, "account %s already exists", a.ID)
		}
		return coffer.Errorf(coffer.ECONFLICT, "handle %q is already taken", a.Identity.Handle)
	}
	return err
}

func insertAccountLink(ctx context.Context, tx pgx.Tx, account coffer.AccountID, seq uint64, sl coffer.SignedLink, at time.Time) error {
	hash := sl.Hash()
	var dev []byte
	if len(sl.DeviceSignature) > 0 {
		dev = sl.DeviceSignature
	}
	_, err := tx.Exec(ctx, `INSERT INTO account_links (account_id, seq, body, signature, device_signature, hash, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, account, int64(seq), sl.Body, sl.Signature, dev, hash[:], at)
	return err
}

// logAccountLink appends the link's log leaf, found by (account_id, seq).
func logAccountLink(ctx context.Context, tx pgx.Tx, account coffer.AccountID, seq uint64, sl coffer.SignedLink, at time.Time) error {
	leaf := translog.AccountLinkLeaf(account, seq, sl)
	h := translog.RecordHash(leaf)
	_, err := tx.Exec(ctx, `INSERT INTO log_entries (leaf, leaf_hash, account_id, seq, created_at)
		VALUES ($1, $2, $3, $4, $5)`, leaf, h[:], account, int64(seq), at.UTC())
	return err
}

// AccountChain implements coffer.AccountChainService.
func (db *DB) AccountChain(ctx context.Context, id coffer.AccountID) (*coffer.AccountState, error) {
	var (
		seq int64
		raw []byte
	)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT chain_seq, chain_state FROM accounts WHERE id = $1`, id).Scan(&seq, &raw)
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return nil, coffer.Errorf(coffer.ENOTFOUND, "no such account")
	}
	if err != nil {
		return nil, err
	}
	s := new(coffer.AccountState)
	if seq == 0 {
		return s, nil
	}
	if err := s.UnmarshalBinary(raw); err != nil {
		return nil, err
	}
	if s.Seq != uint64(seq) || s.Account != id {
		return nil, errors.New("store: accounts.chain_state is not the state at chain_seq")
	}
	return s, nil
}

// AppendAccountLink implements coffer.AccountChainService.
func (db *DB) AppendAccountLink(ctx context.Context, a *coffer.AccountLinkAppend) (uint64, error) {
	st := a.State
	if st == nil || st.Seq < 2 || a.Parsed == nil || a.Parsed.Seq != st.Seq {
		return 0, coffer.Errorf(coffer.EINVALID, "an appended link comes with the state after it")
	}
	state, err := st.MarshalBinary()
	if err != nil {
		return 0, err
	}
	if a.Received.IsZero() {
		a.Received = db.now()
	}
	id, prev := st.Account, st.Seq-1
	var head uint64
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		var (
			row pgx.Row
			h   string
		)
		if a.Identity != nil {
			row = tx.QueryRow(ctx, `UPDATE accounts SET chain_seq = $2, chain_state = $3,
					identity = $4, self_signature = $5, signing_key = $6, encryption_key = $7
				WHERE id = $1 AND chain_seq = $8 AND handle = $9 RETURNING handle`,
				id, int64(st.Seq), state, a.Identity.Marshal(), a.SelfSignature,
				[]byte(a.Identity.SigningKey), a.Identity.EncryptionKey, int64(prev), string(a.Identity.Handle))
		} else {
			row = tx.QueryRow(ctx, `UPDATE accounts SET chain_seq = $2, chain_state = $3
				WHERE id = $1 AND chain_seq = $4 RETURNING handle`, id, int64(st.Seq), state, int64(prev))
		}
		if err := row.Scan(&h); err != nil {
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			var cur int64
			if err := tx.QueryRow(ctx, `SELECT chain_seq FROM accounts WHERE id = $1`, id).Scan(&cur); err != nil {
				return err
			}
			head = uint64(cur)
			return coffer.Errorf(coffer.ECONFLICT, "the account's chain head moved to seq %d: re-sync and retry", head)
		}
		if err := insertAccountLink(ctx, tx, id, st.Seq, a.Link, a.Received); err != nil {
			return err
		}
		if setsUserKey(a.Parsed.Kind) {
			if err := insertMemberKeys(ctx, tx, st); err != nil {
				return err
			}
		}
		if a.Identity != nil {
			// Every session ends: each device that remains logs in again
			// with its device key, which the revoked device's no longer
			// opens (CreateDeviceRefreshToken holds the row against this).
			if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2
				WHERE account_id = $1 AND revoked_at IS NULL`, id, a.Received); err != nil {
				return err
			}
		}
		if a.Parsed.Kind == coffer.LinkAddDevice {
			if _, err := tx.Exec(ctx, `DELETE FROM pairings WHERE handle = $1 AND device_id = $2`, h, a.Parsed.Device.ID.String()); err != nil {
				return err
			}
		}
		if err := logAccountLink(ctx, tx, id, st.Seq, a.Link, a.Received); err != nil {
			return err
		}
		if a.Identity != nil {
			return logIdentity(ctx, tx, &coffer.Account{ID: id, Identity: *a.Identity, SelfSignature: a.SelfSignature, Created: a.Received})
		}
		return nil
	})
	switch coffer.ErrorCode(err) {
	case coffer.ENOTFOUND:
		return 0, coffer.Errorf(coffer.ENOTFOUND, "no such account")
	case coffer.ECONFLICT:
		if head == 0 { // the account_links key caught the race
			var cur int64
			_ = db.pool.QueryRow(ctx, `SELECT chain_seq FROM accounts WHERE id = $1`, id).Scan(&cur)
			head = uint64(cur)
		}
		return head, coffer.Errorf(coffer.ECONFLICT, "the account's chain head moved to seq %d: re-sync and retry", head)
	}
	return st.Seq, err
}

// AccountLinks implements coffer.AccountChainService. One statement, so
// the head and the links are read from one snapshot.
func (db *DB) AccountLinks(ctx context.Context, id coffer.AccountID, after uint64, limit int) ([]coffer.SignedLink, uint64, error) {
	var (
		links []coffer.SignedLink
		head  int64
		found bool
	)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT a.chain_seq, l.body, l.signature, l.device_signature
			FROM accounts a LEFT JOIN LATERAL (
				SELECT seq, body, signature, device_signature FROM account_links
				WHERE account_id = a.id AND seq > $2 ORDER BY seq LIMIT $3) l ON true
			WHERE a.id = $1 ORDER BY l.seq`, id, int64(min(after, 1<<62)), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var body, sig, dev []byte
			if err := rows.Scan(&head, &body, &sig, &dev); err != nil {
				return err
			}
			found = true
			if body != nil {
				links = append(links, coffer.SignedLink{Body: body, Signature: sig, DeviceSignature: dev})
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	if !found {
		return nil, 0, coffer.Errorf(coffer.ENOTFOUND, "no such account")
	}
	return links, uint64(head), nil
}

// CreateDeviceRefreshToken implements coffer.AccountChainService. FOR SHARE
// conflicts with AppendAccountLink's UPDATE of the row: an append that
// started first makes this wait and then see the new head; one that starts
// later waits for this commit, and its revocation of the account's tokens
// then sees t.
func (db *DB) CreateDeviceRefreshToken(ctx context.Context, t coffer.RefreshToken, chainSeq uint64) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		var seq int64
		if err := tx.QueryRow(ctx, `SELECT chain_seq FROM accounts WHERE id = $1 FOR SHARE`, t.Account).Scan(&seq); err != nil {
			return err
		}
		if chainSeq == 0 || uint64(seq) != chainSeq {
			return coffer.Errorf(coffer.ECONFLICT, "the account's chain moved to seq %d during the log-in", seq)
		}
		return insertRefresh(ctx, tx, t)
	})
}
