package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/cofferhq/coffer/migrations"
)

// Migrate applies every pending embedded migration (package migrations) to
// the database at databaseURL, in order, each in its own transaction.
//
// A PostgreSQL session-level advisory lock serializes concurrent callers, so
// that replicas starting together apply each migration once. The lock is taken
// only here, at start-up, never on the request path.
//
// A nil logger discards the log. Neither the URL, which may hold a password,
// nor any data is logged.
func Migrate(ctx context.Context, databaseURL string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err) // pgx redacts passwords
	}
	// goose works on database/sql; pgx's stdlib adapter provides it.
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	// Poll for the lock every second (goose's default is every 5 s) for up
	// to 5 minutes, so a waiting replica starts soon after the first is done.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker),
		// We log the results ourselves; goose logs nothing unless verbose.
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer provider.Close()

	results, err := provider.Up(ctx)
	if partial, ok := errors.AsType[*goose.PartialError](err); ok {
		results = partial.Applied
	}
	for _, r := range results {
		logger.Info("applied migration", "version", r.Source.Version, "file", path.Base(r.Source.Path), "duration", r.Duration)
	}
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}

	current, err := provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: read schema version: %w", err)
	}
	latest, err := migrations.Latest()
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if current > latest {
		// An older binary during a rolling upgrade; it may still work, but
		// readiness checks should know.
		logger.Warn("database schema is newer than this binary", "schema_version", current, "binary_version", latest)
	} else if len(results) == 0 {
		logger.Info("database schema up to date", "schema_version", current)
	}
	if current >= memberKeysVersion {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		n, err := backfillMemberKeys(ctx, conn)
		if err != nil {
			return fmt.Errorf("store: migrate: member keys: %w", err)
		}
		if n > 0 {
			logger.Info("stored the member keys of suite v2 accounts created before migration 15", "accounts", n)
		}
	}
	return nil
}

// SchemaVersion returns the schema version of the database behind pool, or 0
// when the database was never migrated. Readiness compares it with
// migrations.Latest. The query is the one goose itself uses for the current
// version, so the two always agree.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var v int64
	err := pool.QueryRow(ctx,
		"SELECT coalesce(max(version_id), 0) FROM "+pgx.Identifier{goose.DefaultTablename}.Sanitize(),
	).Scan(&v)
	// 42P01 is undefined_table: goose has not created its table yet.
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P01" {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: read schema version: %w", err)
	}
	return v, nil
}
