package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// LogStatus is the transparency log's backlog, for metrics.
type LogStatus struct {
	TreeSize         int64
	Pending          int64
	OldestPending    time.Time // zero when nothing is pending
	CheckpointSigned time.Time
	Now              time.Time // the store's clock, which wrote the times above
}

// LogStatus reads the log's backlog: the pending count uses the partial
// index of pending leaves, so it stays cheap however large the log grows.
func (db *DB) LogStatus(ctx context.Context) (LogStatus, error) {
	var st LogStatus
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var oldest *time.Time
		if err := tx.QueryRow(ctx, `SELECT h.tree_size, h.updated_at,
				(SELECT count(*) FROM log_entries WHERE leaf_index IS NULL),
				(SELECT min(created_at) FROM log_entries WHERE leaf_index IS NULL)
			FROM log_head h`).Scan(&st.TreeSize, &st.CheckpointSigned, &st.Pending, &oldest); err != nil {
			return err
		}
		st.Now = db.now()
		if oldest != nil {
			st.OldestPending = *oldest
		}
		return nil
	})
	return st, err
}
