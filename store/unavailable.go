package store

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cofferhq/coffer"
)

// unavailable reports whether err means PostgreSQL cannot be reached or is
// going away, not that the request was wrong or the code is broken: the
// caller should retry later (503), and the server recovers by itself once
// the pool reconnects.
//
//   - pgconn.ConnectError: no connection could be made;
//   - SQLSTATE class 08 (connection exception);
//   - 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now
//     (starting up, shutting down, in recovery);
//   - a connection that broke mid-query (EOF, reset, refused).
func unavailable(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENOENT) {
		return true
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return true
	}
	// pgx reports a connection it closed after a failure as "conn closed".
	return strings.Contains(err.Error(), "conn closed")
}

// unavailableError is EUNAVAILABLE with its database cause, which reaches
// the server log but never the client.
type unavailableError struct {
	err   *coffer.Error
	cause error
}

func (e *unavailableError) Error() string { return e.err.Error() + ": " + e.cause.Error() }
func (e *unavailableError) Unwrap() error { return e.err }
