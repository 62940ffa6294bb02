package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// PurgeAuth deletes the authentication rows that can never be used again,
// so the tables stay the size of the live sessions:
//
//   - login challenges past their expiry (a consumed one is deleted when it
//     is consumed);
//   - refresh tokens past their expiry;
//   - refresh tokens of a revoked family (logout, or reuse detected):
//     presenting one is refused whether or not its row exists.
//
// A used but unexpired token of a live family is kept: presenting it again
// is how a stolen copy is detected (RotateRefreshToken revokes the family),
// and that needs the row. Rows within grace of their expiry are kept as
// well, so that a replica whose clock runs behind still refuses them for the
// right reason. It returns how many rows it deleted.
func (db *DB) PurgeAuth(ctx context.Context, grace time.Duration) (challenges, tokens int64, err error) {
	cutoff := db.now().Add(-grace)
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM login_challenges WHERE expires_at < $1`, cutoff)
		if err != nil {
			return err
		}
		challenges = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at < $1 OR revoked_at < $1`, cutoff)
		if err != nil {
			return err
		}
		tokens = tag.RowsAffected()
		return nil
	})
	return challenges, tokens, err
}
