package store_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/migrations"
	"github.com/cofferhq/coffer/store"
)

// TestMain gives the package's tests a private PostgreSQL (see pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }

func TestMigrate(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewURL(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}

	// pgtest's databases are already migrated: start from an empty one.
	for _, q := range []string{"DROP SCHEMA public CASCADE", "CREATE SCHEMA public"} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := store.SchemaVersion(ctx, pool); err != nil || v != 0 {
		t.Fatalf("SchemaVersion of an empty database = %d, %v; want 0, nil", v, err)
	}

	// Several replicas starting at once: the lock lets one apply each
	// migration, and all succeed.
	var logs [3]bytes.Buffer
	var wg sync.WaitGroup
	errs := make([]error, len(logs))
	for i := range logs {
		wg.Go(func() {
			errs[i] = store.Migrate(ctx, url, slog.New(slog.NewTextHandler(&logs[i], nil)))
		})
	}
	wg.Wait()
	applied := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate %d: %v", i, err)
		}
		applied += strings.Count(logs[i].String(), `msg="applied migration"`)
	}
	if applied != int(latest) {
		t.Errorf("concurrent Migrate calls applied %d migrations in all, want %d (each once)", applied, latest)
	}
	if v, err := store.SchemaVersion(ctx, pool); err != nil || v != latest {
		t.Fatalf("SchemaVersion after Migrate = %d, %v; want %d, nil", v, err, latest)
	}

	// Again: nothing to do.
	var again bytes.Buffer
	if err := store.Migrate(ctx, url, slog.New(slog.NewTextHandler(&again, nil))); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(again.String(), "applied migration") || !strings.Contains(again.String(), "up to date") {
		t.Errorf("second Migrate logged:\n%s", again.String())
	}
}

func TestMigrateBadURL(t *testing.T) {
	err := store.Migrate(t.Context(), "postgres://user:hunter2@/x?host=/nonexistent&connect_timeout=1", nil)
	if err == nil {
		t.Fatal("Migrate succeeded without a server")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error reveals the password: %v", err)
	}
}
