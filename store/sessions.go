package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// A session is one login: the family of its refresh tokens. Access tokens
// name their session, so that revoking the family (logout, or a stolen
// refresh token caught by reuse detection) revokes them too, on every
// replica (server/tokens.go).

// RefreshFamily returns the session (family) of a refresh token.
func (db *DB) RefreshFamily(ctx context.Context, hash [32]byte) ([16]byte, error) {
	var family [16]byte
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT family_id FROM refresh_tokens WHERE token_hash = $1`, hash[:]).Scan(&family)
	})
	return family, err
}

// SessionLive reports whether the session still has a token that is not
// revoked.
func (db *DB) SessionLive(ctx context.Context, family [16]byte) (bool, error) {
	var live bool
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM refresh_tokens
			WHERE family_id = $1 AND revoked_at IS NULL)`, family).Scan(&live)
	})
	return live, err
}
