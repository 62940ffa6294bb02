package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cofferhq/coffer/internal/pgtest"
	"github.com/cofferhq/coffer/migrations"
	"github.com/cofferhq/coffer/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestIsolated checks that two databases start with the migrated schema and
// that what one test writes, the other does not see.
func TestIsolated(t *testing.T) {
	ctx := t.Context()
	a, b := pgtest.NewPool(t), pgtest.NewPool(t)

	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	for name, pool := range map[string]*pgxpool.Pool{"a": a, "b": b} {
		v, err := store.SchemaVersion(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if v != latest {
			t.Errorf("database %s: schema version %d, want %d", name, v, latest)
		}
	}

	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (v int)"); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := b.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Error("a table created in one test database is visible in another")
	}
	if dbName(t, a) == dbName(t, b) {
		t.Error("two calls returned the same database")
	}
}

// TestParallel runs many tests that each get a database at the same time.
func TestParallel(t *testing.T) {
	for i := range 8 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewPool(t)
			if _, err := pool.Exec(t.Context(), "CREATE TABLE mine (v int)"); err != nil {
				t.Fatalf("test %d: %v", i, err)
			}
		})
	}
}

// TestDropped checks that a test's database is gone once the test is over.
func TestDropped(t *testing.T) {
	var url string
	if !t.Run("uses a database", func(t *testing.T) {
		url = pgtest.NewURL(t)
	}) {
		return
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err == nil {
		conn.Close(context.Background())
		t.Fatal("the database is still there after its test ended")
	}
	if !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("connecting to the dropped database: %v, want \"does not exist\"", err)
	}
}

func dbName(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	var name string
	if err := pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
		tb.Fatal(err)
	}
	return name
}
