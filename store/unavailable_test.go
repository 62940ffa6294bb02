package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/store"
)

// TestConnectionFailuresAreUnavailable: a database that cannot be reached
// or is going away is EUNAVAILABLE (503, retry), never EINTERNAL (500).
func TestConnectionFailuresAreUnavailable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want coffer.Code
	}{
		{"connection exception 08006", &pgconn.PgError{Code: "08006"}, coffer.EUNAVAILABLE},
		{"connection does not exist 08003", &pgconn.PgError{Code: "08003"}, coffer.EUNAVAILABLE},
		{"admin shutdown 57P01", &pgconn.PgError{Code: "57P01"}, coffer.EUNAVAILABLE},
		{"crash shutdown 57P02", &pgconn.PgError{Code: "57P02"}, coffer.EUNAVAILABLE},
		{"cannot connect now 57P03", &pgconn.PgError{Code: "57P03"}, coffer.EUNAVAILABLE},
		{"broken mid-query", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), coffer.EUNAVAILABLE},
		{"unique violation stays a conflict", &pgconn.PgError{Code: "23505"}, coffer.ECONFLICT},
		{"syntax error stays internal", &pgconn.PgError{Code: "42601"}, coffer.EINTERNAL},
		{"query canceled 57014 stays internal", &pgconn.PgError{Code: "57014"}, coffer.EINTERNAL},
		{"anything else stays internal", errors.New("boom"), coffer.EINTERNAL},
	} {
		if got := coffer.ErrorCode(store.MapError(c.err)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}

	// A real pgconn.ConnectError, from a server that is not there.
	db, err := store.Open(context.Background(), "postgres://coffer@/coffer?host=/nonexistent-coffer-socket&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.LogCheckpoint(context.Background())
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) && coffer.ErrorCode(err) != coffer.EUNAVAILABLE {
		t.Fatalf("no ConnectError behind %v", err)
	}
	if code := coffer.ErrorCode(err); code != coffer.EUNAVAILABLE {
		t.Fatalf("a store method against a database that is not there: %s (%v), want unavailable", code, err)
	}
}
