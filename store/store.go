// Package store implements Coffer's service interfaces on PostgreSQL with
// pgx. Each exported method runs in its own transaction and calls unexported
// helpers that take the transaction, so a method is atomic as a whole.
// Authorization lives inside the queries: rows are selected only where the
// caller is a member.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer"
)

// DB is Coffer's PostgreSQL storage.
type DB struct {
	pool *pgxpool.Pool
	// Now is the clock. Tests replace it to exercise expiry.
	Now func() time.Time
	// CheckpointRefresh is how often an unchanged log is re-signed
	// (DefaultCheckpointRefresh when zero).
	CheckpointRefresh time.Duration
	// latest is the signed checkpoint LogCheckpointGen last read.
	latest CheckpointMemo[string]
	// StateCacheBytes bounds the verified group states kept in memory
	// (statecache.go): DefaultStateCacheBytes when zero, none when negative.
	// Set it before the first call.
	StateCacheBytes int64
	statesOnce      sync.Once
	states          *stateCache
}

// stateCache returns the cache of verified group states, nil when off.
func (db *DB) stateCache() *stateCache {
	db.statesOnce.Do(func() {
		switch {
		case db.StateCacheBytes == 0:
			db.states = newStateCache(DefaultStateCacheBytes)
		case db.StateCacheBytes > 0:
			db.states = newStateCache(db.StateCacheBytes)
		}
	})
	return db.states
}

// Open connects to the database at url. It does not migrate.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: parse database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	return New(pool), nil
}

// New wraps an existing pool.
func New(pool *pgxpool.Pool) *DB {
	return &DB{pool: pool, Now: time.Now}
}

// Pool returns the underlying pool, for readiness checks.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool.
func (db *DB) Close() { db.pool.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

func (db *DB) now() time.Time { return db.Now().UTC() }

// inTx runs fn in a transaction, committing when it returns nil. Errors are
// mapped to coffer codes on the way out.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, db.pool, fn)
	return mapError(err)
}

// mapError is the one place where database errors become coffer codes:
// no rows → not found, unique violation → conflict. Anything else stays an
// internal error, whose details reach only the server log.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var ce *coffer.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return coffer.Errorf(coffer.ENOTFOUND, "not found")
	}
	if unavailable(err) {
		// Keep the cause for the server log; the client sees only the code.
		return &unavailableError{err: coffer.Errorf(coffer.EUNAVAILABLE, "the database is unavailable: retry shortly"), cause: err}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return &conflictError{err: coffer.Errorf(coffer.ECONFLICT, "already exists"), constraint: pe.ConstraintName}
		case "23503", "23514", "22001": // foreign key, check, string too long
			return coffer.Errorf(coffer.EINVALID, "rejected by a database constraint")
		}
	}
	return err
}

// conflictError keeps the name of the violated constraint so that a method
// can tell which uniqueness failed (handle taken vs. seq taken).
type conflictError struct {
	err        *coffer.Error
	constraint string
}

func (e *conflictError) Error() string { return e.err.Error() }
func (e *conflictError) Unwrap() error { return e.err }
