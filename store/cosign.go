package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Witness cosignatures (docs/PROTOCOL.md, "Witnesses"). Every signed
// checkpoint has a row in log_checkpoints, one per tree size; cofferd
// pushes each new one to its witnesses and keeps, in the row's cosigned
// column, the note with the cosignature lines they returned. A re-signed
// checkpoint of an unchanged size replaces the row's checkpoint but keeps
// the cosigned note of the earlier signature until the witnesses cosign the
// new one, so a checkpoint with cosignatures is always at hand.

// CheckpointRow is one signed checkpoint.
type CheckpointRow struct {
	Size       int64
	Checkpoint string // the log's signed note
	Cosigned   string // a note of the same tree with cosignature lines, or ""
	SignedAt   time.Time
}

// RecentCheckpoints returns up to limit checkpoints, largest tree first.
func (db *DB) RecentCheckpoints(ctx context.Context, limit int) ([]CheckpointRow, error) {
	// One statement sees one snapshot: no transaction (and its BEGIN and
	// COMMIT round trips) is needed, and every read asks for this.
	rows, err := db.pool.Query(ctx, `SELECT tree_size, checkpoint, coalesce(cosigned, ''), signed_at
		FROM log_checkpoints ORDER BY tree_size DESC LIMIT $1`, limit)
	if err != nil {
		return nil, mapError(err)
	}
	defer rows.Close()
	var out []CheckpointRow
	for rows.Next() {
		var r CheckpointRow
		if err := rows.Scan(&r.Size, &r.Checkpoint, &r.Cosigned, &r.SignedAt); err != nil {
			return nil, mapError(err)
		}
		out = append(out, r)
	}
	return out, mapError(rows.Err())
}

// SwapCosigned sets the cosigned note of the checkpoint of size to next if
// it is still prev ("" for none), and reports whether it did. Callers merge
// cosignatures and retry, so that two replicas pushing at once lose none.
func (db *DB) SwapCosigned(ctx context.Context, size int64, prev, next string) (bool, error) {
	var swapped bool
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE log_checkpoints SET cosigned = $3
			WHERE tree_size = $1 AND coalesce(cosigned, '') = $2`, size, prev, next)
		swapped = err == nil && tag.RowsAffected() == 1
		return err
	})
	return swapped, err
}
