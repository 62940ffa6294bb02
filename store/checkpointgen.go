package store

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
)

// The checkpoint generation (migration 00019) is a counter that every
// change of log_head or log_checkpoints bumps in its own transaction. Read
// in the same statement as the row a reader asked for, it names the state
// of the signed checkpoints at a moment after the request began: a replica
// that holds the checkpoints of that generation, or of a later one, in
// memory serves them without reading them again, and is never behind a
// checkpoint stored before the request began, whichever replica stored it.

// CheckpointMemo holds a value read from the signed checkpoints with the
// generation it was read at. The zero value is empty and ready to use.
type CheckpointMemo[T any] struct {
	mu  sync.Mutex
	gen int64
	val T
	ok  bool
}

// Get returns the value held if it is of generation gen or later.
func (m *CheckpointMemo[T]) Get(gen int64) (T, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ok || m.gen < gen {
		var zero T
		return zero, false
	}
	return m.val, true
}

// Put holds val, read at generation gen, unless a later one is held.
func (m *CheckpointMemo[T]) Put(gen int64, val T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ok || gen > m.gen {
		m.gen, m.val, m.ok = gen, val, true
	}
}

const checkpointGenColumn = `(SELECT gen FROM log_checkpoint_gen)`

// ResourceAndCheckpointGen is Resource and the checkpoint generation, in
// one statement: the read of a resource with the log's latest checkpoint
// (GET …/resources/{r}?include=checkpoint) costs one statement while the
// checkpoints are unchanged.
func (db *DB) ResourceAndCheckpointGen(ctx context.Context, caller coffer.AccountID, g coffer.GroupID, id coffer.ResourceID) (*coffer.Resource, int64, error) {
	var (
		content []byte
		gen     int64
	)
	r, err := scanResource(db.pool.QueryRow(ctx, `SELECT `+resourceColumns+`, r.content, `+checkpointGenColumn+` FROM resources r
		WHERE r.group_id = $1 AND r.id = $3 AND `+memberClause, binUUID(g), binUUID(caller), binUUID(id)), &content, &gen)
	r.Content = content
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, notFoundResource()
	}
	if err != nil {
		return nil, 0, mapError(err)
	}
	return &r, gen, nil
}

// CheckpointGen reads the checkpoint generation.
func (db *DB) CheckpointGen(ctx context.Context) (int64, error) {
	var gen int64
	err := db.pool.QueryRow(ctx, `SELECT gen FROM log_checkpoint_gen`).Scan(&gen)
	return gen, mapError(err)
}

// RecentCheckpointsGen is RecentCheckpoints with the generation they are
// of, read in the same statement. With no checkpoint it returns none and
// generation 0.
func (db *DB) RecentCheckpointsGen(ctx context.Context, limit int) ([]CheckpointRow, int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+checkpointGenColumn+`, tree_size, checkpoint, coalesce(cosigned, ''), signed_at
		FROM log_checkpoints ORDER BY tree_size DESC LIMIT $1`, limit)
	if err != nil {
		return nil, 0, mapError(err)
	}
	defer rows.Close()
	var (
		out []CheckpointRow
		gen int64
	)
	for rows.Next() {
		var r CheckpointRow
		if err := rows.Scan(&gen, &r.Size, &r.Checkpoint, &r.Cosigned, &r.SignedAt); err != nil {
			return nil, 0, mapError(err)
		}
		out = append(out, r)
	}
	return out, gen, mapError(rows.Err())
}

// LogCheckpointGen returns what LogCheckpoint returns, from memory when the
// checkpoint held is of generation gen or later: gen must have been read
// after the request that asks began (ResourceAndCheckpointGen,
// CheckpointGen).
func (db *DB) LogCheckpointGen(ctx context.Context, gen int64) (string, error) {
	if cp, ok := db.latest.Get(gen); ok {
		return cp, nil
	}
	var (
		cp  string
		now int64
	)
	err := db.pool.QueryRow(ctx, `SELECT `+checkpointGenColumn+`, checkpoint FROM log_head`).Scan(&now, &cp)
	if err != nil {
		return "", mapError(err)
	}
	if cp == "" {
		return "", coffer.Errorf(coffer.EUNAVAILABLE, "the log has no signed checkpoint yet")
	}
	db.latest.Put(now, cp)
	return cp, nil
}
