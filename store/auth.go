package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

var _ coffer.AuthService = (*DB)(nil)

func unauthorized() error {
	return coffer.Errorf(coffer.EUNAUTHORIZED, "invalid or expired credentials")
}

// CreateChallenge implements coffer.AuthService. It also deletes expired
// challenges, which keeps the table small without a background job.
func (db *DB) CreateChallenge(ctx context.Context, account coffer.AccountID, h [32]byte, expires time.Time) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM login_challenges WHERE expires_at < $1`, db.now()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO login_challenges (challenge_hash, account_id, expires_at)
			VALUES ($1, $2, $3)`, h[:], account, expires)
		return err
	})
}

// ConsumeChallenge implements coffer.AuthService. DELETE … RETURNING makes
// single use atomic: of two concurrent logins with one challenge, one wins.
func (db *DB) ConsumeChallenge(ctx context.Context, account coffer.AccountID, h [32]byte) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var (
			owner   coffer.AccountID
			expires time.Time
		)
		err := tx.QueryRow(ctx, `DELETE FROM login_challenges WHERE challenge_hash = $1
			RETURNING account_id, expires_at`, h[:]).Scan(&owner, &expires)
		if err != nil {
			return err
		}
		if owner != account || !db.now().Before(expires) {
			return unauthorized()
		}
		return nil
	})
	if coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return unauthorized()
	}
	return err
}

// CreateRefreshToken implements coffer.AuthService.
func (db *DB) CreateRefreshToken(ctx context.Context, t coffer.RefreshToken) error {
	return db.inTx(ctx, func(tx pgx.Tx) error { return insertRefresh(ctx, tx, t) })
}

func insertRefresh(ctx context.Context, tx pgx.Tx, t coffer.RefreshToken) error {
	_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family_id, account_id, expires_at)
		VALUES ($1, $2, $3, $4)`, t.Hash[:], t.Family, t.Account, t.Expires)
	return err
}

// RotateRefreshToken implements coffer.AuthService.
func (db *DB) RotateRefreshToken(ctx context.Context, old [32]byte, next coffer.RefreshToken) (coffer.AccountID, error) {
	var account coffer.AccountID
	reused := false
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var (
			family  [16]byte
			expires time.Time
			usedAt  *time.Time
			revoked *time.Time
		)
		err := tx.QueryRow(ctx, `SELECT family_id, account_id, expires_at, used_at, revoked_at
			FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`, old[:]).
			Scan(&family, &account, &expires, &usedAt, &revoked)
		if err != nil {
			return err
		}
		now := db.now()
		switch {
		case revoked != nil || !now.Before(expires):
			return unauthorized()
		case usedAt != nil:
			// Reuse of a rotated token: someone else holds a copy. Revoke the
			// family so that neither copy keeps working.
			reused = true
			_, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2
				WHERE family_id = $1 AND revoked_at IS NULL`, family, now)
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1`, old[:], now); err != nil {
			return err
		}
		next.Family, next.Account = family, account
		return insertRefresh(ctx, tx, next)
	})
	if reused || coffer.ErrorCode(err) == coffer.ENOTFOUND {
		return coffer.AccountID{}, unauthorized()
	}
	return account, err
}

// RevokeRefreshToken implements coffer.AuthService.
func (db *DB) RevokeRefreshToken(ctx context.Context, h [32]byte) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2
			WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
			AND revoked_at IS NULL`, h[:], db.now())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return unauthorized()
		}
		return nil
	})
}
